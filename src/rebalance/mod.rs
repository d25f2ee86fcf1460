//! Re-balancing over a stream (`moeplan rebalance`): the traces are one stream cut into windows
//! of W tokens (or the windows of a statistics file follow each other); after every window each policy may re-plan from what it has seen so far, and its
//! plan is scored on the next window (IR, hop rate, all-to-all bytes, layer time, moves).
//!
//! Policies: `static` (one offline plan, never changed), `eplb` (EPLB from scratch on the last
//! window's counts, as SGLang and vLLM `--enable-eplb` do) and `moeplan` (from the plan in
//! service, at most `move_budget` moves per re-balance, minimising balance + communication on
//! decayed counts of everything seen, the balance also held on each recent window:
//! [`moeplan_solver::budget`], [`moeplan_solver::history`]).

mod report;

use std::time::Instant;

use moeplan_solver::{
    BudgetOptions, Method, MethodOptions, Plan, Problem, ProblemError, ReplanHistory, TimeModel,
    Topology, Unlimited, Weights, Workload, evaluate, layer_time, place,
};
use serde::{Deserialize, Serialize};

pub use report::{PolicyRow, RebalanceReport, WindowRow};

use crate::placement::workload_from_trace;
use crate::trace::Trace;

/// A re-balancing policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RebalancePolicy {
    /// One offline plan, never changed.
    Static,
    /// EPLB from scratch on the last window at every re-balance.
    Eplb,
    /// Move-budgeted re-plan from the plan in service (balance + communication).
    Moeplan,
}

impl RebalancePolicy {
    /// Every policy, in report order.
    pub const ALL: [RebalancePolicy; 3] = [
        RebalancePolicy::Static,
        RebalancePolicy::Eplb,
        RebalancePolicy::Moeplan,
    ];

    /// The policy's name on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            RebalancePolicy::Static => "static",
            RebalancePolicy::Eplb => "eplb",
            RebalancePolicy::Moeplan => "moeplan",
        }
    }
}

/// Default moves per re-balance of `moeplan` (of DeepSeek-V2-Lite's 1,664 placements, 8.2%;
/// EPLB moves about 1,380 per re-balance on the ESFT stream).
pub const DEFAULT_MOVE_BUDGET: usize = 136;
/// Default half-life, in windows, of the counts `moeplan` re-plans on (chosen with
/// [`moeplan_solver::budget::SPREAD_WEIGHT`] on the ESFT stream intent -> law -> summary).
pub const DEFAULT_HISTORY_HALF_LIFE: f64 = 0.5;
/// Default weight of the communication term of `moeplan`'s re-plans (the balance term's is 1),
/// chosen with [`moeplan_solver::budget::RECENT_WEIGHT`] on the ESFT stream intent -> law ->
/// summary: weights 11 / 12 / 13 / 14 gave next-window IR 1.159 / 1.159 / 1.166 / 1.170 at hop
/// rates 0.807 / 0.802 / 0.801 / 0.797.
pub const DEFAULT_COMM_WEIGHT: f64 = 12.0;

/// One window of the stream: where it starts and its counts.
#[derive(Debug, Clone)]
pub struct StreamWindow {
    /// First token of the window in the stream.
    pub start: usize,
    /// Loads and consecutive-layer pairs of the window's tokens.
    pub workload: Workload,
}

/// A trace cut into windows of `window` tokens (the last one may be shorter).
pub fn trace_windows(stream: &Trace, window: usize) -> Result<Vec<StreamWindow>, RebalanceError> {
    if window == 0 {
        return Err(RebalanceError::Invalid(
            "--window must be at least 1".into(),
        ));
    }
    let n = stream.num_tokens();
    Ok((0..n)
        .step_by(window)
        .map(|a| StreamWindow {
            start: a,
            workload: workload_from_trace(&stream.slice(a..(a + window).min(n)), 0),
        })
        .collect())
}

