//! What a step returns (where each expert is, what to load, what was evicted) and the counters.

use serde::Serialize;

/// Where a demanded expert is when its step runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Residency {
    /// Resident in a slot: a hit.
    Resident,
    /// A transfer into its slot is in flight (an earlier prefetch): a hit that may still wait.
    InFlight,
    /// A miss: a demand load into a slot was issued by this step.
    Loading,
    /// A miss with no slot to spare (every slot pinned or in flight, or the policy does not
    /// admit it): the expert is streamed through a transient buffer and not cached.
    Transient,
    /// A miss run on the CPU instead of moved (Fiddler-style): no load, not cached.
    Cpu,
}

/// One demanded expert's answer, in the order the step listed them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ExpertSlot {
    /// Expert id within the step's layer.
    pub expert: u16,
    /// Slot index on the device (`None` for [`Residency::Transient`]).
    pub slot: Option<u32>,
    /// Hit, in-flight hit, or miss.
    pub residency: Residency,
}

/// Why a load was issued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LoadKind {
    /// A step needs the expert now.
    Demand,
    /// Issued from the prefetch queue ahead of need.
    Prefetch,
}

/// A transfer host -> device the runtime must perform.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Load {
    /// MoE layer of the expert.
    pub layer: u16,
    /// Expert id within the layer.
    pub expert: u16,
    /// Destination slot (`None`: a transient buffer, not cached).
    pub slot: Option<u32>,
    /// The (layer, expert) evicted from `slot` to make room, if any.
    pub evicted_layer: Option<u16>,
    /// Expert id evicted from `slot`, if any (within `evicted_layer`).
    pub evicted: Option<u16>,
    /// Demand or prefetch.
    pub kind: LoadKind,
}

/// A step's answer; owned by the caller and reused, so steps do not allocate once warm.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StepPlan {
    /// One entry per distinct demanded expert, in the order given.
    pub placements: Vec<ExpertSlot>,
    /// Demand loads issued by this step, in link order.
    pub loads: Vec<Load>,
    /// Demanded experts found resident or in flight.
    pub hits: u32,
    /// Demanded experts not in the cache (each is loaded, into a slot or transient).
    pub misses: u32,
}

impl StepPlan {
    /// Empties the plan, keeping its buffers.
    pub fn clear(&mut self) {
        self.placements.clear();
        self.loads.clear();
        self.hits = 0;
        self.misses = 0;
    }
}

/// Running counters of one cache (one device).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CacheStats {
    /// Steps run (one per `step` call).
    pub steps: u64,
    /// Distinct experts demanded, over all steps.
    pub demands: u64,
    /// Demands found resident or in flight.
    pub hits: u64,
    /// Of `hits`, those whose transfer was still in flight.
    pub in_flight_hits: u64,
    /// Demands not in the cache.
    pub misses: u64,
    /// Demand loads into a slot.
    pub demand_loads: u64,
    /// Demand loads through a transient buffer (not cached).
    pub transient_loads: u64,
    /// Prefetch loads issued.
    pub prefetch_loads: u64,
    /// Prefetched experts demanded at least once before leaving the cache.
    pub prefetch_used: u64,
    /// Prefetched experts evicted without ever being demanded.
    pub prefetch_wasted: u64,
    /// Queued prefetches dropped before they were issued: their layer's real routing arrived
    /// first, the queue was full, or no slot was worth evicting for them.
    pub prefetch_cancelled: u64,
    /// Misses run on the CPU instead of loaded.
    pub cpu_runs: u64,
    /// Residents evicted.
    pub evictions: u64,
}

impl CacheStats {
    /// All loads (demand, transient and prefetch): what crosses the link.
    pub fn loads(&self) -> u64 {
        self.demand_loads + self.transient_loads + self.prefetch_loads
    }

    /// hits / demands (0 when nothing was demanded).
    pub fn hit_ratio(&self) -> f64 {
        if self.demands == 0 {
            0.0
        } else {
            self.hits as f64 / self.demands as f64
        }
    }
}
