//! Chunk-level sparsity (BlockFFN): the share of experts the union of n consecutive tokens uses.

use serde::Serialize;

use crate::trace::Trace;

/// The chunk sizes reported.
pub const CHUNK_SIZES: [usize; 5] = [1, 2, 4, 8, 16];

/// Chunk sparsity for one chunk size.
#[derive(Debug, Clone, Serialize)]
pub struct ChunkSparsity {
    /// Tokens per chunk.
    pub n: usize,
    /// Mean over layers and chunks of |union of the chunk's experts| / experts.
    pub active_fraction: f64,
    /// The same per MoE layer.
    pub per_layer: Vec<f64>,
    /// Chunks counted: non-overlapping, inside one sequence, full chunks only (a sequence's
    /// last partial chunk is not counted, so n = 16 sees slightly fewer tokens than n = 1).
    pub chunks: u64,
}

/// Chunk sparsity of `trace` for chunks of `n` tokens.
pub fn chunk_sparsity(trace: &Trace, n: usize) -> ChunkSparsity {
    let s = trace.shape();
    let words = s.experts.div_ceil(64);
    let mut mask = vec![0u64; words];
    let mut active = vec![0u64; s.moe_layers];
    let mut chunks = 0u64;
    for r in trace.sequences() {
        let mut start = r.start;
        while start + n <= r.end {
            chunks += 1;
            for (l, a) in active.iter_mut().enumerate() {
                mask.fill(0);
                for t in start..start + n {
                    for &e in trace.experts(t, l) {
                        mask[e as usize / 64] |= 1 << (e % 64);
                    }
                }
                *a += mask.iter().map(|w| w.count_ones() as u64).sum::<u64>();
            }
            start += n;
        }
    }
    let denom = (chunks * s.experts as u64).max(1) as f64;
    let per_layer: Vec<f64> = active.iter().map(|&a| a as f64 / denom).collect();
    let active_fraction = per_layer.iter().sum::<f64>() / per_layer.len() as f64;
    ChunkSparsity {
        n,
        active_fraction,
        per_layer,
        chunks,
    }
}
