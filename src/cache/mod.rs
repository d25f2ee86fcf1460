//! Expert cache core: slots, slot states, pinning, a prefetch queue and eviction policies.
//!
//! This is the only cache implementation: the replay simulator and the daemon both drive an
//! [`ExpertCache`] step by step. It knows nothing of files, sockets or clocks: time is a demand
//! counter, and transfers finish when the caller says so ([`ExpertCache::loaded`]).
//!
//! Per (MoE) layer, a step names the distinct experts needed now:
//!
//! ```
//! use moeplan::cache::{Budget, CacheConfig, ExpertCache, Lru, StepPlan};
//!
//! let cfg = CacheConfig { layers: 2, experts: 8, budget: Budget::PerLayer(2) };
//! let mut cache = ExpertCache::new(cfg, Lru::new(cfg.keys())).unwrap();
//! let mut plan = StepPlan::default();
//! cache.step(0, &[3, 5], &mut plan).unwrap(); // two misses: two loads into free slots
//! assert_eq!((plan.hits, plan.misses, plan.loads.len()), (0, 2, 2));
//! cache.loaded_all();                          // the runtime finished both transfers
//! cache.release(0);                            // layer 0 of this step is done: unpin
//! cache.step(0, &[5, 1], &mut plan).unwrap(); // 5 hits; 1 evicts 3 (least recently used)
//! assert_eq!(plan.loads[0].evicted, Some(3));
//! ```
//!
//! Invariants (checked by `tests/replay_props.rs`): never more residents than slots; an expert
//! pinned by a step is never evicted before [`ExpertCache::release`]; after a step every
//! demanded expert is resident, loading, or being streamed through a transient buffer;
//! hits + misses = demands; loads complete in issue order (one serialised link per cache).

mod core;
mod error;
mod factory;
mod fixed;
mod heap;
mod lfu;
mod lru;
mod opt;
mod plan;
mod policy;
mod predictive;
mod prefetch;
mod reuse;
mod scanning;
mod slots;

pub use self::core::{ExpertCache, HEAP_FROM};
pub use error::CacheError;
pub use factory::{MissingInput, PolicyInputs, build_policy};
pub use fixed::StaticTop;
pub use lfu::Lfu;
pub use lru::Lru;
pub use opt::{NextUse, Opt};
pub use plan::{CacheStats, ExpertSlot, Load, LoadKind, Residency, StepPlan};
pub use policy::{Policy, PolicyKind, Ranking};
pub use predictive::Predictive;
pub use prefetch::PrefetchQueue;
pub use scanning::Scanning;
pub use slots::SlotState;

/// How the slot budget is split.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case", tag = "mode", content = "slots")]
pub enum Budget {
    /// This many slots for each layer; an expert only evicts experts of its own layer.
    PerLayer(usize),
    /// This many slots in total, shared by all layers.
    Shared(usize),
}

/// Shape of a cache: the model's (MoE) layers and experts, and the slot budget of one device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheConfig {
    /// MoE layers (keys are `layer * experts + expert`).
    pub layers: usize,
    /// Routed experts per layer.
    pub experts: usize,
    /// Slots and how they are shared.
    pub budget: Budget,
}

impl CacheConfig {
    /// Number of distinct (layer, expert) keys.
    pub fn keys(&self) -> usize {
        self.layers * self.experts
    }

    /// Total slots of the device.
    pub fn total_slots(&self) -> usize {
        match self.budget {
            Budget::PerLayer(c) => c * self.layers,
            Budget::Shared(c) => c,
        }
    }

    /// The dense key of (layer, expert).
    #[inline]
    pub fn key(&self, layer: usize, expert: u16) -> u32 {
        (layer * self.experts + expert as usize) as u32
    }

    /// Checks the shape; returns the first problem.
    pub fn check(&self) -> Result<(), CacheError> {
        let bad = |m: String| Err(CacheError::Config(m));
        if self.layers == 0 || self.experts == 0 {
            return bad(format!(
                "layers ({}) and experts ({}) must be at least 1",
                self.layers, self.experts
            ));
        }
        if self.experts > u16::MAX as usize || self.keys() >= u32::MAX as usize {
            return bad(format!(
                "{} layers x {} experts is too many",
                self.layers, self.experts
            ));
        }
        let (c, max) = match self.budget {
            Budget::PerLayer(c) => (c, self.experts),
            Budget::Shared(c) => (c, self.keys()),
        };
        if c == 0 || c > max {
            return bad(format!(
                "capacity {c} must be in 1..={max} for {:?}",
                self.budget
            ));
        }
        Ok(())
    }
}
