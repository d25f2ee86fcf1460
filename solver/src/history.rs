//! The counts a stream's move-budgeted re-plans work on: decayed totals of every window seen,
//! and the last few windows apart (the balance must hold on each, [`crate::budget`]).

use std::collections::VecDeque;

use crate::budget::{BudgetOptions, Replanned, replan_recent};
use crate::plan::Plan;
use crate::problem::{Topology, Workload};

/// Recent windows a re-plan balances on one at a time (chosen with
/// [`crate::budget::RECENT_WEIGHT`]).
pub const RECENT_WINDOWS: usize = 6;

/// Decayed counts of a stream plus the selections of its last [`RECENT_WINDOWS`] windows (their
/// pairs are not kept: the balance term needs the loads only).
#[derive(Debug, Clone, PartialEq)]
pub struct ReplanHistory {
    decayed: Workload,
    recent: VecDeque<Vec<f64>>,
}

/// `a * x + y`, elementwise into `x`.
fn axpy(a: f64, x: &mut [f64], y: &[f64]) {
    for (o, &v) in x.iter_mut().zip(y) {
        *o = a * *o + v;
    }
}

impl ReplanHistory {
    /// No window seen yet.
    pub fn new(layers: usize, experts: usize) -> Self {
        ReplanHistory {
            decayed: Workload::zeros(layers, experts),
            recent: VecDeque::with_capacity(RECENT_WINDOWS + 1),
        }
    }

    /// Folds in window `w`: the totals decay by `0.5^(1 / half_life)` (in windows) first.
    pub fn push(&mut self, w: &Workload, half_life: f64) {
        let decay = 0.5f64.powf(1.0 / half_life.max(1e-9));
        let h = &mut self.decayed;
        axpy(decay, &mut h.load, &w.load);
        axpy(decay, &mut h.pairs, &w.pairs);
        axpy(decay, &mut h.pairs_top1, &w.pairs_top1);
        h.tokens = (h.tokens as f64 * decay).round() as usize + w.tokens;
        // The oldest window's buffer is reused for the newest.
        let mut load = if self.recent.len() == RECENT_WINDOWS {
            self.recent.pop_front().unwrap_or_default()
        } else {
            Vec::new()
        };
        load.clear();
        load.extend_from_slice(&w.load);
        self.recent.push_back(load);
    }

    /// The decayed totals.
    pub fn decayed(&self) -> &Workload {
        &self.decayed
    }

    /// The move-budgeted re-plan of `prev` on these counts.
    pub fn replan(&self, prev: &Plan, topo: &Topology, opts: BudgetOptions) -> Replanned {
        let recent: Vec<&[f64]> = self.recent.iter().map(Vec::as_slice).collect();
        replan_recent(prev, &self.decayed, &recent, topo, opts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_windows_and_decays_the_totals() {
        let mut h = ReplanHistory::new(1, 2);
        for i in 0..RECENT_WINDOWS + 2 {
            let mut w = Workload::zeros(1, 2);
            w.tokens = 1;
            w.load = vec![i as f64, 1.0];
            h.push(&w, 1.0);
        }
        assert_eq!(h.recent.len(), RECENT_WINDOWS);
        assert_eq!(h.recent[0][0], 2.0);
        // Half-life of one window: 1 + 1/2 + 1/4 + ... of eight windows.
        let want: f64 = (0..RECENT_WINDOWS + 2).map(|k| 0.5f64.powi(k as i32)).sum();
        assert!((h.decayed().load[1] - want).abs() < 1e-12);
    }
}
