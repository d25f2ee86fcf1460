//! Move-budgeted re-planning: starting from the plan in service, swap experts between GPUs
//! (within a layer) while it lowers
//! `balance * sum_l (IR_l + SPREAD_WEIGHT * V_l + RECENT_WEIGHT * R_l) + comm * sum_l C_l`,
//! spending at most a budget of moves (a move is one expert replica copied to a GPU that did not
//! hold it; a swap is two), best gain first.
//!
//! `V_l` is the variance of layer l's GPU loads scaled to mean 1. IR alone is flat: most swaps
//! leave the hottest GPU as it is, so a greedy on IR alone stops early or spends its moves on
//! ties; the variance term ranks them by how much they even out the whole layer, which is what
//! the next window's IR rewards.
//!
//! `R_l` is the mean of that variance over recent windows taken one at a time (given apart from
//! the workload, see [`replan_recent`]; zero without them). Experts that share a GPU because
//! they are co-routed with the same experts of the neighbouring layers tend to rise and fall
//! together, so a plan balanced on the sum of the windows alone comes apart on the next one; a
//! plan that holds on each recent window keeps its balance when the load drifts.
//!
//! `IR_l` and `C_l` are as in [`crate::problem::Weights`]: layer l's imbalance and the expected
//! link cost per consecutive-layer pair (l, l+1). A swap within layer l changes only `IR_l` and
//! the pair terms of (l-1, l) and (l, l+1), which are kept per (expert, GPU) as the link cost a
//! replica of the expert would pay there ([`Affinity`]), so a candidate is scored in O(GPUs).
//! Replica counts stay as in service (redundant slots keep their experts' identities).

use crate::plan::{Plan, Spread};
use crate::problem::{Topology, Workload};

/// Weight of the load variance next to the IR in the balance term. Chosen on the ESFT stream
/// intent -> law -> summary (8 GPUs, windows of 1,000 tokens; 0 gives next-window IR 1.227,
/// 1 gives 1.182, 4 gives 1.157, 16 gives 1.151 at a higher hop rate), checked on the order
/// summary -> intent -> law (1.161 against EPLB's 1.159).
pub const SPREAD_WEIGHT: f64 = 4.0;

/// Weight of the recent windows' mean load variance `R_l` next to the IR. Chosen together with
/// the re-balancing defaults (communication weight 12, the last 6 windows, 136 moves) on the
/// ESFT stream intent -> law -> summary (8 GPUs, windows of 1,000 tokens; 48 gives next-window
/// IR 1.169 at hop rate 0.792, 64 gives 1.159 at 0.802, 96 gives 1.153 at 0.811), checked on the
/// order summary -> intent -> law (1.150 at 0.809, against EPLB's 1.159).
pub const RECENT_WEIGHT: f64 = 64.0;

/// Variance of GPU loads scaled to mean 1.
fn variance(loads: &[f64]) -> f64 {
    if loads.is_empty() {
        return 0.0;
    }
    loads.iter().map(|&x| (x - 1.0) * (x - 1.0)).sum::<f64>() / loads.len() as f64
}

/// What to optimise and how much may move.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BudgetOptions {
    /// Most moves (replicas copied) of the re-plan.
    pub moves: usize,
    /// Weight of the imbalance term.
    pub balance: f64,
    /// Weight of the communication term.
    pub comm: f64,
}

/// One swap: slots `a` and `b` of layer `layer` exchanged their experts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Swap {
    /// MoE layer.
    pub layer: usize,
    /// One physical slot.
    pub a: usize,
    /// The other (on another GPU).
    pub b: usize,
}

/// The re-plan and how it was reached.
#[derive(Debug, Clone, PartialEq)]
pub struct Replanned {
    /// The new plan.
    pub plan: Plan,
    /// Swaps applied, in order.
    pub swaps: Vec<Swap>,
    /// Replicas the new plan holds that the plan in service does not hold on the same GPU.
    pub moves: usize,
    /// Objective of the plan in service and of the new plan.
    pub objective: (f64, f64),
}

