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

    /// Checks the shape is usable; returns a description of the first problem.
    pub fn check(&self) -> Result<(), String> {
        if self.moe_layers == 0 {
            return Err("moe_layers must be at least 1".into());
        }
        if self.experts == 0 || self.experts > u16::MAX as usize {
            return Err(format!(
                "experts must be in 1..={}, got {}",
                u16::MAX,
                self.experts
            ));
        }
        if self.top_k == 0 || self.top_k > self.experts {
            return Err(format!(
                "top_k must be in 1..=experts ({}), got {}",
                self.experts, self.top_k
            ));
        }
        Ok(())
    }
}
