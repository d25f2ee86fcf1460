//! [`Scanning`]: any policy read by asking it for every candidate's priority, whatever its
//! ranking; the reference that the O(1) and O(log n) victim structures are checked and timed
//! against.

use super::{Policy, Ranking};

/// `P` with [`Ranking::Ask`]: the cache scans every slot of the group and asks for its key's
/// priority on each eviction. Same choices as `P` itself (ties: lowest slot), found slowly.
#[derive(Debug, Clone)]
pub struct Scanning<P>(pub P);

impl<P: Policy> Policy for Scanning<P> {
    fn name(&self) -> &str {
        self.0.name()
    }
    fn keys(&self) -> usize {
        self.0.keys()
    }
    #[inline]
    fn priority(&self, key: u32) -> f64 {
        self.0.priority(key)
    }
    fn ranking(&self) -> Ranking {
        Ranking::Ask
    }
    fn on_step(&mut self, layer: usize) {
        self.0.on_step(layer)
    }
    #[inline]
    fn on_demand(&mut self, key: u32, now: u64) {
        self.0.on_demand(key, now)
    }
    fn on_insert(&mut self, key: u32, now: u64) {
        self.0.on_insert(key, now)
    }
    fn on_evict(&mut self, key: u32) {
        self.0.on_evict(key)
    }
    fn admit(&self, key: u32) -> bool {
        self.0.admit(key)
    }
    fn prefetch_priority(&self, key: u32) -> f64 {
        self.0.prefetch_priority(key)
    }
    fn on_hint(&mut self, layer: usize, h: usize, scores: &[f32]) {
        self.0.on_hint(layer, h, scores)
    }
    fn on_release(&mut self, layer: usize) {
        self.0.on_release(layer)
    }
}
