//! The seam between a session and the cache core: a session's [`crate::cache::ExpertCache`],
//! driven one request at a time, and the translation of its answers into protocol replies.
//!
//! Pins follow the replay's discipline: a step ends the running steps of every layer (their pins
//! are released) before it pins its own experts, unless the runtime asks to keep them
//! (`keep_pins`, for a pipelined query of the next layer). So a runtime that queries layer by
//! layer sees exactly the cache the in-process replay simulates.

use crate::cache::{
    Budget, CacheConfig, CacheError, ExpertCache, Lfu, Load, Lru, Policy, PolicyKind, Predictive,
    Residency, StaticTop, StepPlan,
};
use crate::trace::ModelShape;

use super::cmd::{ExpertRef, Placement, State, StepReply, Transfer};

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
    /// Per-key demand counts for `static` (`moe_layers * experts`).
    pub static_counts: Option<Vec<f64>>,
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
}

/// One session's cache.
pub struct Engine {
    /// The cache core.
    cache: ExpertCache<Box<dyn Policy>>,
    /// Reused step answer (steps do not allocate once warm).
    plan: StepPlan,
    /// Bytes per expert, for the counters.
    bytes_per_expert: u64,
    /// Experts prefetched per hinted layer.
    prefetch_top: usize,
    /// Whether each layer has a running step (pinned, not yet released).
    running: Vec<bool>,
    /// Experts pinned by the running step of each layer.
    pinned: Vec<usize>,
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
        let policy: Box<dyn Policy> = match spec.policy {
            PolicyKind::Lru => Box::new(Lru::new(cfg.keys())),
            PolicyKind::Lfu => Box::new(Lfu::new(cfg.layers, cfg.experts, spec.half_life)),
            PolicyKind::Predictive => Box::new(Predictive::new(
                cfg.layers,
                cfg.experts,
                spec.half_life,
                spec.beta,
            )),
            PolicyKind::Static => match &spec.static_counts {
                Some(c) => Box::new(StaticTop::new(&cfg, c)),
                None => return Err("policy `static` needs `train` traces to rank experts".into()),
            },
            PolicyKind::Opt => {
                return Err("policy `opt` needs the future routing: replay only".into());
            }
        };
        let cache = ExpertCache::new(cfg, policy).map_err(|e| e.to_string())?;
        Ok(Engine {
            cache,
            plan: StepPlan::default(),
            bytes_per_expert: spec.bytes_per_expert,
            prefetch_top: spec.prefetch_top,
            running: vec![false; cfg.layers],
            pinned: vec![0; cfg.layers],
        })
    }

    /// Total expert slots.
    pub fn slots(&self) -> u32 {
        self.cache.config().total_slots() as u32
    }

    /// Runs the step of `layer` needing `experts` (in range, possibly repeated) into `out`;
    /// with `next_scores`, queues and issues prefetches for `layer + 1`.
    pub fn step(
        &mut self,
        layer: usize,
        experts: &[u16],
        next_scores: Option<&[f32]>,
        keep_pins: bool,
        out: &mut StepReply,
    ) -> Result<(), CacheError> {
        if !keep_pins {
            self.release_all();
        }
        self.cache.step(layer, experts, &mut self.plan)?;
        out.placements.clear();
        out.loads.clear();
        out.prefetch.clear();
        out.hits = self.plan.hits;
        out.misses = self.plan.misses;
        let mut pinned = 0;
        for p in &self.plan.placements {
            pinned += usize::from(p.slot.is_some());
            out.placements.push(Placement {
                expert: p.expert,
                slot: p.slot,
                state: match p.residency {
                    Residency::Resident => State::Resident,
                    Residency::InFlight => State::InFlight,
                    Residency::Loading => State::Loading,
                    Residency::Transient | Residency::Cpu => State::Transient,
                },
            });
        }
        self.pinned[layer] = pinned;
        self.running[layer] = true;
        out.loads.extend(self.plan.loads.iter().map(transfer));
        if let Some(scores) = next_scores
            && layer + 1 < self.pinned.len()
            && self.prefetch_top > 0
        {
            self.cache.hint(layer + 1, 1, scores, self.prefetch_top)?;
            while out.prefetch.len() < self.prefetch_top {
                let Some(ld) = self.cache.issue_prefetch() else {
                    break;
                };
                out.prefetch.push(transfer(&ld));
            }
        }
        Ok(())
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
        EngineCounters {
            demands: s.demands,
            hits: s.hits,
            misses: s.misses,
            loads: s.loads(),
            bytes_loaded: s.loads() * self.bytes_per_expert,
            prefetches: s.prefetch_loads,
            prefetch_hits: s.prefetch_used,
            pending_loads: self.cache.in_flight() as u64,
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

/// A core load as a protocol transfer.
fn transfer(ld: &Load) -> Transfer {
    Transfer {
        layer: ld.layer,
        expert: ld.expert,
        slot: ld.slot,
        evict: ld.evicted.map(|expert| ExpertRef {
            layer: ld.evicted_layer.unwrap_or(ld.layer),
            expert,
        }),
    }
}
