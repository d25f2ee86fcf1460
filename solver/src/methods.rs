//! The placement methods, chosen by name; one entry point runs any of them on a problem.

use serde::{Deserialize, Serialize};

use crate::affinity::affinity;
use crate::baseline::{contiguous, eplb, round_robin};
use crate::control::Control;
use crate::ilp::{IlpOptions, SolveReport, robust_counts, solve_ilp};
use crate::objective::Scaled;
use crate::plan::{Plan, PlanError};
use crate::problem::Problem;
use crate::replicate::replica_counts;

/// A placement method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// Experts in id order, S per GPU (vLLM/Megatron default).
    Contiguous,
    /// Expert e on GPU e mod G.
    RoundRobin,
    /// DeepSeek's EPLB (hot-expert replication, balanced packing).
    Eplb,
    /// ExFlow-style affinity (same-GPU consecutive-layer transitions, equal counts per GPU).
    Affinity,
    /// The ILP/BCD solver with lower bound and gap.
    Ilp,
}

impl Method {
    /// Every method, in table order.
    pub const ALL: [Method; 5] = [
        Method::Contiguous,
        Method::RoundRobin,
        Method::Eplb,
        Method::Affinity,
        Method::Ilp,
    ];

    /// The method's name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Method::Contiguous => "contiguous",
            Method::RoundRobin => "round-robin",
            Method::Eplb => "eplb",
            Method::Affinity => "affinity",
            Method::Ilp => "ilp",
        }
    }
}

/// Options shared by the methods.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct MethodOptions {
    /// EPLB's expert groups (DeepSeek-V3: 8); 0 = as many as nodes.
    pub eplb_groups: usize,
    /// The `ilp` method's knobs.
    pub ilp: IlpOptions,
}

/// A plan and, for `ilp`, the solver's report.
#[derive(Debug, Clone)]
pub struct Placed {
    /// The plan.
    pub plan: Plan,
    /// Status, objective, bound and gap (only `ilp`).
    pub report: Option<SolveReport>,
}

/// Runs `method` on `p`.
pub fn place(
    method: Method,
    p: &Problem,
    opts: &MethodOptions,
    ctl: &dyn Control,
) -> Result<Placed, PlanError> {
    let plain = |plan| Ok(Placed { plan, report: None });
    match method {
        Method::Contiguous => plain(contiguous(p)),
        Method::RoundRobin => plain(round_robin(p)),
        Method::Eplb => {
            let groups = if opts.eplb_groups == 0 {
                p.topology.nodes
            } else {
                opts.eplb_groups
            };
            plain(eplb(p, groups))
        }
        Method::Affinity => {
            let share = p.mean_share();
            let e = p.experts();
            let counts: Vec<Vec<u32>> = (0..p.layers())
                .map(|l| replica_counts(&share[l * e..(l + 1) * e], p.physical(), p.gpus()))
                .collect();
            plain(affinity(&Scaled::new(p), &counts, 2))
        }
        Method::Ilp => {
            let (plan, report) = solve_ilp(p, &opts.ilp, ctl)?;
            Ok(Placed {
                plan,
                report: Some(report),
            })
        }
    }
}

/// The replica counts the `ilp` method plans with (for reports).
pub fn ilp_counts(p: &Problem) -> Vec<Vec<u32>> {
    robust_counts(p)
}