/// Per (expert, GPU) of one layer, the link cost (pair count x cost, scaled to the layer pair's
/// total) a replica there would pay towards the previous and the next layer.
struct Affinity {
    /// `[experts][gpus]`, towards layer l - 1 (zero for layer 0).
    prev: Vec<f64>,
    /// `[experts][gpus]`, towards layer l + 1 (zero for the last layer).
    next: Vec<f64>,
}

/// The working state: the plan, its spreads and per-GPU loads, and the affinities.
struct State<'a> {
    w: &'a Workload,
    topo: &'a Topology,
    opts: BudgetOptions,
    plan: Plan,
    spreads: Vec<Vec<Spread>>,
    /// Replicas per (layer, expert).
    counts: Vec<Vec<u32>>,
    /// `[layers][gpus]`, loads scaled so the mean GPU load is 1 (max = IR).
    loads: Vec<Vec<f64>>,
    /// Per layer, GPUs / total load: the scale of `loads`.
    units: Vec<f64>,
    aff: Vec<Affinity>,
    /// The recent windows the balance must also hold on.
    recent: Vec<Recent<'a>>,
}

/// One recent window: its `[layers][experts]` selections, per-layer scale to mean 1 and
/// `[layers][gpus]` loads.
struct Recent<'a> {
    load: &'a [f64],
    units: Vec<f64>,
    loads: Vec<Vec<f64>>,
}

/// GPUs / total of a layer's loads (0 for an empty layer): their scale to mean 1.
fn unit_of(load: &[f64], gpus: usize) -> f64 {
    let total: f64 = load.iter().sum();
    if total > 0.0 {
        gpus as f64 / total
    } else {
        0.0
    }
}

/// The GPU loads of a layer's expert loads `load` under `spread`, times `unit`.
fn scaled_loads(load: &[f64], spread: &[Spread], gpus: usize, unit: f64) -> Vec<f64> {
    let loads = crate::metrics::gpu_loads(load, spread, gpus);
    loads.iter().map(|&x| x * unit).collect()
}

/// The change of the variance of `loads` (scaled to mean 1) when GPU `ga` gives a load `la`
/// for `lb` and GPU `gb` the reverse.
fn variance_delta(loads: &[f64], ga: usize, gb: usize, la: f64, lb: f64) -> f64 {
    let (oa, ob) = (loads[ga], loads[gb]);
    let (na, nb) = (oa - la + lb, ob - lb + la);
    let sq = |v: f64| (v - 1.0) * (v - 1.0);
    (sq(na) + sq(nb) - sq(oa) - sq(ob)) / loads.len() as f64
}

/// Pair counts of (l, l+1) scaled to sum 1 (all zero for an empty layer pair).
fn scaled_pairs(w: &Workload, l: usize) -> Vec<f64> {
    let p = w.pairs(l);
    let total: f64 = p.iter().sum();
    if total > 0.0 {
        p.iter().map(|&x| x / total).collect()
    } else {
        vec![0.0; p.len()]
    }
}

impl<'a> State<'a> {
    fn new(
        prev: &Plan,
        w: &'a Workload,
        recent: &[&'a [f64]],
        topo: &'a Topology,
        opts: BudgetOptions,
    ) -> State<'a> {
        let layers = prev.layers;
        let mut s = State {
            w,
            topo,
            opts,
            plan: prev.clone(),
            spreads: (0..layers).map(|l| prev.spread(l)).collect(),
            counts: (0..layers).map(|l| prev.counts(l)).collect(),
            loads: vec![Vec::new(); layers],
            units: (0..layers).map(|l| unit_of(w.load(l), prev.gpus)).collect(),
            aff: Vec::with_capacity(layers),
            recent: Vec::with_capacity(recent.len()),
        };
        let e = prev.experts;
        for &load in recent {
            assert_eq!(
                load.len(),
                layers * e,
                "a recent window's loads are [layers][experts]"
            );
            let row = |l: usize| &load[l * e..(l + 1) * e];
            let units: Vec<f64> = (0..layers).map(|l| unit_of(row(l), prev.gpus)).collect();
            let loads = (0..layers)
                .map(|l| scaled_loads(row(l), &s.spreads[l], prev.gpus, units[l]))
                .collect();
            s.recent.push(Recent { load, units, loads });
        }
        for l in 0..layers {
            s.loads[l] = s.layer_loads(l);
            s.aff.push(Affinity {
                prev: Vec::new(),
                next: Vec::new(),
            });
        }
        for l in 0..layers {
            s.refresh_affinity(l);
        }
        s
    }

