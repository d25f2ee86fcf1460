//! The monolithic (joint) ILP over a range of consecutive layers, MoETuner-style: binary
//! x[l,e,g] (expert e has a replica on GPU g at layer l), the balance variable M_l per layer and
//! linearised pair variables s (same GPU) and n (same node) for every consecutive-layer expert
//! pair with traffic. Exact where it is small; on two-layer windows it gives the lower bound.
//!
//! Pair cost with one replica per expert: `c_inter - (c_inter - c_intra) [same node] - c_intra
//! [same GPU]`; on one node with replicas: `c_intra (1 - sum_g x x' / (r r'))`. The constant
//! term is dropped by good_lp and added back here.

use good_lp::{Expression, ProblemVariables, Variable, constraint, variable};

use crate::mip::{MipError, MipStatus, minimise};
use crate::objective::Scaled;
use crate::plan::Plan;

/// A joint model over layers `first..first + balance.len()`.
pub struct Joint<'a> {
    sc: &'a Scaled,
    first: usize,
    /// Weight of each layer's balance term (1 for a whole model; halves on shared layers of
    /// overlapping windows, so that the windows' objectives add up to the whole).
    balance: Vec<f64>,
    /// Replicas per expert per layer of the window, `[window][experts]`.
    counts: Vec<Vec<u32>>,
}

/// What a joint solve returns.
#[derive(Debug, Clone)]
pub struct JointResult {
    /// Per layer of the window, per GPU, its experts.
    pub lists: Vec<Vec<Vec<u16>>>,
    /// Objective of the solution (constant included).
    pub objective: f64,
    /// Proven lower bound (constant included).
    pub bound: f64,
    /// Whether optimality was proven.
    pub optimal: bool,
}

impl<'a> Joint<'a> {
    /// A window of layers with per-layer balance weights and replica counts.
    pub fn new(sc: &'a Scaled, first: usize, balance: Vec<f64>, counts: Vec<Vec<u32>>) -> Self {
        Joint {
            sc,
            first,
            balance,
            counts,
        }
    }

    /// Whether the linearisation is exact for these counts (one replica each, or one node).
    pub fn supported(sc: &Scaled, counts: &[Vec<u32>]) -> bool {
        // The migration term is not modelled here: with it, the other paths solve.
        sc.moves.is_empty() && (sc.topo.nodes == 1 || counts.iter().flatten().all(|&c| c == 1))
    }

    /// Binary variables the model needs (its size).
    pub fn binaries(&self) -> usize {
        self.balance.len() * self.sc.experts * self.sc.gpus
    }

