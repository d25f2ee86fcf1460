//! The routing shape of a MoE model as a trace sees it.

use serde::{Deserialize, Serialize};

/// Routing shape: what every (token, layer) entry of a trace looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelShape {
    /// Number of MoE layers in the trace (dense layers are not traced).
    pub moe_layers: usize,
    /// Routed experts per MoE layer (shared experts excluded: they are always active).
    pub experts: usize,
    /// Experts selected per token per layer.
    pub top_k: usize,
    /// Index of the first MoE layer among all decoder layers (DeepSeek-V2-Lite: 1).
    pub first_moe_layer: usize,
}

impl ModelShape {
    /// Entries (expert ids) per token across all layers.
    pub fn entries_per_token(&self) -> usize {
        self.moe_layers * self.top_k
    }

    /// Checks the shape is usable and within the documented limits ([`MAX_MOE_LAYERS`],
    /// [`MAX_EXPERTS`], [`MAX_TOP_K`], [`MAX_LAYER_EXPERTS`], [`MAX_PAIR_ENTRIES`]); returns a description of the first
    /// problem. Every reader (trace headers, configs, a daemon `register`) calls this before
    /// sizing anything from the shape.
    pub fn check(&self) -> Result<(), String> {
        self.check_field().map_err(|(_, m)| m)
    }

    /// [`ModelShape::check`], also naming the field at fault (`moe_layers`, `experts`, `top_k`,
    /// `first_moe_layer`).
    pub fn check_field(&self) -> Result<(), (&'static str, String)> {
        if self.moe_layers == 0 || self.moe_layers > MAX_MOE_LAYERS {
            return Err((
                "moe_layers",
                format!(
                    "moe_layers must be in 1..={MAX_MOE_LAYERS}, got {}",
                    self.moe_layers
                ),
            ));
        }
        if self.experts == 0 || self.experts > MAX_EXPERTS {
            return Err((
                "experts",
                format!("experts must be in 1..={MAX_EXPERTS}, got {}", self.experts),
            ));
        }
        if self.top_k == 0 || self.top_k > self.experts.min(MAX_TOP_K) {
            return Err((
                "top_k",
                format!(
                    "top_k must be in 1..={} (at most experts and at most {MAX_TOP_K}), got {}",
                    self.experts.min(MAX_TOP_K),
                    self.top_k
                ),
            ));
        }
        if self.moe_layers * self.experts > MAX_LAYER_EXPERTS {
            return Err((
                "moe_layers",
                format!(
                    "moe_layers x experts = {} exceeds the limit of {MAX_LAYER_EXPERTS}",
                    self.moe_layers * self.experts
                ),
            ));
        }
        if self.moe_layers * self.experts * self.experts > MAX_PAIR_ENTRIES {
            return Err((
                "experts",
                format!(
                    "moe_layers x experts x experts = {} exceeds the limit of {MAX_PAIR_ENTRIES} \
                 (the size of the layer-to-layer expert tables)",
                    self.moe_layers * self.experts * self.experts
                ),
            ));
        }
        if self.first_moe_layer > MAX_MOE_LAYERS {
            return Err((
                "first_moe_layer",
                format!(
                    "first_moe_layer must be at most {MAX_MOE_LAYERS}, got {}",
                    self.first_moe_layer
                ),
            ));
        }
        Ok(())
    }
}

/// Most MoE layers a shape may have.
pub const MAX_MOE_LAYERS: usize = 1024;
/// Most routed experts per layer.
pub const MAX_EXPERTS: usize = 2048;
/// Most experts a token may select per layer.
pub const MAX_TOP_K: usize = 64;
/// Most (layer, expert) pairs: bounds every per-expert table (a cache's counters, a predictor's
/// frequencies) to a few MiB. DeepSeek-V3 has 58 x 256 = 14,848.
pub const MAX_LAYER_EXPERTS: usize = 1 << 18;
/// Most entries of the layer-to-layer tables (`moe_layers x experts x experts`: placement's
/// pair counts, the statistics' transition matrices, a Markov predictor): 2^26, 512 MiB as f64.
/// DeepSeek-V3 has 58 x 256 x 256 = 3.8 M.
pub const MAX_PAIR_ENTRIES: usize = 1 << 26;
