//! Running the policies of a replay: building each policy, replaying, and the per-policy figures.

use serde::Serialize;

use super::batching::{Batching, Steps, build_steps, demand_keys};
use super::sim::{PrefetchOptions, SimResult, simulate};
use super::timing::TimingModel;
use crate::cache::{
    self, Budget, CacheConfig, CacheError, ExpertCache, NextUse, Policy, PolicyInputs, PolicyKind,
};
use crate::predict::{Frozen, OnlinePredictor, Predictor};
use crate::stats::key_counts;
use crate::trace::Trace;

/// An error of a replay.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The cache rejected the configuration or a step.
    #[error(transparent)]
    Cache(#[from] CacheError),
    /// `predictive` was asked for without a predictor.
    #[error("policy `predictive` needs a predictor (--predictor FILE or --train-trace PATH)")]
    NoPredictor,
    /// A training trace's shape differs from the replayed trace's.
    #[error("training trace shape {train:?} differs from the replayed trace's {trace:?}")]
    Shape {
        train: crate::trace::ModelShape,
        trace: crate::trace::ModelShape,
    },
}

/// Everything a replay needs besides the policy.
pub struct ReplaySetup<'a> {
    /// The trace replayed.
    pub trace: &'a Trace,
    /// Slot budget of the device.
    pub budget: Budget,
    /// How tokens form steps.
    pub batching: Batching,
    /// Timing constants.
    pub timing: TimingModel,
    /// Traces the `static` set is ranked on (out-of-sample); empty: the replayed trace itself.
    pub train: &'a [&'a Trace],
    /// The predictor `predictive` uses.
    pub predictor: Option<&'a dyn Predictor>,
    /// An online predictor `predictive` uses instead (each replay starts from a copy of it and
    /// it learns from the steps served).
    pub online: Option<&'a OnlinePredictor>,
    /// Prefetch settings for `predictive`.
    pub prefetch: PrefetchOptions,
    /// LFU (and `predictive`'s frequency) half-life, in visits of a layer.
    pub half_life: f64,
    /// Weight of predictions against frequency in `predictive`.
    pub beta: f64,
    /// Priority a prefetch candidate of `predictive` must have above its victim.
    pub margin: f64,
}

/// One policy's figures (the table row and `policies[]` in JSON).
#[derive(Debug, Clone, Serialize)]
pub struct PolicyReport {
    /// Policy name.
    pub name: String,
    /// hits / demands.
    pub hit_ratio: f64,
    /// The hit ratio with the model's shared experts counted as demands that always hit (they
    /// run on every token, are kept resident outside the budget and are not in the trace);
    /// `None` for a model without shared experts. Set by [`PolicyReport::count_shared`].
    pub hit_ratio_with_shared: Option<f64>,
    /// Transfers over the link per token (demand, transient and prefetch).
    pub loads_per_token: f64,
    /// Bytes over the link per token.
    pub bytes_per_token: f64,
    /// Time beyond pure compute per token, ms.
    pub stall_ms_per_token: f64,
    /// Estimated tokens per second (MoE layers only).
    pub tokens_per_s: f64,
    /// Distinct experts a step activates per layer, mean.
    pub experts_per_batch: f64,
    /// Distinct experts a step activates per layer, divided by its tokens, mean over tokens:
    /// top-k at batch 1; lower when the tokens of a batch share experts.
    pub experts_per_token: f64,
    /// Prefetched experts later demanded / prefetches issued (0 when none).
    pub prefetch_accuracy: f64,
    /// The raw measurements.
    pub detail: SimResult,
}

impl PolicyReport {
    /// Sets [`PolicyReport::hit_ratio_with_shared`] for `shared` shared experts per MoE layer:
    /// each step at each layer demands each of them once, always a hit.
    pub fn count_shared(&mut self, shared: usize) {
        let c = &self.detail.cache;
        let extra = c.steps * shared as u64;
        self.hit_ratio_with_shared = (shared > 0 && c.demands + extra > 0)
            .then(|| (c.hits + extra) as f64 / (c.demands + extra) as f64);
    }

