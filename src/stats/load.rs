//! Per-layer expert load: token-selections per expert, imbalance (max/mean) and entropy.

use serde::Serialize;

use crate::trace::{ModelShape, Trace};

/// Load figures of one MoE layer.
#[derive(Debug, Clone, Serialize)]
pub struct LayerLoad {
    /// MoE layer index, 0-based.
    pub layer: usize,
    /// Decoder layer index in the model (`first_moe_layer + layer`).
    pub model_layer: usize,
    /// Token-selections per expert.
    pub counts: Vec<u64>,
    /// Busiest expert's count / mean count.
    pub imbalance: f64,
    /// Shannon entropy of the load distribution, bits.
    pub entropy_bits: f64,
    /// Entropy / log2(experts): 1 for a uniform load.
    pub entropy_norm: f64,
    /// Share of a token's experts the previous token of its sequence also used at this layer.
    pub temporal_locality: f64,
}

impl LayerLoad {
    /// Entropy / log2(n) of a count vector.
    pub fn normalised_entropy(counts: &[u64]) -> f64 {
        if counts.len() > 1 {
            entropy_bits(counts) / (counts.len() as f64).log2()
        } else {
            0.0
        }
    }
}

/// Token-selections per (layer, expert), `[moe_layers][experts]` flattened.
pub fn expert_counts(trace: &Trace) -> Vec<u64> {
    let s = trace.shape();
    let (layers, e, k) = (s.moe_layers, s.experts, s.top_k);
    let mut counts = vec![0u64; layers * e];
    for t in 0..trace.num_tokens() {
        for (i, &x) in trace.token_experts(t).iter().enumerate() {
            counts[(i / k) * e + x as usize] += 1;
        }
    }
    counts
}

/// Token-selections per (layer, expert) of every trace of `traces` together, as `f64`
/// (`layer * experts + expert`; the ranking `static` uses, in the replay and the daemon).
pub fn key_counts(traces: &[&Trace], layers: usize, experts: usize) -> Vec<f64> {
    let mut c = vec![0.0; layers * experts];
    for tr in traces {
        for (a, &n) in c.iter_mut().zip(&expert_counts(tr)) {
            *a += n as f64;
        }
    }
    c
}

/// Shannon entropy (bits) of a count vector.
pub fn entropy_bits(counts: &[u64]) -> f64 {
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return 0.0;
    }
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = c as f64 / total as f64;
            -p * p.log2()
        })
        .sum()
}

/// Max over mean of a count vector (1 = perfectly even; 0 for an empty vector).
pub fn imbalance(counts: &[u64]) -> f64 {
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return 0.0;
    }
    let mean = total as f64 / counts.len() as f64;
    *counts.iter().max().unwrap() as f64 / mean
}

/// The [`LayerLoad`] of layer `l` from its counts.
pub fn layer_load(shape: &ModelShape, l: usize, counts: &[u64], temporal: f64) -> LayerLoad {
    let h = entropy_bits(counts);
    LayerLoad {
        layer: l,
        model_layer: shape.first_moe_layer + l,
        counts: counts.to_vec(),
        imbalance: imbalance(counts),
        entropy_bits: h,
        entropy_norm: if shape.experts > 1 {
            h / (shape.experts as f64).log2()
        } else {
            0.0
        },
        temporal_locality: temporal,
    }
}
