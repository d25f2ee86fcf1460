//! The numbers behind the report's charts. The command line fills them by calling the same
//! library functions as `trace stats`, `place`, `replay`, `predict eval` and `rebalance`; the
//! charts only draw them.

use moeplan_solver::Metrics;
use serde::Serialize;

use crate::config::{HardwareConfig, ModelConfig};
use crate::predict::EvalReport;
use crate::rebalance::RebalanceReport;
use crate::replay::{PolicyReport, TimingModel};
use crate::stats::PairStrength;

/// Everything one report shows.
#[derive(Debug, Clone, Serialize)]
pub struct ReportData {
    /// The command that made the report.
    pub command: String,
    /// A note on the inputs shown under the title (how the traces were split, for the demo).
    pub note: Option<String>,
    /// Model config.
    pub model: ModelConfig,
    /// Hardware the plans are for.
    pub hardware: HardwareConfig,
    /// Hardware the cache replay runs on (host-to-device link, compute constants).
    pub cache_hardware: HardwareConfig,
    /// Names of the traces the plans, the static ranking and the predictor are built on.
    pub build: Vec<String>,
    /// Tokens of the build traces together.
    pub build_tokens: usize,
    /// The report was made from a statistics file (counts only), not traces.
    pub from_stats: bool,
    /// Name and tokens of the out-of-sample trace, if any.
    pub eval: Option<(String, usize)>,
    /// Expert load.
    pub load: LoadData,
    /// Load shift between two traces, when there are two.
    pub shift: Option<ShiftData>,
    /// Placement map and per-GPU loads.
    pub placement: PlacementData,
    /// Strongest inter-layer affinities.
    pub affinity: AffinityData,
    /// Cache replay against capacity (needs token-level traces).
    pub cache: Option<CacheData>,
    /// Predictor recall, offline and online (needs token-level traces).
    pub recall: Option<RecallData>,
    /// Re-balancing over the stream (needs enough windows).
    pub rebalance: Option<RebalanceData>,
    /// Sections left out of this report: (chart title, why).
    pub omitted: Vec<(String, String)>,
    /// The report's own settings (capacities, look-ahead, time limit...), name and value.
    pub settings: Vec<(String, String)>,
}

/// Expert load per layer.
#[derive(Debug, Clone, Serialize)]
pub struct LoadData {
    /// What was counted.
    pub trace: String,
    /// `[layer][expert]` token-selections.
    pub counts: Vec<Vec<u64>>,
    /// Per layer, busiest expert / mean.
    pub imbalance: Vec<f64>,
    /// The command that prints these counts.
    pub command: String,
}

/// Load shift from trace `a` to trace `b`.
#[derive(Debug, Clone, Serialize)]
pub struct ShiftData {
    /// First trace.
    pub a: String,
    /// Second trace.
    pub b: String,
    /// `[layer][expert]` share of the layer's selections in `b` minus that in `a`.
    pub delta: Vec<Vec<f64>>,
    /// Per-layer Jensen-Shannon divergence (base 2).
    pub jsd_per_layer: Vec<f64>,
    /// The command that prints the divergence.
    pub command: String,
}

/// One placement method's per-GPU loads on one trace.
#[derive(Debug, Clone, Serialize)]
pub struct GpuLoads {
    /// `[layer][gpu]` token-selections served, divided by the layer's mean over GPUs.
    pub relative: Vec<Vec<f64>>,
    /// The plan's metrics on the trace.
    pub metrics: Metrics,
}

/// One placement method's figures.
#[derive(Debug, Clone, Serialize)]
pub struct MethodLoads {
    /// Method name (`ilp`, `eplb`, `contiguous`, or the plan file's method).
    pub name: String,
    /// On the build traces.
    pub in_sample: GpuLoads,
    /// On the eval trace.
    pub eval: Option<GpuLoads>,
}

/// The plan's map and the methods compared.
#[derive(Debug, Clone, Serialize)]
pub struct PlacementData {
    /// Where the mapped plan came from (`ilp` run here, or a plan file).
    pub plan_source: String,
    /// GPUs.
    pub gpus: usize,
    /// Physical slots per GPU per layer.
    pub slots_per_gpu: usize,
    /// `[layer][physical slot]` logical expert of the mapped plan.
    pub map: Vec<Vec<u16>>,
    /// `[layer][expert]` replicas in the mapped plan.
    pub replicas: Vec<Vec<u32>>,
    /// `[layer][expert]` share of the layer's selections on the build traces (the colour).
    pub share: Vec<Vec<f64>>,
    /// The plan, EPLB and contiguous, in that order.
    pub methods: Vec<MethodLoads>,
    /// The command that prints the same comparison.
    pub command: String,
}

/// Strongest consecutive-layer pairs.
#[derive(Debug, Clone, Serialize)]
pub struct AffinityData {
    /// Pairs by lift, strongest first (layer -> layer + 1).
    pub pairs: Vec<PairStrength>,
    /// Support threshold of the pairs.
    pub min_count: u32,
    /// MoE layers.
    pub layers: usize,
    /// Experts per layer.
    pub experts: usize,
    /// The command that prints the pairs.
    pub command: String,
}

/// Cache replay at several capacities.
#[derive(Debug, Clone, Serialize)]
pub struct CacheData {
    /// What was replayed.
    pub trace: String,
    /// Whether `static` and the predictor were built on other traces than the replayed one.
    pub out_of_sample: bool,
    /// Timing constants of the replay.
    pub constants: TimingModel,
    /// `(capacity per layer, one report per policy)`, capacities ascending.
    pub by_capacity: Vec<(usize, Vec<PolicyReport>)>,
    /// The capacity of the time-per-token chart.
    pub capacity: usize,
    /// Predictor `predictive` used.
    pub predictor: String,
    /// The command that prints one capacity's row (`{C}` stands for the capacity).
    pub command: String,
}

/// Recall of the predictor set, offline and online (prequential), on the same trace.
#[derive(Debug, Clone, Serialize)]
pub struct RecallData {
    /// The offline evaluation.
    pub report: EvalReport,
    /// The prequential evaluation: each token predicted from the tokens before it, then
    /// observed by the predictors.
    pub online: EvalReport,
    /// What was scored.
    pub trace: String,
    /// The commands that train and score the predictors offline.
    pub command: String,
    /// The command that scores them online.
    pub online_command: String,
}

/// Re-balancing policies over the stream of windows.
#[derive(Debug, Clone, Serialize)]
pub struct RebalanceData {
    /// `moeplan rebalance --json`'s report.
    pub report: RebalanceReport,
    /// What the stream is.
    pub stream: String,
    /// The command that prints the same report.
    pub command: String,
}
