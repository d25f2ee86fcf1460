//! The objective in solver units: loads scaled by each layer's mean GPU load (so a layer's balance
//! term is its imbalance IR) and pair counts scaled to sum to 1 per layer pair (so a pair's term
//! is the expected link cost per pair).

use crate::metrics::{gpu_loads, pair_terms};
use crate::plan::{Plan, Spread};
use crate::problem::{Problem, Topology, Weights};

/// Scaled loads and pairs of a problem, and the objective computed from them.
#[derive(Debug, Clone)]
pub struct Scaled {
    /// MoE layers.
    pub layers: usize,
    /// Logical experts per layer.
    pub experts: usize,
    /// GPUs.
    pub gpus: usize,
    /// Physical slots per GPU per layer.
    pub slots: usize,
    /// Topology and link costs.
    pub topo: Topology,
    /// Objective knobs.
    pub weights: Weights,
    /// Per workload, load / mean GPU load of its layer, `[workloads][layers * experts]`; with
    /// several workloads, one more row: their upper envelope, scaled the same way.
    pub loadn: Vec<Vec<f64>>,
    /// Mean over workloads of pair counts scaled to sum 1 per layer pair, `[layers-1][e][e]`.
    pub tn: Vec<f64>,
    /// Weighted migration cost of a replica of expert e on GPU g (the previous plan held none
    /// there), `[layers][experts][gpus]`; empty without a previous plan or migration weight.
    pub moves: Vec<f64>,
}

impl Scaled {
    /// Scales `p`'s workloads.
    pub fn new(p: &Problem) -> Scaled {
        let (layers, e, gpus) = (p.layers(), p.experts(), p.gpus());
        let nw = p.workloads.len() as f64;
        let mut loadn = Vec::with_capacity(p.workloads.len());
        let mut tn = vec![0.0; layers.saturating_sub(1) * e * e];
        for w in &p.workloads {
            let mut v = vec![0.0; layers * e];
            for l in 0..layers {
                let total: f64 = w.load(l).iter().sum();
                if total > 0.0 {
                    for (o, &x) in v[l * e..(l + 1) * e].iter_mut().zip(w.load(l)) {
                        *o = x * gpus as f64 / total;
                    }
                }
            }
            loadn.push(v);
            for l in 0..layers.saturating_sub(1) {
                let total: f64 = w.pairs(l).iter().sum();
                if total > 0.0 {
                    let out = &mut tn[l * e * e..(l + 1) * e * e];
                    for (o, &x) in out.iter_mut().zip(w.pairs(l)) {
                        *o += x / total / nw;
                    }
                }
            }
        }
        // Robustness: with several workloads, also balance their upper envelope (each expert at
        // its peak share), which spreads the experts whose load moves between workloads.
        if p.workloads.len() > 1 {
            let env = p.envelope_share();
            let mut v = vec![0.0; layers * e];
            for l in 0..layers {
                let total: f64 = env[l * e..(l + 1) * e].iter().sum();
                if total > 0.0 {
                    for (o, &x) in v[l * e..(l + 1) * e]
                        .iter_mut()
                        .zip(&env[l * e..(l + 1) * e])
                    {
                        *o = x * gpus as f64 / total;
                    }
                }
            }
            loadn.push(v);
        }
        let mut moves = Vec::new();
        if let Some(prev) = p.previous.as_ref().filter(|_| p.weights.migration > 0.0) {
            let unit = p.weights.migration / p.physical() as f64;
            moves = vec![unit; layers * e * gpus];
            for l in 0..layers {
                for (slot, &x) in prev.layer(l).iter().enumerate() {
                    moves[(l * e + x as usize) * gpus + prev.gpu_of_slot(slot)] = 0.0;
                }
            }
        }
        Scaled {
            layers,
            experts: e,
            gpus,
            slots: p.slots_per_gpu,
            topo: p.topology,
            weights: p.weights,
            loadn,
            tn,
            moves,
        }
    }

    /// Weighted migration cost per (expert, GPU) of layer `l`, `[experts][gpus]`, if any.
    pub fn moves(&self, l: usize) -> Option<&[f64]> {
        let n = self.experts * self.gpus;
        (!self.moves.is_empty()).then(|| &self.moves[l * n..(l + 1) * n])
    }