    fn new(name: &str, r: &SimResult, layers: usize) -> Self {
        let tokens = r.tokens.max(1) as f64;
        PolicyReport {
            name: name.to_string(),
            hit_ratio: r.cache.hit_ratio(),
            hit_ratio_with_shared: None,
            loads_per_token: r.transfers as f64 / tokens,
            bytes_per_token: r.bytes as f64 / tokens,
            stall_ms_per_token: r.stall_ms / tokens,
            tokens_per_s: if r.total_ms > 0.0 {
                r.tokens as f64 / (r.total_ms / 1e3)
            } else {
                0.0
            },
            experts_per_batch: r.step_layer_experts as f64
                / (r.steps.max(1) * layers as u64) as f64,
            experts_per_token: r.step_layer_experts as f64
                / (r.tokens.max(1) * layers as u64) as f64,
            prefetch_accuracy: if r.cache.prefetch_loads > 0 {
                r.cache.prefetch_used as f64 / r.cache.prefetch_loads as f64
            } else {
                0.0
            },
            detail: *r,
        }
    }
}

/// Builds policy `kind` for `cfg` replaying `steps` of `setup.trace`.
pub fn build_policy(
    kind: PolicyKind,
    cfg: &CacheConfig,
    setup: &ReplaySetup<'_>,
    steps: &Steps,
) -> Result<Box<dyn Policy>, ReplayError> {
    if kind == PolicyKind::Predictive && setup.predictor.is_none() && setup.online.is_none() {
        return Err(ReplayError::NoPredictor);
    }
    let own = [setup.trace];
    let src: &[&Trace] = if setup.train.is_empty() {
        &own
    } else {
        setup.train
    };
    let counts = (kind == PolicyKind::Static).then(|| key_counts(src, cfg.layers, cfg.experts));
    let inputs = PolicyInputs {
        half_life: setup.half_life,
        beta: setup.beta,
        margin: setup.margin,
        static_counts: counts.as_deref(),
        next_use: (kind == PolicyKind::Opt)
            .then(|| NextUse::build(&demand_keys(setup.trace, steps), cfg.keys())),
    };
    Ok(cache::build_policy(kind, cfg, inputs).expect("every input of the policy is given"))
}

/// Replays `setup` once per policy of `kinds`, in order.
pub fn run_policies(
    setup: &ReplaySetup<'_>,
    kinds: &[PolicyKind],
) -> Result<Vec<PolicyReport>, ReplayError> {
    let shape = *setup.trace.shape();
    for tr in setup.train {
        if tr.shape() != &shape {
            return Err(ReplayError::Shape {
                train: *tr.shape(),
                trace: shape,
            });
        }
    }
    let cfg = CacheConfig {
        layers: shape.moe_layers,
        experts: shape.experts,
        budget: setup.budget,
    };
    cfg.check()?;
    let steps = build_steps(setup.trace, setup.batching);
    kinds
        .iter()
        .map(|&kind| {
            let policy = build_policy(kind, &cfg, setup, &steps)?;
            let mut cache = ExpertCache::new(cfg, policy)?;
            let mut online = setup.online.cloned();
            let mut frozen = setup.predictor.map(Frozen);
            let pred: Option<(&mut dyn Predictor, PrefetchOptions)> = match kind {
                PolicyKind::Predictive => match (online.as_mut(), frozen.as_mut()) {
                    (Some(o), _) => Some((o, setup.prefetch)),
                    (None, f) => f.map(|f| (f as &mut dyn Predictor, setup.prefetch)),
                },
                _ => None,
            };
            let r = simulate(setup.trace, &steps, &mut cache, &setup.timing, pred)?;
            Ok(PolicyReport::new(kind.as_str(), &r, shape.moe_layers))
        })
        .collect()
}
