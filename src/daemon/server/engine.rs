//! The seam between a session and the cache core: a session's [`crate::cache::ExpertCache`],
//! driven one request at a time; it answers in the cache's own types (the request handlers in
//! [`super::cmd`] turn them into wire replies).
//!
//! Pins follow the replay's discipline: a step ends the running steps of every layer (their pins
//! are released) before it pins its own experts, unless the runtime asks to keep them
//! (`keep_pins`, for a pipelined query of the next layer). So a runtime that queries layer by
//! layer sees exactly the cache the in-process replay simulates.

use std::sync::Arc;

use crate::cache::{
    Budget, CacheConfig, CacheError, ExpertCache, Load, MissingInput, Policy, PolicyInputs,
    PolicyKind, StepPlan, build_policy,
};
use crate::predict::{OnlinePredictor, Predictor, PredictorSet};
use crate::trace::ModelShape;

use super::gpu_plan::GpuPlan;
use super::routing::RoutingMemory;

/// A session's predictor and the layers ahead it is asked about.
#[derive(Debug, Clone)]
pub struct SessionPredictor {
    /// The predictor.
    pub model: SessionModel,
    /// Layers ahead it is asked about (at most its own look-ahead).
    pub lookahead: usize,
}

/// Which predictor a session uses.
#[derive(Debug, Clone)]
pub enum SessionModel {
    /// One predictor of a loaded file (shared between sessions), frozen.
    Offline {
        /// The file's predictors.
        set: Arc<PredictorSet>,
        /// Name of the one used (checked at `register`).
        name: String,
    },
    /// The session's own predictor, learning from the tokens the session serves.
    Online(Box<OnlinePredictor>),
}

impl SessionPredictor {
    fn get(&self) -> &dyn Predictor {
        match &self.model {
            SessionModel::Offline { set, name } => set.get(name).unwrap_or_else(|| set.main()),
            SessionModel::Online(p) => p.as_ref(),
        }
    }
}

/// What a session asks of its cache at `register`, already range-checked.
#[derive(Debug, Clone)]
pub struct EngineSpec {
    /// Model routing shape.
    pub shape: ModelShape,
    /// Bytes of one expert's weights (for the bytes-moved counters).
    pub bytes_per_expert: u64,
    /// Slot budget.
    pub budget: Budget,
    /// Eviction policy.
    pub policy: PolicyKind,
    /// Half-life of `lfu` and `predictive` frequencies, in layer visits.
    pub half_life: f64,
    /// Weight of predictor scores in `predictive`.
    pub beta: f64,
    /// Experts prefetched per hinted layer (best scores first).
    pub prefetch_top: usize,
    /// Priority a prefetch candidate of `predictive` must have above its victim.
    pub margin: f64,
    /// Per-key demand counts for `static` (`moe_layers * experts`).
    pub static_counts: Option<Vec<f64>>,
    /// Predictor hinting the prefetches from the steps' routing.
    pub predictor: Option<SessionPredictor>,
    /// This GPU's share of a placement plan (expert parallelism).
    pub plan: Option<GpuPlan>,
}

/// Counters of one session's cache, since `register`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EngineCounters {
    /// Distinct experts demanded by steps.
    pub demands: u64,
    /// Demands found resident or in flight.
    pub hits: u64,
    /// Demands not cached.
    pub misses: u64,
    /// Transfers asked of the runtime (demand, transient and prefetch loads).
    pub loads: u64,
    /// Bytes those transfers move.
    pub bytes_loaded: u64,
    /// Prefetches issued.
    pub prefetches: u64,
    /// Prefetched experts later demanded.
    pub prefetch_hits: u64,
    /// Transfers into slots not yet reported `loaded`.
    pub pending_loads: u64,
    /// Experts the predictor put in a token's top-k for its next layer that the next step's
    /// routing confirmed.
    pub predicted_hits: u64,
    /// Experts the predictor put in a token's top-k for its next layer, compared with the next
    /// step's routing.
    pub predicted: u64,
    /// Tokens an online predictor learned from.
    pub learned: u64,
}

/// One session's cache.
pub struct Engine {
    /// The cache core.
    cache: ExpertCache<Box<dyn Policy>>,
    /// Reused step answer (steps do not allocate once warm).
    plan_buf: StepPlan,
    /// Bytes per expert, for the counters.
    bytes_per_expert: u64,
    /// Experts prefetched per hinted layer.
    prefetch_top: usize,
    /// Whether each layer has a running step (pinned, not yet released).
    running: Vec<bool>,
    /// Experts pinned by the running step of each layer.
    pinned: Vec<usize>,
    /// Predictor and the routing it reads.
    predictor: Option<(SessionPredictor, RoutingMemory)>,
    /// This GPU's share of a plan.
    plan: Option<GpuPlan>,
    /// Scratch: a step's experts on this GPU (with a plan).
    local: Vec<u16>,
    /// Scratch: a step's experts on other GPUs and their owners (with a plan).
    remote: Vec<(u16, u16)>,
    /// Scratch: summed predictor scores of a hinted layer.
    scores: Vec<f32>,
    /// Scratch: one token's predictor scores.
    tmp: Vec<f32>,
    /// Tokens an online predictor learned from.
    learned: u64,
}

