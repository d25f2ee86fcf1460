//! The `learned` predictor: a small MLP over the token's recent routing, the previous token's
//! routing and a (layer, look-ahead) embedding, on top of the markov log-probabilities.
//!
//! ```text
//! logit[e'] = W_out[l+h] · relu(b1 + Σ_f w_f · Emb[row_f]) + b_out[l+h][e']
//!           + α_h · ln(markov[e'] + ε) + β_h · temporal[e']
//! ```
//! where the rows are listed by [`features`], `W_out[l+h]` is the output head of the target layer
//! and `temporal` marks the previous token's experts at l+h (as [`TemporalPredictor`]). Training is in [`train`] (candle, AdamW, BCE); inference here
//! is plain Rust with no allocation.

mod bag;
pub mod features;
mod train;

use std::path::Path;
use std::sync::Arc;

pub use train::{EpochReport, TrainOptions, TrainReport, train};

use super::file::{self, Tensors};
use super::{MarkovPredictor, PredictError, Predictor, RoutingView, TemporalPredictor};

/// Largest hidden width inference supports (its scratch lives on the stack).
pub const MAX_HIDDEN: usize = 512;
/// ε of the markov log-probability feature.
pub const MARKOV_EPS: f32 = 1e-3;

/// A trained MLP predictor.
#[derive(Debug, Clone)]
pub struct LearnedPredictor {
    /// Markov matrices fitted on all training data (the feature at inference).
    pub(crate) markov: Arc<MarkovPredictor>,
    /// Largest look-ahead.
    pub(crate) lookahead: usize,
    /// Hidden width.
    pub(crate) hidden: usize,
    /// Embedding table, `[features::rows][hidden]`.
    pub(crate) emb: Vec<f32>,
    /// Hidden bias, `[hidden]`.
    pub(crate) b1: Vec<f32>,
    /// Output heads, one per target layer, `[moe_layers][hidden][experts]`.
    pub(crate) w_out: Vec<f32>,
    /// Output bias per target layer, `[moe_layers][experts]`.
    pub(crate) b_out: Vec<f32>,
    /// Per look-ahead, the weights of the markov log-probability and of the temporal indicator,
    /// `[lookahead][2]`.
    pub(crate) alpha: Vec<f32>,
}

impl LearnedPredictor {
    /// Hidden width.
    pub fn hidden(&self) -> usize {
        self.hidden
    }

