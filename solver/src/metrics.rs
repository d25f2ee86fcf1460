//! Figures of merit of a plan on a workload (definitions in `DESIGN.md`): load imbalance, hop
//! rates (all k x k pairs, top-1, inter-node), the layer-time proxy; expected values over replicas.

use serde::{Deserialize, Serialize};

use crate::plan::{Plan, Spread};
use crate::problem::{Topology, Workload};

/// What a plan achieves on one workload.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct Metrics {
    /// Mean over layers of (busiest GPU's token-selections / mean over GPUs).
    pub ir_mean: f64,
    /// The worst layer's imbalance.
    pub ir_worst: f64,
    /// Share of consecutive-layer expert pairs (all k x k) whose GPUs differ.
    pub hop_rate: f64,
    /// The same for each layer's top-1 expert.
    pub hop_rate_top1: f64,
    /// Share of consecutive-layer pairs whose nodes differ.
    pub hop_rate_internode: f64,
    /// Sum over layers of the busiest GPU's token-selections, per token (per batch when the
    /// workload has batches, then summed): perfect balance gives layers x top_k / GPUs.
    pub layer_time_proxy: f64,
    /// Expected link cost per consecutive-layer pair (hop rate weighted by link cost).
    pub comm_cost: f64,
    /// Expected cross-GPU consecutive-layer expert pairs (all k x k) per token, summed over layer
    /// pairs: times one hidden vector's bytes, the all-to-all volume per token.
    #[serde(default)]
    pub hops_per_token: f64,
}

/// Token-selections served by each GPU when a layer's experts have loads `load`.
pub fn gpu_loads(load: &[f64], spread: &[Spread], gpus: usize) -> Vec<f64> {
    let mut out = vec![0.0; gpus];
    for (e, s) in spread.iter().enumerate() {
        for &(g, share) in s {
            out[g] += load[e] * share;
        }
    }
    out
}

/// Busiest GPU / mean GPU load (1 for an empty layer).
pub fn imbalance(gpu_load: &[f64]) -> f64 {
    let total: f64 = gpu_load.iter().sum();
    if total <= 0.0 {
        return 1.0;
    }
    gpu_load.iter().cloned().fold(0.0, f64::max) * gpu_load.len() as f64 / total
}

/// Expected (different-GPU, different-node, link-cost) probabilities/cost of a pair whose
/// experts spread as `a` and `b`.
#[inline]
pub fn pair_terms(a: &Spread, b: &Spread, topo: &Topology) -> (f64, f64, f64) {
    let (mut same_gpu, mut same_node, mut cost) = (0.0, 0.0, 0.0);
    for &(g, x) in a {
        for &(h, y) in b {
            let p = x * y;
            if g == h {
                same_gpu += p;
            }
            if topo.node_of(g) == topo.node_of(h) {
                same_node += p;
            }
            cost += p * topo.cost(g, h);
        }
    }
    (1.0 - same_gpu, 1.0 - same_node, cost)
}

/// Scores `plan` on workload `w` over `topo`.
pub fn evaluate(w: &Workload, plan: &Plan, topo: &Topology) -> Metrics {
    let spreads: Vec<Vec<Spread>> = (0..plan.layers).map(|l| plan.spread(l)).collect();
    let mut irs = Vec::with_capacity(plan.layers);
    let mut proxy = 0.0;
    for (l, s) in spreads.iter().enumerate() {
        let loads = gpu_loads(w.load(l), s, plan.gpus);
        irs.push(imbalance(&loads));
        if w.batches() == 0 {
            proxy += loads.iter().cloned().fold(0.0, f64::max);
        }
    }
    let n = plan.layers * plan.experts;
    for b in 0..w.batches() {
        for (l, s) in spreads.iter().enumerate() {
            let row = &w.batch_load[b * n + l * plan.experts..b * n + (l + 1) * plan.experts];
            proxy += gpu_loads(row, s, plan.gpus).into_iter().fold(0.0, f64::max);
        }
    }
    let (mut pairs, mut hop, mut inter, mut cost, mut top1, mut hop1) =
        (0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
    let e = plan.experts;
    for l in 0..plan.layers.saturating_sub(1) {
        let (all, first) = (w.pairs(l), w.pairs_top1(l));
        for a in 0..e {
            for b in 0..e {
                let (c, c1) = (all[a * e + b], first[a * e + b]);
                if c == 0.0 && c1 == 0.0 {
                    continue;
                }
                let (h, hn, hc) = pair_terms(&spreads[l][a], &spreads[l + 1][b], topo);
                pairs += c;
                hop += c * h;
                inter += c * hn;
                cost += c * hc;
                top1 += c1;
                hop1 += c1 * h;
            }
        }
    }
    let ratio = |x: f64, y: f64| if y > 0.0 { x / y } else { 0.0 };
    Metrics {
        ir_mean: irs.iter().sum::<f64>() / irs.len().max(1) as f64,
        ir_worst: irs.iter().cloned().fold(0.0, f64::max),
        hop_rate: ratio(hop, pairs),
        hop_rate_top1: ratio(hop1, top1),
        hop_rate_internode: ratio(inter, pairs),
        layer_time_proxy: ratio(proxy, w.tokens as f64),
        comm_cost: ratio(cost, pairs),
        hops_per_token: ratio(hop, w.tokens as f64),
    }
}
