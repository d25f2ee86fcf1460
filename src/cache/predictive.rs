//! `predictive`: predictor scores for the coming layers blended with decayed frequency, with an
//! ExpertFlow-style correction: each layer's predictions are weighted by how well that layer's
//! predictions matched the real routing lately, and stale predictions are dropped once the real
//! routing of their layer is known.

use super::Policy;
use super::lfu::DecayedFreq;

/// Predictor-driven retention: `priority = freq + beta * accuracy(layer) * p_predicted`.
#[derive(Debug, Clone)]
pub struct Predictive {
    /// Decayed demand frequency per key (the prior when there is no fresh prediction).
    freq: DecayedFreq,
    /// Experts per layer.
    experts: usize,
    /// Weight of a prediction relative to frequency.
    beta: f64,
    /// Priority a prefetch candidate must have above its victim.
    margin: f64,
    /// Latest predicted chance per key that it is demanded at its layer's next step, `[0, 1]`.
    pred: Vec<f32>,
    /// Per layer: whether `pred` holds a fresh prediction for it.
    fresh: Vec<bool>,
    /// Per layer: a step is running. Its prediction was for the experts now pinned, so it says
    /// nothing about which of the others the next step needs: evictions rank by frequency.
    stepping: Vec<bool>,
    /// Per layer: decayed share of predicted mass that the real routing confirmed.
    accuracy: Vec<f64>,
    /// Per layer: predicted mass on the experts demanded in the running step.
    confirmed: Vec<f64>,
    /// Decayed mean of distinct experts demanded per step (scales scores to chances).
    demands_per_step: f64,
    /// Demands counted in the running step of each layer.
    step_demands: Vec<u32>,
}

impl Predictive {
    /// Default weight of predictions against frequency.
    pub const DEFAULT_BETA: f64 = 1.0;

    /// A predictive policy over `layers x experts` keys (`half_life` as for [`super::Lfu`]).
    pub fn new(layers: usize, experts: usize, half_life: f64, beta: f64) -> Self {
        Predictive {
            freq: DecayedFreq::new(layers, experts, half_life),
            experts,
            beta,
            margin: 0.0,
            pred: vec![0.0; layers * experts],
            fresh: vec![false; layers],
            stepping: vec![false; layers],
            accuracy: vec![0.5; layers],
            confirmed: vec![0.0; layers],
            demands_per_step: 1.0,
            step_demands: vec![0; layers],
        }
    }

    /// Sets the priority a prefetch candidate must have above its victim (default 0).
    pub fn with_margin(mut self, margin: f64) -> Self {
        self.margin = margin;
        self
    }

    /// Current accuracy estimate of a layer's predictions, `[0, 1]`.
    pub fn accuracy(&self, layer: usize) -> f64 {
        self.accuracy[layer]
    }
}

impl Policy for Predictive {
    fn name(&self) -> &str {
        "predictive"
    }
    fn keys(&self) -> usize {
        self.pred.len()
    }
    #[inline]
    fn priority(&self, key: u32) -> f64 {
        let l = key as usize / self.experts;
        let p = if self.fresh[l] && !self.stepping[l] {
            self.pred[key as usize] as f64
        } else {
            0.0
        };
        self.freq.rank(key) + self.beta * self.accuracy[l] * p
    }
    fn prefetch_priority(&self, key: u32) -> f64 {
        // A prefetch costs a transfer for sure and pays off only if the expert is used: it must
        // beat its victim by the margin.
        self.priority(key) - self.margin
    }
    fn on_step(&mut self, layer: usize) {
        self.freq.on_step(layer);
        self.stepping[layer] = true;
        self.confirmed[layer] = 0.0;
        self.step_demands[layer] = 0;
    }
    #[inline]
    fn on_demand(&mut self, key: u32, now: u64) {
        self.freq.on_demand(key, now);
        let l = key as usize / self.experts;
        self.step_demands[l] += 1;
        if self.fresh[l] {
            self.confirmed[l] += self.pred[key as usize] as f64;
        }
    }
    fn on_hint(&mut self, layer: usize, _h: usize, scores: &[f32]) {
        let out = &mut self.pred[layer * self.experts..(layer + 1) * self.experts];
        let n = scores.len().min(out.len());
        let min = scores[..n].iter().copied().fold(f32::INFINITY, f32::min);
        let d = self.demands_per_step as f32;
        if min >= 0.0 {
            let sum: f32 = scores[..n].iter().sum();
            for (o, &s) in out.iter_mut().zip(&scores[..n]) {
                *o = if sum > 0.0 {
                    (d * s / sum).min(1.0)
                } else {
                    0.0
                };
            }
        } else {
            // Log-scores: softmax.
            let max = scores[..n]
                .iter()
                .copied()
                .fold(f32::NEG_INFINITY, f32::max);
            let sum: f32 = scores[..n].iter().map(|&s| (s - max).exp()).sum();
            for (o, &s) in out.iter_mut().zip(&scores[..n]) {
                *o = (d * (s - max).exp() / sum).min(1.0);
            }
        }
        self.fresh[layer] = true;
    }
    fn on_release(&mut self, layer: usize) {
        let n = self.step_demands[layer] as f64;
        if n > 0.0 {
            self.demands_per_step = 0.99 * self.demands_per_step + 0.01 * n;
        }
        if self.fresh[layer] && n > 0.0 {
            let mass: f64 = self.pred[layer * self.experts..(layer + 1) * self.experts]
                .iter()
                .map(|&p| p as f64)
                .sum();
            if mass > 0.0 {
                let precision = (self.confirmed[layer] / mass).min(1.0);
                self.accuracy[layer] = 0.95 * self.accuracy[layer] + 0.05 * precision;
            }
        }
        // The real routing of this layer is known: its prediction is stale.
        self.fresh[layer] = false;
        self.stepping[layer] = false;
    }
}