impl Engine {
    /// Builds the cache a `register` asked for, or says why it cannot.
    pub fn new(spec: EngineSpec) -> Result<Engine, String> {
        let cfg = CacheConfig {
            layers: spec.shape.moe_layers,
            experts: spec.shape.experts,
            budget: spec.budget,
        };
        cfg.check().map_err(|e| e.to_string())?;
        let inputs = PolicyInputs {
            half_life: spec.half_life,
            beta: spec.beta,
            margin: spec.margin,
            static_counts: spec.static_counts.as_deref(),
            next_use: None,
        };
        let policy = build_policy(spec.policy, &cfg, inputs).map_err(|m| match m {
            MissingInput::StaticCounts => "policy `static` needs `train` traces to rank experts",
            MissingInput::NextUse => "policy `opt` needs the future routing: replay only",
        })?;
        let cache = ExpertCache::new(cfg, policy).map_err(|e| e.to_string())?;
        Ok(Engine {
            cache,
            plan_buf: StepPlan::default(),
            bytes_per_expert: spec.bytes_per_expert,
            prefetch_top: spec.prefetch_top,
            running: vec![false; cfg.layers],
            pinned: vec![0; cfg.layers],
            predictor: spec.predictor.map(|p| (p, RoutingMemory::new(spec.shape))),
            plan: spec.plan,
            local: Vec::with_capacity(cfg.experts),
            remote: Vec::with_capacity(cfg.experts),
            scores: vec![0.0; cfg.experts],
            tmp: vec![0.0; cfg.experts],
            learned: 0,
        })
    }

    /// Total expert slots.
    pub fn slots(&self) -> u32 {
        self.cache.config().total_slots() as u32
    }

    /// Experts prefetched per hinted layer, and issued into a step's reply by default.
    pub fn prefetch_top(&self) -> usize {
        self.prefetch_top
    }

    /// Runs the step of `layer` needing `experts` (in range, possibly repeated): hints from
    /// `next_scores` (for `layer + 1`) or from the predictor fed with `routing` queue prefetches
    /// (issue them with [`Engine::issue_prefetches`]).
    pub fn step(&mut self, req: StepInput<'_>) -> Result<StepOutcome<'_>, CacheError> {
        let layer = req.layer;
        if !req.keep_pins {
            self.release_all();
        }
        self.remote.clear();
        let demanded = match &self.plan {
            Some(plan) => {
                self.local.clear();
                for &e in req.experts {
                    if plan.is_local(layer, e) {
                        self.local.push(e);
                    } else if !self.remote.iter().any(|&(x, _)| x == e) {
                        self.remote.push((e, plan.owner(layer, e)));
                    }
                }
                &self.local[..]
            }
            None => req.experts,
        };
        self.cache.step(layer, demanded, &mut self.plan_buf)?;
        let pinned = self
            .plan_buf
            .placements
            .iter()
            .filter(|p| p.slot.is_some())
            .count();
        self.pinned[layer] = pinned;
        self.running[layer] = true;
        self.hint(layer, req.next_scores, req.routing)?;
        Ok(StepOutcome {
            remote: &self.remote,
            plan: &self.plan_buf,
            gpu: self.plan.as_ref().map(|p| p.gpu),
        })
    }

    /// Queues the prefetches a step's hints ask for.
    fn hint(
        &mut self,
        layer: usize,
        next_scores: Option<&[f32]>,
        routing: Option<TokenRouting<'_>>,
    ) -> Result<(), CacheError> {
        let layers = self.pinned.len();
        let plan = self.plan.as_ref();
        if let (Some((pred, memory)), Some(r)) = (&mut self.predictor, routing) {
            let k = r.experts.len() / r.seqs.len().max(1);
            for (i, &seq) in r.seqs.iter().enumerate() {
                let w = r.weights.get(i * k..(i + 1) * k).unwrap_or(&[]);
                let done = memory.record(seq, layer, &r.experts[i * k..(i + 1) * k], w);
                // A complete token teaches an online predictor (after the hints of its last
                // layer, of which there are none: as the replay learns a step's tokens).
                if let (Some((token, previous)), SessionModel::Online(p)) = (done, &mut pred.model)
                {
                    p.observe(token, previous);
                    self.learned += 1;
                }
            }
            let p = pred.get();
            for h in 1..=pred.lookahead.min(p.lookahead()) {
                if layer + h >= layers {
                    break;
                }
                self.scores.fill(0.0);
                for &seq in r.seqs {
                    if let Some(view) = memory.view(seq, layer) {
                        p.score(&view, h, &mut self.tmp);
                        for (s, &x) in self.scores.iter_mut().zip(&self.tmp) {
                            *s += x;
                        }
                        if h == 1 {
                            memory.predict(seq, layer + 1, &self.tmp);
                        }
                    }
                }
                let top = local_only(plan, layer + h, &mut self.scores, self.prefetch_top);
                self.cache.hint(layer + h, h, &self.scores, top)?;
            }
        } else if let Some(scores) = next_scores
            && layer + 1 < layers
        {
            self.scores.copy_from_slice(scores);
            let top = local_only(plan, layer + 1, &mut self.scores, self.prefetch_top);
            self.cache.hint(layer + 1, 1, &self.scores, top)?;
        }
        Ok(())
    }

    /// Issues up to `max` queued prefetches, in link order.
    pub fn issue_prefetches(&mut self, max: usize) -> impl Iterator<Item = Load> + '_ {
        std::iter::from_fn(|| self.cache.issue_prefetch()).take(max)
    }

