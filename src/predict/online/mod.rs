//! Online predictors: the count-based predictors (`static`, `markov`, `mix`, and the `learned`
//! model's markov feature) learning from the routing they serve.
//!
//! Each keeps [`DecayedCounts`] of the tokens observed so far (half-life
//! [`OnlineOptions::half_life`] tokens) and blends them with the offline prior it was built
//! with, the prior weighing as [`OnlineOptions::prior_weight`] pseudo-tokens:
//!
//! ```text
//! static(l, e)   = (c_l(e) + W q_l(e)) / (n + W)                 q: offline frequency (or k/E)
//! markov(b | a)  = (c_h(a -> b) + W P_h(b | a) + S static(l+h, b)) / (n_h(a) + W + S)
//! ```
//!
//! with `c`, `n` the decayed live counts, `P_h` the offline transitions and `S` = 1 the same
//! smoothing as offline. A cold-start predictor (no offline training) has `W = 0` in the
//! markov row and a weight-1 uniform prior in the static one. `mix` and `learned` keep their
//! offline weights and read the online markov instead of the offline one. [`tune`] chooses the
//! half-life and the prior weight by cross-validation on the training traces.

mod adapt;
mod counts;
mod tune;

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use adapt::Adapted;
pub use counts::DecayedCounts;
pub use tune::{HALF_LIVES, PRIOR_WEIGHTS, tune};

use super::{
    LearnedPredictor, MarkovPredictor, MixWeights, Predictor, RoutingView, StaticPredictor,
    TemporalPredictor,
};
use crate::trace::ModelShape;

/// [`OnlineOptions::head_lr`] unless given.
pub const HEAD_LR: f32 = 0.01;
/// Pseudo-count of the (online) static frequency in every markov row, as offline.
const SMOOTHING: f32 = 1.0;
/// Pseudo-tokens of the uniform prior of a cold-start static predictor.
const COLD_STATIC_WEIGHT: f32 = 1.0;

/// How live counts decay and weigh against the offline prior.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct OnlineOptions {
    /// Tokens after which an observed token weighs half as much (`null` in JSON: no decay).
    #[serde(with = "half_life_json")]
    pub half_life: f64,
    /// Weight of the offline prior, in pseudo-tokens (per markov row and per static layer).
    pub prior_weight: f32,
    /// Learning rate of the `learned` model's online output heads: after each observed token,
    /// one plain gradient step of the training loss (summed over the experts) at h = 1 on every layer's output head and
    /// bias (0: the heads stay as trained). Other predictors ignore it.
    #[serde(default = "default_head_lr")]
    pub head_lr: f32,
}

fn default_head_lr() -> f32 {
    OnlineOptions::DEFAULT.head_lr
}

impl OnlineOptions {
    /// Used when a predictor file has no cross-validated options (files written before online
    /// prediction, or `--predictor none`): the values [`tune`] chose on the ESFT tasks `intent`
    /// and `law` (the split holding `summary` out).
    pub const DEFAULT: OnlineOptions = OnlineOptions {
        half_life: 2000.0,
        prior_weight: 16.0,
        head_lr: HEAD_LR,
    };
}

/// `f64::INFINITY` as JSON `null`.
mod half_life_json {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        if v.is_finite() {
            s.serialize_f64(*v)
        } else {
            s.serialize_none()
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::INFINITY))
    }
}

/// Which predictor an [`OnlinePredictor`] is.
#[derive(Debug, Clone)]
enum Head {
    /// Per-layer frequency.
    Static,
    /// h-hop transitions.
    Markov,
    /// Weighted markov + static + temporal.
    Mix(Vec<MixWeights>),
    /// The offline MLP over the online markov, with its output heads adapting online when
    /// [`OnlineOptions::head_lr`] is positive.
    Learned(Arc<LearnedPredictor>, Option<Box<Adapted>>),
}

/// The offline models the live counts are blended with.
#[derive(Debug, Clone)]
struct Prior {
    stat: Arc<StaticPredictor>,
    markov: Arc<MarkovPredictor>,
}