    /// Expected tensor shapes, by name.
    fn shapes(&self) -> [(&'static str, Vec<usize>); 5] {
        shapes(self.markov.shape(), self.lookahead, self.hidden)
    }

    /// The tensors to save.
    pub(crate) fn tensors(&self) -> Vec<(String, Vec<usize>, &[f32])> {
        let data: [&[f32]; 5] = [&self.emb, &self.b1, &self.w_out, &self.b_out, &self.alpha];
        self.shapes()
            .into_iter()
            .zip(data)
            .map(|((n, s), d)| (n.to_string(), s, d))
            .collect()
    }

    /// Rebuilds a model from loaded tensors, checking their shapes.
    pub(crate) fn from_tensors(
        path: &Path,
        t: &mut Tensors,
        markov: Arc<MarkovPredictor>,
        hidden: usize,
    ) -> Result<LearnedPredictor, PredictError> {
        if hidden == 0 || hidden > MAX_HIDDEN {
            return Err(PredictError::BadFile {
                path: path.to_path_buf(),
                reason: format!("hidden width {hidden} outside 1..={MAX_HIDDEN}"),
            });
        }
        let lookahead = markov.lookahead();
        let [a, b, c, d, e] = shapes(markov.shape(), lookahead, hidden);
        Ok(LearnedPredictor {
            emb: file::take(path, t, a.0, &a.1)?,
            b1: file::take(path, t, b.0, &b.1)?,
            w_out: file::take(path, t, c.0, &c.1)?,
            b_out: file::take(path, t, d.0, &d.1)?,
            alpha: file::take(path, t, e.0, &e.1)?,
            markov,
            lookahead,
            hidden,
        })
    }
}

/// Natural logarithm of a positive normal `x`, to about 1e-4 (exponent from the bits, a
/// polynomial for the mantissa): several times cheaper than `f32::ln` and the same in training
/// and inference.
#[inline]
pub fn ln_approx(x: f32) -> f32 {
    let bits = x.to_bits();
    let exp = ((bits >> 23) & 0xff) as i32 - 127;
    // Mantissa in [1, 2), recentred to [sqrt(1/2), sqrt(2)) for a better fit.
    let mut m = f32::from_bits((bits & 0x007f_ffff) | 0x3f80_0000);
    let mut e = exp as f32;
    if m > std::f32::consts::SQRT_2 {
        m *= 0.5;
        e += 1.0;
    }
    // ln(m) = 2 atanh(z), z = (m - 1) / (m + 1), |z| < 0.172.
    let z = (m - 1.0) / (m + 1.0);
    let z2 = z * z;
    let p = 2.0 * z * (1.0 + z2 * (1.0 / 3.0 + z2 * (0.2 + z2 * (1.0 / 7.0))));
    p + e * std::f32::consts::LN_2
}

fn shapes(
    s: &crate::trace::ModelShape,
    lookahead: usize,
    hidden: usize,
) -> [(&'static str, Vec<usize>); 5] {
    [
        ("learned.emb", vec![features::rows(s, lookahead), hidden]),
        ("learned.b1", vec![hidden]),
        ("learned.w_out", vec![s.moe_layers, hidden, s.experts]),
        ("learned.b_out", vec![s.moe_layers, s.experts]),
        ("learned.alpha", vec![lookahead, 2]),
    ]
}

impl Predictor for LearnedPredictor {
    fn name(&self) -> &str {
        "learned"
    }

    fn lookahead(&self) -> usize {
        self.lookahead
    }

    fn score(&self, view: &RoutingView<'_>, h: usize, out: &mut [f32]) {
        self.score_with(view, h, out, |o| self.markov.score(view, h, o));
    }
}

impl LearnedPredictor {
    /// The score with the markov feature written into `out` by `markov` (the offline matrices
    /// in [`Predictor::score`], live counts in an online predictor).
    #[inline]
    pub fn score_with(
        &self,
        view: &RoutingView<'_>,
        h: usize,
        out: &mut [f32],
        markov: impl FnOnce(&mut [f32]),
    ) {
        let mut buf = [0f32; MAX_HIDDEN];
        let hid = &mut buf[..self.hidden];
        self.hidden_into(view, h, hid);
        self.logits_into(view, h, hid, self.heads(), out, markov);
    }

    /// The trained output heads and biases.
    pub fn heads(&self) -> Heads<'_> {
        Heads {
            w_out: &self.w_out,
            b_out: &self.b_out,
        }
    }

    /// The hidden layer of case (`view`, `h`) into `hid` (length [`LearnedPredictor::hidden`]),
    /// after the ReLU.
    #[inline]
    pub fn hidden_into(&self, view: &RoutingView<'_>, h: usize, hid: &mut [f32]) {
        let hd = self.hidden;
        hid.copy_from_slice(&self.b1);
        features::for_each(view, h, self.lookahead, |row, w| {
            if w != 0.0 {
                for (x, &v) in hid.iter_mut().zip(&self.emb[row * hd..(row + 1) * hd]) {
                    *x += w * v;
                }
            }
        });
        for x in hid.iter_mut() {
            *x = x.max(0.0);
        }
    }

    /// The logits of case (`view`, `h`) from its hidden layer `hid` through `heads`, with the
    /// markov feature written into `out` by `markov`.
    #[inline]
    pub fn logits_into(
        &self,
        view: &RoutingView<'_>,
        h: usize,
        hid: &[f32],
        heads: Heads<'_>,
        out: &mut [f32],
        markov: impl FnOnce(&mut [f32]),
    ) {
        let (hd, e) = (self.hidden, view.shape.experts);
        markov(out);
        let (alpha, beta) = (self.alpha[2 * (h - 1)], self.alpha[2 * (h - 1) + 1]);
        let target = view.layer + h;
        let bias = &heads.b_out[target * e..(target + 1) * e];
        for (o, &b) in out.iter_mut().zip(bias) {
            *o = alpha * ln_approx(*o + MARKOV_EPS) + b;
        }
        TemporalPredictor::add_into(view, target, beta, out);
        let head = &heads.w_out[target * hd * e..(target + 1) * hd * e];
        for (&x, w) in hid.iter().zip(head.chunks_exact(e)) {
            if x > 0.0 {
                for (o, &w) in out.iter_mut().zip(w) {
                    *o += x * w;
                }
            }
        }
    }
}

/// Output heads `[moe_layers][hidden][experts]` and biases `[moe_layers][experts]`: the trained
/// ones, or an online predictor's adapted copies.
#[derive(Debug, Clone, Copy)]
pub struct Heads<'a> {
    /// Output heads.
    pub w_out: &'a [f32],
    /// Output biases.
    pub b_out: &'a [f32],
}

#[cfg(test)]
mod tests {
    use super::ln_approx;

    #[test]
    fn ln_approx_matches_ln() {
        let mut x = 1e-4f32;
        while x < 100.0 {
            let (a, b) = (ln_approx(x), x.ln());
            assert!((a - b).abs() < 1e-5, "x={x}: {a} vs {b}");
            x *= 1.013;
        }
    }
}