    /// Layer `l`'s GPU loads scaled to mean 1.
    fn layer_loads(&self, l: usize) -> Vec<f64> {
        scaled_loads(
            self.w.load(l),
            &self.spreads[l],
            self.plan.gpus,
            self.units[l],
        )
    }

    /// `R_l`: the recent windows' mean variance of layer `l`'s GPU loads.
    fn recent_variance(&self, l: usize) -> f64 {
        if self.recent.is_empty() {
            return 0.0;
        }
        let sum: f64 = self.recent.iter().map(|r| variance(&r.loads[l])).sum();
        sum / self.recent.len() as f64
    }

    /// Per (expert of layer `to`, GPU) link cost towards layer `from`'s placement, for pairs
    /// `pairs[a * e + b]` (a at the lower layer, b at the upper) read in direction `upper`.
    fn affinity_towards(&self, from: usize, pairs: &[f64], upper: bool) -> Vec<f64> {
        let (e, g) = (self.plan.experts, self.plan.gpus);
        // mass[x][h]: scaled pairs between expert x of this layer and GPU h of the other.
        let mut mass = vec![0.0; e * g];
        for x in 0..e {
            for y in 0..e {
                let c = if upper {
                    pairs[y * e + x]
                } else {
                    pairs[x * e + y]
                };
                if c == 0.0 {
                    continue;
                }
                for &(h, share) in &self.spreads[from][y] {
                    mass[x * g + h] += c * share;
                }
            }
        }
        let mut out = vec![0.0; e * g];
        for x in 0..e {
            for gg in 0..g {
                out[x * g + gg] = (0..g)
                    .map(|h| mass[x * g + h] * self.topo.cost(h, gg))
                    .sum();
            }
        }
        out
    }

    /// Recomputes layer `l`'s affinities from its neighbours' placements.
    fn refresh_affinity(&mut self, l: usize) {
        let (e, g, layers) = (self.plan.experts, self.plan.gpus, self.plan.layers);
        let prev = if l > 0 {
            self.affinity_towards(l - 1, &scaled_pairs(self.w, l - 1), true)
        } else {
            vec![0.0; e * g]
        };
        let next = if l + 1 < layers {
            self.affinity_towards(l + 1, &scaled_pairs(self.w, l), false)
        } else {
            vec![0.0; e * g]
        };
        self.aff[l] = Affinity { prev, next };
    }

    /// The objective of the current plan.
    fn objective(&self) -> f64 {
        let mut ir = 0.0;
        let mut comm = 0.0;
        for l in 0..self.plan.layers {
            ir += self.loads[l].iter().cloned().fold(0.0, f64::max)
                + SPREAD_WEIGHT * variance(&self.loads[l])
                + RECENT_WEIGHT * self.recent_variance(l);
            // Pair (l, l+1) counted once, from the lower layer.
            let g = self.plan.gpus;
            for (x, s) in self.spreads[l].iter().enumerate() {
                for &(gg, share) in s {
                    comm += share * self.aff[l].next[x * g + gg];
                }
            }
        }
        self.opts.balance * ir + self.opts.comm * comm
    }

