//! The eviction-policy trait (one main method, [`Policy::priority`]) and the policy names.

use std::fmt;
use std::str::FromStr;

/// An eviction policy. Keys are dense `layer * experts + expert`; `now` is the cache's demand
/// clock (distinct experts demanded before this one, over all steps).
///
/// The cache evicts, among the resident and unpinned slots a key may take, the one whose key has
/// the lowest [`Policy::priority`]; the hooks let a policy keep the state it ranks by.
pub trait Policy: Send {
    /// Short name (`lru`, `lfu`, `static`, `predictive`, `opt`).
    fn name(&self) -> &str;
    /// Number of keys the policy was built for.
    fn keys(&self) -> usize;
    /// Retention priority of a cached key: lowest is evicted first. Must be finite.
    fn priority(&self, key: u32) -> f64;
    /// How the cache may find the lowest priority without asking for every candidate.
    fn ranking(&self) -> Ranking {
        Ranking::Ask
    }
    /// A step of `layer` starts (before its demands).
    fn on_step(&mut self, _layer: usize) {}
    /// `key` is demanded at `now` (hit or miss).
    fn on_demand(&mut self, _key: u32, _now: u64) {}
    /// `key` entered a slot at `now` (demand load or prefetch).
    fn on_insert(&mut self, _key: u32, _now: u64) {}
    /// `key` left its slot.
    fn on_evict(&mut self, _key: u32) {}
    /// Whether a missed `key` may take a slot (else it is streamed, not cached).
    fn admit(&self, _key: u32) -> bool {
        true
    }
    /// The priority a queued prefetch of `key` competes with: it is issued into a free slot, or
    /// over an evictable expert of lower priority. The default, +inf, issues every prefetch the
    /// caller asked for while an evictable slot exists.
    fn prefetch_priority(&self, _key: u32) -> f64 {
        f64::INFINITY
    }
    /// Predicted scores (higher = more likely) for the experts of `layer`, `h` layers ahead.
    fn on_hint(&mut self, _layer: usize, _h: usize, _scores: &[f32]) {}
    /// The running step of `layer` ended (its pins were released).
    fn on_release(&mut self, _layer: usize) {}
}

impl<P: Policy + ?Sized> Policy for Box<P> {
    fn name(&self) -> &str {
        (**self).name()
    }
    fn keys(&self) -> usize {
        (**self).keys()
    }
    #[inline]
    fn priority(&self, key: u32) -> f64 {
        (**self).priority(key)
    }
    fn ranking(&self) -> Ranking {
        (**self).ranking()
    }
    fn on_step(&mut self, layer: usize) {
        (**self).on_step(layer)
    }
    #[inline]
    fn on_demand(&mut self, key: u32, now: u64) {
        (**self).on_demand(key, now)
    }
    fn on_insert(&mut self, key: u32, now: u64) {
        (**self).on_insert(key, now)
    }
    fn on_evict(&mut self, key: u32) {
        (**self).on_evict(key)
    }
    fn admit(&self, key: u32) -> bool {
        (**self).admit(key)
    }
    fn prefetch_priority(&self, key: u32) -> f64 {
        (**self).prefetch_priority(key)
    }
    fn on_hint(&mut self, layer: usize, h: usize, scores: &[f32]) {
        (**self).on_hint(layer, h, scores)
    }
    fn on_release(&mut self, layer: usize) {
        (**self).on_release(layer)
    }
}

/// How a policy's priorities may be read by the cache when it picks a victim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ranking {
    /// Priorities may change at any hook: ask [`Policy::priority`] for every candidate.
    Ask,
    /// A key's priority changes only in the hooks that name that key (`on_demand`,
    /// `on_insert`): the cache remembers it per slot and scans slots without asking.
    Keyed,
    /// The priority is the order of the last touch (a demand, in the order the step lists its
    /// experts, or an insertion): the cache keeps each budget group's slots in a recency list
    /// and evicts the first evictable slot from its head, in O(1) (least recently used).
    Recency,
}

/// The policies by name (what `--policy` and the daemon's `register` accept).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PolicyKind {
    /// Least recently used.
    Lru,
    /// Least frequently used, with exponential decay.
    Lfu,
    /// A fixed set: the most frequent experts (from training traces); others are streamed.
    Static,
    /// Predictor scores blended with decayed frequency, corrected by the predictor's accuracy.
    Predictive,
    /// Belady: evict the expert used farthest in the future (replay only: needs the future).
    Opt,
}

impl PolicyKind {
    /// Every policy, in display order.
    pub const ALL: [PolicyKind; 5] = [
        PolicyKind::Lru,
        PolicyKind::Lfu,
        PolicyKind::Static,
        PolicyKind::Predictive,
        PolicyKind::Opt,
    ];

    /// The policy's name.
    pub fn as_str(self) -> &'static str {
        match self {
            PolicyKind::Lru => "lru",
            PolicyKind::Lfu => "lfu",
            PolicyKind::Static => "static",
            PolicyKind::Predictive => "predictive",
            PolicyKind::Opt => "opt",
        }
    }
}

impl fmt::Display for PolicyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for PolicyKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        PolicyKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| format!("unknown policy {s:?} (lru, lfu, static, predictive, opt)"))
    }
}
