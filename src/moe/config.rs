//! [`MoeConfig`]: the shape and seed of a model directory (`config.json`).

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::ModelError;
use crate::trace::ModelShape;

/// The model's shape and seed file.
pub const CONFIG_FILE: &str = "config.json";
/// The routed experts (safetensors).
pub const EXPERTS_FILE: &str = "experts.safetensors";
/// Routers, norms and shared experts (safetensors).
pub const DENSE_FILE: &str = "dense.safetensors";
/// Version of the directory layout.
pub const VERSION: u32 = 1;

/// What `moeplan model init` wrote.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MoeConfig {
    /// Layout version ([`VERSION`]).
    pub version: u32,
    /// The model whose routing shape this is (`deepseek-v2-lite`).
    pub model: String,
    /// Factor applied to the model's hidden and expert FFN sizes.
    pub scale: f64,
    /// Decoder layer index of the first MoE layer (tensor names use decoder indices).
    pub first_moe_layer: usize,
    /// MoE layers.
    pub moe_layers: usize,
    /// Routed experts per layer.
    pub experts: usize,
    /// Shared experts per layer (one SwiGLU of `shared_experts * expert_ffn` width).
    pub shared_experts: usize,
    /// Experts each token selects per layer.
    pub top_k: usize,
    /// Hidden size.
    pub hidden: usize,
    /// Intermediate size of one routed expert.
    pub expert_ffn: usize,
    /// RMS-norm epsilon.
    pub rms_eps: f32,
    /// Seed of the weights and of the tokens' input states.
    pub seed: u64,
}

impl MoeConfig {
    /// The routing shape (what a trace for this model must have).
    pub fn shape(&self) -> ModelShape {
        ModelShape {
            moe_layers: self.moe_layers,
            experts: self.experts,
            top_k: self.top_k,
            first_moe_layer: self.first_moe_layer,
        }
    }

    /// Bytes of one routed expert (f32 gate, up and down projections).
    pub fn expert_bytes(&self) -> u64 {
        3 * self.hidden as u64 * self.expert_ffn as u64 * 4
    }

    /// Reads and checks `dir/config.json`; errors name the file and the field.
    pub fn load(dir: &Path) -> anyhow::Result<MoeConfig> {
        let path = dir.join(CONFIG_FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| {
            anyhow::anyhow!(
                "{}: {e} (write a model directory with `moeplan model init`)",
                path.display()
            )
        })?;
        let bad = |message: String| ModelError::Invalid {
            path: path.clone(),
            message,
        };
        let c: MoeConfig = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
        if c.version != VERSION {
            return Err(bad(format!(
                "version: {} (this moeplan reads {VERSION})",
                c.version
            ))
            .into());
        }
        if c.hidden == 0 || c.expert_ffn == 0 {
            return Err(bad("hidden and expert_ffn: must be at least 1".into()).into());
        }
        c.shape()
            .check()
            .map_err(|m| bad(format!("experts/top_k/moe_layers: {m}")))?;
        if !(c.rms_eps > 0.0 && c.rms_eps.is_finite()) {
            return Err(bad(format!("rms_eps: {} must be positive", c.rms_eps)).into());
        }
        Ok(c)
    }
}
