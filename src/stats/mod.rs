//! Trace statistics: per-layer load, inter-layer affinity, temporal locality, chunk sparsity and
//! workload shift. These feed the planner, the predictor, the cache and `trace synth --fit`.

mod load;
mod report;
mod shift;
mod sparsity;
mod temporal;
mod transition;

pub use load::{LayerLoad, expert_counts, key_counts, layer_load};
pub use report::render_table;
pub use shift::{Shift, js_divergence, shift};
pub use sparsity::{CHUNK_SIZES, ChunkSparsity, chunk_sparsity};
pub use temporal::temporal_locality;
pub use transition::{PairStrength, TransitionSummary, Transitions};

use serde::Serialize;

use crate::trace::{ModelShape, Trace};

/// Version of the `--json` document (bumped when a key changes meaning or disappears).
pub const STATS_JSON_VERSION: u32 = 1;

/// Everything `moeplan trace stats` reports (the `--json` document).
#[derive(Debug, Clone, Serialize)]
pub struct TraceStats {
    /// Document version ([`STATS_JSON_VERSION`]).
    pub version: u32,
    /// The trace's routing shape.
    pub shape: ModelShape,
    /// Tokens in the trace.
    pub tokens: usize,
    /// Sequences in the trace.
    pub sequences: usize,
    /// One entry per MoE layer.
    pub layers: Vec<LayerLoad>,
    /// Averages over layers.
    pub summary: Summary,
    /// Affinity for hops h = 1..=max_hops.
    pub transitions: Vec<TransitionSummary>,
    /// Chunk-level sparsity for n in [`CHUNK_SIZES`].
    pub chunk_sparsity: Vec<ChunkSparsity>,
    /// Shift against a second trace, when one was given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shift: Option<Shift>,
}

/// Layer-averaged figures.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Mean over layers of max/mean expert load.
    pub imbalance_mean: f64,
    /// Worst layer's max/mean expert load.
    pub imbalance_max: f64,
    /// Mean over layers of entropy / log2(experts) (1 = uniform).
    pub entropy_norm_mean: f64,
    /// Mean over layers of the temporal locality.
    pub temporal_locality_mean: f64,
    /// What temporal locality would be with independent uniform routing: top_k / experts.
    pub temporal_chance: f64,
}

/// Options of [`compute`].
#[derive(Debug, Clone)]
pub struct StatsOptions {
    /// Largest hop distance for the transition matrices.
    pub max_hops: usize,
    /// Strongest pairs listed per hop distance.
    pub top_pairs: usize,
}

impl Default for StatsOptions {
    fn default() -> Self {
        StatsOptions {
            max_hops: 4,
            top_pairs: 10,
        }
    }
}

/// Computes every statistic of `trace` (and its shift against `other`, if given).
pub fn compute(
    trace: &Trace,
    other: Option<(&str, &Trace)>,
    opts: &StatsOptions,
) -> Result<TraceStats, String> {
    let shape = *trace.shape();
    let counts = expert_counts(trace);
    let temporal = temporal_locality(trace);
    let layers: Vec<LayerLoad> = (0..shape.moe_layers)
        .map(|l| {
            layer_load(
                &shape,
                l,
                &counts[l * shape.experts..(l + 1) * shape.experts],
                temporal[l],
            )
        })
        .collect();
    let n = layers.len() as f64;
    let summary = Summary {
        imbalance_mean: layers.iter().map(|x| x.imbalance).sum::<f64>() / n,
        imbalance_max: layers.iter().map(|x| x.imbalance).fold(0.0, f64::max),
        entropy_norm_mean: layers.iter().map(|x| x.entropy_norm).sum::<f64>() / n,
        temporal_locality_mean: temporal.iter().sum::<f64>() / n,
        temporal_chance: shape.top_k as f64 / shape.experts as f64,
    };
    let transitions = (1..=opts.max_hops.min(shape.moe_layers.saturating_sub(1)))
        .map(|h| Transitions::count(trace, h).summary(opts.top_pairs))
        .collect();
    let chunk_sparsity = CHUNK_SIZES
        .iter()
        .map(|&n| chunk_sparsity(trace, n))
        .collect();
    let shift = match other {
        Some((name, o)) => Some(shift(name, &counts, &expert_counts(o), &shape, o.shape())?),
        None => None,
    };
    Ok(TraceStats {
        version: STATS_JSON_VERSION,
        shape,
        tokens: trace.num_tokens(),
        sequences: trace.num_sequences(),
        layers,
        summary,
        transitions,
        chunk_sparsity,
        shift,
    })
}
