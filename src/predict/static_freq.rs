//! The `static` predictor: how often each expert of the target layer was chosen in training.

use super::{Predictor, RoutingView};
use crate::trace::{ModelShape, Trace};

/// Per-layer expert frequency: ignores the token, ranks the target layer's popular experts first.
#[derive(Debug, Clone, PartialEq)]
pub struct StaticPredictor {
    /// Routing shape the frequencies were counted for.
    pub(super) shape: ModelShape,
    /// Largest look-ahead answered.
    pub(super) lookahead: usize,
    /// `P(e in S(t, l))`, `[moe_layers][experts]` flattened (each layer sums to `top_k`).
    pub(super) freq: Vec<f32>,
}

impl StaticPredictor {
    /// Counts the frequencies of `trace` (a uniform `top_k / experts` for an empty trace).
    pub fn fit(trace: &Trace, lookahead: usize) -> StaticPredictor {
        let counts = crate::stats::expert_counts(trace);
        StaticPredictor::from_counts(*trace.shape(), lookahead, &counts, trace.num_tokens())
    }

    /// The frequencies of `counts` (`[moe_layers][experts]` selections) over `n` tokens.
    pub fn from_counts(
        shape: ModelShape,
        lookahead: usize,
        counts: &[u64],
        n: usize,
    ) -> StaticPredictor {
        let uniform = shape.top_k as f32 / shape.experts as f32;
        let freq = counts
            .iter()
            .map(|&c| if n == 0 { uniform } else { c as f32 / n as f32 })
            .collect();
        StaticPredictor {
            shape,
            lookahead,
            freq,
        }
    }

    /// Frequencies of layer `l`.
    #[inline]
    pub fn layer(&self, l: usize) -> &[f32] {
        let e = self.shape.experts;
        &self.freq[l * e..(l + 1) * e]
    }

    /// The routing shape.
    pub fn shape(&self) -> &ModelShape {
        &self.shape
    }
}

impl Predictor for StaticPredictor {
    fn name(&self) -> &str {
        "static"
    }

    fn lookahead(&self) -> usize {
        self.lookahead
    }

    fn score(&self, view: &RoutingView<'_>, h: usize, out: &mut [f32]) {
        out.copy_from_slice(self.layer(view.layer + h));
    }
}