    /// Prefetch requests queued.
    pub fn queued(&self) -> usize {
        self.cache.queued()
    }

    /// Records finished transfers (each also completes the transfers issued before it);
    /// returns the number still in flight.
    pub fn loaded(&mut self, layer: usize, experts: &[u16]) -> Result<u64, CacheError> {
        for &e in experts {
            self.cache.loaded(layer, e)?;
        }
        Ok(self.cache.in_flight() as u64)
    }

    /// Ends every running step: all pins are released.
    pub fn release_all(&mut self) {
        for l in 0..self.running.len() {
            if self.running[l] {
                self.cache.release(l);
                self.running[l] = false;
                self.pinned[l] = 0;
            }
        }
    }

    /// Experts pinned now.
    pub fn pinned(&self) -> usize {
        self.pinned.iter().sum()
    }

    /// The counters.
    pub fn counters(&self) -> EngineCounters {
        let s = self.cache.stats();
        let recall = self.predictor.as_ref().map_or((0, 0), |(_, m)| m.recall());
        EngineCounters {
            demands: s.demands,
            hits: s.hits,
            misses: s.misses,
            loads: s.loads(),
            bytes_loaded: s.loads() * self.bytes_per_expert,
            prefetches: s.prefetch_loads,
            prefetch_hits: s.prefetch_used,
            pending_loads: self.cache.in_flight() as u64,
            predicted_hits: recall.0,
            predicted: recall.1,
            learned: self.learned,
        }
    }
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("policy", &self.cache.policy().name())
            .field("slots", &self.slots())
            .field("pinned", &self.pinned())
            .finish_non_exhaustive()
    }
}

/// One step's request, range-checked by the caller.
#[derive(Debug, Clone, Copy)]
pub struct StepInput<'a> {
    /// MoE layer.
    pub layer: usize,
    /// Experts needed (possibly repeated).
    pub experts: &'a [u16],
    /// The runtime's scores for `layer + 1`.
    pub next_scores: Option<&'a [f32]>,
    /// Each token's routing at `layer` (for the predictor).
    pub routing: Option<TokenRouting<'a>>,
    /// Keep earlier steps' pins.
    pub keep_pins: bool,
}

/// Each token's routing at a step's layer: `[tokens][top_k]` flattened, range-checked.
#[derive(Debug, Clone, Copy)]
pub struct TokenRouting<'a> {
    /// Sequence id of each token.
    pub seqs: &'a [u64],
    /// Each token's `top_k` experts, highest gate weight first.
    pub experts: &'a [u16],
    /// Gate weights aligned with `experts` (empty: unknown).
    pub weights: &'a [f32],
}

/// What a step found, in the cache's terms.
#[derive(Debug, Clone, Copy)]
pub struct StepOutcome<'a> {
    /// With a plan: the demanded experts other GPUs serve, each with its GPU, in request order.
    pub remote: &'a [(u16, u16)],
    /// The cache's answer for the experts this GPU serves.
    pub plan: &'a StepPlan,
    /// With a plan: this session's GPU.
    pub gpu: Option<u16>,
}

/// With a plan, the scores of `layer`'s experts on other GPUs become -inf and the number of
/// prefetches `top` is capped to this GPU's experts of `layer`, so only local experts are
/// queued; returns the cap.
fn local_only(plan: Option<&GpuPlan>, layer: usize, scores: &mut [f32], top: usize) -> usize {
    let Some(plan) = plan else {
        return top;
    };
    let mut local = 0;
    for (e, s) in scores.iter_mut().enumerate() {
        if plan.is_local(layer, e as u16) {
            local += 1;
        } else {
            *s = f32::NEG_INFINITY;
        }
    }
    top.min(local)
}
