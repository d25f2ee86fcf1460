//! `lru`: evict the least recently demanded (or inserted) expert.

use super::Policy;

/// Least recently used.
#[derive(Debug, Clone)]
pub struct Lru {
    /// Demand clock + 1 of the last demand or insertion per key (0 = never); stored as `f64`
    /// so the victim scan compares without converting (exact below 2^53 demands).
    last: Vec<f64>,
}

impl Lru {
    /// An LRU over `keys` keys.
    pub fn new(keys: usize) -> Self {
        Lru {
            last: vec![0.0; keys],
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
    fn keyed_priorities(&self) -> bool {
        true
    }
    #[inline]
    fn priority(&self, key: u32) -> f64 {
        self.last[key as usize]
    }
    #[inline]
    fn on_demand(&mut self, key: u32, now: u64) {
        self.last[key as usize] = (now + 1) as f64;
    }
    #[inline]
    fn on_insert(&mut self, key: u32, now: u64) {
        self.last[key as usize] = (now + 1) as f64;
    }
}
