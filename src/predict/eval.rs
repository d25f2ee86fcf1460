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
    /// Tokens scored.
    pub tokens: usize,
    /// The K values (k and 2k by default).
    pub ks: Vec<usize>,
    /// One entry per predictor, in the order given.
    pub predictors: Vec<PredictorRecall>,
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

/// Scores every predictor on every (token, layer, h) of `trace` for h in `1..=lookahead` (capped
/// by each predictor's own look-ahead) and K in `ks`.
pub fn evaluate(
    predictors: &[&dyn Predictor],
    trace: &Trace,
    lookahead: usize,
    ks: &[usize],
) -> EvalReport {
    let shape = *trace.shape();
    let (layers, e) = (shape.moe_layers, shape.experts);
    let kmax = ks.iter().copied().max().unwrap_or(0).min(e);
    let mut scores = vec![0f32; e];
    let mut scratch = vec![0u16; e];
    let mut idx = vec![0u16; kmax];
    let mut out = Vec::with_capacity(predictors.len());
    for p in predictors {
        let d = lookahead.min(p.lookahead()).min(layers.saturating_sub(1));
        // sums[h - 1][K index], cases[h - 1]
        let mut sums = vec![vec![0f64; ks.len()]; d];
        let mut cases = vec![0u64; d];
        for t in 0..trace.num_tokens() {
            for l in 0..layers {
                let view = RoutingView::from_trace(trace, t, l);
                for h in 1..=d.min(layers - 1 - l) {
                    p.score(&view, h, &mut scores);
                    let truth = trace.experts(t, l + h);
                    for (s, &k) in sums[h - 1].iter_mut().zip(ks) {
                        *s += recall_at(&scores, truth, k.min(e), &mut scratch, &mut idx);
                    }
                    cases[h - 1] += 1;
                }
            }
        }
        let recall = (1..=d)
            .map(|h| {
                let c = cases[h - 1].max(1) as f64;
                let by_k = ks
                    .iter()
                    .zip(&sums[h - 1])
                    .map(|(&k, &s)| (k, s / c))
                    .collect();
                (h, by_k)
            })
            .collect();
        out.push(PredictorRecall {
            name: p.name().to_string(),
            recall,
        });
    }
    EvalReport {
        version: EVAL_JSON_VERSION,
        shape,
        tokens: trace.num_tokens(),
        ks: ks.to_vec(),
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
