//! Routing-path predictors: given a token's routing so far, score the experts of the next layers.
//!
//! One trait, [`Predictor`]; implementations are chosen by name. The cache's `predictive` policy
//! and the daemon call it at every layer of every token, so `score` must not allocate.

use crate::trace::ModelShape;

/// What a predictor may look at when layer `layer` of the current token has just been routed.
#[derive(Debug, Clone, Copy)]
pub struct RoutingView<'a> {
    /// The model's routing shape.
    pub shape: &'a ModelShape,
    /// The MoE layer just routed (0-based); layers `0..=layer` of `current` are valid.
    pub layer: usize,
    /// Current token's experts, `[moe_layers][top_k]` flattened, highest weight first per layer
    /// (as [`crate::trace::Trace::token_experts`]); entries past `layer` are unspecified.
    pub current: &'a [u16],
    /// Current token's quantised gate weights aligned with `current`
    /// (see [`crate::trace::dequantize_weight`]).
    pub current_weights: &'a [u16],
    /// The previous token of the same sequence, all layers, if there is one.
    pub previous: Option<&'a [u16]>,
}

/// A routing-path predictor.
pub trait Predictor: Send + Sync {
    /// Short name (`static`, `markov`, `temporal`, `mix`, `learned`).
    fn name(&self) -> &str;
    /// Largest look-ahead `h` this predictor scores.
    fn lookahead(&self) -> usize;
    /// Writes a score per expert of layer `view.layer + h` into `out` (length `shape.experts`);
    /// higher means more likely. `h` is in `1..=lookahead()` and `view.layer + h < moe_layers`.
    fn score(&self, view: &RoutingView<'_>, h: usize, out: &mut [f32]);
}
