//! [`RunSpec`] → a checked run: the model, the data plane, the cache (in-process or the
//! daemon's), then [`super::forward`] and the [`RunReport`].

use std::path::{Path, PathBuf};

use anyhow::Context;

use super::{CacheSide, Fault, Local, Remote, RunReport, forward};
use crate::cache::{Budget, CacheConfig, ExpertCache, Lfu, PolicyKind, Predictive};
use crate::daemon::wire::Register;
use crate::dataplane::{Backend, ExpertStore, open};
use crate::moe::{EXPERTS_FILE, Model, ModelError};
use crate::predict::PredictorSet;
use crate::replay::{
    Batching, PrefetchOptions, ReplaySetup, TimingModel, build_policy, build_steps,
};
use crate::trace::Trace;

/// Everything a run needs.
#[derive(Clone)]
pub struct RunSpec<'a> {
    /// Model directory (`moeplan model init -o DIR`).
    pub model_dir: &'a Path,
    /// The routing, teacher-forced (its first tokens, when cut).
    pub trace: &'a Trace,
    /// The trace file (ranks `static`; the daemon reads it).
    pub trace_path: Option<&'a Path>,
    /// The whole trace file's routing (ranks `static` in-process, as the daemon does).
    pub train: Option<&'a Trace>,
    /// Slots per MoE layer.
    pub capacity: usize,
    /// Eviction policy.
    pub policy: PolicyKind,
    /// Predictor file: its hints queue prefetches (any policy; `predictive` needs one).
    pub predictor: Option<&'a Path>,
    /// Which predictor of the file (default: its main one).
    pub predictor_name: Option<&'a str>,
    /// Layers ahead the predictor is asked about (capped by its own look-ahead).
    pub lookahead: usize,
    /// Experts queued per predicted layer (default: top-k).
    pub prefetch_top: Option<usize>,
    /// LFU / `predictive` half-life, in visits of a layer.
    pub half_life: f64,
    /// Weight of predictions in `predictive`.
    pub beta: f64,
    /// Margin a `predictive` prefetch must beat its victim by.
    pub margin: f64,
    /// Consecutive tokens of a sequence per step.
    pub batch: usize,
    /// Where slots live.
    pub backend: Backend,
    /// The daemon's socket (`None`: the cache in-process).
    pub via_daemon: Option<&'a Path>,
    /// A deliberately broken pin (tests only).
    pub fault: Option<Fault>,
}

impl<'a> RunSpec<'a> {
    /// Defaults (the replay's) for everything but the model, trace, capacity and policy.
    pub fn new(model_dir: &'a Path, trace: &'a Trace, capacity: usize, policy: PolicyKind) -> Self {
        RunSpec {
            model_dir,
            trace,
            trace_path: None,
            train: None,
            capacity,
            policy,
            predictor: None,
            predictor_name: None,
            lookahead: 2,
            prefetch_top: None,
            half_life: Lfu::DEFAULT_HALF_LIFE,
            beta: Predictive::DEFAULT_BETA,
            margin: Predictive::DEFAULT_MARGIN,
            batch: 1,
            backend: Backend::Host,
            via_daemon: None,
            fault: None,
        }
    }
}

fn absolute(p: &Path) -> anyhow::Result<String> {
    let abs: PathBuf =
        std::fs::canonicalize(p).with_context(|| format!("resolving {}", p.display()))?;
    Ok(abs.display().to_string())
}

/// Refuses what cannot run, with the reason (bad input).
fn check(spec: &RunSpec<'_>, model: &Model) -> Result<(), ModelError> {
    let bad = |m: String| Err(ModelError::Args(m));
    let (shape, want) = (spec.trace.shape(), model.config().shape());
    if (shape.moe_layers, shape.experts, shape.top_k) != (want.moe_layers, want.experts, want.top_k)
    {
        return bad(format!(
            "the trace's shape ({} MoE layers x {} experts, top-{}) is not the model's ({} x {}, top-{})",
            shape.moe_layers, shape.experts, shape.top_k, want.moe_layers, want.experts, want.top_k
        ));
    }
    if spec.capacity == 0 || spec.capacity > shape.experts {
        return bad(format!(
            "--capacity {}: must be in 1..={} (slots per layer)",
            spec.capacity, shape.experts
        ));
    }
    if spec.batch == 0 {
        return bad("--batch: must be at least 1".into());
    }
    if spec.policy == PolicyKind::Predictive && spec.predictor.is_none() {
        return bad(
            "policy `predictive` needs --predictor FILE (moeplan predict train -o FILE)".into(),
        );
    }
    if spec.via_daemon.is_some() {
        if spec.policy == PolicyKind::Opt {
            return bad("--via-daemon cannot run `opt`: it needs the future routing, which a runtime does not have".into());
        }
        if spec.predictor.is_some() && spec.batch > 1 {
            return bad(
                "--via-daemon with --predictor runs --batch 1: with --batch B a token's previous token is in \
                 the same step, whose later layers a runtime has not routed yet"
                    .into(),
            );
        }
        if spec.policy == PolicyKind::Static && spec.trace_path.is_none() {
            return bad(
                "--via-daemon with `static` needs the trace file (the daemon ranks experts on it)"
                    .into(),
            );
        }
    }
    Ok(())
}

