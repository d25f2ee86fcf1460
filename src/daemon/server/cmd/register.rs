//! Applies `register`: checks the settings, builds the session's engine (reading its files: a
//! predictor, a plan, training traces) and adds the session to the daemon and the connection.

use super::{Apply, Ctx};
use crate::cache::{Budget, Lfu, PolicyKind, Predictive};
use crate::daemon::server::engine::{Engine, EngineSpec, SessionModel, SessionPredictor};
use crate::daemon::server::gpu_plan::GpuPlan;
use crate::daemon::server::replanner::Replanner;
use crate::daemon::server::session::{Session, lock};
use crate::daemon::wire::{CapacityMode, ErrorCode, ErrorReply, Register, RegisterReply};
use crate::predict::{OnlineOptions, OnlinePredictor, PredictorSet};
use crate::trace::{ModelShape, read_trace};

impl Apply for Register {
    type Reply = RegisterReply;

    fn apply(self, ctx: &mut Ctx<'_>) -> Result<RegisterReply, ErrorReply> {
        check_room(ctx)?;
        check_budget(&self, ctx)?;
        prepare(self)?.install(ctx)
    }
}

/// Longest session name, bytes (names are kept in the metrics and the closed-session history).
pub const MAX_NAME_LEN: usize = 256;

/// `limit_reached` when this session would take the live sessions' keys beyond the daemon's
/// budget (`max_live_keys`, default [`crate::daemon::server::session::MAX_LIVE_KEYS`]; checked
/// before anything is allocated for it).
pub fn check_budget(reg: &Register, ctx: &Ctx<'_>) -> Result<(), ErrorReply> {
    // A shape beyond the documented limits is a bad request naming the field, whatever the
    // budget left.
    ModelShape {
        moe_layers: reg.moe_layers as usize,
        experts: reg.experts as usize,
        top_k: reg.top_k as usize,
        first_moe_layer: 0,
    }
    .check()
    .map_err(|m| ErrorReply::new(ErrorCode::BadRequest, format!("model shape: {m}")))?;
    let keys = reg.moe_layers as u64 * reg.experts as u64;
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

/// Checks the settings and builds the session's engine, reading its files: everything but
/// adding it to a connection (no shared state, so it may run on another thread).
pub fn prepare(reg: Register) -> Result<Prepared, ErrorReply> {
    let bad = |m: String| ErrorReply::new(ErrorCode::BadRequest, m);
    if reg.name.len() > MAX_NAME_LEN {
        return Err(bad(format!(
            "name: {} bytes, at most {MAX_NAME_LEN}",
            reg.name.len()
        )));
    }
    let shape = ModelShape {
        moe_layers: reg.moe_layers as usize,
        experts: reg.experts as usize,
        top_k: reg.top_k as usize,
        first_moe_layer: 0,
    };
    shape
        .check()
        .map_err(|m| bad(format!("model shape: {m}")))?;
    let policy: PolicyKind = reg
        .policy
        .parse()
        .map_err(|m| bad(format!("policy: {m}")))?;
    let budget = match reg.capacity_mode {
        CapacityMode::PerLayer => Budget::PerLayer(reg.capacity as usize),
        CapacityMode::Shared => Budget::Shared(reg.capacity as usize),
    };
    let half_life = reg.half_life.unwrap_or(Lfu::DEFAULT_HALF_LIFE);
    let beta = reg.beta.unwrap_or(Predictive::DEFAULT_BETA);
    let margin = reg.prefetch_margin.unwrap_or(0.0);
    if !(half_life.is_finite() && half_life > 0.0 && beta.is_finite() && beta >= 0.0) {
        return Err(bad(
            "half_life must be > 0 and beta >= 0, both finite".into()
        ));
    }
    if !margin.is_finite() {
        return Err(bad("prefetch_margin must be finite".into()));
    }
    let predictor = match &reg.predictor {
        Some(path) => Some(
            load_predictor(path, reg.predictor_name.as_deref(), reg.lookahead, &shape)
                .and_then(|p| if reg.online { online(p, &shape) } else { Ok(p) })
                .map_err(bad)?,
        ),
        None if reg.online => Some(
            cold_predictor(reg.predictor_name.as_deref(), reg.lookahead, &shape).map_err(bad)?,
        ),
        None if reg.predictor_name.is_some() || reg.lookahead.is_some() => {
            return Err(bad(
                "predictor_name and lookahead need a predictor file (predictor) or online".into(),
            ));
        }
        None => None,
    };
    let loaded = match (&reg.plan, reg.gpu) {
        (Some(path), Some(gpu)) => {
            Some(GpuPlan::load(std::path::Path::new(path), &shape, gpu).map_err(bad)?)
        }
        (Some(_), None) => return Err(bad("plan: needs gpu (this session's GPU)".into())),
        (None, Some(_)) => return Err(bad("gpu: needs a plan file (plan)".into())),
        (None, None) => None,
    };
    let replanner = loaded
        .as_ref()
        .map(|l| Replanner::new(&l.file, l.plan.clone(), reg.bytes_per_expert, shape.top_k));
    let plan = loaded.map(|l| l.gpu);
    let static_counts = if reg.train.is_empty() {
        None
    } else {
        Some(train_counts(&reg.train, &shape).map_err(bad)?)
    };
    let spec = EngineSpec {
        shape,
        bytes_per_expert: reg.bytes_per_expert,
        budget,
        policy,
        half_life,
        beta,
        prefetch_top: reg.prefetch_top.map_or(shape.top_k, usize::from),
        margin,
        static_counts,
        predictor,
        plan,
    };
    let engine = Engine::new(spec).map_err(bad)?;
    Ok(Prepared {
        name: reg.name,
        shape,
        policy: reg.policy,
        engine,
        replanner,
    })
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
    /// With a plan: its re-balancing state.
    replanner: Option<Replanner>,
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
            replanner,
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
            replanner,
        });
        let id = lock(&handle).id;
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
    Ok(crate::stats::key_counts(
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
        model: SessionModel::Offline {
            set: std::sync::Arc::new(set),
            name,
        },
        lookahead,
    })
}

