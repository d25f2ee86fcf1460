//! recall@K: |predicted top-K ∩ true top-k| / k for layer l+h, predicted when layer l is routed,
//! averaged over every token and every layer l with l + h < moe_layers.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{Predictor, RoutingView, top_k_into};
use crate::trace::{ModelShape, Trace};

/// Version of the `predict eval --json` document.
pub const EVAL_JSON_VERSION: u32 = 1;

/// The recall of one predictor.
#[derive(Debug, Clone, Serialize)]
pub struct PredictorRecall {
    /// Predictor name (`static`, `markov`, `temporal`, `mix`, `learned`).
    pub name: String,
    /// `recall[h][K]`: mean recall@K at look-ahead h (keys are numbers written as JSON strings).
    pub recall: BTreeMap<usize, BTreeMap<usize, f64>>,
}

/// Recall of several predictors on one trace (the `predict eval --json` document).
#[derive(Debug, Clone, Serialize)]
pub struct EvalReport {
    /// Document version ([`EVAL_JSON_VERSION`]).
    pub version: u32,
    /// Routing shape of the trace.
    pub shape: ModelShape,
    /// Tokens of the trace (an online evaluation scores those after `warmup`).
    pub tokens: usize,
    /// The K values (k and 2k by default).
    pub ks: Vec<usize>,
    /// Scored prequentially (`predict eval --online`): each token predicted from the tokens
    /// before it, then observed. Written only when true.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub online: bool,
    /// Tokens observed but not scored at the start of an online evaluation (written when online).
    #[serde(skip_serializing_if = "is_offline_warmup")]
    pub warmup: usize,
    /// One entry per predictor, in the order given.
    pub predictors: Vec<PredictorRecall>,
}

fn is_offline_warmup(w: &usize) -> bool {
    *w == 0
}

/// recall@K of one score vector against the true experts `truth`; `scratch` needs
/// `scores.len()` entries and `idx` at least `k_pred` entries.
pub fn recall_at(
    scores: &[f32],
    truth: &[u16],
    k_pred: usize,
    scratch: &mut [u16],
    idx: &mut [u16],
) -> f64 {
    let n = top_k_into(scores, scratch, &mut idx[..k_pred]);
    let hits = truth.iter().filter(|e| idx[..n].contains(e)).count();
    hits as f64 / truth.len() as f64
}

/// Running recall sums of one predictor over the tokens scored so far.
pub(super) struct Recall {
    /// Look-aheads scored (`1..=d`).
    d: usize,
    /// `sums[h - 1][K index]`.
    sums: Vec<Vec<f64>>,
    /// `cases[h - 1]`.
    cases: Vec<u64>,
    ks: Vec<usize>,
    scores: Vec<f32>,
    scratch: Vec<u16>,
    idx: Vec<u16>,
}

impl Recall {
    /// Empty sums for `p` on traces of `shape`, h in `1..=lookahead` (capped by `p`'s own).
    pub(super) fn new(
        p: &dyn Predictor,
        shape: &ModelShape,
        lookahead: usize,
        ks: &[usize],
    ) -> Recall {
        let (layers, e) = (shape.moe_layers, shape.experts);
        let d = lookahead.min(p.lookahead()).min(layers.saturating_sub(1));
        let kmax = ks.iter().copied().max().unwrap_or(0).min(e);
        Recall {
            d,
            sums: vec![vec![0f64; ks.len()]; d],
            cases: vec![0u64; d],
            ks: ks.to_vec(),
            scores: vec![0f32; e],
            scratch: vec![0u16; e],
            idx: vec![0u16; kmax],
        }
    }

    /// Scores token `t` of `trace` at every layer and look-ahead.
    pub(super) fn add_token(&mut self, p: &dyn Predictor, trace: &Trace, t: usize) {
        let shape = trace.shape();
        let (layers, e) = (shape.moe_layers, shape.experts);
        for l in 0..layers {
            let view = RoutingView::from_trace(trace, t, l);
            for h in 1..=self.d.min(layers - 1 - l) {
                p.score(&view, h, &mut self.scores);
                let truth = trace.experts(t, l + h);
                for (s, &k) in self.sums[h - 1].iter_mut().zip(&self.ks) {
                    *s += recall_at(
                        &self.scores,
                        truth,
                        k.min(e),
                        &mut self.scratch,
                        &mut self.idx,
                    );
                }
                self.cases[h - 1] += 1;
            }
        }
    }

    /// Mean recall at look-ahead `h` for the `i`-th K.
    pub(super) fn mean(&self, h: usize, i: usize) -> f64 {
        self.sums[h - 1][i] / self.cases[h - 1].max(1) as f64
    }

    /// The figures under `name`.
    pub(super) fn finish(&self, name: &str) -> PredictorRecall {
        let recall = (1..=self.d)
            .map(|h| {
                let by_k = self
                    .ks
                    .iter()
                    .enumerate()
                    .map(|(i, &k)| (k, self.mean(h, i)))
                    .collect();
                (h, by_k)
            })
            .collect();
        PredictorRecall {
            name: name.to_string(),
            recall,
        }
    }
}

/// Scores every predictor on every (token, layer, h) of `trace` for h in `1..=lookahead` (capped
/// by each predictor's own look-ahead) and K in `ks`.
pub fn evaluate(
    predictors: &[&dyn Predictor],
    trace: &Trace,
    lookahead: usize,
    ks: &[usize],
) -> EvalReport {
    let shape = *trace.shape();
    let out = predictors
        .iter()
        .map(|&p| {
            let mut r = Recall::new(p, &shape, lookahead, ks);
            for t in 0..trace.num_tokens() {
                r.add_token(p, trace, t);
            }
            r.finish(p.name())
        })
        .collect();
    EvalReport {
        version: EVAL_JSON_VERSION,
        shape,
        tokens: trace.num_tokens(),
        ks: ks.to_vec(),
        online: false,
        warmup: 0,
        predictors: out,
    }
}

impl EvalReport {
    /// A plain-text table: one row per predictor, one column per (h, K).
    pub fn render(&self) -> String {
        let hs: Vec<usize> = self
            .predictors
            .iter()
            .flat_map(|p| p.recall.keys().copied())
            .max()
            .map_or(Vec::new(), |d| (1..=d).collect());
        let mut s = format!("{:<10}", "predictor");
        for h in &hs {
            for k in &self.ks {
                s += &format!(" {:>9}", format!("h{h}@{k}"));
            }
        }
        s.push('\n');
        for p in &self.predictors {
            s += &format!("{:<10}", p.name);
            for h in &hs {
                for k in &self.ks {
                    match p.recall.get(h).and_then(|m| m.get(k)) {
                        Some(r) => s += &format!(" {r:>9.3}"),
                        None => s += &format!(" {:>9}", "-"),
                    }
                }
            }
            s.push('\n');
        }
        s
    }
}
