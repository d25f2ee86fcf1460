//! Traces to solver workloads: per-layer expert loads, consecutive-layer pair counts (all k x k
//! and top-1) and per-batch loads, in one pass over the tokens.

use moeplan_solver::Workload;

use crate::trace::Trace;

/// Tokens per batch for the layer-time proxy (a decode batch of this many tokens).
pub const DEFAULT_BATCH_TOKENS: usize = 256;

/// The counts of `trace` as a solver workload; batches of `batch_tokens` consecutive tokens
/// (0: no per-batch loads, the whole trace is one batch).
pub fn workload_from_trace(trace: &Trace, batch_tokens: usize) -> Workload {
    let s = trace.shape();
    let (layers, e) = (s.moe_layers, s.experts);
    let mut w = Workload::zeros(layers, e);
    w.tokens = trace.num_tokens();
    let n = layers * e;
    if batch_tokens > 0 {
        w.batch_load = vec![0.0; w.tokens.div_ceil(batch_tokens) * n];
    }
    for t in 0..trace.num_tokens() {
        for l in 0..layers {
            let here = trace.experts(t, l);
            for &x in here {
                w.load[l * e + x as usize] += 1.0;
                if let Some(b) = t.checked_div(batch_tokens) {
                    w.batch_load[b * n + l * e + x as usize] += 1.0;
                }
            }
            if l + 1 < layers {
                let next = trace.experts(t, l + 1);
                let base = l * e * e;
                for &a in here {
                    for &b in next {
                        w.pairs[base + a as usize * e + b as usize] += 1.0;
                    }
                }
                w.pairs_top1[base + here[0] as usize * e + next[0] as usize] += 1.0;
            }
        }
    }
    w
}

/// One workload standing for `parts` served one after the other: counts add up, the per-batch
/// loads follow each other (no batch mixes two parts).
pub fn combined_workload(parts: &[Workload]) -> Workload {
    let first = &parts[0];
    let mut w = Workload::zeros(first.layers, first.experts);
    for p in parts {
        w.tokens += p.tokens;
        for (a, b) in [
            (&mut w.load, &p.load),
            (&mut w.pairs, &p.pairs),
            (&mut w.pairs_top1, &p.pairs_top1),
        ] {
            for (x, y) in a.iter_mut().zip(b) {
                *x += y;
            }
        }
        w.batch_load.extend_from_slice(&p.batch_load);
    }
    w
}