    /// Solves the window; `initial` (per layer, per GPU, experts) warm-starts it.
    pub fn solve(
        &self,
        initial: Option<&[Vec<Vec<u16>>]>,
        time_limit: f64,
    ) -> Result<JointResult, MipError> {
        let sc = self.sc;
        let (e, g, nl, s) = (sc.experts, sc.gpus, self.balance.len(), sc.slots);
        let nodes = sc.topo.nodes;
        let (ci, ce) = (sc.topo.cost_intra, sc.topo.cost_inter);
        let mut vars = ProblemVariables::new();
        let mut init: Vec<f64> = Vec::new();
        let x: Vec<Variable> = (0..nl * e * g)
            .map(|_| vars.add(variable().binary()))
            .collect();
        // Initial x from the warm start.
        let mut x0 = vec![0.0; nl * e * g];
        if let Some(lists) = initial {
            // Relabel GPUs so the start satisfies the symmetry-breaking row below.
            let g0 = lists[0].iter().position(|l| l.contains(&0)).unwrap_or(0);
            let perm = swap_to_zero(g0, sc.topo.gpus_per_node, g);
            for (w, layer) in lists.iter().enumerate() {
                for (h, list) in layer.iter().enumerate() {
                    for &ex in list {
                        x0[(w * e + ex as usize) * g + perm[h]] = 1.0;
                    }
                }
            }
        }
        init.extend_from_slice(&x0);
        let xv = |w: usize, i: usize, h: usize| x[(w * e + i) * g + h];
        let m: Vec<Variable> = (0..nl).map(|_| vars.add(variable().min(0.0))).collect();
        for w in 0..nl {
            let mut worst = 0.0f64;
            for wl in 0..sc.loadn.len() {
                let ln = sc.loadn(wl, self.first + w);
                for h in 0..g {
                    let load: f64 = (0..e)
                        .map(|i| x0[(w * e + i) * g + h] * ln[i] / self.counts[w][i] as f64)
                        .sum();
                    worst = worst.max(load);
                }
            }
            init.push(worst);
        }
        let mut obj = Expression::from(0.0);
        let mut constant = 0.0;
        let mut cons = Vec::new();
        for (w, &mw) in m.iter().enumerate() {
            obj += (sc.weights.balance * self.balance[w]) * mw;
            for i in 0..e {
                let sum: Expression = (0..g).map(|h| xv(w, i, h)).sum();
                cons.push(constraint!(sum == self.counts[w][i] as f64));
            }
            for h in 0..g {
                let sum: Expression = (0..e).map(|i| xv(w, i, h)).sum();
                cons.push(constraint!(sum == s as f64));
                for wl in 0..sc.loadn.len() {
                    let ln = sc.loadn(wl, self.first + w);
                    let load: Expression = (0..e)
                        .map(|i| (ln[i] / self.counts[w][i] as f64) * xv(w, i, h))
                        .sum();
                    cons.push(constraint!(load <= mw));
                }
            }
        }
        // Symmetry: every GPU can be mapped to GPU 0 by permuting nodes and GPUs within nodes, so
        // expert 0 of the first layer may be fixed on GPU 0 (nothing outside the window is fixed).
        cons.push(constraint!(xv(0, 0, 0) == 1.0));
        // Pair variables by (layer of the window, expert, GPU or node), for the cuts below.
        let mut by_from: Vec<Vec<Expression>> = vec![Vec::new(); nl * e * (g + nodes)];
        let mut by_to: Vec<Vec<Expression>> = vec![Vec::new(); nl * e * (g + nodes)];
        for w in 0..nl.saturating_sub(1) {
            let t = sc.tn(self.first + w);
            for a in 0..e {
                for b in 0..e {
                    let wt = sc.weights.comm * t[a * e + b];
                    if wt <= 0.0 {
                        continue;
                    }
                    let rr = (self.counts[w][a] * self.counts[w + 1][b]) as f64;
                    let multi = nodes > 1;
                    constant += wt * if multi { ce } else { ci };
                    for h in 0..g {
                        let v = vars.add(variable().min(0.0).max(1.0));
                        init.push(x0[(w * e + a) * g + h].min(x0[((w + 1) * e + b) * g + h]));
                        cons.push(constraint!(v <= xv(w, a, h)));
                        cons.push(constraint!(v <= xv(w + 1, b, h)));
                        by_from[(w * e + a) * (g + nodes) + h].push(v.into());
                        by_to[((w + 1) * e + b) * (g + nodes) + h].push(v.into());
                        obj -= (wt * ci / rr) * v;
                    }
                    if multi {
                        let gpn = sc.topo.gpus_per_node;
                        for n in 0..nodes {
                            let v = vars.add(variable().min(0.0).max(1.0));
                            let xa: Expression =
                                (n * gpn..(n + 1) * gpn).map(|h| xv(w, a, h)).sum();
                            let xb: Expression =
                                (n * gpn..(n + 1) * gpn).map(|h| xv(w + 1, b, h)).sum();
                            let ia: f64 = (n * gpn..(n + 1) * gpn)
                                .map(|h| x0[(w * e + a) * g + h])
                                .sum();
                            let ib: f64 = (n * gpn..(n + 1) * gpn)
                                .map(|h| x0[((w + 1) * e + b) * g + h])
                                .sum();
                            init.push(ia.min(ib));
                            cons.push(constraint!(v <= xa));
                            cons.push(constraint!(v <= xb));
                            by_from[(w * e + a) * (g + nodes) + g + n].push(v.into());
                            by_to[((w + 1) * e + b) * (g + nodes) + g + n].push(v.into());
                            obj -= (wt * (ce - ci)) * v;
                        }
                    }
                }
            }
        }
        // Cuts: expert a shares GPU h with at most S experts of the next layer, and node n with
        // at most S x GPUs-per-node (valid for binary x; they tighten the LP relaxation a lot,
        // since at fractional x the pair variables could otherwise all reach 1 / G).
        let gpn = sc.topo.gpus_per_node;
        for w in 0..nl {
            for i in 0..e {
                for k in 0..g + nodes {
                    let (cap, x_here): (f64, Expression) = if k < g {
                        (s as f64, xv(w, i, k).into())
                    } else {
                        let n = k - g;
                        (
                            (s * gpn) as f64,
                            (n * gpn..(n + 1) * gpn).map(|h| xv(w, i, h)).sum(),
                        )
                    };
                    for list in [&by_from, &by_to] {
                        let vs = &list[(w * e + i) * (g + nodes) + k];
                        if vs.len() > 1 {
                            let sum: Expression = vs.iter().cloned().sum();
                            cons.push(constraint!(sum <= cap * x_here.clone()));
                        }
                    }
                }
            }
        }
        let res = minimise(
            vars,
            obj,
            cons,
            initial.is_some().then_some(&init[..]),
            time_limit,
            1e-6,
        )?;
        let lists = (0..nl)
            .map(|w| {
                (0..g)
                    .map(|h| {
                        (0..e)
                            .filter(|&i| res.values[(w * e + i) * g + h] > 0.5)
                            .map(|i| i as u16)
                            .collect()
                    })
                    .collect()
            })
            .collect();
        Ok(JointResult {
            lists,
            objective: res.objective + constant,
            bound: res.bound + constant,
            optimal: res.status == MipStatus::Optimal,
        })
    }
}

/// A GPU relabelling that moves GPU `g0` to GPU 0 and keeps nodes whole: swap g0's node with
/// node 0, then g0's position in the node with position 0.
fn swap_to_zero(g0: usize, gpn: usize, gpus: usize) -> Vec<usize> {
    let (n0, k0) = (g0 / gpn, g0 % gpn);
    (0..gpus)
        .map(|h| {
            let (n, k) = (h / gpn, h % gpn);
            let n = if n == n0 {
                0
            } else if n == 0 {
                n0
            } else {
                n
            };
            let k = if k == k0 {
                0
            } else if k == 0 {
                k0
            } else {
                k
            };
            n * gpn + k
        })
        .collect()
}

/// Per layer, per GPU, the experts of `plan` (sorted by slot).
pub fn gpu_lists(plan: &Plan) -> Vec<Vec<Vec<u16>>> {
    (0..plan.layers)
        .map(|l| {
            plan.layer(l)
                .chunks(plan.slots_per_gpu)
                .map(|c| c.to_vec())
                .collect()
        })
        .collect()
}
