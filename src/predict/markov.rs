//! The `markov` predictor: direct h-hop transition matrices P_h[l](e -> e'), one per look-ahead
//! (chaining one-hop matrices loses most of the signal at h >= 2).

use super::{Predictor, RoutingView, StaticPredictor};
use crate::stats::Transitions;
use crate::trace::{ModelShape, Trace};

/// Pseudo-count of the target layer's static frequency mixed into every row, so rare source
/// experts fall back to popularity instead of noise.
const SMOOTHING: f32 = 1.0;

/// Direct h-hop transition probabilities; the score of e' is the mean over the current token's
/// experts e at layer l of `P(e' in S(t, l+h) | e in S(t, l))`.
#[derive(Debug, Clone, PartialEq)]
pub struct MarkovPredictor {
    /// Routing shape.
    pub(super) shape: ModelShape,
    /// `probs[h - 1]`: `[moe_layers - h][experts][experts]` flattened, each row sums to `top_k`.
    pub(super) probs: Vec<Vec<f32>>,
}

impl MarkovPredictor {
    /// Counts the 1..=lookahead hop transitions of `trace`, smoothed towards `prior` (the static
    /// frequencies, usually of the same trace).
    pub fn fit(trace: &Trace, lookahead: usize, prior: &StaticPredictor) -> MarkovPredictor {
        let counted: Vec<Transitions> = (1..=lookahead)
            .map(|h| Transitions::count(trace, h))
            .collect();
        MarkovPredictor::from_transitions(*trace.shape(), &counted, prior)
    }

    /// The predictor of counted transitions, `transitions[h - 1]` for hop h, smoothed towards
    /// `prior`.
    pub fn from_transitions(
        shape: ModelShape,
        transitions: &[Transitions],
        prior: &StaticPredictor,
    ) -> MarkovPredictor {
        let e = shape.experts;
        let probs = transitions
            .iter()
            .map(|tr| {
                let h = tr.hops;
                let span = shape.moe_layers.saturating_sub(h);
                let mut p = vec![0f32; span * e * e];
                for l in 0..span {
                    let pri = prior.layer(l + h);
                    for a in 0..e {
                        let row = tr.row(l, a);
                        // Row total = k * tokens that chose `a` at layer l.
                        let n = row.iter().map(|&c| c as f32).sum::<f32>() / shape.top_k as f32;
                        let dst = &mut p[(l * e + a) * e..(l * e + a + 1) * e];
                        for ((d, &c), &q) in dst.iter_mut().zip(row).zip(pri) {
                            *d = (c as f32 + SMOOTHING * q) / (n + SMOOTHING);
                        }
                    }
                }
                p
            })
            .collect();
        MarkovPredictor { shape, probs }
    }

    /// Row of `P_h[l]` from expert `a`.
    #[inline]
    pub fn row(&self, h: usize, l: usize, a: usize) -> &[f32] {
        let e = self.shape.experts;
        &self.probs[h - 1][(l * e + a) * e..(l * e + a + 1) * e]
    }

    /// The routing shape.
    pub fn shape(&self) -> &ModelShape {
        &self.shape
    }
}

impl Predictor for MarkovPredictor {
    fn name(&self) -> &str {
        "markov"
    }

    fn lookahead(&self) -> usize {
        self.probs.len()
    }

    fn score(&self, view: &RoutingView<'_>, h: usize, out: &mut [f32]) {
        out.fill(0.0);
        let cur = view.current_at(view.layer);
        let inv = 1.0 / cur.len() as f32;
        for &a in cur {
            for (o, &p) in out.iter_mut().zip(self.row(h, view.layer, a as usize)) {
                *o += p * inv;
            }
        }
    }
}
