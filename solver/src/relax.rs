//! Separable lower bounds, cheap at any scale: each layer's balance term alone (slot cardinality
//! and pigeonhole), each layer pair's link cost alone (a replica slot shares its GPU with exactly
//! `slots` slots of the next layer, its node with `slots x gpus_per_node`, so the co-located pair
//! mass is at most what every slot's best partners would give).

use crate::objective::Scaled;

/// A lower bound on layer `l`'s imbalance (busiest GPU / mean) for replica counts `counts`, the
/// worst over workloads. Every GPU holds exactly `slots` replica pieces (an expert's load split
/// evenly over its replicas). Of the `(t-1) * gpus + 1` largest pieces some GPU holds `t`, so its
/// load is at least the `t` smallest of them plus the `slots - t` smallest pieces overall.
pub fn balance_bound(sc: &Scaled, l: usize, counts: &[u32]) -> f64 {
    let (g, s) = (sc.gpus, sc.slots);
    let mut pieces = Vec::with_capacity(g * s);
    (0..sc.loadn.len())
        .map(|w| {
            let row = sc.loadn(w, l);
            if !row.iter().any(|&x| x > 0.0) {
                return 0.0;
            }
            pieces.clear();
            for (&x, &r) in row.iter().zip(counts) {
                let r = r.max(1);
                pieces.extend(std::iter::repeat_n(x / r as f64, r as usize));
            }
            pieces.sort_by(|a, b| b.total_cmp(a));
            let n = pieces.len();
            let mut best = 1.0f64;
            for t in 1..=s {
                let m = (t - 1) * g + 1;
                if m > n || m + (s - t) > n {
                    break;
                }
                let top: f64 = pieces[m - t..m].iter().sum();
                let rest: f64 = pieces[n - (s - t)..].iter().sum();
                best = best.max(top + rest);
            }
            best
        })
        .fold(0.0, f64::max)
}

/// The largest pair mass between layers `l` and `l + 1` that any plan with these replica counts
/// can keep within groups of `k` slots per layer (`k = slots`: same GPU; `k = slots x
/// gpus_per_node`: same node). Expert `j`'s replicas can put at most `min(r_j, k)` slots in one
/// group, each carrying `1 / r_j` of its pairs. The tighter of the from-side and to-side bounds.
pub fn colocated_bound(sc: &Scaled, l: usize, from: &[u32], to: &[u32], k: usize) -> f64 {
    let e = sc.experts;
    let t = sc.tn(l);
    let total: f64 = t.iter().sum();
    let mut buf = Vec::new();
    let mut side = |pair: &dyn Fn(usize, usize) -> f64, partners: &[u32]| -> f64 {
        (0..e)
            .map(|a| {
                buf.clear();
                for (b, &r) in partners.iter().enumerate() {
                    let r = r.max(1);
                    let v = pair(a, b) / r as f64;
                    if v > 0.0 {
                        buf.extend(std::iter::repeat_n(v, (r as usize).min(k)));
                    }
                }
                top_sum(&mut buf, k)
            })
            .sum()
    };
    let rows = side(&|a, b| t[a * e + b], to);
    let cols = side(&|a, b| t[b * e + a], from);
    rows.min(cols).min(total)
}

/// A lower bound on layer pair `l`'s weighted link cost for replica counts `from` (layer l) and
/// `to` (layer l + 1): every pair mass not provably co-located pays at least the next link cost.
pub fn pair_cost_bound(sc: &Scaled, l: usize, from: &[u32], to: &[u32]) -> f64 {
    let topo = &sc.topo;
    let total: f64 = sc.tn(l).iter().sum();
    let same_gpu = colocated_bound(sc, l, from, to, sc.slots);
    let same_node = if topo.nodes > 1 {
        colocated_bound(sc, l, from, to, sc.slots * topo.gpus_per_node)
    } else {
        total
    };
    let cost = topo.cost_intra * (total - same_gpu).max(0.0)
        + (topo.cost_inter - topo.cost_intra) * (total - same_node).max(0.0);
    sc.weights.comm * cost
}

/// Sum of the `k` largest values of `v` (all of them if fewer); reorders `v`.
fn top_sum(v: &mut [f64], k: usize) -> f64 {
    if v.len() > k {
        v.select_nth_unstable_by(k, |a, b| b.total_cmp(a));
        v[..k].iter().sum()
    } else {
        v.iter().sum()
    }
}
