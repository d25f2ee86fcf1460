//! `register`: opens a session for one runtime process (one GPU) with its cache settings.

use serde::{Deserialize, Serialize};

use super::Ctx;
use crate::cache::{Budget, Lfu, PolicyKind, Predictive};
use crate::daemon::engine::{Engine, EngineSpec, SessionPredictor};
use crate::daemon::gpu_plan::GpuPlan;
use crate::daemon::protocol::{ErrorCode, ErrorReply};
use crate::daemon::session::Session;
use crate::predict::PredictorSet;
use crate::trace::{ModelShape, read_trace};

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
    /// Placement plan (`moeplan place -o FILE`, plan JSON v1) for expert parallelism: the
    /// session's cache holds only its GPU's experts, others are answered `remote`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<String>,
    /// This session's GPU in `plan` (0-based; required with a plan).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu: Option<u16>,
}

/// Longest session name, bytes (names are kept in the metrics and the closed-session history).
pub const MAX_NAME_LEN: usize = 256;

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
            plan: None,
            gpu: None,
        }
    }

    /// Checks the settings, builds the cache, adds the session.
    pub fn apply(self, ctx: &mut Ctx<'_>) -> Result<RegisterReply, ErrorReply> {
        check_room(ctx)?;
        self.check_budget(ctx)?;
        self.prepare()?.install(ctx)
    }

    /// `limit_reached` when this session would take the live sessions' keys beyond the
    /// daemon's budget (`max_live_keys`, default [`crate::daemon::session::MAX_LIVE_KEYS`];
    /// checked before anything is allocated for it).
    pub fn check_budget(&self, ctx: &Ctx<'_>) -> Result<(), ErrorReply> {
        let keys = self.moe_layers as u64 * self.experts as u64;
        let live = ctx.shared.registry.live_keys();
        let budget = ctx.shared.config.max_live_keys;
        if live + keys > budget {
            return Err(ErrorReply::new(
                ErrorCode::LimitReached,
                format!(
                    "the daemon's sessions hold {live} (layer, expert) keys; {keys} more would \
                     exceed its budget of {budget}: close sessions first"
                ),
            ));
        }
        Ok(())
    }

    /// Whether registering reads files (a predictor, a plan, training traces): the daemon then
    /// prepares the session off its event loop ([`Register::prepare`] on a blocking thread).
    pub fn reads_files(&self) -> bool {
        self.predictor.is_some() || self.plan.is_some() || !self.train.is_empty()
    }

    /// Checks the settings and builds the session's engine, reading its files: everything but
    /// adding it to a connection (no shared state, so it may run on another thread).
    pub fn prepare(self) -> Result<Prepared, ErrorReply> {
        let bad = |m: String| ErrorReply::new(ErrorCode::BadRequest, m);
        if self.name.len() > MAX_NAME_LEN {
            return Err(bad(format!(
                "name: {} bytes, at most {MAX_NAME_LEN}",
                self.name.len()
            )));
        }
        let shape = ModelShape {
            moe_layers: self.moe_layers as usize,
            experts: self.experts as usize,
            top_k: self.top_k as usize,
            first_moe_layer: 0,
        };
        shape
            .check()
            .map_err(|m| bad(format!("model shape: {m}")))?;
        let policy: PolicyKind = self
            .policy
            .parse()
            .map_err(|m| bad(format!("policy: {m}")))?;
        let budget = match self.capacity_mode {
            CapacityMode::PerLayer => Budget::PerLayer(self.capacity as usize),
            CapacityMode::Shared => Budget::Shared(self.capacity as usize),
        };
        let half_life = self.half_life.unwrap_or(Lfu::DEFAULT_HALF_LIFE);
        let beta = self.beta.unwrap_or(Predictive::DEFAULT_BETA);
        let margin = self.prefetch_margin.unwrap_or(0.0);
        if !(half_life.is_finite() && half_life > 0.0 && beta.is_finite() && beta >= 0.0) {
            return Err(bad(
                "half_life must be > 0 and beta >= 0, both finite".into()
            ));
        }
        if !margin.is_finite() {
            return Err(bad("prefetch_margin must be finite".into()));
        }
        let predictor = match &self.predictor {
            Some(path) => Some(
                load_predictor(path, self.predictor_name.as_deref(), self.lookahead, &shape)
                    .map_err(bad)?,
            ),
            None if self.predictor_name.is_some() || self.lookahead.is_some() => {
                return Err(bad(
                    "predictor_name and lookahead need a predictor file (predictor)".into(),
                ));
            }
            None => None,
        };
        let plan = match (&self.plan, self.gpu) {
            (Some(path), Some(gpu)) => {
                Some(GpuPlan::load(std::path::Path::new(path), &shape, gpu).map_err(bad)?)
            }
            (Some(_), None) => return Err(bad("plan: needs gpu (this session's GPU)".into())),
            (None, Some(_)) => return Err(bad("gpu: needs a plan file (plan)".into())),
            (None, None) => None,
        };
        let static_counts = if self.train.is_empty() {
            None
        } else {
            Some(train_counts(&self.train, &shape).map_err(bad)?)
        };
        let spec = EngineSpec {
            shape,
            bytes_per_expert: self.bytes_per_expert,
            budget,
            policy,
            half_life,
            beta,
            prefetch_top: self.prefetch_top.map_or(shape.top_k, usize::from),
            margin,
            static_counts,
            predictor,
            plan,
        };
        let engine = Engine::new(spec).map_err(bad)?;
        Ok(Prepared {
            name: self.name,
            shape,
            policy: self.policy,
            engine,
        })
    }
}

