//! Prequential (online) scoring: each token is predicted from the tokens before it, then its
//! routing updates the predictor ([`Predictor::observe`]).

use std::ops::Range;

use super::eval::{EVAL_JSON_VERSION, Recall};
use super::{EvalReport, Predictor};
use crate::trace::Trace;

/// recall@K of every predictor on `trace`, prequentially, in trace order: token `t` is scored
/// (every layer, h in `1..=lookahead`) by a predictor that has observed tokens `0..t`, then
/// observed. Only tokens in `scored` are scored (`warmup..tokens` skips a warm-up); tokens past
/// its end are not read at all.
pub fn evaluate_online(
    predictors: &mut [Box<dyn Predictor>],
    trace: &Trace,
    lookahead: usize,
    ks: &[usize],
    scored: Range<usize>,
) -> EvalReport {
    let end = scored.end.min(trace.num_tokens());
    let shape = *trace.shape();
    let out = predictors
        .iter_mut()
        .map(|p| {
            let mut r = Recall::new(p.as_ref(), &shape, lookahead, ks);
            for t in 0..end {
                if t >= scored.start {
                    r.add_token(p.as_ref(), trace, t);
                }
                p.observe(trace.token_experts(t), trace.prev_experts(t));
            }
            r.finish(p.name())
        })
        .collect();
    EvalReport {
        version: EVAL_JSON_VERSION,
        shape,
        tokens: trace.num_tokens(),
        ks: ks.to_vec(),
        online: true,
        warmup: scored.start,
        predictors: out,
    }
}

/// Mean of prequential recall@k and recall@2k at look-ahead 1 over every `stride`-th token of
/// `trace` (every token is observed): the cross-validation score of [`super::online::tune`].
pub fn prequential_recall(p: &mut dyn Predictor, trace: &Trace, stride: usize) -> f64 {
    let k = trace.shape().top_k;
    let mut r = Recall::new(p, trace.shape(), 1, &[k, 2 * k]);
    for t in 0..trace.num_tokens() {
        if t % stride.max(1) == 0 {
            r.add_token(p, trace, t);
        }
        p.observe(trace.token_experts(t), trace.prev_experts(t));
    }
    (r.mean(1, 0) + r.mean(1, 1)) / 2.0
}
