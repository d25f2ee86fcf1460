//! The `mix` predictor: per look-ahead, a weighted sum of the markov, static and temporal scores,
//! with weights chosen by cross-validation on the training traces (fit on the other folds, score
//! on the held-out one; each training trace is a fold when there are several).

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{
    MarkovPredictor, Predictor, RoutingView, StaticPredictor, TemporalPredictor, recall_at,
};
use crate::trace::Trace;

/// Weights of one look-ahead; they sum to 1.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MixWeights {
    /// Weight of the markov probability.
    pub markov: f32,
    /// Weight of the static frequency.
    #[serde(rename = "static")]
    pub stat: f32,
    /// Weight of the previous token's experts (an indicator).
    pub temporal: f32,
}

/// Markov + static + temporal, weighted per look-ahead.
#[derive(Debug, Clone)]
pub struct MixPredictor {
    /// The static part.
    pub(super) stat: Arc<StaticPredictor>,
    /// The markov part.
    pub(super) markov: Arc<MarkovPredictor>,
    /// `weights[h - 1]`.
    pub(super) weights: Vec<MixWeights>,
}

impl MixPredictor {
    /// Combines fitted parts with `weights` (one per look-ahead, at most the markov look-ahead).
    pub fn new(
        stat: Arc<StaticPredictor>,
        markov: Arc<MarkovPredictor>,
        weights: Vec<MixWeights>,
    ) -> MixPredictor {
        MixPredictor {
            stat,
            markov,
            weights,
        }
    }

    /// The weights per look-ahead.
    pub fn weights(&self) -> &[MixWeights] {
        &self.weights
    }
}

impl Predictor for MixPredictor {
    fn name(&self) -> &str {
        "mix"
    }

    fn lookahead(&self) -> usize {
        self.weights.len()
    }

    fn score(&self, view: &RoutingView<'_>, h: usize, out: &mut [f32]) {
        let w = self.weights[h - 1];
        self.markov.score(view, h, out);
        for (o, &s) in out.iter_mut().zip(self.stat.layer(view.layer + h)) {
            *o = w.markov * *o + w.stat * s;
        }
        TemporalPredictor::add_into(view, view.layer + h, w.temporal, out);
    }
}

/// Held-out cases scored per (fold, look-ahead) when fitting; bounds the fitting time.
pub const CASES_PER_FOLD: usize = 3000;
/// Grid step of the weight simplex.
const GRID_STEP: usize = 10;

/// The held-out cases of a fold of `tokens` tokens at look-ahead `h` (`layers - h` source
/// layers): every `case_stride`-th (token, layer) pair in token-major order, from the first.
pub fn case_stride(tokens: usize, layers: usize, h: usize) -> usize {
    (tokens * layers.saturating_sub(h) / CASES_PER_FOLD).max(1)
}

/// One held-out case: the three component scores and the truth.
pub struct Case {
    markov: Vec<f32>,
    stat: Vec<f32>,
    temporal: Vec<f32>,
    truth: Vec<u16>,
}

impl Case {
    /// Scores `view` at look-ahead `h` with the fold's fitted parts; `truth` is the token's
    /// experts at `view.layer + h`.
    pub fn score(
        view: &RoutingView<'_>,
        h: usize,
        markov: &MarkovPredictor,
        stat: &StaticPredictor,
        truth: &[u16],
    ) -> Case {
        let e = view.shape.experts;
        let mut case = Case {
            markov: vec![0.0; e],
            stat: vec![0.0; e],
            temporal: vec![0.0; e],
            truth: truth.to_vec(),
        };
        markov.score(view, h, &mut case.markov);
        stat.score(view, h, &mut case.stat);
        TemporalPredictor { lookahead: h }.score(view, h, &mut case.temporal);
        case
    }
}

/// Chooses the mix weights for h in `1..=lookahead` by cross-validation over `folds` (at least
/// two), maximising the mean of recall@k and recall@2k on the held-out folds.
pub fn fit_mix(folds: &[&Trace], lookahead: usize) -> Result<Vec<MixWeights>, String> {
    if folds.len() < 2 {
        return Err("mix fitting needs at least two folds".into());
    }
    let shape = *folds[0].shape();
    let layers = shape.moe_layers;
    // cases[h - 1]: over all folds.
    let mut cases: Vec<Vec<Case>> = (0..lookahead).map(|_| Vec::new()).collect();
    for (i, held) in folds.iter().enumerate() {
        let rest: Vec<&Trace> = folds
            .iter()
            .enumerate()
            .filter(|&(j, _)| j != i)
            .map(|(_, t)| *t)
            .collect();
        let train = Trace::concat(&rest)?;
        let stat = StaticPredictor::fit(&train, lookahead);
        let markov = MarkovPredictor::fit(&train, lookahead, &stat);
        for h in 1..=lookahead.min(layers.saturating_sub(1)) {
            let span = layers - h;
            let total = held.num_tokens() * span;
            for c in (0..total).step_by(case_stride(held.num_tokens(), layers, h)) {
                let (t, l) = (c / span, c % span);
                let view = RoutingView::from_trace(held, t, l);
                cases[h - 1].push(Case::score(
                    &view,
                    h,
                    &markov,
                    &stat,
                    held.experts(t, l + h),
                ));
            }
        }
    }
    Ok(choose_weights(&cases, &shape))
}

/// The grid search of [`fit_mix`]: per look-ahead, the weights with the best summed recall@k
/// and recall@2k over `cases[h - 1]`.
pub fn choose_weights(cases: &[Vec<Case>], shape: &crate::trace::ModelShape) -> Vec<MixWeights> {
    let (e, k) = (shape.experts, shape.top_k);
    let mut scores = vec![0f32; e];
    let mut scratch = vec![0u16; e];
    let mut idx = vec![0u16; (2 * k).min(e)];
    cases
        .iter()
        .map(|hc| {
            let mut best = (
                f64::MIN,
                MixWeights {
                    markov: 1.0,
                    stat: 0.0,
                    temporal: 0.0,
                },
            );
            for a in 0..=GRID_STEP {
                for b in 0..=GRID_STEP - a {
                    let w = MixWeights {
                        markov: a as f32 / GRID_STEP as f32,
                        stat: b as f32 / GRID_STEP as f32,
                        temporal: (GRID_STEP - a - b) as f32 / GRID_STEP as f32,
                    };
                    let mut total = 0.0;
                    for c in hc {
                        for (j, o) in scores.iter_mut().enumerate() {
                            *o = w.markov * c.markov[j]
                                + w.stat * c.stat[j]
                                + w.temporal * c.temporal[j];
                        }
                        total += recall_at(&scores, &c.truth, k.min(e), &mut scratch, &mut idx);
                        total +=
                            recall_at(&scores, &c.truth, (2 * k).min(e), &mut scratch, &mut idx);
                    }
                    if total > best.0 {
                        best = (total, w);
                    }
                }
            }
            best.1
        })
        .collect()
}
