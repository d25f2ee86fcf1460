//! moeplan: expert placement and expert caching for Mixture-of-Experts serving.
//!
//! Routing traces ([`trace::Trace`]) feed statistics ([`stats`]), a placement planner and a
//! routing-path predictor that drives an expert cache. See `README.md` for the commands.

pub mod cache;
pub mod cli;
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
pub mod trace;
pub mod util;
