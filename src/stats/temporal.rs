//! Temporal locality: how many of a token's experts the previous token of its sequence also used.

use crate::trace::Trace;

/// Per layer: mean over tokens that have a predecessor in their sequence of
/// |S(t,l) ∩ S(t-1,l)| / k. Layers with no such token get 0.
pub fn temporal_locality(trace: &Trace) -> Vec<f64> {
    let s = trace.shape();
    let mut shared = vec![0u64; s.moe_layers];
    let mut pairs = 0u64;
    for t in 0..trace.num_tokens() {
        let Some(p) = trace.prev_in_seq(t) else {
            continue;
        };
        pairs += 1;
        for (l, sh) in shared.iter_mut().enumerate() {
            let prev = trace.experts(p, l);
            *sh += trace
                .experts(t, l)
                .iter()
                .filter(|e| prev.contains(e))
                .count() as u64;
        }
    }
    shared
        .iter()
        .map(|&c| {
            if pairs == 0 {
                0.0
            } else {
                c as f64 / (pairs * s.top_k as u64) as f64
            }
        })
        .collect()
}