/// Runs `spec`: the forward pass over its trace, with its cache and data plane.
pub fn run(spec: &RunSpec<'_>) -> anyhow::Result<RunReport> {
    let model = Model::load(spec.model_dir)?;
    check(spec, &model)?;
    let cfg = model.config().clone();
    let shape = *spec.trace.shape();
    let store_path = spec.model_dir.join(EXPERTS_FILE);
    let store = ExpertStore::open(
        &store_path,
        cfg.first_moe_layer,
        cfg.moe_layers,
        cfg.experts,
    )?;
    if store.expert_bytes() as u64 != cfg.expert_bytes() {
        return Err(ModelError::Invalid {
            path: store_path,
            message: format!(
                "experts of {} bytes, the config says {}",
                store.expert_bytes(),
                cfg.expert_bytes()
            ),
        }
        .into());
    }
    let cache_slots = spec.capacity * cfg.moe_layers;
    let transient = cfg.experts.min(cfg.top_k * spec.batch);
    let mut plane = open(spec.backend, store, cache_slots + transient)?;
    let batching = if spec.batch == 1 {
        Batching::Single
    } else {
        Batching::Consecutive { size: spec.batch }
    };
    let steps = build_steps(spec.trace, batching);
    let set = match spec.predictor {
        Some(p) => Some(
            PredictorSet::load(p).with_context(|| format!("loading predictor {}", p.display()))?,
        ),
        None => None,
    };
    let predictor =
        match (&set, spec.predictor_name) {
            (Some(s), Some(n)) => Some(s.get(n).ok_or_else(|| {
                ModelError::Args(format!("--predictor-name {n}: not in the file"))
            })?),
            (Some(s), None) => Some(s.main()),
            _ => None,
        };
    let top_n = spec.prefetch_top.unwrap_or(shape.top_k);
    let lookahead = spec
        .lookahead
        .clamp(1, shape.moe_layers.saturating_sub(1).max(1));
    let mut side: Box<dyn CacheSide + '_> = match spec.via_daemon {
        None => {
            let ccfg = CacheConfig {
                layers: shape.moe_layers,
                experts: shape.experts,
                budget: Budget::PerLayer(spec.capacity),
            };
            let train: Vec<&Trace> = spec.train.into_iter().collect();
            let setup = ReplaySetup {
                trace: spec.trace,
                budget: ccfg.budget,
                batching,
                timing: no_link(),
                train: &train,
                predictor,
                online: None,
                prefetch: PrefetchOptions { lookahead, top_n },
                half_life: spec.half_life,
                beta: spec.beta,
                margin: spec.margin,
            };
            let policy = build_policy(spec.policy, &ccfg, &setup, &steps)?;
            let cache = ExpertCache::new(ccfg, policy)?;
            Box::new(Local::new(cache, predictor.map(|p| (p, setup.prefetch))))
        }
        Some(socket) => {
            let mut reg = Register {
                policy: spec.policy.as_str().into(),
                bytes_per_expert: cfg.expert_bytes(),
                half_life: Some(spec.half_life),
                beta: Some(spec.beta),
                prefetch_top: Some(0),
                ..Register::new("moeplan-run", &shape, spec.capacity as u32)
            };
            if spec.policy == PolicyKind::Static
                && let Some(p) = spec.trace_path
            {
                reg.train = vec![absolute(p)?];
            }
            if let Some(p) = spec.predictor {
                reg.predictor = Some(absolute(p)?);
                reg.predictor_name = spec.predictor_name.map(str::to_string);
                reg.lookahead = Some(lookahead as u16);
                reg.prefetch_top = Some(top_n as u16);
                reg.prefetch_margin = Some(spec.margin);
            }
            Box::new(Remote::connect(socket, reg, spec.trace)?)
        }
    };
    let fig = forward(
        &model,
        plane.as_mut(),
        side.as_mut(),
        spec.trace,
        &steps,
        cache_slots,
        spec.fault,
    )?;
    let counts = side.finish()?;
    let ps = plane.stats();
    let mut r = RunReport {
        output_digest: fig.digest.hex(),
        backend: plane.name().into(),
        policy: spec.policy.as_str().into(),
        capacity: spec.capacity,
        via_daemon: spec.via_daemon.is_some(),
        tokens: fig.tokens,
        steps: fig.steps,
        seconds: fig.seconds,
        tokens_per_s: if fig.seconds > 0.0 {
            fig.tokens as f64 / fig.seconds
        } else {
            0.0
        },
        bytes_moved: ps.bytes,
        copies: ps.copies,
        copy_bandwidth_gbps: ps.bandwidth_gbps(),
        wait_s: fig.wait.as_secs_f64(),
        hit_ratio: 0.0,
        demands: 0,
        hits: 0,
        loads: 0,
        prefetch_loads: 0,
    };
    r.set_counts(&counts);
    Ok(r)
}

/// The replay's timing model the run corresponds to: a link that is never the bottleneck
/// (every transfer lands before the next layer), compute that takes time.
pub fn no_link() -> TimingModel {
    TimingModel {
        expert_bytes: 0,
        link_gbps: f64::INFINITY,
        transfer_ms: 0.0,
        layer_ms: 1.0,
        layer_ms_per_token: 0.0,
        cpu_expert_ms: 0.0,
        cpu_offload: false,
    }
}
