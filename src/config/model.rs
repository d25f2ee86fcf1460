//! A model's MoE shape and expert sizes (`configs/models/*.toml`).

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{ConfigError, parse_toml, read_text};
use crate::trace::{MAX_MOE_LAYERS, ModelShape};

/// Most decoder layers a model may have (dense ones included): `first_moe_layer` and
/// `moe_layers` at their limits. Bounds the per-decoder-layer tables of the exports.
pub const MAX_LAYERS: usize = 2 * MAX_MOE_LAYERS;

/// A MoE model as placement and caching see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// Human-readable name (`deepseek-v2-lite`).
    pub name: String,
    /// Decoder layers in total, dense ones included.
    pub layers: usize,
    /// Index of the first MoE layer (the ones before are dense).
    pub first_moe_layer: usize,
    /// MoE layers (`layers - first_moe_layer` for the models shipped).
    pub moe_layers: usize,
    /// Routed experts per MoE layer.
    pub experts: usize,
    /// Shared experts per MoE layer (always active, never routed, not placed).
    pub shared_experts: usize,
    /// Experts selected per token per layer.
    pub top_k: usize,
    /// Model hidden size.
    pub hidden_size: usize,
    /// Intermediate size of one routed expert's FFN.
    pub expert_ffn_size: usize,
    /// Weight dtype (`bf16`, `fp8`, ...).
    pub dtype: String,
    /// Bytes of one routed expert's weights (gate, up and down projections).
    pub bytes_per_expert: u64,
}

impl ModelConfig {
    /// Loads and checks a model config.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        Self::parse(&read_text(path)?, path)
    }

    /// Parses and checks a model config's TOML text (`path` names it in errors).
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        Self::check(parse_toml(text, path)?, path)
    }

    /// Checks the shape against the limits, the layer counts and the expert size.
    fn check(m: ModelConfig, path: &Path) -> Result<Self, ConfigError> {
        let bad = |key: &str, message: String| ConfigError::Invalid {
            path: path.into(),
            key: key.into(),
            message,
        };
        if let Err((key, msg)) = m.shape().check_field() {
            return Err(bad(key, msg));
        }
        if m.layers > MAX_LAYERS {
            return Err(bad(
                "layers",
                format!("layers must be at most {MAX_LAYERS}, got {}", m.layers),
            ));
        }
        if m.first_moe_layer + m.moe_layers > m.layers {
            return Err(bad(
                "moe_layers",
                format!("first_moe_layer + moe_layers exceeds layers ({})", m.layers),
            ));
        }
        let dtype_bytes = match m.dtype.as_str() {
            "bf16" | "fp16" => 2,
            "fp8" | "int8" => 1,
            "fp32" => 4,
            other => {
                return Err(bad(
                    "dtype",
                    format!("unknown dtype {other:?} (bf16, fp16, fp8, int8, fp32)"),
                ));
            }
        };
        let expected = (m.hidden_size as u64)
            .checked_mul(m.expert_ffn_size as u64)
            .and_then(|x| x.checked_mul(3 * dtype_bytes))
            .filter(|&x| x <= u64::MAX / 2)
            .ok_or_else(|| {
                bad(
                    "hidden_size",
                    "hidden_size x expert_ffn_size is too large".to_string(),
                )
            })?;
        if m.bytes_per_expert < expected / 2 || m.bytes_per_expert > expected * 2 {
            return Err(bad(
                "bytes_per_expert",
                format!(
                    "{} is far from 3 x hidden x ffn x dtype = {expected}",
                    m.bytes_per_expert
                ),
            ));
        }
        Ok(m)
    }

    /// The routing shape traces of this model have.
    pub fn shape(&self) -> ModelShape {
        ModelShape {
            moe_layers: self.moe_layers,
            experts: self.experts,
            top_k: self.top_k,
            first_moe_layer: self.first_moe_layer,
        }
    }
}
