//! `moeplan report`: one self-contained HTML page (inline SVG and CSS, nothing fetched when
//! opened) with the charts a deployment is decided from: expert load and its shift, the placement
//! map and per-GPU loads against EPLB and contiguous, inter-layer affinities, cache hit ratio and
//! stall against capacity, predictor recall against look-ahead (offline and online), re-balancing
//! over a stream, the constants and the command behind each chart.
//!
//! [`ReportData`] holds the numbers (filled by the command line from the library's own
//! functions); [`render`] draws the charts with plotters and lays out the page.

pub mod charts;
mod data;
mod html;
pub mod palette;
mod rebalance_html;

pub use data::{
    AffinityData, CacheData, GpuLoads, LoadData, MethodLoads, PlacementData, RebalanceData,
    RecallData, ReportData, ShiftData,
};
pub use html::{escape, render};

/// Chart titles (each is a heading of the page; tests look them up in the rendered page).
pub mod titles {
    /// Load heatmap.
    pub const LOAD: &str = "Expert load per layer";
    /// Shift heatmap (with two traces).
    pub const SHIFT: &str = "Load shift between two traces";
    /// Shift per layer (with two traces).
    pub const SHIFT_JSD: &str = "Load shift per layer (Jensen-Shannon divergence)";
    /// Placement map.
    pub const MAP: &str = "Placement map";
    /// Per-GPU loads on the build traces.
    pub const GPU_IN: &str = "Per-GPU load per layer, in-sample";
    /// Per-GPU loads on the eval trace.
    pub const GPU_EVAL: &str = "Per-GPU load per layer, out-of-sample";
    /// Affinity graph.
    pub const AFFINITY: &str = "Strongest inter-layer affinities";
    /// Hit ratio against capacity.
    pub const HIT: &str = "Hit ratio against cache capacity";
    /// Time per token split.
    pub const STALL: &str = "Time per token: compute and transfer stall";
    /// Offline recall.
    pub const RECALL: &str = "Predictor recall against look-ahead (offline)";
    /// Online recall.
    pub const RECALL_ONLINE: &str = "Predictor recall against look-ahead (online)";
    /// Re-balancing: imbalance per window.
    pub const REBALANCE: &str = "Re-balancing over a stream: imbalance per window";
    /// Re-balancing: moves per re-balance.
    pub const REBALANCE_MOVES: &str = "Re-balancing over a stream: experts moved per re-balance";
    /// Constants.
    pub const CONSTANTS: &str = "Constants used";
}

impl ReportData {
    /// The titles of the charts this report draws, in page order (sections in
    /// [`ReportData::omitted`] are not charts).
    pub fn chart_titles(&self) -> Vec<&'static str> {
        use titles::*;
        let mut t = vec![LOAD];
        if self.shift.is_some() {
            t.extend([SHIFT, SHIFT_JSD]);
        }
        t.extend([MAP, GPU_IN]);
        if self.eval.is_some() {
            t.push(GPU_EVAL);
        }
        t.push(AFFINITY);
        if self.cache.is_some() {
            t.extend([HIT, STALL]);
        }
        if self.recall.is_some() {
            t.extend([RECALL, RECALL_ONLINE]);
        }
        if self.rebalance.is_some() {
            t.extend([REBALANCE, REBALANCE_MOVES]);
        }
        t.push(CONSTANTS);
        t
    }
}
