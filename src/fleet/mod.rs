//! Fleet-scale routing statistics: the mergeable sums moeplan learns from (expert counts, h-hop
//! and previous-token pair counts, per-window loads, a fixed held-out sample for the mix's
//! cross-validation), aggregated natively or on Spark/DuckDB, stored as one Parquet file, and
//! turned into placement workloads and predictors.

mod accumulate;
mod consume;
mod file;
mod stats;

pub use accumulate::{Accumulator, AggregateOptions, aggregate_paths};
pub use consume::stats_windows;
pub use file::{
    HOPS_KEY, SHAPE_KEY, STATS_VERSION, TOKENS_KEY, VERSION_KEY, WINDOW_KEY, read_stats,
    write_stats,
};
pub use stats::{HeldCase, RoutingStats, StatsError, WorkloadStats};
