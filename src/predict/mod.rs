//! Routing-path predictors: given a token's routing so far, score the experts of the next layers.
//!
//! One trait, [`Predictor`]; implementations are chosen by name. The cache's `predictive` policy
//! and the daemon call it at every layer of every token, so `score` must not allocate.
//!
//! Implementations: [`StaticPredictor`] (per-layer frequency), [`MarkovPredictor`] (direct h-hop
//! transition matrices), [`TemporalPredictor`] (previous token of the sequence), [`MixPredictor`]
//! (a cross-validated weighted sum of the three) and [`LearnedPredictor`] (a small MLP trained
//! with candle). [`PredictorSet`] saves and loads any of them as one safetensors file;
//! [`evaluate`] scores them side by side with recall@K. [`OnlinePredictor`] keeps learning from
//! the routing it serves ([`Predictor::observe`]); [`evaluate_online`] scores it prequentially.

mod error;
mod eval;
mod file;
pub mod learned;
mod markov;
mod mix;
pub mod online;
mod prequential;
mod set;
mod static_freq;
mod temporal;
mod topk;

pub use error::PredictError;
pub use eval::{EvalReport, PredictorRecall, evaluate, recall_at};
pub use file::{FILE_FORMAT, FILE_VERSION, FileHeader};
pub use learned::{LearnedPredictor, TrainOptions, TrainReport};
pub use markov::MarkovPredictor;
pub use mix::{
    CASES_PER_FOLD, Case, MixPredictor, MixWeights, case_stride, choose_weights, fit_mix,
};
pub use online::{OnlineOptions, OnlinePredictor};
pub use prequential::{evaluate_online, prequential_recall};
pub use set::{Kind, PredictorSet};
pub use static_freq::StaticPredictor;
pub use temporal::TemporalPredictor;
pub use topk::top_k_into;

use crate::trace::{ModelShape, Trace};

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
    /// (see [`crate::trace::dequantize_weight`]); empty when the source carries no weights.
    pub current_weights: &'a [u16],
    /// The previous token of the same sequence, all layers, if there is one.
    pub previous: Option<&'a [u16]>,
}

impl<'a> RoutingView<'a> {
    /// The view of token `t` of `trace` once layer `layer` is routed (the previous token is the
    /// one before `t` in its sequence).
    pub fn from_trace(trace: &'a Trace, t: usize, layer: usize) -> RoutingView<'a> {
        RoutingView {
            shape: trace.shape(),
            layer,
            current: trace.token_experts(t),
            current_weights: trace.token_weights_q(t),
            previous: trace.prev_experts(t),
        }
    }

    /// The current token's experts at layer `l` (`l <= self.layer`).
    #[inline]
    pub fn current_at(&self, l: usize) -> &'a [u16] {
        let k = self.shape.top_k;
        &self.current[l * k..(l + 1) * k]
    }

    /// The previous token's experts at layer `l`, if there is a previous token.
    #[inline]
    pub fn previous_at(&self, l: usize) -> Option<&'a [u16]> {
        let k = self.shape.top_k;
        self.previous.map(|p| &p[l * k..(l + 1) * k])
    }
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
    /// Scores a batch of views: `out` is `[views.len()][experts]` flattened. The default calls
    /// [`Predictor::score`] per view; implementations may do better.
    fn score_batch(&self, views: &[RoutingView<'_>], h: usize, out: &mut [f32]) {
        if let Some(v) = views.first() {
            let e = v.shape.experts;
            for (v, o) in views.iter().zip(out.chunks_exact_mut(e)) {
                self.score(v, h, o);
            }
        }
    }
    /// Learns from a token that has been served: `experts` is its routing at every layer,
    /// `[moe_layers][top_k]` flattened (as [`crate::trace::Trace::token_experts`]), and
    /// `previous` the routing of the token before it in its sequence, if any (what
    /// [`RoutingView::previous`] was while it was scored). Called once per token after its last
    /// layer; must not allocate. Offline predictors ignore it.
    fn observe(&mut self, experts: &[u16], previous: Option<&[u16]>) {
        let _ = (experts, previous);
    }
    /// Whether [`Predictor::observe`] changes this predictor's scores.
    fn is_online(&self) -> bool {
        false
    }
}

/// An offline predictor borrowed where a learning one is expected: scores as the predictor,
/// ignores [`Predictor::observe`].
#[derive(Clone, Copy)]
pub struct Frozen<'a>(pub &'a dyn Predictor);

impl Predictor for Frozen<'_> {
    fn name(&self) -> &str {
        self.0.name()
    }

    fn lookahead(&self) -> usize {
        self.0.lookahead()
    }

    fn score(&self, view: &RoutingView<'_>, h: usize, out: &mut [f32]) {
        self.0.score(view, h, out)
    }

    fn score_batch(&self, views: &[RoutingView<'_>], h: usize, out: &mut [f32]) {
        self.0.score_batch(views, h, out)
    }
}
