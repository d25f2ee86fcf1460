//! `lru`: evict the least recently demanded (or inserted) expert.

use super::{Policy, Ranking};

/// Least recently used. The cache evicts it in O(1) from per-group recency lists
/// ([`Ranking::Recency`]); [`Lru::scanning`] gives the same choices by a scan over slot priorities.
#[derive(Debug, Clone)]
pub struct Lru {
    /// Stamp of the last touch per key (0 = never): the touch counter at its last demand, or at
    /// its insertion by a prefetch. Strictly ordered like the recency lists; stored as `f64` so
    /// a scan compares without converting (exact below 2^53 touches).
    last: Vec<f64>,
    /// Touches so far (demands and prefetch insertions).
    tick: u64,
    /// Demand clock after the latest demand: an insertion at an earlier clock is a demand load
    /// (it keeps its demand's stamp), one at this clock or later a prefetch.
    next_clock: u64,
    /// How the cache finds the victim.
    ranking: Ranking,
}

impl Lru {
    /// An LRU over `keys` keys.
    pub fn new(keys: usize) -> Self {
        Lru {
            last: vec![0.0; keys],
            tick: 0,
            next_clock: 0,
            ranking: Ranking::Recency,
        }
    }

    /// The same LRU with keyed priorities: the cache finds each victim by scanning the slots'
    /// remembered priorities (O(slots) per eviction; in budget groups of
    /// [`super::HEAP_FROM`] slots or more from a heap, unless built with
    /// `ExpertCache::with_heaps(.., false)`): the reference the recency lists are tested and
    /// benchmarked against.
    pub fn scanning(keys: usize) -> Self {
        Lru {
            ranking: Ranking::Keyed,
            ..Lru::new(keys)
        }
    }
}

impl Policy for Lru {
    fn name(&self) -> &str {
        "lru"
    }
    fn keys(&self) -> usize {
        self.last.len()
    }
    fn ranking(&self) -> Ranking {
        self.ranking
    }
    #[inline]
    fn priority(&self, key: u32) -> f64 {
        self.last[key as usize]
    }
    #[inline]
    fn on_demand(&mut self, key: u32, now: u64) {
        self.tick += 1;
        self.last[key as usize] = self.tick as f64;
        self.next_clock = now + 1;
    }
    #[inline]
    fn on_insert(&mut self, key: u32, now: u64) {
        // A demand load keeps its demand's stamp; a prefetch is touched when it is issued.
        if now >= self.next_clock {
            self.tick += 1;
            self.last[key as usize] = self.tick as f64;
        }
    }
}