/// A registration whose engine is built, waiting to join its connection.
#[derive(Debug)]
pub struct Prepared {
    /// The session's name.
    name: String,
    /// Its model shape.
    shape: ModelShape,
    /// Its policy's name.
    policy: String,
    /// Its cache and predictor.
    engine: Engine,
}

/// `limit_reached` when the connection already holds its most sessions.
pub fn check_room(ctx: &Ctx<'_>) -> Result<(), ErrorReply> {
    if ctx.conn.sessions.len() >= ctx.shared.config.max_sessions_per_connection {
        return Err(ErrorReply::new(
            ErrorCode::LimitReached,
            format!(
                "this connection already holds {} sessions (the maximum)",
                ctx.conn.sessions.len()
            ),
        ));
    }
    Ok(())
}

impl Prepared {
    /// Adds the session to the daemon and the connection (checking the connection's room again).
    pub fn install(self, ctx: &mut Ctx<'_>) -> Result<RegisterReply, ErrorReply> {
        check_room(ctx)?;
        let Prepared {
            name,
            shape,
            policy,
            engine,
        } = self;
        let slots = engine.slots();
        let handle = ctx.shared.registry.insert(|id| Session {
            id,
            name,
            shape,
            policy,
            engine,
            steps: 0,
            rejected: 0,
            observed: 0,
        });
        let id = crate::daemon::session::lock(&handle).id;
        ctx.conn.sessions.insert(id, handle);
        tracing::info!(session = id, slots, "session registered");
        Ok(RegisterReply { session: id, slots })
    }
}

/// Per-(layer, expert) demand counts of the traces at `paths`, which must have `shape` (the
/// ranking `static` uses in the replay too).
fn train_counts(paths: &[String], shape: &ModelShape) -> Result<Vec<f64>, String> {
    let mut traces = Vec::with_capacity(paths.len());
    for p in paths {
        let tr = read_trace(std::path::Path::new(p), None, None)
            .map_err(|e| format!("train trace {p}: {e}"))?;
        let s = tr.shape();
        if (s.moe_layers, s.experts, s.top_k) != (shape.moe_layers, shape.experts, shape.top_k) {
            return Err(format!(
                "train trace {p}: shape {s:?} differs from the session's"
            ));
        }
        traces.push(tr);
    }
    let refs: Vec<&crate::trace::Trace> = traces.iter().collect();
    Ok(crate::replay::key_counts(
        &refs,
        shape.moe_layers,
        shape.experts,
    ))
}

/// Loads the predictor file at `path` for a session of `shape`: predictor `name` (default: the
/// file's main one), asked `lookahead` layers ahead (default and at most: the file's).
fn load_predictor(
    path: &str,
    name: Option<&str>,
    lookahead: Option<u16>,
    shape: &ModelShape,
) -> Result<SessionPredictor, String> {
    let set = PredictorSet::load(std::path::Path::new(path)).map_err(|e| e.to_string())?;
    let s = set.shape();
    if (s.moe_layers, s.experts, s.top_k) != (shape.moe_layers, shape.experts, shape.top_k) {
        return Err(format!(
            "predictor {path}: trained for {} MoE layers x {} experts (top-{}), the session has \
             {} x {} (top-{})",
            s.moe_layers, s.experts, s.top_k, shape.moe_layers, shape.experts, shape.top_k
        ));
    }
    let name = match name {
        Some(n) => {
            set.get(n).ok_or_else(|| {
                format!("predictor_name: {path} has no predictor {n:?} (static, temporal, markov, mix, learned)")
            })?;
            n.to_string()
        }
        None => set.main().name().to_string(),
    };
    let lookahead = match lookahead {
        Some(0) => return Err("lookahead: must be at least 1".into()),
        Some(h) => (h as usize).min(set.lookahead()),
        None => set.lookahead(),
    };
    Ok(SessionPredictor {
        set: std::sync::Arc::new(set),
        name,
        lookahead,
    })
}
