//! Re-placing one layer with its neighbours fixed: the building block of block-coordinate
//! descent. With the neighbours fixed, an expert's link cost on each GPU is a constant
//! ([`Scaled::layer_costs`]), so the layer's problem is an assignment with a min-max balance term:
//! exactly as a small MIP (HiGHS), or by first-improvement swaps of two slots on different GPUs.

use good_lp::{Expression, ProblemVariables, constraint, variable};

use crate::mip::{MipStatus, minimise};
use crate::objective::Scaled;
use crate::plan::{Plan, Spread};

/// Weight of the tie-breaking sum of squared GPU loads in the swap search.
const SMOOTH: f64 = 1e-4;

/// The one-layer subproblem of layer `l`.
pub struct LayerProblem<'a> {
    pub(crate) sc: &'a Scaled,
    pub(crate) l: usize,
    /// Weighted link cost per (expert, GPU), `[experts][gpus]`.
    pub(crate) costs: Vec<f64>,
    /// Replicas per expert (fixed).
    pub(crate) counts: Vec<u32>,
    /// Weighted migration cost per replica on (expert, GPU), `[experts][gpus]` (all 0 without
    /// a previous plan).
    pub(crate) moves: Vec<f64>,
}

/// GPU loads of a layer map per workload, with the three busiest GPUs of each, kept up to date
/// under swaps so that a swap's effect costs O(workloads).
pub(crate) struct SwapState {
    g: usize,
    nw: usize,
    /// Per workload, per GPU, load; `[workloads][gpus]`.
    loads: Vec<f64>,
    /// Per workload, its three busiest GPUs (`usize::MAX`: none).
    tops: Vec<[usize; 3]>,
}

impl SwapState {
    /// The loads of map `phy`.
    pub(crate) fn new(lp: &LayerProblem, phy: &[u16]) -> SwapState {
        let (g, s, nw) = (lp.sc.gpus, lp.sc.slots, lp.sc.loadn.len());
        let mut loads = vec![0.0; nw * g];
        for (p, &e) in phy.iter().enumerate() {
            for w in 0..nw {
                loads[w * g + p / s] += lp.piece(w, e as usize);
            }
        }
        let mut st = SwapState {
            g,
            nw,
            loads,
            tops: vec![[usize::MAX; 3]; nw],
        };
        for w in 0..nw {
            st.tops[w] = st.top3(w);
        }
        st
    }

    fn top3(&self, w: usize) -> [usize; 3] {
        let (g, loads) = (self.g, &self.loads);
        let mut t = [usize::MAX; 3];
        for h in 0..g {
            let v = loads[w * g + h];
            if t[0] == usize::MAX || v > loads[w * g + t[0]] {
                t = [h, t[0], t[1]];
            } else if t[1] == usize::MAX || v > loads[w * g + t[1]] {
                t = [t[0], h, t[1]];
            } else if t[2] == usize::MAX || v > loads[w * g + t[2]] {
                t[2] = h;
            }
        }
        t
    }

    /// The busiest GPU's load over workloads.
    pub(crate) fn max(&self) -> f64 {
        (0..self.nw)
            .map(|w| self.loads[w * self.g + self.tops[w][0]])
            .fold(0.0, f64::max)
    }

    /// Swapping a replica of expert `a` on GPU `gp` with one of `b` on `gq`: the change of the
    /// link and migration costs, the busiest load after it, and the change of the sum of
    /// squared loads.
    pub(crate) fn delta(
        &self,
        lp: &LayerProblem,
        a: usize,
        b: usize,
        gp: usize,
        gq: usize,
    ) -> (f64, f64, f64) {
        let g = self.g;
        let (c, mv) = (&lp.costs, &lp.moves);
        let (ra, rb) = (lp.counts[a].max(1) as f64, lp.counts[b].max(1) as f64);
        let dcomm = (c[a * g + gq] - c[a * g + gp]) / ra
            + (c[b * g + gp] - c[b * g + gq]) / rb
            + (mv[a * g + gq] - mv[a * g + gp])
            + (mv[b * g + gp] - mv[b * g + gq]);
        let mut new_max = 0.0f64;
        let mut smooth = 0.0;
        for w in 0..self.nw {
            let d = lp.piece(w, b) - lp.piece(w, a);
            let (op, oq) = (self.loads[w * g + gp], self.loads[w * g + gq]);
            let (np, nq) = (op + d, oq - d);
            smooth += np * np + nq * nq - op * op - oq * oq;
            let other = self.tops[w]
                .iter()
                .find(|&&h| h != usize::MAX && h != gp && h != gq)
                .map_or(0.0, |&h| self.loads[w * g + h]);
            new_max = new_max.max(np).max(nq).max(other);
        }
        (dcomm, new_max, smooth)
    }

    /// Applies the swap of `delta`.
    pub(crate) fn apply(&mut self, lp: &LayerProblem, a: usize, b: usize, gp: usize, gq: usize) {
        for w in 0..self.nw {
            let d = lp.piece(w, b) - lp.piece(w, a);
            self.loads[w * self.g + gp] += d;
            self.loads[w * self.g + gq] -= d;
            self.tops[w] = self.top3(w);
        }
    }
}

impl<'a> LayerProblem<'a> {
    /// The subproblem of layer `l` with the neighbours of `spreads` fixed.
    pub fn new(sc: &'a Scaled, plan: &Plan, l: usize, spreads: &[Vec<Spread>]) -> Self {
        LayerProblem {
            sc,
            l,
            costs: sc.layer_costs(l, spreads),
            counts: plan.counts(l),
            moves: sc
                .moves(l)
                .map_or_else(|| vec![0.0; sc.experts * sc.gpus], <[f64]>::to_vec),
        }
    }