/// Bound on the live counts of one session's online predictor, in f32 entries (64 MiB): the
/// h-hop transition tables, `sum over h of (moe_layers - h) x experts^2`.
pub const MAX_ONLINE_ENTRIES: usize = 1 << 24;

/// Checks that an online predictor of `shape` looking `lookahead` layers ahead fits
/// [`MAX_ONLINE_ENTRIES`].
fn check_online_size(shape: &ModelShape, lookahead: usize) -> Result<(), String> {
    let (l, e) = (shape.moe_layers, shape.experts);
    let entries: usize = (1..=lookahead).map(|h| l.saturating_sub(h) * e * e).sum();
    if entries > MAX_ONLINE_ENTRIES {
        return Err(format!(
            "online: a predictor looking {lookahead} layers ahead over {l} MoE layers x {e} \
             experts keeps {entries} counts, over the limit of {MAX_ONLINE_ENTRIES} (lower \
             lookahead)"
        ));
    }
    Ok(())
}

/// The online version of a loaded file's predictor (`online` at register): the offline one is
/// its prior, with the file's cross-validated options.
fn online(p: SessionPredictor, shape: &ModelShape) -> Result<SessionPredictor, String> {
    let SessionModel::Offline { set, name } = &p.model else {
        return Ok(p);
    };
    check_online_size(shape, set.lookahead())?;
    let o = OnlinePredictor::from_set(set, name, set.online_options(None)).ok_or_else(|| {
        format!("online: predictor {name:?} has no online version (static, markov, mix, learned)")
    })?;
    Ok(SessionPredictor {
        model: SessionModel::Online(Box::new(o)),
        lookahead: p.lookahead,
    })
}

/// A cold-start online predictor (`online` without a predictor file): `name` (static, markov
/// or mix; default mix) looking `lookahead` layers ahead (default 1).
fn cold_predictor(
    name: Option<&str>,
    lookahead: Option<u16>,
    shape: &ModelShape,
) -> Result<SessionPredictor, String> {
    let max = shape.moe_layers.saturating_sub(1);
    let lookahead = match lookahead {
        None => 1,
        Some(h) if h == 0 || h as usize > max => {
            return Err(format!(
                "lookahead: must be in 1..={max} (the model has {} MoE layers)",
                shape.moe_layers
            ));
        }
        Some(h) => h as usize,
    };
    if max == 0 {
        return Err("online: a model with one MoE layer has no next layer to predict".into());
    }
    check_online_size(shape, lookahead)?;
    let name = name.unwrap_or("mix");
    let o = OnlinePredictor::cold(name, *shape, lookahead, OnlineOptions::DEFAULT).ok_or_else(
        || format!("predictor_name: cold start has no predictor {name:?} (static, markov, mix)"),
    )?;
    Ok(SessionPredictor {
        model: SessionModel::Online(Box::new(o)),
        lookahead,
    })
}
