//! `predictive`: an online approximation of Belady. Each cached expert is ranked by the chance
//! that its layer's next visit demands it: learned from its history ([`super::reuse`]: age and
//! recent count, the table fitted online to the replayed stream) and, for a layer whose next
//! visit a predictor has scored, from the predictor's rank of the expert, calibrated online
//! (ExpertFlow-style correction: how often that rank at that look-ahead was right lately, for
//! cached and uncached experts apart). A prefetch must beat its victim's chance by a margin.

use super::Policy;
use super::lfu::DecayedFreq;
use super::prefetch::best_first;
use super::reuse::Reuse;

/// Predictor ranks calibrated (lower ranks are never prefetched or boosted).
const RANKS: usize = 16;
/// Look-aheads calibrated apart (larger ones share the last row).
const MAX_H: usize = 8;
/// Marker: the expert is not among the `RANKS` best of its layer's fresh prediction.
const UNRANKED: u8 = u8::MAX;
/// Prior pseudo-counts of a calibration cell (right, asked): cautious until evidence comes.
const CALIB_PRIOR: (f64, f64) = (0.2, 1.0);
/// Calibration memory: counts decay by this factor per update of their cell (adapts to drift).
const CALIB_DECAY: f64 = 0.999;

/// Predictor-driven retention: `priority = reuse + beta * predicted * (1 - reuse)`, chances of a
/// demand at the next visit of the key's layer.
#[derive(Debug, Clone)]
pub struct Predictive {
    /// History-based chance of reuse per key.
    reuse: Reuse,
    /// Decayed demand frequency per key (a tie-break within one reuse cell).
    freq: DecayedFreq,
    /// Experts per layer.
    experts: usize,
    /// Weight of a prediction against the history (1: combined as independent evidence).
    beta: f64,
    /// Chance a prefetch candidate must have above its victim.
    margin: f64,
    /// Per key, its rank in its layer's latest prediction (`UNRANKED` beyond `RANKS`).
    rank: Vec<u8>,
    /// Per key, whether it was cached when that prediction was made.
    rank_cached: Vec<bool>,
    /// Per key, whether it is in a slot (tracked from the insert and evict hooks).
    cached: Vec<bool>,
    /// Per layer, the look-ahead of its fresh prediction (0: none since its last step).
    fresh_h: Vec<u8>,
    /// Per layer: a step is running. Its prediction was for the experts now pinned, so it says
    /// nothing about which of the others the next step needs: evictions rank by history.
    stepping: Vec<bool>,
    /// Per (look-ahead, cached, rank): (demanded, predicted) counts, decayed.
    calib: Vec<(f64, f64)>,
    /// Scratch: experts of a layer ordered by score.
    order: Vec<u16>,
}

impl Predictive {
    /// Default weight of predictions against the history.
    pub const DEFAULT_BETA: f64 = 1.0;
    /// Default chance a prefetch must have above its victim. At batch 1 over PCIe the link is
    /// the bottleneck and a prefetch only hides the compute it overlaps, so it must nearly
    /// always be used to pay (README: a margin of 0.5 keeps the bytes of the demand-only
    /// policy; 0.3 gives a higher hit ratio for more bytes).
    pub const DEFAULT_MARGIN: f64 = 0.5;

    /// A predictive policy over `layers x experts` keys (`half_life` of the frequency tie-break,
    /// as for [`super::Lfu`]).
    pub fn new(layers: usize, experts: usize, half_life: f64, beta: f64) -> Self {
        let keys = layers * experts;
        Predictive {
            reuse: Reuse::new(layers, experts),
            freq: DecayedFreq::new(layers, experts, half_life),
            experts,
            beta,
            margin: Self::DEFAULT_MARGIN,
            rank: vec![UNRANKED; keys],
            rank_cached: vec![false; keys],
            cached: vec![false; keys],
            fresh_h: vec![0; layers],
            stepping: vec![false; layers],
            calib: vec![CALIB_PRIOR; MAX_H * 2 * RANKS],
            order: (0..experts.min(u16::MAX as usize + 1) as u16).collect(),
        }
    }

    /// Sets the chance a prefetch candidate must have above its victim
    /// (default [`Predictive::DEFAULT_MARGIN`]).
    pub fn with_margin(mut self, margin: f64) -> Self {
        self.margin = margin;
        self
    }

    #[inline]
    fn calib_index(h: u8, cached: bool, rank: u8) -> usize {
        ((h as usize).clamp(1, MAX_H) - 1) * 2 * RANKS + cached as usize * RANKS + rank as usize
    }