    /// One replica's share of expert `e`'s scaled load in workload `w`.
    #[inline]
    pub(crate) fn piece(&self, w: usize, e: usize) -> f64 {
        self.sc.loadn(w, self.l)[e] / self.counts[e].max(1) as f64
    }

    /// The layer's part of the objective for the layer map `phy` (its balance term and the
    /// link costs of both adjacent layer pairs).
    pub fn value(&self, phy: &[u16]) -> f64 {
        let g = self.sc.gpus;
        let mut loads = vec![0.0; self.sc.loadn.len() * g];
        let mut comm = 0.0;
        for (p, &e) in phy.iter().enumerate() {
            let (e, gpu) = (e as usize, p / self.sc.slots);
            let r = self.counts[e] as f64;
            comm += self.costs[e * g + gpu] / r + self.moves[e * g + gpu];
            for w in 0..self.sc.loadn.len() {
                loads[w * g + gpu] += self.sc.loadn(w, self.l)[e] / r;
            }
        }
        self.sc.weights.balance * loads.iter().cloned().fold(0.0, f64::max) + comm
    }

    /// First-improvement swaps until none improves (at most `max_passes` scans). Returns whether
    /// `phy` changed.
    pub fn local_search(&self, phy: &mut [u16], max_passes: usize) -> bool {
        let s = self.sc.slots;
        let mut st = SwapState::new(self, phy);
        let bal = self.sc.weights.balance;
        let mut changed = false;
        let eps = 1e-12;
        for _ in 0..max_passes {
            let mut improved = false;
            let mut cur_max = st.max();
            for p in 0..phy.len() {
                for q in (p + 1)..phy.len() {
                    let (gp, gq) = (p / s, q / s);
                    let (a, b) = (phy[p] as usize, phy[q] as usize);
                    if gp == gq || a == b {
                        continue;
                    }
                    let (dcomm, new_max, smooth) = st.delta(self, a, b, gp, gq);
                    // A small sum-of-squares term breaks the max's plateaus: among moves that
                    // leave the busiest GPU alone, prefer those that even out the others.
                    let delta = dcomm + bal * (new_max - cur_max + SMOOTH * smooth);
                    if delta < -eps * (1.0 + cur_max) {
                        phy.swap(p, q);
                        st.apply(self, a, b, gp, gq);
                        cur_max = st.max();
                        improved = true;
                        changed = true;
                    }
                }
            }
            if !improved {
                break;
            }
        }
        changed
    }

    /// Solves the layer exactly with HiGHS (replica counts fixed, at most one replica of an
    /// expert per GPU), warm-started from `phy`; writes the result into `phy` if it is better.
    /// Returns whether the MIP proved optimality.
    pub fn exact(&self, phy: &mut [u16], time_limit: f64) -> bool {
        let (g, s, e, nw) = (
            self.sc.gpus,
            self.sc.slots,
            self.sc.experts,
            self.sc.loadn.len(),
        );
        if self.counts.iter().any(|&c| c as usize > g) {
            return false;
        }
        let mut vars = ProblemVariables::new();
        let x: Vec<_> = (0..e * g).map(|_| vars.add(variable().binary())).collect();
        let m = vars.add(variable().min(0.0));
        let mut obj: Expression = self.sc.weights.balance * m;
        for i in 0..e {
            let r = self.counts[i] as f64;
            for h in 0..g {
                obj += (self.costs[i * g + h] / r + self.moves[i * g + h]) * x[i * g + h];
            }
        }
        let mut cons = Vec::new();
        for i in 0..e {
            let sum: Expression = (0..g).map(|h| x[i * g + h]).sum();
            cons.push(constraint!(sum == self.counts[i] as f64));
        }
        for h in 0..g {
            let sum: Expression = (0..e).map(|i| x[i * g + h]).sum();
            cons.push(constraint!(sum == s as f64));
            for w in 0..nw {
                let ln = self.sc.loadn(w, self.l);
                let load: Expression = (0..e)
                    .map(|i| (ln[i] / self.counts[i] as f64) * x[i * g + h])
                    .sum();
                cons.push(constraint!(load <= m));
            }
        }
        // Warm start: the current map, when it has at most one replica per (expert, GPU).
        let mut init = vec![0.0; e * g + 1];
        let mut ok = true;
        for (p, &ex) in phy.iter().enumerate() {
            let i = ex as usize * g + p / s;
            ok &= init[i] == 0.0;
            init[i] = 1.0;
        }
        let mut loads = vec![0.0f64; nw * g];
        for (p, &ex) in phy.iter().enumerate() {
            for w in 0..nw {
                loads[w * g + p / s] +=
                    self.sc.loadn(w, self.l)[ex as usize] / self.counts[ex as usize] as f64;
            }
        }
        init[e * g] = loads.iter().cloned().fold(0.0, f64::max);
        let before = self.value(phy);
        let Ok(res) = minimise(vars, obj, cons, ok.then_some(&init[..]), time_limit, 1e-6) else {
            return false;
        };
        let mut lists: Vec<Vec<u16>> = vec![Vec::with_capacity(s); g];
        for i in 0..e {
            for (h, list) in lists.iter_mut().enumerate() {
                if res.values[i * g + h] > 0.5 {
                    list.push(i as u16);
                }
            }
        }
        if lists.iter().any(|l| l.len() != s) {
            return false;
        }
        let cand: Vec<u16> = lists.into_iter().flatten().collect();
        if self.value(&cand) < before - 1e-12 * (1.0 + before.abs()) {
            phy.copy_from_slice(&cand);
        }
        res.status == MipStatus::Optimal
    }
}
