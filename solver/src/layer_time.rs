//! The layer-time model: milliseconds per MoE layer for a batch, from the busiest GPU's expert
//! compute and the all-to-all that brings tokens to their experts' GPUs.
//!
//! For a batch of `B` tokens at layer l, with `p_e` the selections of expert e per token and a
//! replica holding share `s` of its expert's tokens:
//!
//! ```text
//! compute_g = max( sum_replicas s p_e B * flops_per_selection / gpu_flops,
//!                  sum_replicas (1 - (1 - s p_e)^B) * expert_bytes / hbm_bandwidth )
//! a2a_g     = intra_bytes_g / intra_bandwidth + inter_bytes_g / inter_bandwidth
//! layer_ms  = max_g compute_g + 2 * (max_g a2a_g + a2a_latency)
//! ```
//!
//! The expert compute is a roofline per GPU: the larger of its FLOPs and the weights it must read
//! (an expert is read once per batch if any token chose it). `intra_bytes_g` / `inter_bytes_g`
//! are the hidden vectors GPU g sends for the consecutive-layer pairs (l-1, l) whose experts are
//! on different GPUs of its node / of another node (the hop model of [`crate::metrics`]);
//! dispatch and combine each move them once, and each pays the fixed latency. Layer 0 has no
//! previous layer and no all-to-all term.

use serde::{Deserialize, Serialize};

use crate::plan::{Plan, Spread};
use crate::problem::{Topology, Workload};

/// The constants of the model (from the model and hardware configs).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TimeModel {
    /// Tokens per batch.
    pub batch_tokens: f64,
    /// FLOPs of one expert for one token (2 x 3 x hidden x expert FFN for a gated MLP).
    pub flops_per_selection: f64,
    /// Sustained expert-GEMM throughput of one GPU, FLOP per millisecond.
    pub gpu_flops_per_ms: f64,
    /// Bytes of one expert's weights.
    pub expert_bytes: f64,
    /// HBM bandwidth of one GPU, bytes per millisecond.
    pub hbm_bytes_per_ms: f64,
    /// Bytes of one token's hidden vector on the wire.
    pub hidden_bytes: f64,
    /// Bandwidth from one GPU to the others of its node, bytes per millisecond.
    pub intra_bytes_per_ms: f64,
    /// Bandwidth from one GPU to other nodes, bytes per millisecond (0: single node).
    pub inter_bytes_per_ms: f64,
    /// Fixed latency of one all-to-all phase, milliseconds.
    pub a2a_latency_ms: f64,
}

/// Mean milliseconds per MoE layer and its parts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct LayerTime {
    /// Busiest GPU's expert compute, mean over layers.
    pub compute_ms: f64,
    /// Dispatch + combine (with latency), mean over layers.
    pub a2a_ms: f64,
    /// Their sum: the layer time.
    pub layer_ms: f64,
}

/// The busiest GPU's expert compute of one layer whose experts have `per_token` selections per
/// token and spread as `spread`.
fn compute_ms(per_token: &[f64], spread: &[Spread], gpus: usize, m: &TimeModel) -> f64 {
    let mut flops = vec![0.0; gpus];
    let mut bytes = vec![0.0; gpus];
    for (e, s) in spread.iter().enumerate() {
        for &(g, share) in s {
            let p = (share * per_token[e]).min(1.0);
            flops[g] += p * m.batch_tokens * m.flops_per_selection;
            bytes[g] += (1.0 - (1.0 - p).powf(m.batch_tokens)) * m.expert_bytes;
        }
    }
    flops
        .iter()
        .zip(&bytes)
        .map(|(&f, &b)| (f / m.gpu_flops_per_ms).max(b / m.hbm_bytes_per_ms))
        .fold(0.0, f64::max)
}

