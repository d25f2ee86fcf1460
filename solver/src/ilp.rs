//! The `ilp` method: robust replica counts, warm starts from the heuristics, then the joint ILP
//! where it is small enough to prove optimality, else the exact chain programme where every
//! layer's placements can be enumerated, else block-coordinate descent (each layer
//! re-placed exactly by HiGHS with its neighbours fixed, swaps on top), and a lower bound from
//! two-layer windows; the gap is reported.

use serde::{Deserialize, Serialize};

use crate::affinity::{affinity, polish};
use crate::bound::lower_bound;
use crate::chain::{count_states, solve_chain};
use crate::control::{Control, ProgressEvent};
use crate::eplb::balanced_packing;
use crate::joint::{Joint, gpu_lists};
use crate::layer::LayerProblem;
use crate::objective::Scaled;
use crate::plan::{Plan, Spread};
use crate::problem::Problem;
use crate::replicate::replica_counts;

/// Knobs of the `ilp` method.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct IlpOptions {
    /// Largest joint model (binaries) solved whole.
    pub joint_binaries: usize,
    /// Largest one-layer model (experts x GPUs) re-placed exactly by HiGHS; above, swaps only.
    pub layer_binaries: usize,
    /// Largest two-layer window (binaries) solved for the lower bound.
    pub window_binaries: usize,
    /// Most block-coordinate-descent sweeps.
    pub max_sweeps: usize,
    /// HiGHS time limit per one-layer model, seconds.
    pub layer_time: f64,
    /// Share of the time limit given to the lower bound.
    pub bound_share: f64,
    /// Largest number of placements per layer for which the exact chain programme runs
    /// (0: never); it needs one replica per expert.
    #[serde(default)]
    pub chain_states: usize,
    /// Most swaps of one Kernighan-Lin pass after the first-improvement swaps (0: none).
    #[serde(default)]
    pub kl_moves: usize,
}

impl Default for IlpOptions {
    fn default() -> Self {
        IlpOptions {
            joint_binaries: 160,
            layer_binaries: 1024,
            window_binaries: 300,
            max_sweeps: 10,
            layer_time: 0.25,
            bound_share: 0.4,
            chain_states: 5_000,
            kl_moves: 16,
        }
    }
}

/// What the solver reports about an `ilp` solve.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SolveReport {
    /// `optimal` (proven), `feasible` (stopped with a gap), or `interrupted`.
    pub status: String,
    /// How the plan was found (`joint ILP`, `BCD: 4 sweeps, exact layers`, ...).
    pub how: String,
    /// Objective of the plan (constant term included).
    pub objective: f64,
    /// Proven lower bound for the fixed replica counts.
    pub bound: f64,
    /// (objective - bound) / objective.
    pub gap: f64,
    /// Objective of the best warm start.
    pub warm_start: f64,
}

/// Robust replica counts: each layer's redundant slots go to the experts with the largest load
/// per replica, taking each expert's worst share over the workloads (volatile experts count
/// at their peak), at most one replica per GPU.
pub fn robust_counts(p: &Problem) -> Vec<Vec<u32>> {
    let env = p.envelope_share();
    let e = p.experts();
    (0..p.layers())
        .map(|l| replica_counts(&env[l * e..(l + 1) * e], p.physical(), p.gpus()))
        .collect()
}

/// Load-balanced start: each layer's replicas (load / replicas, envelope shares) packed by
/// EPLB's balanced packing, one replica of an expert per GPU where the packing allows.
pub fn packed(p: &Problem, counts: &[Vec<u32>]) -> Plan {
    let env = p.envelope_share();
    let (e, g, s) = (p.experts(), p.gpus(), p.slots_per_gpu);
    let mut lists = Vec::with_capacity(p.layers());
    for (l, cnt) in counts.iter().enumerate() {
        let mut items: Vec<u16> = Vec::new();
        for (x, &r) in cnt.iter().enumerate() {
            items.extend(std::iter::repeat_n(x as u16, r as usize));
        }
        let w: Vec<f64> = items
            .iter()
            .map(|&x| env[l * e + x as usize] / cnt[x as usize] as f64)
            .collect();
        let (pack, _) = balanced_packing(&w, g);
        let mut layer = vec![Vec::with_capacity(s); g];
        for (i, &x) in items.iter().enumerate() {
            layer[pack[i]].push(x);
        }
        lists.push(layer);
    }
    Plan::from_gpu_lists(e, s, &lists).expect("packing fills every slot")
}

