//! `register`: opens a session for one runtime process (one GPU) with its cache settings.

use serde::{Deserialize, Serialize};

use super::Ctx;
use crate::daemon::engine::{Engine, EngineSpec};
use crate::daemon::protocol::{ErrorCode, ErrorReply};
use crate::daemon::session::Session;
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
    /// Predictor file (for `predictive`), read by the daemon.
    #[serde(default)]
    pub predictor: Option<String>,
    /// Layers ahead the prefetch plan covers (0: no prefetch).
    #[serde(default)]
    pub lookahead: u16,
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
    /// Checks the settings, builds the cache, adds the session.
    pub fn apply(self, ctx: &mut Ctx<'_>) -> Result<RegisterReply, ErrorReply> {
        let bad = |m: String| ErrorReply::new(ErrorCode::BadRequest, m);
        if ctx.conn.sessions.len() >= ctx.shared.config.max_sessions_per_connection {
            return Err(ErrorReply::new(
                ErrorCode::LimitReached,
                format!(
                    "this connection already holds {} sessions (the maximum)",
                    ctx.conn.sessions.len()
                ),
            ));
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
        let spec = EngineSpec {
            shape,
            bytes_per_expert: self.bytes_per_expert,
            capacity: self.capacity,
            shared: self.capacity_mode == CapacityMode::Shared,
            policy: self.policy.clone(),
            lookahead: self.lookahead,
        };
        let engine = Engine::new(spec).map_err(bad)?;
        let slots = engine.slots();
        let name = self.name;
        let policy = self.policy;
        let handle = ctx.shared.registry.insert(|id| Session {
            id,
            name,
            shape,
            policy,
            engine,
            steps: 0,
            rejected: 0,
        });
        let id = crate::daemon::session::lock(&handle).id;
        ctx.conn.sessions.insert(id, handle);
        tracing::info!(session = id, slots, "session registered");
        Ok(RegisterReply { session: id, slots })
    }
}
