//! Inter-layer transition (affinity) matrices: how often expert e at layer l is followed, for the
//! same token, by expert e' at layer l+h (all k x k pairs).

use serde::Serialize;

use crate::trace::Trace;

/// Direct h-hop transition counts, `[layers - h][experts][experts]` flattened.
#[derive(Debug, Clone)]
pub struct Transitions {
    /// Hop distance.
    pub hops: usize,
    /// MoE layers of the trace.
    pub layers: usize,
    /// Experts per layer.
    pub experts: usize,
    /// Top-k of the trace.
    pub top_k: usize,
    /// `counts[(l * experts + e) * experts + e2]`: tokens with e at layer l and e2 at l + hops.
    pub counts: Vec<u32>,
}

/// One strong pair.
#[derive(Debug, Clone, Serialize)]
pub struct PairStrength {
    /// Source MoE layer (0-based); the target is `layer + hops`.
    pub layer: usize,
    /// Expert at `layer`.
    pub from: u16,
    /// Expert at `layer + hops`.
    pub to: u16,
    /// Tokens routed to both.
    pub count: u32,
    /// P(to at layer+h | from at layer).
    pub prob: f64,
    /// prob / P(to at layer+h): how much likelier than by chance.
    pub lift: f64,
}

/// Summary of the h-hop affinity.
#[derive(Debug, Clone, Serialize)]
pub struct TransitionSummary {
    /// Hop distance.
    pub hops: usize,
    /// Count-weighted mean over (layer, expert) of the share of its transitions that go to its
    /// k most frequent successors: the recall a one-expert Markov guess could reach in-sample.
    pub top_k_successor_mass: f64,
    /// What that share is when the successor is independent of the source (the k most popular
    /// experts of the target layer, measured on the same trace).
    pub independent_mass: f64,
    /// Strongest pairs by lift, among pairs seen at least `min_count` times.
    pub strongest: Vec<PairStrength>,
    /// Support threshold used for `strongest`.
    pub min_count: u32,
}

impl Transitions {
    /// Counts the h-hop transitions of `trace`.
    pub fn count(trace: &Trace, hops: usize) -> Transitions {
        let s = trace.shape();
        let (layers, e) = (s.moe_layers, s.experts);
        let span = layers.saturating_sub(hops);
        let mut counts = vec![0u32; span * e * e];
        for t in 0..trace.num_tokens() {
            for l in 0..span {
                let to = trace.experts(t, l + hops);
                for &a in trace.experts(t, l) {
                    let row = &mut counts[(l * e + a as usize) * e..(l * e + a as usize + 1) * e];
                    for &b in to {
                        row[b as usize] += 1;
                    }
                }
            }
        }
        Transitions {
            hops,
            layers,
            experts: e,
            top_k: s.top_k,
            counts,
        }
    }

    /// Row of counts from expert `e` at layer `l`.
    pub fn row(&self, l: usize, e: usize) -> &[u32] {
        let n = self.experts;
        &self.counts[(l * n + e) * n..(l * n + e + 1) * n]
    }

    /// Summarises the matrices: successor concentration and the strongest pairs.
    pub fn summary(&self, top_pairs: usize) -> TransitionSummary {
        let (n, k) = (self.experts, self.top_k);
        let span = self.layers.saturating_sub(self.hops);
        let mut mass = 0u64;
        let mut indep = 0.0f64;
        let mut total = 0u64;
        let mut sorted = vec![0u32; n];
        let mut target = vec![0u64; n];
        let mut pairs: Vec<PairStrength> = Vec::new();
        let all: u64 = self.counts.iter().map(|&c| c as u64).sum();
        let min_count = ((all / (span.max(1) as u64 * n as u64 * n as u64)) as u32).max(20);
        for l in 0..span {
            target.fill(0);
            for e in 0..n {
                for (t, &c) in target.iter_mut().zip(self.row(l, e)) {
                    *t += c as u64;
                }
            }
            let layer_total: u64 = target.iter().sum();
            let mut tsorted = target.clone();
            tsorted.sort_unstable_by(|a, b| b.cmp(a));
            let top_target: u64 = tsorted.iter().take(k).sum();
            for e in 0..n {
                let row = self.row(l, e);
                let row_total: u64 = row.iter().map(|&c| c as u64).sum();
                if row_total == 0 {
                    continue;
                }
                sorted.copy_from_slice(row);
                sorted.sort_unstable_by(|a, b| b.cmp(a));
                mass += sorted.iter().take(k).map(|&c| c as u64).sum::<u64>();
                indep += row_total as f64 * top_target as f64 / layer_total as f64;
                total += row_total;
                for (e2, &c) in row.iter().enumerate() {
                    if c >= min_count {
                        let prob = c as f64 / row_total as f64;
                        let lift = prob / (target[e2] as f64 / layer_total as f64);
                        pairs.push(PairStrength {
                            layer: l,
                            from: e as u16,
                            to: e2 as u16,
                            count: c,
                            prob,
                            lift,
                        });
                    }
                }
            }
        }
        pairs.sort_by(|a, b| b.lift.total_cmp(&a.lift).then(b.count.cmp(&a.count)));
        pairs.truncate(top_pairs);
        let t = total.max(1) as f64;
        TransitionSummary {
            hops: self.hops,
            top_k_successor_mass: mass as f64 / t,
            independent_mass: indep / t,
            strongest: pairs,
            min_count,
        }
    }
}