    /// Calibrated chance that `key` is demanded at its layer's next visit, from the fresh
    /// prediction for that layer (0 without one, while the layer steps, or beyond `RANKS`).
    #[inline]
    pub fn predicted(&self, key: u32) -> f64 {
        let k = key as usize;
        let l = k / self.experts;
        let h = self.fresh_h[l];
        if h == 0 || self.stepping[l] || self.rank[k] == UNRANKED {
            return 0.0;
        }
        let (right, asked) = self.calib[Self::calib_index(h, self.rank_cached[k], self.rank[k])];
        right / asked
    }

    /// History-based chance that `key` is demanded at its layer's next visit.
    pub fn reuse(&self, key: u32) -> f64 {
        self.reuse.chance(key)
    }
}

impl Policy for Predictive {
    fn name(&self) -> &str {
        "predictive"
    }
    fn keys(&self) -> usize {
        self.rank.len()
    }
    #[inline]
    fn priority(&self, key: u32) -> f64 {
        let r = self.reuse.chance(key);
        let p = self.beta * self.predicted(key);
        r + p * (1.0 - r) + 1e-6 * self.freq.rank(key)
    }
    fn prefetch_priority(&self, key: u32) -> f64 {
        // A prefetch costs a transfer for sure and pays off only if the expert is used: it must
        // beat its victim by the margin.
        self.priority(key) - self.margin
    }
    fn on_step(&mut self, layer: usize) {
        self.freq.on_step(layer);
        self.reuse.on_step(layer);
        self.stepping[layer] = true;
    }
    #[inline]
    fn on_demand(&mut self, key: u32, now: u64) {
        self.freq.on_demand(key, now);
        self.reuse.on_demand(key);
    }
    fn on_insert(&mut self, key: u32, _now: u64) {
        self.cached[key as usize] = true;
    }
    fn on_evict(&mut self, key: u32) {
        self.cached[key as usize] = false;
    }
    fn on_hint(&mut self, layer: usize, h: usize, scores: &[f32]) {
        let range = layer * self.experts..(layer + 1) * self.experts;
        self.rank[range.clone()].fill(UNRANKED);
        let n = RANKS.min(self.experts).min(scores.len());
        if n == 0 || self.order.len() != scores.len() {
            return;
        }
        best_first(&mut self.order, scores, n);
        for (r, &e) in self.order[..n].iter().enumerate() {
            if scores[e as usize] != 0.0 {
                let k = range.start + e as usize;
                self.rank[k] = r as u8;
                self.rank_cached[k] = self.cached[k];
            }
        }
        self.fresh_h[layer] = h.clamp(1, MAX_H) as u8;
    }
    fn on_release(&mut self, layer: usize) {
        self.reuse.on_release(layer);
        let h = self.fresh_h[layer];
        if h != 0 {
            for k in layer * self.experts..(layer + 1) * self.experts {
                let r = self.rank[k];
                if r == UNRANKED {
                    continue;
                }
                let c = &mut self.calib[Self::calib_index(h, self.rank_cached[k], r)];
                c.0 = c.0 * CALIB_DECAY + self.reuse.demanded_now(k as u32) as u8 as f64;
                c.1 = c.1 * CALIB_DECAY + 1.0;
            }
        }
        // The real routing of this layer is known: its prediction is stale.
        self.fresh_h[layer] = 0;
        self.stepping[layer] = false;
    }
}

#[cfg(test)]
mod tests {
    use super::Predictive;
    use crate::cache::Policy;

    #[test]
    fn calibration_follows_how_often_each_rank_is_right() {
        // Layer 0 of 1, 8 experts: the predictor always ranks expert 1 first and expert 2
        // second; the routing always demands 1 and never 2.
        let mut p = Predictive::new(1, 8, 16.0, 1.0);
        let scores = [0.0, 0.9, 0.5, 0.1, 0.1, 0.1, 0.1, 0.1];
        for now in 0..300u64 {
            p.on_hint(0, 1, &scores);
            p.on_step(0);
            p.on_demand(1, now);
            p.on_release(0);
        }
        p.on_hint(0, 1, &scores);
        let (right, wrong) = (p.predicted(1), p.predicted(2));
        assert!(right > 0.7, "rank 0: {right}");
        assert!(wrong < 0.1, "rank 1: {wrong}");
        // A fresh prediction raises the priority of what it names; a running step drops it.
        assert!(p.priority(1) > p.reuse(1));
        p.on_step(0);
        assert_eq!(p.predicted(1), 0.0);
    }
}
