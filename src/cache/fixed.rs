//! `static`: a fixed set of the most frequent experts (from training traces) stays resident;
//! every other expert is streamed through a transient buffer and never cached.

use super::{Budget, CacheConfig, Policy, Ranking};

/// Pins the most frequent experts: the top `C` per layer (per-layer budget) or overall (shared).
#[derive(Debug, Clone)]
pub struct StaticTop {
    /// Frequency per key (the ranking).
    count: Vec<f64>,
    /// Whether a key belongs to the fixed set.
    chosen: Vec<bool>,
}

impl StaticTop {
    /// The fixed set for `cfg` from per-key frequencies `counts` (`layers * experts`, any scale);
    /// ties go to the lower expert id.
    pub fn new(cfg: &CacheConfig, counts: &[f64]) -> Self {
        assert_eq!(counts.len(), cfg.keys(), "one count per (layer, expert)");
        let mut chosen = vec![false; counts.len()];
        let mut pick = |range: std::ops::Range<usize>, n: usize| {
            let mut idx: Vec<usize> = range.collect();
            idx.sort_by(|&a, &b| counts[b].total_cmp(&counts[a]).then(a.cmp(&b)));
            for &i in idx.iter().take(n) {
                chosen[i] = true;
            }
        };
        match cfg.budget {
            Budget::PerLayer(c) => {
                for l in 0..cfg.layers {
                    pick(l * cfg.experts..(l + 1) * cfg.experts, c);
                }
            }
            Budget::Shared(c) => pick(0..cfg.keys(), c),
        }
        StaticTop {
            count: counts.to_vec(),
            chosen,
        }
    }

    /// Whether `key` is in the fixed set.
    pub fn is_chosen(&self, key: u32) -> bool {
        self.chosen[key as usize]
    }
}

impl Policy for StaticTop {
    fn name(&self) -> &str {
        "static"
    }
    fn keys(&self) -> usize {
        self.count.len()
    }
    fn ranking(&self) -> Ranking {
        Ranking::Keyed
    }
    #[inline]
    fn priority(&self, key: u32) -> f64 {
        self.count[key as usize]
            + if self.chosen[key as usize] {
                1e300
            } else {
                0.0
            }
    }
    #[inline]
    fn admit(&self, key: u32) -> bool {
        self.chosen[key as usize]
    }
}