/// Everything a stream re-balancing needs.
#[derive(Debug, Clone)]
pub struct RebalanceSetup {
    /// Tokens per window (a trailing partial window is scored too).
    pub window: usize,
    /// GPUs and link costs.
    pub topology: Topology,
    /// Redundant physical slots per layer (EPLB's replicas).
    pub redundant: usize,
    /// The plan in service at the start (also the `static` plan).
    pub initial: Plan,
    /// Most moves per re-balance of `moeplan`.
    pub move_budget: usize,
    /// Balance and communication weights of `moeplan`.
    pub weights: Weights,
    /// Half-life, in windows, of the counts `moeplan` re-plans on.
    pub history_half_life: f64,
    /// EPLB's groups (0: one per node).
    pub eplb_groups: usize,
    /// The layer-time model.
    pub time: TimeModel,
    /// Bytes of one expert (for bytes moved).
    pub expert_bytes: f64,
}

/// Errors of a re-balancing run.
#[derive(Debug, thiserror::Error)]
pub enum RebalanceError {
    /// The window or stream cannot give a re-balance.
    #[error("{0}")]
    Invalid(String),
    /// The solver rejected a problem.
    #[error(transparent)]
    Problem(#[from] ProblemError),
    /// A plan broke an invariant.
    #[error(transparent)]
    Plan(#[from] moeplan_solver::PlanError),
}

/// One policy's state over the stream.
struct Runner<'a> {
    setup: &'a RebalanceSetup,
    policy: RebalancePolicy,
    plan: Plan,
    history: ReplanHistory,
}

impl Runner<'_> {
    /// Re-plans after window `w` (which it has now seen); returns the moves.
    fn rebalance(&mut self, w: &Workload) -> Result<usize, RebalanceError> {
        let s = self.setup;
        let new = match self.policy {
            RebalancePolicy::Static => return Ok(0),
            RebalancePolicy::Eplb => {
                let p = Problem::new(vec![w.clone()], s.topology, s.redundant, s.weights)?;
                let opts = MethodOptions {
                    eplb_groups: s.eplb_groups,
                    ..Default::default()
                };
                place(Method::Eplb, &p, &opts, &Unlimited)?.plan
            }
            RebalancePolicy::Moeplan => {
                self.history.push(w, s.history_half_life);
                let opts = BudgetOptions {
                    moves: s.move_budget,
                    balance: s.weights.balance,
                    comm: s.weights.comm,
                };
                self.history.replan(&self.plan, &s.topology, opts).plan
            }
        };
        let moves = new.moved_from(&self.plan);
        self.plan = new;
        Ok(moves)
    }
}

/// Runs every policy of `policies` over `stream`, the windows in order.
pub fn run(
    setup: &RebalanceSetup,
    stream: &[StreamWindow],
    policies: &[RebalancePolicy],
) -> Result<RebalanceReport, RebalanceError> {
    let n: usize = stream.iter().map(|w| w.workload.tokens).sum();
    if stream.len() < 2 {
        return Err(RebalanceError::Invalid(format!(
            "the stream has {n} tokens: a window of {} leaves no window after a re-balance",
            setup.window
        )));
    }
    let windows: Vec<&Workload> = stream.iter().map(|w| &w.workload).collect();
    let (layers, experts) = (setup.initial.layers, setup.initial.experts);
    let mut rows = Vec::with_capacity(policies.len());
    for &policy in policies {
        let mut r = Runner {
            setup,
            policy,
            plan: setup.initial.clone(),
            history: ReplanHistory::new(layers, experts),
        };
        let mut series = Vec::with_capacity(windows.len() - 1);
        let mut seconds = 0.0;
        for i in 1..windows.len() {
            let start = Instant::now();
            let moves = r.rebalance(windows[i - 1])?;
            seconds += start.elapsed().as_secs_f64();
            let next = windows[i];
            let m = evaluate(next, &r.plan, &setup.topology);
            let t = layer_time(next, &r.plan, &setup.topology, &setup.time);
            series.push(WindowRow {
                start: stream[i].start,
                tokens: next.tokens,
                ir: m.ir_mean,
                hop: m.hop_rate,
                a2a_bytes_per_token: m.hops_per_token * setup.time.hidden_bytes,
                layer_ms: t.layer_ms,
                moves,
            });
        }
        rows.push(PolicyRow::summarise(
            policy,
            &series,
            seconds,
            setup.expert_bytes,
        ));
    }
    Ok(RebalanceReport {
        window: setup.window,
        tokens: n,
        windows: windows.len(),
        gpus: setup.topology.gpus(),
        move_budget: setup.move_budget,
        history_half_life: setup.history_half_life,
        time_model: setup.time,
        model: String::new(),
        hardware: String::new(),
        policies: rows,
    })
}
