//! `opt` (Belady): evict the expert whose next demand is farthest in the future. Replay only.

use super::{Policy, Ranking};

/// Marker for "never demanded again".
const NEVER: u32 = u32::MAX;

/// For each demand `i` of a demand sequence, the index of the next demand of the same key.
/// Built in O(n) backwards with a last-seen table (the bound is O(n log n) with a heap; the
/// cache's victim scan is O(slots) per miss).
#[derive(Debug, Clone)]
pub struct NextUse {
    next: Vec<u32>,
}

impl NextUse {
    /// The index for `demands` (keys in the exact order the cache will see them: per step, the
    /// distinct experts in the order given). `keys` is the number of distinct keys.
    pub fn build(demands: &[u32], keys: usize) -> Self {
        assert!(
            demands.len() < NEVER as usize,
            "too many demands for a u32 index"
        );
        let mut seen = vec![NEVER; keys];
        let mut next = vec![NEVER; demands.len()];
        for i in (0..demands.len()).rev() {
            let k = demands[i] as usize;
            next[i] = seen[k];
            seen[k] = i as u32;
        }
        NextUse { next }
    }

    /// Number of demands indexed.
    pub fn len(&self) -> usize {
        self.next.len()
    }

    /// Whether the index is empty.
    pub fn is_empty(&self) -> bool {
        self.next.is_empty()
    }
}

/// Belady's optimal demand-paging policy (needs the future: replay only).
#[derive(Debug, Clone)]
pub struct Opt {
    index: NextUse,
    /// Next demand index per key (`NEVER` if none), as of its latest demand.
    next_of: Vec<u32>,
}

impl Opt {
    /// OPT over `keys` keys, replaying exactly the demands `index` was built from.
    pub fn new(index: NextUse, keys: usize) -> Self {
        Opt {
            index,
            next_of: vec![NEVER; keys],
        }
    }
}

impl Policy for Opt {
    fn name(&self) -> &str {
        "opt"
    }
    fn keys(&self) -> usize {
        self.next_of.len()
    }
    fn ranking(&self) -> Ranking {
        Ranking::Keyed
    }
    #[inline]
    fn priority(&self, key: u32) -> f64 {
        -(self.next_of[key as usize] as f64)
    }
    #[inline]
    fn on_demand(&mut self, key: u32, now: u64) {
        self.next_of[key as usize] = self.index.next.get(now as usize).copied().unwrap_or(NEVER);
    }
}
