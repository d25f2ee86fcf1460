//! Trace replay: cache policies on a timing model (hit ratio, bytes moved, stall, tokens/s).

pub mod batching;
pub mod report;
pub mod run;
pub mod schedule;
pub mod sim;
pub mod timing;

pub use batching::{Batching, Steps, build_steps, demand_keys, step_experts};
pub use report::ReplayReport;
pub use run::{PolicyReport, ReplayError, ReplaySetup, build_policy, key_counts, run_policies};
pub use sim::{PrefetchOptions, SimResult, simulate};
pub use timing::{Link, TimingModel};
