//! `lfu`: evict the expert least frequently demanded, frequencies decaying exponentially.

use super::Policy;

/// An exponentially decayed estimate, per key, of the chance it is demanded at a visit of its
/// layer: at every step of layer `l`, `f <- gamma * f + (1 - gamma) * [demanded]`. Updated lazily
/// (a key's value is decayed when read), so a step costs O(demands), not O(experts).
#[derive(Debug, Clone)]
pub(crate) struct DecayedFreq {
    /// Experts per layer.
    experts: usize,
    /// Decay per visit of the key's layer.
    gamma: f64,
    /// Steps seen per layer.
    visits: Vec<u64>,
    /// Estimate per key as of visit `at`.
    f: Vec<f64>,
    /// Layer visit at which `f` was last updated.
    at: Vec<u64>,
    /// Demand clock + 1 of the last demand per key (tie-break: more recent is kept).
    last: Vec<u64>,
}

impl DecayedFreq {
    /// An estimator over `layers x experts` keys with a half-life of `half_life` layer visits.
    pub fn new(layers: usize, experts: usize, half_life: f64) -> Self {
        let keys = layers * experts;
        DecayedFreq {
            experts,
            gamma: 0.5f64.powf(1.0 / half_life.max(1e-9)),
            visits: vec![0; layers],
            f: vec![0.0; keys],
            at: vec![0; keys],
            last: vec![0; keys],
        }
    }

    /// Number of keys.
    pub fn keys(&self) -> usize {
        self.f.len()
    }

    /// The current estimate for `key`, in `[0, 1]`.
    #[inline]
    pub fn value(&self, key: u32) -> f64 {
        let k = key as usize;
        let since = self.visits[k / self.experts] - self.at[k];
        self.f[k] * self.gamma.powi(since.min(i32::MAX as u64) as i32)
    }

    /// The estimate plus a tiny recency tie-break (for ranking).
    #[inline]
    pub fn rank(&self, key: u32) -> f64 {
        self.value(key) + self.last[key as usize] as f64 * 1e-15
    }

    /// A step of `layer` starts.
    #[inline]
    pub fn on_step(&mut self, layer: usize) {
        self.visits[layer] += 1;
    }

    /// `key` is demanded at this visit of its layer.
    #[inline]
    pub fn on_demand(&mut self, key: u32, now: u64) {
        let k = key as usize;
        let v = self.value(key);
        self.f[k] = v + (1.0 - self.gamma);
        self.at[k] = self.visits[k / self.experts];
        self.last[k] = now + 1;
    }
}

/// Least frequently used with decay: keeps the experts demanded most often lately.
#[derive(Debug, Clone)]
pub struct Lfu {
    freq: DecayedFreq,
}

impl Lfu {
    /// Default half-life, in visits of a layer (tokens at batch 1).
    pub const DEFAULT_HALF_LIFE: f64 = 128.0;

    /// An LFU over `layers x experts` keys; frequencies halve every `half_life` visits of a layer.
    pub fn new(layers: usize, experts: usize, half_life: f64) -> Self {
        Lfu {
            freq: DecayedFreq::new(layers, experts, half_life),
        }
    }
}

impl Policy for Lfu {
    fn name(&self) -> &str {
        "lfu"
    }
    fn keys(&self) -> usize {
        self.freq.keys()
    }
    #[inline]
    fn priority(&self, key: u32) -> f64 {
        self.freq.rank(key)
    }
    #[inline]
    fn on_step(&mut self, layer: usize) {
        self.freq.on_step(layer)
    }
    #[inline]
    fn on_demand(&mut self, key: u32, now: u64) {
        self.freq.on_demand(key, now)
    }
}
