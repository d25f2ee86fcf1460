//! Placement problem inputs: per-layer expert loads and inter-layer transition weights.

use serde::{Deserialize, Serialize};

/// A per-layer expert placement instance, independent of files and traces.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LoadMatrix {
    /// Number of MoE layers.
    pub layers: usize,
    /// Logical experts per layer.
    pub experts: usize,
    /// Token-selections per (layer, expert), row-major `[layers][experts]`.
    pub load: Vec<f64>,
}

impl LoadMatrix {
    /// Loads of one layer.
    pub fn layer(&self, l: usize) -> &[f64] {
        &self.load[l * self.experts..(l + 1) * self.experts]
    }
}
