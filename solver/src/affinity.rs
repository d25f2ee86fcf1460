//! ExFlow-style affinity placement: keep a token's consecutive-layer experts on one GPU, with
//! equal expert counts per GPU and no regard for load. The affinity graph (nodes = (layer,
//! expert), edges = scaled transition counts) is held in petgraph; each layer is seeded greedily
//! from the heaviest edges into the previous layer's GPUs, then polished by swaps with the
//! balance weight set to zero.

use petgraph::Direction;
use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::EdgeRef;

use crate::layer::LayerProblem;
use crate::objective::Scaled;
use crate::plan::{Plan, Spread};

/// The affinity graph of a problem: node `l * experts + e` is expert e of layer l.
pub fn affinity_graph(sc: &Scaled) -> DiGraph<(usize, usize), f64> {
    let e = sc.experts;
    let mut g = DiGraph::with_capacity(sc.layers * e, 0);
    for l in 0..sc.layers {
        for x in 0..e {
            g.add_node((l, x));
        }
    }
    for l in 0..sc.layers.saturating_sub(1) {
        let t = sc.tn(l);
        for a in 0..e {
            for b in 0..e {
                if t[a * e + b] > 0.0 {
                    g.add_edge(
                        NodeIndex::new(l * e + a),
                        NodeIndex::new((l + 1) * e + b),
                        t[a * e + b],
                    );
                }
            }
        }
    }
    g
}

/// Affinity placement with replica counts `counts` (`[layers][experts]`), the greedy seed
/// polished by `sweeps` sweeps of comm-only swaps.
pub fn affinity(sc: &Scaled, counts: &[Vec<u32>], sweeps: usize) -> Plan {
    let (e, gpus, s) = (sc.experts, sc.gpus, sc.slots);
    let graph = affinity_graph(sc);
    let mut lists: Vec<Vec<Vec<u16>>> = Vec::with_capacity(sc.layers);
    // Layer 0: replicas in expert order, spread so that replicas land on different GPUs.
    let mut items: Vec<u16> = Vec::new();
    for (x, &r) in counts[0].iter().enumerate() {
        items.extend(std::iter::repeat_n(x as u16, r as usize));
    }
    let mut first = vec![Vec::with_capacity(s); gpus];
    for (i, &x) in items.iter().enumerate() {
        first[(i % gpus + i / (s * gpus)) % gpus].push(x);
    }
    // Fix any overfull GPU (possible only with odd shapes) by a plain refill.
    if first.iter().any(|l| l.len() != s) {
        first = items.chunks(s).map(|c| c.to_vec()).collect();
    }
    lists.push(first);
    for l in 1..sc.layers {
        let prev = &lists[l - 1];
        let mut share = vec![0.0; e * gpus];
        for (h, list) in prev.iter().enumerate() {
            for &x in list {
                share[x as usize * gpus + h] += 1.0 / counts[l - 1][x as usize] as f64;
            }
        }
        let mut cand: Vec<(f64, usize, usize)> = Vec::new();
        for b in 0..e {
            let mut aff = vec![0.0; gpus];
            for edge in graph.edges_directed(NodeIndex::new(l * e + b), Direction::Incoming) {
                let a = graph[edge.source()].1;
                for (h, v) in aff.iter_mut().enumerate() {
                    *v += edge.weight() * share[a * gpus + h];
                }
            }
            cand.extend(aff.into_iter().enumerate().map(|(h, v)| (v, b, h)));
        }
        cand.sort_by(|x, y| y.0.total_cmp(&x.0).then(x.1.cmp(&y.1)).then(x.2.cmp(&y.2)));
        let mut cap = vec![s; gpus];
        let mut rem: Vec<u32> = counts[l].clone();
        let mut on = vec![false; e * gpus];
        let mut layer = vec![Vec::with_capacity(s); gpus];
        for &(_, b, h) in &cand {
            if cap[h] > 0 && rem[b] > 0 && !on[b * gpus + h] {
                layer[h].push(b as u16);
                cap[h] -= 1;
                rem[b] -= 1;
                on[b * gpus + h] = true;
            }
        }
        for b in 0..e {
            while rem[b] > 0 {
                let h = (0..gpus)
                    .find(|&h| cap[h] > 0 && !on[b * gpus + h])
                    .or_else(|| (0..gpus).find(|&h| cap[h] > 0))
                    .expect("slots add up");
                layer[h].push(b as u16);
                cap[h] -= 1;
                rem[b] -= 1;
                on[b * gpus + h] = true;
            }
        }
        lists.push(layer);
    }
    let mut plan = Plan::from_gpu_lists(e, s, &lists).expect("every expert placed");
    let mut comm_only = sc.clone();
    comm_only.weights.balance = 0.0;
    polish(&comm_only, &mut plan, sweeps, 0.0);
    plan
}

/// Block-coordinate descent by swaps only: `sweeps` passes over the layers, each layer's slots
/// swapped while that improves `sc`'s objective with the neighbours fixed. With `exact_time` > 0,
/// each layer is first re-placed exactly by HiGHS within that many seconds.
pub fn polish(sc: &Scaled, plan: &mut Plan, sweeps: usize, exact_time: f64) {
    let mut spreads: Vec<Vec<Spread>> = (0..plan.layers).map(|l| plan.spread(l)).collect();
    for _ in 0..sweeps {
        let mut changed = false;
        for l in 0..plan.layers {
            let lp = LayerProblem::new(sc, plan, l, &spreads);
            let mut phy = plan.layer(l).to_vec();
            if exact_time > 0.0 {
                lp.exact(&mut phy, exact_time);
            }
            lp.local_search(&mut phy, 20);
            if phy != plan.layer(l) {
                plan.layer_mut(l).copy_from_slice(&phy);
                spreads[l] = plan.spread(l);
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
}
