//! moeplan: expert placement and expert caching for Mixture-of-Experts serving.
//!
//! Routing traces ([`trace::Trace`]) feed statistics ([`stats`]), a placement planner and a
//! routing-path predictor that drives an expert cache. See `README.md` for the commands and
//! `docs/architecture.md` for the module map.

mod bad_input;
pub mod cache;
mod cli;
pub mod config;
pub mod daemon;
pub mod dataplane;
pub mod export;
pub mod fleet;
pub mod moe;
pub mod placement;
pub mod predict;
pub mod rebalance;
pub mod replay;
pub mod report;
pub mod runtime;
pub mod stats;
pub mod synth;
pub mod trace;
mod util;

pub use bad_input::BadInput;
pub use util::Progress;

/// The `moeplan` command line: parses the process arguments, runs one command and returns the
/// exit code (0 success, 2 usage, 3 bad input, 1 any other failure).
pub fn cli_main() -> std::process::ExitCode {
    cli::main()
}