/// The busiest GPU's all-to-all seconds (one phase, without latency) for the pairs between
/// layers `l` and `l + 1`.
fn a2a_ms(
    w: &Workload,
    l: usize,
    from: &[Spread],
    to: &[Spread],
    topo: &Topology,
    m: &TimeModel,
) -> f64 {
    let gpus = topo.gpus();
    let e = w.experts;
    let mut intra = vec![0.0; gpus];
    let mut inter = vec![0.0; gpus];
    let per_pair = m.batch_tokens * m.hidden_bytes / w.tokens.max(1) as f64;
    let pairs = w.pairs(l);
    for a in 0..e {
        for b in 0..e {
            let c = pairs[a * e + b];
            if c == 0.0 {
                continue;
            }
            for &(g, x) in &from[a] {
                for &(h, y) in &to[b] {
                    if g == h {
                        continue;
                    }
                    let bytes = c * x * y * per_pair;
                    if topo.node_of(g) == topo.node_of(h) {
                        intra[g] += bytes;
                    } else {
                        inter[g] += bytes;
                    }
                }
            }
        }
    }
    let inter_bw = if m.inter_bytes_per_ms > 0.0 {
        m.inter_bytes_per_ms
    } else {
        m.intra_bytes_per_ms
    };
    let div = |bytes: f64, bw: f64| if bytes > 0.0 { bytes / bw } else { 0.0 };
    intra
        .iter()
        .zip(&inter)
        .map(|(&a, &b)| div(a, m.intra_bytes_per_ms) + div(b, inter_bw))
        .fold(0.0, f64::max)
}

/// The layer time of `plan` on workload `w` (means over layers).
pub fn layer_time(w: &Workload, plan: &Plan, topo: &Topology, m: &TimeModel) -> LayerTime {
    let spreads: Vec<Vec<Spread>> = (0..plan.layers).map(|l| plan.spread(l)).collect();
    let tokens = w.tokens.max(1) as f64;
    let mut per_token = vec![0.0; w.experts];
    let (mut compute, mut a2a) = (0.0, 0.0);
    for (l, s) in spreads.iter().enumerate() {
        for (o, &x) in per_token.iter_mut().zip(w.load(l)) {
            *o = x / tokens;
        }
        compute += compute_ms(&per_token, s, plan.gpus, m);
        if l > 0 {
            a2a += 2.0 * (a2a_ms(w, l - 1, &spreads[l - 1], s, topo, m) + m.a2a_latency_ms);
        }
    }
    let n = plan.layers.max(1) as f64;
    LayerTime {
        compute_ms: compute / n,
        a2a_ms: a2a / n,
        layer_ms: (compute + a2a) / n,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model() -> TimeModel {
        TimeModel {
            batch_tokens: 4.0,
            flops_per_selection: 1e6,
            gpu_flops_per_ms: 1e9,
            expert_bytes: 1e3,
            hbm_bytes_per_ms: 1e9,
            hidden_bytes: 1e3,
            intra_bytes_per_ms: 1e6,
            inter_bytes_per_ms: 0.0,
            a2a_latency_ms: 0.01,
        }
    }

    fn workload() -> Workload {
        // 2 layers, 2 experts, 10 tokens; each token picks one expert per layer.
        let mut w = Workload::zeros(2, 2);
        w.tokens = 10;
        w.load = vec![6.0, 4.0, 6.0, 4.0];
        w.pairs = vec![6.0, 0.0, 0.0, 4.0];
        w.pairs_top1 = w.pairs.clone();
        w
    }

    #[test]
    fn co_located_pairs_send_nothing() {
        let topo = Topology {
            nodes: 1,
            gpus_per_node: 2,
            cost_intra: 1.0,
            cost_inter: 1.0,
        };
        let same = Plan::new(2, 2, 2, 1, vec![0, 1, 0, 1]).unwrap();
        let crossed = Plan::new(2, 2, 2, 1, vec![0, 1, 1, 0]).unwrap();
        let m = model();
        let a = layer_time(&workload(), &same, &topo, &m);
        let b = layer_time(&workload(), &crossed, &topo, &m);
        // Same plan: only the latency of both phases, on layer 1 of 2.
        assert!((a.a2a_ms - 0.01).abs() < 1e-12, "{a:?}");
        // Crossed: GPU 0 sends 0.6 tokens/token x 4 tokens x 1e3 B at 1e6 B/ms, twice.
        assert!(
            (b.a2a_ms - (0.01 + 2.0 * 2.4e-3 / 2.0)).abs() < 1e-9,
            "{b:?}"
        );
        assert_eq!(a.compute_ms, b.compute_ms);
        assert!(a.layer_ms < b.layer_ms);
    }
}