    /// Layer `l`'s weighted migration term for its slot map `phy`.
    pub fn layer_moves(&self, l: usize, phy: &[u16]) -> f64 {
        self.moves(l).map_or(0.0, |m| {
            phy.iter()
                .enumerate()
                .map(|(p, &x)| m[x as usize * self.gpus + p / self.slots])
                .sum()
        })
    }

    /// Scaled pairs between layer `l` and `l + 1`, `[experts][experts]`.
    pub fn tn(&self, l: usize) -> &[f64] {
        let n = self.experts * self.experts;
        &self.tn[l * n..(l + 1) * n]
    }

    /// Scaled loads of layer `l` in workload `w`.
    pub fn loadn(&self, w: usize, l: usize) -> &[f64] {
        &self.loadn[w][l * self.experts..(l + 1) * self.experts]
    }

    /// Layer `l`'s imbalance, the worst over workloads.
    pub fn layer_balance(&self, l: usize, spread: &[Spread]) -> f64 {
        (0..self.loadn.len())
            .map(|w| {
                gpu_loads(self.loadn(w, l), spread, self.gpus)
                    .into_iter()
                    .fold(0.0, f64::max)
            })
            .fold(0.0, f64::max)
    }

    /// Expected link cost per pair between layers `l` and `l + 1`.
    pub fn pair_cost(&self, l: usize, a: &[Spread], b: &[Spread]) -> f64 {
        let e = self.experts;
        let t = self.tn(l);
        let mut cost = 0.0;
        for (i, sa) in a.iter().enumerate() {
            for (j, sb) in b.iter().enumerate() {
                let w = t[i * e + j];
                if w > 0.0 {
                    cost += w * pair_terms(sa, sb, &self.topo).2;
                }
            }
        }
        cost
    }

    /// The objective of a whole plan, and its (balance, comm) parts before weighting.
    pub fn value_parts(&self, plan: &Plan) -> (f64, f64, f64) {
        let moves: f64 = (0..plan.layers)
            .map(|l| self.layer_moves(l, plan.layer(l)))
            .sum();
        let spreads: Vec<Vec<Spread>> = (0..plan.layers).map(|l| plan.spread(l)).collect();
        let bal: f64 = (0..plan.layers)
            .map(|l| self.layer_balance(l, &spreads[l]))
            .sum();
        let comm: f64 = (0..plan.layers.saturating_sub(1))
            .map(|l| self.pair_cost(l, &spreads[l], &spreads[l + 1]))
            .sum();
        (
            self.weights.balance * bal + self.weights.comm * comm + moves,
            bal,
            comm,
        )
    }

    /// The objective of a whole plan.
    pub fn value(&self, plan: &Plan) -> f64 {
        self.value_parts(plan).0
    }

    /// Per (expert, GPU) of layer `l`, the weighted link cost of all pairs touching the expert if
    /// it lived entirely on that GPU, neighbours as in `spreads`; `[experts][gpus]`.
    pub fn layer_costs(&self, l: usize, spreads: &[Vec<Spread>]) -> Vec<f64> {
        let (e, g) = (self.experts, self.gpus);
        let mut d = vec![0.0; e * g];
        if l + 1 < self.layers {
            let t = self.tn(l);
            for a in 0..e {
                for (b, sb) in spreads[l + 1].iter().enumerate() {
                    let w = t[a * e + b];
                    if w > 0.0 {
                        for &(h, y) in sb {
                            d[a * g + h] += w * y;
                        }
                    }
                }
            }
        }
        if l > 0 {
            let t = self.tn(l - 1);
            for (a, sa) in spreads[l - 1].iter().enumerate() {
                for b in 0..e {
                    let w = t[a * e + b];
                    if w > 0.0 {
                        for &(h, y) in sa {
                            d[b * g + h] += w * y;
                        }
                    }
                }
            }
        }
        let topo = &self.topo;
        let mut c = vec![0.0; e * g];
        let mut node_sum = vec![0.0; topo.nodes];
        for x in 0..e {
            let row = &d[x * g..(x + 1) * g];
            node_sum.fill(0.0);
            for (h, &v) in row.iter().enumerate() {
                node_sum[topo.node_of(h)] += v;
            }
            let total: f64 = node_sum.iter().sum();
            for gg in 0..g {
                let n = node_sum[topo.node_of(gg)];
                c[x * g + gg] = self.weights.comm
                    * (topo.cost_intra * (n - row[gg]) + topo.cost_inter * (total - n));
            }
        }
        c
    }
}
