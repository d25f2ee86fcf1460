//! The `temporal` predictor: the previous token of the same sequence at the target layer.

use super::{Predictor, RoutingView};

/// Predicts that the target layer repeats the previous token's experts there (ranked by that
/// token's gate order); without a previous token every expert scores 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TemporalPredictor {
    /// Largest look-ahead answered.
    pub lookahead: usize,
}

impl TemporalPredictor {
    /// Adds `weight` (slightly less for lower-ranked experts) to the previous token's experts at
    /// layer `target` in `out`; nothing without a previous token.
    #[inline]
    pub fn add_into(view: &RoutingView<'_>, target: usize, weight: f32, out: &mut [f32]) {
        if let Some(prev) = view.previous_at(target) {
            for (j, &e) in prev.iter().enumerate() {
                out[e as usize] += weight * (1.0 - 1e-3 * j as f32);
            }
        }
    }
}

impl Predictor for TemporalPredictor {
    fn name(&self) -> &str {
        "temporal"
    }

    fn lookahead(&self) -> usize {
        self.lookahead
    }

    fn score(&self, view: &RoutingView<'_>, h: usize, out: &mut [f32]) {
        out.fill(0.0);
        TemporalPredictor::add_into(view, view.layer + h, 1.0, out);
    }
}