/// Runs the `ilp` method.
pub fn solve_ilp(
    p: &Problem,
    opts: &IlpOptions,
    ctl: &dyn Control,
) -> Result<(Plan, SolveReport), crate::plan::PlanError> {
    let sc = Scaled::new(p);
    let counts = robust_counts(p);
    // The affinity seed unpolished: the descent below does the polishing, on the real objective.
    let mut starts = vec![packed(p, &counts), affinity(&sc, &counts, 0)];
    // The plan in service is a start too when it has the same replica counts.
    if let Some(prev) = &p.previous
        && (0..p.layers()).all(|l| prev.counts(l) == counts[l])
    {
        starts.push(prev.clone());
    }
    let mut plan = starts
        .iter()
        .min_by(|a, b| sc.value(a).total_cmp(&sc.value(b)))
        .cloned()
        .expect("at least two starts");
    let warm = sc.value(&plan);
    let mut best = warm;
    let report = |phase: String, inc: f64, bound: Option<f64>| {
        ctl.progress(&ProgressEvent {
            phase,
            incumbent: inc,
            bound,
        })
    };
    report("warm start".into(), best, None);
    let budget = ctl.remaining_s();
    let joint = Joint::new(&sc, 0, vec![1.0; p.layers()], counts.clone());
    let mut how = String::new();
    if Joint::supported(&sc, &counts) && joint.binaries() <= opts.joint_binaries {
        if let Ok(r) = joint.solve(Some(&gpu_lists(&plan)), budget) {
            let cand = Plan::from_gpu_lists(p.experts(), p.slots_per_gpu, &r.lists)?;
            if sc.value(&cand) <= best {
                best = sc.value(&cand);
                plan = cand;
            }
            let status = if r.optimal { "optimal" } else { "feasible" };
            let bound = r.bound.min(best);
            return Ok((
                plan,
                SolveReport {
                    status: status.into(),
                    how: "joint ILP (HiGHS)".into(),
                    objective: best,
                    bound,
                    gap: gap(best, bound),
                    warm_start: warm,
                },
            ));
        }
        how.push_str("joint ILP failed; ");
    }
    if let Some(r) = solve_chain(&sc, opts.chain_states, ctl) {
        let cand = Plan::from_gpu_lists(p.experts(), p.slots_per_gpu, &r.lists)?;
        let value = sc.value(&cand);
        report("chain DP".into(), value, Some(r.value.min(value)));
        return Ok((
            cand,
            SolveReport {
                status: "optimal".into(),
                how: format!(
                    "{how}chain DP (exact: {} placements per layer)",
                    count_states(p.experts(), p.gpus(), p.slots_per_gpu)
                ),
                objective: value,
                bound: r.value.min(value),
                gap: gap(value, r.value.min(value)),
                warm_start: warm,
            },
        ));
    }
    // Block-coordinate descent.
    let exact = p.experts() * p.gpus() <= opts.layer_binaries;
    let descent_budget = if budget.is_finite() {
        budget * (1.0 - opts.bound_share)
    } else {
        f64::INFINITY
    };
    let mut spreads: Vec<Vec<Spread>> = (0..plan.layers).map(|l| plan.spread(l)).collect();
    let mut sweeps = 0;
    let mut interrupted = false;
    let mut best_plan = plan.clone();
    'outer: for sweep in 0..opts.max_sweeps {
        sweeps = sweep + 1;
        let before = best;
        for l in 0..plan.layers {
            let spent = budget - ctl.remaining_s();
            if ctl.interrupted() {
                interrupted = true;
                break 'outer;
            }
            if budget.is_finite() && spent >= descent_budget {
                break 'outer;
            }
            let lp = LayerProblem::new(&sc, &plan, l, &spreads);
            let mut phy = plan.layer(l).to_vec();
            if exact {
                let left = if budget.is_finite() {
                    descent_budget - spent
                } else {
                    opts.layer_time
                };
                lp.exact(&mut phy, opts.layer_time.min(left));
            }
            lp.local_search(&mut phy, 20);
            if opts.kl_moves > 0 {
                lp.kernighan_lin(&mut phy, opts.kl_moves, 2);
            }
            if phy != plan.layer(l) {
                plan.layer_mut(l).copy_from_slice(&phy);
                spreads[l] = plan.spread(l);
            }
        }
        let now = sc.value(&plan);
        if now < best {
            best = now;
            best_plan = plan.clone();
        }
        report(format!("sweep {sweeps}"), best, None);
        if now > before - 1e-9 * (1.0 + before.abs()) {
            break;
        }
    }
    how.push_str(&format!(
        "BCD: {sweeps} sweeps, {} layers",
        match (exact, opts.kl_moves > 0) {
            (true, true) => "exact (HiGHS) + swaps + Kernighan-Lin",
            (true, false) => "exact (HiGHS) + swaps",
            (false, true) => "swaps + Kernighan-Lin",
            (false, false) => "swaps",
        }
    ));
    // A sweep cut short by the time limit or Ctrl-C still counts if it improved the plan.
    let now = sc.value(&plan);
    if now < best {
        best = now;
        best_plan = plan;
    }
    let plan = best_plan;
    let bound_budget = if budget.is_finite() {
        ctl.remaining_s().max(0.0)
    } else {
        10.0 * p.layers() as f64
    };
    let b = if interrupted {
        lower_bound(&sc, &counts, None, 0, 0.0, best, ctl)
    } else {
        let lists = gpu_lists(&plan);
        lower_bound(
            &sc,
            &counts,
            Some(&lists),
            opts.window_binaries,
            bound_budget,
            best,
            ctl,
        )
    };
    how.push_str(&format!(
        "; bound: {}/{} two-layer windows solved",
        b.windows_solved, b.windows
    ));
    let bound = b.value.min(best);
    report("done".into(), best, Some(bound));
    Ok((
        plan,
        SolveReport {
            status: if interrupted {
                "interrupted"
            } else {
                "feasible"
            }
            .into(),
            how,
            objective: best,
            bound,
            gap: gap(best, bound),
            warm_start: warm,
        },
    ))
}

fn gap(obj: f64, bound: f64) -> f64 {
    if obj.abs() < 1e-12 {
        0.0
    } else {
        ((obj - bound) / obj.abs()).max(0.0)
    }
}

/// Swap polish used by other methods (re-exported for callers that want BCD on any plan).
pub fn improve(p: &Problem, plan: &mut Plan, sweeps: usize) {
    polish(&Scaled::new(p), plan, sweeps, 0.0);
}
