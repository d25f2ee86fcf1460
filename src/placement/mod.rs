//! Expert placement from traces: problem building, scoring (in-sample and out-of-sample), plan
//! files and engine exports. The optimisation itself lives in the `moeplan-solver` crate.

mod compare;
mod counts;
mod export;
mod problem;
mod time;
mod workload;

pub use compare::{
    Compared, Comparison, MethodReport, PlaceReport, PlanMetrics, SolveClock, SolverRun, compare,
    split,
};
pub use counts::{counts_workload, read_counts};
pub use export::{PLAN_VERSION, PlanFile, SglangLocation, sglang_location};
pub use problem::{
    PlacementError, build_problem, check_trace, problem_from_workloads, redundant_slots, topology,
};
pub use time::{DEFAULT_TIME_BATCH, time_model};
pub use workload::{DEFAULT_BATCH_TOKENS, combined_workload, workload_from_trace};

use moeplan_solver::{Metrics, Plan, Topology, evaluate};

use crate::trace::Trace;

/// Scores `plan` on `trace` (batches of `batch_tokens` for the layer-time proxy).
pub fn score(plan: &Plan, trace: &Trace, topo: &Topology, batch_tokens: usize) -> Metrics {
    evaluate(&workload_from_trace(trace, batch_tokens), plan, topo)
}
