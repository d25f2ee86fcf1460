//! Trace replay: cache policies on a timing model (hit ratio, bytes moved, stall, tokens/s).

pub mod backend;
pub mod batching;
pub mod report;
pub mod run;
pub mod schedule;
pub mod setup;
pub mod sim;
pub mod timing;

pub use backend::{CacheBackend, InProcess, LayerStep};
pub use batching::{Batching, Steps, build_steps, demand_keys, step_experts};
pub use report::ReplayReport;
pub use run::{PolicyReport, ReplayError, ReplaySetup, build_policy, run_policies};
pub use setup::{CapacityMode, ReplayInputs, ReplayOptions, batching_of, replay_trace};
pub use sim::{PrefetchOptions, SimResult, simulate, simulate_on};
pub use timing::{Link, TimingModel};
