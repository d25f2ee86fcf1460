//! The seam between a session and the cache core: the few calls a session makes per request.
//!
//! TEMPORARY: until the cache core (`src/cache/`, issue 5) is merged, this placeholder answers
//! every demand as a miss into the slot named by the expert id, with no eviction and no prefetch.
//! It tracks no residency (there must be no second cache implementation); it exists only so the
//! protocol, server and client can be built and tested before the core lands.

use crate::trace::ModelShape;

use super::cmd::{Placement, State, StepReply, Transfer};

/// What a session asks of its cache at `register`, already range-checked.
#[derive(Debug, Clone)]
pub struct EngineSpec {
    /// Model routing shape.
    pub shape: ModelShape,
    /// Bytes of one expert's weights (for the bytes-moved counters).
    pub bytes_per_expert: u64,
    /// Expert slots: per layer, or in all if `shared`.
    pub capacity: u32,
    /// Whether `capacity` is one pool shared by all layers.
    pub shared: bool,
    /// Eviction policy name.
    pub policy: String,
    /// Look-ahead depth of the prefetch plan, in layers.
    pub lookahead: u16,
}

/// Counters of one session's cache, since `register`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EngineCounters {
    /// Distinct experts demanded by steps.
    pub demands: u64,
    /// Demands found resident.
    pub hits: u64,
    /// Demands not resident (loading counts as a miss).
    pub misses: u64,
    /// Transfers asked of the runtime (demand loads and prefetches).
    pub loads: u64,
    /// Bytes those transfers move.
    pub bytes_loaded: u64,
    /// Prefetches planned.
    pub prefetches: u64,
    /// Prefetched experts later demanded while still resident.
    pub prefetch_hits: u64,
    /// Transfers asked for and not yet reported `loaded`.
    pub pending_loads: u64,
}

/// One session's cache.
#[derive(Debug)]
pub struct Engine {
    /// The settings it was built with.
    spec: EngineSpec,
    /// Counters.
    counters: EngineCounters,
}

impl Engine {
    /// Builds the cache a `register` asked for, or says why it cannot.
    pub fn new(spec: EngineSpec) -> Result<Engine, String> {
        if spec.capacity == 0 {
            return Err("capacity must be at least 1 slot".into());
        }
        Ok(Engine {
            spec,
            counters: EngineCounters::default(),
        })
    }

    /// Total expert slots.
    pub fn slots(&self) -> u32 {
        if self.spec.shared {
            self.spec.capacity
        } else {
            self.spec.capacity * self.spec.shape.moe_layers as u32
        }
    }

    /// Plans the step of `layer` needing `experts` (in range, possibly repeated) into `out`.
    /// Unless `keep_pins`, earlier steps' pins are released first.
    pub fn step(&mut self, layer: usize, experts: &[u16], _keep_pins: bool, out: &mut StepReply) {
        out.placements.clear();
        out.loads.clear();
        out.prefetch.clear();
        out.hits = 0;
        out.misses = 0;
        for (i, &e) in experts.iter().enumerate() {
            if experts[..i].contains(&e) {
                continue;
            }
            let slot = Some(layer as u32 * self.spec.shape.experts as u32 + e as u32);
            out.placements.push(Placement {
                expert: e,
                slot,
                state: State::Loading,
            });
            out.misses += 1;
            self.counters.demands += 1;
            self.counters.misses += 1;
            self.counters.loads += 1;
            self.counters.pending_loads += 1;
            self.counters.bytes_loaded += self.spec.bytes_per_expert;
            out.loads.push(Transfer {
                layer: layer as u16,
                expert: e,
                slot,
                evict: None,
            });
        }
    }

    /// Records finished transfers; returns the number still pending.
    pub fn loaded(&mut self, _layer: usize, experts: &[u16]) -> u64 {
        self.counters.pending_loads = self
            .counters
            .pending_loads
            .saturating_sub(experts.len() as u64);
        self.counters.pending_loads
    }

    /// Feeds routing counts seen outside steps to the policy.
    pub fn observe(&mut self, _layer: usize, _experts: &[u16], _counts: &[u32]) {}

    /// Releases every pin (the session's runtime went away mid-step).
    pub fn release_all(&mut self) {}

    /// Experts pinned now.
    pub fn pinned(&self) -> usize {
        0
    }

    /// The counters.
    pub fn counters(&self) -> EngineCounters {
        self.counters
    }
}