/// A count-based predictor that keeps learning from [`Predictor::observe`].
#[derive(Debug, Clone)]
pub struct OnlinePredictor {
    head: Head,
    counts: DecayedCounts,
    prior: Option<Prior>,
    opts: OnlineOptions,
    lookahead: usize,
}

/// Mix weights of a cold-start `mix` (no training traces to cross-validate on): the weights
/// `predict train --kind mix` chooses at h = 1 on the ESFT tasks, rounded.
pub const COLD_MIX: MixWeights = MixWeights {
    markov: 0.8,
    stat: 0.0,
    temporal: 0.2,
};

impl OnlinePredictor {
    /// A cold-start predictor (`static`, `markov` or `mix`; `None` for other names) with no
    /// offline training.
    pub fn cold(
        name: &str,
        shape: ModelShape,
        lookahead: usize,
        opts: OnlineOptions,
    ) -> Option<OnlinePredictor> {
        let head = match name {
            "static" => Head::Static,
            "markov" => Head::Markov,
            "mix" => Head::Mix(vec![COLD_MIX; lookahead]),
            _ => return None,
        };
        Some(OnlinePredictor {
            head,
            counts: DecayedCounts::new(shape, lookahead, opts.half_life),
            prior: None,
            opts,
            lookahead,
        })
    }

    /// The online version of offline predictor `name` of a set (`static`, `markov`, `mix`,
    /// `learned`; `None` for others or when the set lacks it).
    pub fn from_set(
        set: &super::PredictorSet,
        name: &str,
        opts: OnlineOptions,
    ) -> Option<OnlinePredictor> {
        let head = match name {
            "static" => Head::Static,
            "markov" => Head::Markov,
            "mix" => Head::Mix(set.mix.as_ref()?.weights().to_vec()),
            "learned" => {
                let m = set.learned.clone()?;
                let a = (opts.head_lr > 0.0)
                    .then(|| Box::new(Adapted::new(&m, set.shape(), opts.head_lr)));
                Head::Learned(Arc::new(m), a)
            }
            _ => return None,
        };
        let d = set.lookahead();
        Some(OnlinePredictor {
            head,
            counts: DecayedCounts::new(*set.shape(), d, opts.half_life),
            prior: Some(Prior {
                stat: set.stat.clone(),
                markov: set.markov.clone(),
            }),
            opts,
            lookahead: d,
        })
    }

    /// The options in use.
    pub fn options(&self) -> OnlineOptions {
        self.opts
    }

    /// The live counts.
    pub fn counts(&self) -> &DecayedCounts {
        &self.counts
    }

    /// `out[e] += weight * static(target, e)`.
    #[inline]
    fn add_static(&self, target: usize, weight: f32, out: &mut [f32]) {
        let s = self.counts.scale();
        let n = self.counts.tokens();
        let live = self.counts.stat_layer(target);
        match &self.prior {
            Some(p) => {
                let w = self.opts.prior_weight;
                let c = weight / (n + w);
                for ((o, &x), &q) in out.iter_mut().zip(live).zip(p.stat.layer(target)) {
                    *o += c * (x * s + w * q);
                }
            }
            None => {
                let sh = self.counts.shape();
                let q = COLD_STATIC_WEIGHT * sh.top_k as f32 / sh.experts as f32;
                let c = weight / (n + COLD_STATIC_WEIGHT);
                for (o, &x) in out.iter_mut().zip(live) {
                    *o += c * (x * s + q);
                }
            }
        }
    }

