//! `register`: opens a session for one runtime process (one GPU) with its cache settings.

use serde::{Deserialize, Serialize};

use crate::trace::ModelShape;

/// How the expert-slot budget is split.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CapacityMode {
    /// `capacity` slots for each MoE layer.
    #[default]
    PerLayer,
    /// `capacity` slots in all, shared by every layer.
    Shared,
}

/// Opens a session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Register {
    /// Label for logs and metrics (e.g. `host:gpu0`).
    #[serde(default)]
    pub name: String,
    /// MoE layers of the model (dense layers excluded).
    pub moe_layers: u16,
    /// Routed experts per MoE layer.
    pub experts: u16,
    /// Experts each token selects per layer.
    pub top_k: u16,
    /// Bytes of one expert's weights (for the bytes-moved counters; 0 if unknown).
    #[serde(default)]
    pub bytes_per_expert: u64,
    /// Expert slots this GPU gives the cache (see `capacity_mode`).
    pub capacity: u32,
    /// Per-layer or shared budget.
    #[serde(default)]
    pub capacity_mode: CapacityMode,
    /// Eviction policy (`lru`, `lfu`, `static`, `predictive`).
    #[serde(default = "default_policy")]
    pub policy: String,
    /// Half-life of `lfu`/`predictive` frequencies, in layer visits (default: the replay's).
    #[serde(default)]
    pub half_life: Option<f64>,
    /// Weight of the hinted scores in `predictive` (default: the replay's).
    #[serde(default)]
    pub beta: Option<f64>,
    /// Experts prefetched per step from `next_scores` (default: `top_k`; 0: no prefetch).
    #[serde(default)]
    pub prefetch_top: Option<u16>,
    /// Trace files (any format `moeplan` reads) ranking the experts for `static`; read by the
    /// daemon at register, and again after a restart when runtimes re-register.
    #[serde(default)]
    pub train: Vec<String>,
    /// Predictor file (`moeplan predict train -o FILE`): with steps' `routing`, it scores the
    /// next layers' experts and the session prefetches the best (any policy; `predictive` also
    /// weighs them in eviction). Read at register, and again when runtimes re-register.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub predictor: Option<String>,
    /// Which predictor of the file (static, temporal, markov, mix, learned; default: its main).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub predictor_name: Option<String>,
    /// Layers ahead the predictor is asked about (default: the file's look-ahead; capped to it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lookahead: Option<u16>,
    /// Priority a prefetch candidate of `predictive` must have above its victim (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefetch_margin: Option<f64>,
    /// The session's predictor keeps learning from the routing its steps report: each token's
    /// routing updates it once its last MoE layer is reported (the offline predictor of the file
    /// is the prior; half-life and prior weight as the file's, else the defaults). Without a
    /// predictor file: a cold-start predictor with no offline training (`predictor_name`
    /// static, markov or mix, default mix; `lookahead` default 1). Default false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub online: bool,
    /// Placement plan (`moeplan place -o FILE`, plan JSON v1) for expert parallelism: the
    /// session's cache holds only its GPU's experts, others are answered `remote`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<String>,
    /// This session's GPU in `plan` (0-based; required with a plan).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu: Option<u16>,
}

fn default_policy() -> String {
    "lru".into()
}

/// The new session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegisterReply {
    /// Session id, to put in every later request of this session.
    pub session: u64,
    /// Expert slots in all.
    pub slots: u32,
}

impl Register {
    /// A registration of `shape` with `capacity` slots per layer, `lru`, defaults elsewhere.
    pub fn new(name: impl Into<String>, shape: &ModelShape, capacity: u32) -> Self {
        Register {
            name: name.into(),
            moe_layers: shape.moe_layers as u16,
            experts: shape.experts as u16,
            top_k: shape.top_k as u16,
            bytes_per_expert: 0,
            capacity,
            capacity_mode: CapacityMode::PerLayer,
            policy: default_policy(),
            half_life: None,
            beta: None,
            prefetch_top: None,
            train: Vec::new(),
            predictor: None,
            predictor_name: None,
            lookahead: None,
            prefetch_margin: None,
            online: false,
            plan: None,
            gpu: None,
        }
    }

    /// Whether registering reads files (a predictor, a plan, training traces): the daemon then
    /// prepares the session off its event loop (on a blocking thread).
    pub fn reads_files(&self) -> bool {
        self.predictor.is_some() || self.plan.is_some() || !self.train.is_empty()
    }
}
