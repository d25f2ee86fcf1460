//! Lower bounds. Split the objective into overlapping two-layer windows (each interior layer's
//! balance term half in each window it belongs to): the windows' objectives add up to the whole,
//! so the sum of their minima (or of HiGHS's bounds on them) bounds the whole from below. A
//! window too big to solve falls back on the separable bounds of `relax` (its balance terms and
//! its pair's link cost, each bounded alone).

use crate::control::{Control, ProgressEvent};
use crate::joint::Joint;
use crate::objective::Scaled;
use crate::relax::{balance_bound, pair_cost_bound};

/// A lower bound and how it was obtained.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bound {
    /// The bound on the objective.
    pub value: f64,
    /// Windows solved by the joint ILP (the rest used the separable bound).
    pub windows_solved: usize,
    /// Windows in all.
    pub windows: usize,
}

/// Lower bound for replica counts `counts`, spending at most `budget` seconds of HiGHS on
/// windows of at most `max_binaries` binaries; `incumbent_lists` (per layer, per GPU, experts: the
/// incumbent) warm-starts each window so that HiGHS always has a solution to report a bound for.
pub fn lower_bound(
    sc: &Scaled,
    counts: &[Vec<u32>],
    incumbent_lists: Option<&[Vec<Vec<u16>>]>,
    max_binaries: usize,
    budget: f64,
    incumbent: f64,
    ctl: &dyn Control,
) -> Bound {
    let layers = sc.layers;
    let bal: Vec<f64> = (0..layers)
        .map(|l| sc.weights.balance * balance_bound(sc, l, &counts[l]))
        .collect();
    let comm: Vec<f64> = (0..layers.saturating_sub(1))
        .map(|l| pair_cost_bound(sc, l, &counts[l], &counts[l + 1]))
        .collect();
    let separable: f64 = bal.iter().sum::<f64>() + comm.iter().sum::<f64>();
    if layers < 2 {
        return Bound {
            value: separable,
            windows_solved: 0,
            windows: 0,
        };
    }
    let windows = layers - 1;
    let factor = |l: usize| if l == 0 || l == layers - 1 { 1.0 } else { 0.5 };
    let mut total = 0.0;
    let mut solved = 0;
    let start = ctl.remaining_s();
    for l in 0..windows {
        let f = [factor(l), factor(l + 1)];
        let floor = f[0] * bal[l] + f[1] * bal[l + 1] + comm[l];
        let cs = vec![counts[l].clone(), counts[l + 1].clone()];
        let joint = Joint::new(sc, l, f.to_vec(), cs.clone());
        let left = (windows - l) as f64;
        let spent = if start.is_finite() {
            start - ctl.remaining_s()
        } else {
            0.0
        };
        let fair = if start.is_finite() {
            (budget - spent) / left
        } else {
            budget / windows as f64
        };
        let time = fair.min(ctl.remaining_s());
        let mut value = floor;
        if Joint::supported(sc, &cs)
            && joint.binaries() <= max_binaries
            && time > 0.05
            && !ctl.interrupted()
            && let Ok(r) = joint.solve(incumbent_lists.map(|s| &s[l..l + 2]), time)
        {
            value = value.max(r.bound);
            solved += 1;
        }
        total += value;
        ctl.progress(&ProgressEvent {
            phase: format!("bound {}/{}", l + 1, windows),
            incumbent,
            bound: None,
        });
    }
    Bound {
        value: total.max(separable),
        windows_solved: solved,
        windows,
    }
}