    /// The online markov score (membership probabilities, summing to `top_k`).
    #[inline]
    fn markov(&self, view: &RoutingView<'_>, h: usize, out: &mut [f32]) {
        let l = view.layer;
        let cur = view.current_at(l);
        let inv_k = 1.0 / cur.len() as f32;
        let s = self.counts.scale();
        let w = if self.prior.is_some() {
            self.opts.prior_weight
        } else {
            0.0
        };
        let mut smooth = 0.0;
        for &a in cur {
            let n = self.counts.row_total(h, l, a as usize) * s;
            smooth += SMOOTHING * inv_k / (n + w + SMOOTHING);
        }
        out.fill(0.0);
        self.add_static(l + h, smooth, out);
        for &a in cur {
            let a = a as usize;
            let n = self.counts.row_total(h, l, a) * s;
            let c = inv_k / (n + w + SMOOTHING);
            let live = self.counts.row(h, l, a);
            match &self.prior {
                Some(p) => {
                    let (cs, cw) = (c * s, c * w);
                    for ((o, &x), &q) in out.iter_mut().zip(live).zip(p.markov.row(h, l, a)) {
                        *o += cs * x + cw * q;
                    }
                }
                None => {
                    let cs = c * s;
                    for (o, &x) in out.iter_mut().zip(live) {
                        *o += cs * x;
                    }
                }
            }
        }
    }
}

impl OnlinePredictor {
    /// One step of the adapted heads on every layer of an observed token (the live counts are
    /// still those it was predicted with).
    fn learn_heads(
        &self,
        m: &LearnedPredictor,
        a: &mut Adapted,
        experts: &[u16],
        previous: Option<&[u16]>,
    ) {
        let shape = *self.counts.shape();
        let k = shape.top_k;
        for l in 0..shape.moe_layers - 1 {
            let view = RoutingView {
                shape: &shape,
                layer: l,
                current: experts,
                current_weights: &[],
                previous,
            };
            let target = &experts[(l + 1) * k..(l + 2) * k];
            a.learn(m, &view, target, |o| self.markov(&view, 1, o));
        }
    }
}

impl Predictor for OnlinePredictor {
    fn name(&self) -> &str {
        match self.head {
            Head::Static => "static",
            Head::Markov => "markov",
            Head::Mix(_) => "mix",
            Head::Learned(..) => "learned",
        }
    }

    fn lookahead(&self) -> usize {
        self.lookahead
    }

    fn score(&self, view: &RoutingView<'_>, h: usize, out: &mut [f32]) {
        match &self.head {
            Head::Static => {
                out.fill(0.0);
                self.add_static(view.layer + h, 1.0, out);
            }
            Head::Markov => self.markov(view, h, out),
            Head::Mix(ws) => {
                let w = ws[h - 1];
                self.markov(view, h, out);
                for o in out.iter_mut() {
                    *o *= w.markov;
                }
                self.add_static(view.layer + h, w.stat, out);
                TemporalPredictor::add_into(view, view.layer + h, w.temporal, out);
            }
            Head::Learned(m, None) => m.score_with(view, h, out, |o| self.markov(view, h, o)),
            Head::Learned(m, Some(a)) => a.score(m, view, h, out, |o| self.markov(view, h, o)),
        }
    }

    fn observe(&mut self, experts: &[u16], previous: Option<&[u16]>) {
        if matches!(self.head, Head::Learned(_, Some(_))) {
            // Moved out of `self.head` for the step, which reads the live counts (before this
            // token is added to them) through `self.markov`; no copy is made.
            if let Head::Learned(m, Some(mut a)) = std::mem::replace(&mut self.head, Head::Static) {
                self.learn_heads(&m, &mut a, experts, previous);
                self.head = Head::Learned(m, Some(a));
            }
        }
        self.counts.observe(experts);
    }

    fn is_online(&self) -> bool {
        true
    }
}

/// The cold-start predictors (`static`, `temporal`, `markov`, `mix`), no offline training:
/// what `predict eval --predictor none --online` scores.
pub fn cold_set(
    shape: ModelShape,
    lookahead: usize,
    opts: OnlineOptions,
) -> Vec<Box<dyn Predictor>> {
    ["static", "temporal", "markov", "mix"]
        .into_iter()
        .map(|n| match OnlinePredictor::cold(n, shape, lookahead, opts) {
            Some(p) => Box::new(p) as Box<dyn Predictor>,
            None => Box::new(TemporalPredictor { lookahead }) as Box<dyn Predictor>,
        })
        .collect()
}