    /// Gain (objective decrease) of swapping slots `a` and `b` of layer `l`.
    fn gain(&self, l: usize, a: usize, b: usize) -> f64 {
        let (ga, gb) = (self.plan.gpu_of_slot(a), self.plan.gpu_of_slot(b));
        let lay = self.plan.layer(l);
        let (xa, xb) = (lay[a] as usize, lay[b] as usize);
        if ga == gb || xa == xb {
            return f64::MIN;
        }
        let g = self.plan.gpus;
        let (ca, cb) = (self.counts[l][xa] as f64, self.counts[l][xb] as f64);
        let loads = &self.loads[l];
        let unit = self.units[l];
        let (la, lb) = (
            self.w.load(l)[xa] * unit / ca,
            self.w.load(l)[xb] * unit / cb,
        );
        let old_max = loads.iter().cloned().fold(0.0, f64::max);
        let mut new_max = 0.0f64;
        for (h, &x) in loads.iter().enumerate() {
            let v = if h == ga {
                x - la + lb
            } else if h == gb {
                x - lb + la
            } else {
                x
            };
            new_max = new_max.max(v);
        }
        // Only GPUs ga and gb change: the variances move by their squared deviations.
        let var_delta = variance_delta(loads, ga, gb, la, lb);
        let mut recent_delta = 0.0;
        let e = self.plan.experts;
        for r in &self.recent {
            let u = r.units[l];
            let (ra, rb) = (r.load[l * e + xa] * u / ca, r.load[l * e + xb] * u / cb);
            recent_delta += variance_delta(&r.loads[l], ga, gb, ra, rb);
        }
        if !self.recent.is_empty() {
            recent_delta /= self.recent.len() as f64;
        }
        let aff = &self.aff[l];
        let cost = |x: usize, h: usize| aff.prev[x * g + h] + aff.next[x * g + h];
        let comm_delta = (cost(xa, gb) - cost(xa, ga)) / ca + (cost(xb, ga) - cost(xb, gb)) / cb;
        self.opts.balance
            * (old_max - new_max - SPREAD_WEIGHT * var_delta - RECENT_WEIGHT * recent_delta)
            - self.opts.comm * comm_delta
    }

    /// Applies a swap and refreshes what depends on layer `l`.
    fn apply(&mut self, s: Swap) {
        let lay = self.plan.layer_mut(s.layer);
        lay.swap(s.a, s.b);
        let l = s.layer;
        self.spreads[l] = self.plan.spread(l);
        self.loads[l] = self.layer_loads(l);
        let (g, e) = (self.plan.gpus, self.plan.experts);
        for r in &mut self.recent {
            let row = &r.load[l * e..(l + 1) * e];
            r.loads[l] = scaled_loads(row, &self.spreads[l], g, r.units[l]);
        }
        if l > 0 {
            self.refresh_affinity(l - 1);
        }
        if l + 1 < self.plan.layers {
            self.refresh_affinity(l + 1);
        }
    }

    /// The best swap of layer `l`, if one gains anything.
    fn best_in_layer(&self, l: usize) -> Option<(f64, Swap)> {
        let p = self.plan.physical();
        let mut best: Option<(f64, Swap)> = None;
        for a in 0..p {
            for b in a + 1..p {
                let gn = self.gain(l, a, b);
                if gn > 1e-12 && best.is_none_or(|(x, _)| gn > x) {
                    best = Some((gn, Swap { layer: l, a, b }));
                }
            }
        }
        best
    }
}

/// Re-plans from `prev` for workload `w` with at most `opts.moves` moves (see the module docs).
/// Deterministic: ties go to the lower layer, then the lower slots.
pub fn replan(prev: &Plan, w: &Workload, topo: &Topology, opts: BudgetOptions) -> Replanned {
    replan_recent(prev, w, &[], topo, opts)
}

/// [`replan`] whose balance must also hold on each of the `recent` windows, given as their
/// `[layers][experts]` selections like [`Workload::load`] (the `R_l` term of the module docs;
/// none gives [`replan`]). Panics if one has another length.
pub fn replan_recent(
    prev: &Plan,
    w: &Workload,
    recent: &[&[f64]],
    topo: &Topology,
    opts: BudgetOptions,
) -> Replanned {
    let mut st = State::new(prev, w, recent, topo, opts);
    let before = st.objective();
    let mut swaps = Vec::new();
    // Best swap per layer, recomputed only for the layers a swap touched.
    let mut best: Vec<Option<(f64, Swap)>> =
        (0..prev.layers).map(|l| st.best_in_layer(l)).collect();
    let mut spent = 0;
    while spent + 2 <= opts.moves {
        let pick = best
            .iter()
            .enumerate()
            .filter_map(|(l, b)| b.map(|(g, s)| (l, g, s)))
            .fold(None, |acc: Option<(usize, f64, Swap)>, c| match acc {
                Some(a) if a.1 >= c.1 => Some(a),
                _ => Some(c),
            });
        let Some((l, _, s)) = pick else {
            break;
        };
        st.apply(s);
        swaps.push(s);
        spent += 2;
        let touched = l.saturating_sub(1)..(l + 2).min(prev.layers);
        for (m, b) in best
            .iter_mut()
            .enumerate()
            .skip(touched.start)
            .take(touched.len())
        {
            *b = st.best_in_layer(m);
        }
    }
    let after = st.objective();
    let moves = st.plan.moved_from(prev);
    Replanned {
        plan: st.plan,
        swaps,
        moves,
        objective: (before, after),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topo(gpus: usize) -> Topology {
        Topology {
            nodes: 1,
            gpus_per_node: gpus,
            cost_intra: 1.0,
            cost_inter: 1.0,
        }
    }

    #[test]
    fn balances_two_hot_experts_with_one_swap() {
        // 1 layer, 4 experts on 2 GPUs; the two hot experts start together on GPU 0.
        let mut w = Workload::zeros(1, 4);
        w.tokens = 10;
        w.load = vec![5.0, 5.0, 1.0, 1.0];
        let prev = Plan::new(1, 4, 2, 2, vec![0, 1, 2, 3]).unwrap();
        let opts = BudgetOptions {
            moves: 10,
            balance: 1.0,
            comm: 1.0,
        };
        let r = replan(&prev, &w, &topo(2), opts);
        assert_eq!(r.swaps.len(), 1);
        assert_eq!(r.moves, 2);
        assert!(r.objective.1 < r.objective.0);
        let no = replan(&prev, &w, &topo(2), BudgetOptions { moves: 1, ..opts });
        assert_eq!(no.plan, prev);
    }

    #[test]
    fn evens_out_layers_whose_hottest_gpus_tie() {
        // 4 GPUs x 2 slots: GPUs 0 and 1 hold the hot experts (3 + 3), GPUs 2 and 3 the cold
        // ones (1 + 1). No single swap lowers the max (two GPUs tie at 6), so a greedy on IR
        // alone stops; the variance term reaches the balanced 3 + 1 everywhere in two swaps.
        let mut w = Workload::zeros(1, 8);
        w.tokens = 16;
        w.load = vec![3.0, 3.0, 3.0, 3.0, 1.0, 1.0, 1.0, 1.0];
        let prev = Plan::new(1, 8, 4, 2, (0..8).collect()).unwrap();
        let opts = BudgetOptions {
            moves: 8,
            balance: 1.0,
            comm: 0.0,
        };
        let r = replan(&prev, &w, &topo(4), opts);
        assert_eq!(r.moves, 4, "{:?}", r.swaps);
        let loads = crate::metrics::gpu_loads(w.load(0), &r.plan.spread(0), 4);
        assert!(loads.iter().all(|&x| (x - 4.0).abs() < 1e-9), "{loads:?}");
    }

    #[test]
    fn recent_windows_split_experts_that_rise_together() {
        // 1 layer, 4 experts on 2 GPUs x 2 slots; the totals are even, so the plan in service
        // (experts 0 and 1 together) is balanced on them. But 0 and 1 were hot together in one
        // recent window and 2 and 3 in the other: balanced on each window, the re-plan puts
        // one of each pair on each GPU.
        let mut w = Workload::zeros(1, 4);
        w.tokens = 8;
        w.load = vec![4.0, 4.0, 4.0, 4.0];
        let (mut w1, mut w2) = (w.clone(), w.clone());
        w1.load = vec![3.0, 3.0, 1.0, 1.0];
        w2.load = vec![1.0, 1.0, 3.0, 3.0];
        let prev = Plan::new(1, 4, 2, 2, vec![0, 1, 2, 3]).unwrap();
        let opts = BudgetOptions {
            moves: 8,
            balance: 1.0,
            comm: 0.0,
        };
        assert_eq!(replan(&prev, &w, &topo(2), opts).plan, prev);
        let r = replan_recent(&prev, &w, &[&w1.load, &w2.load], &topo(2), opts);
        assert_eq!(r.moves, 2, "{:?}", r.swaps);
        for win in [&w1, &w2] {
            let loads = crate::metrics::gpu_loads(win.load(0), &r.plan.spread(0), 2);
            assert_eq!(loads, vec![4.0, 4.0], "{:?}", r.plan);
        }
        assert!(r.objective.1 < r.objective.0);
    }
}
