//! What the planner and the predictors take from the statistics: solver workloads, transition
//! matrices, and predictor sets trained without a trace.

use std::sync::Arc;

use moeplan_solver::Workload;

use super::{RoutingStats, StatsError, WorkloadStats};
use crate::predict::{
    Case, Kind, MarkovPredictor, MixPredictor, PredictorSet, RoutingView, StaticPredictor,
    TemporalPredictor, choose_weights,
};
use crate::rebalance::StreamWindow;
use crate::stats::Transitions;
use crate::trace::ModelShape;

impl WorkloadStats {
    /// The solver workload: loads, consecutive-layer pairs (all and top-1) and, with `windows`,
    /// the per-window loads as the batches of the layer-time proxy (windows 0..last, missing
    /// ones empty).
    pub fn solver_workload(&self, shape: &ModelShape, windows: bool) -> Workload {
        let f = |v: &[u64]| v.iter().map(|&c| c as f64).collect::<Vec<f64>>();
        let mut w = Workload::zeros(shape.moe_layers, shape.experts);
        w.tokens = self.tokens as usize;
        w.load = f(&self.load);
        w.pairs = f(&self.pairs[0]);
        w.pairs_top1 = f(&self.top1);
        if windows && let Some((&last, _)) = self.windows.last_key_value() {
            let n = shape.moe_layers * shape.experts;
            w.batch_load = vec![0.0; (last.max(0) as usize + 1) * n];
            for (&i, v) in &self.windows {
                let at = i.max(0) as usize * n;
                for (d, &c) in w.batch_load[at..at + n].iter_mut().zip(v) {
                    *d = c as f64;
                }
            }
        }
        w
    }

    /// The h-hop transition counts (as [`Transitions::count`] would count them on the trace).
    pub fn transitions(&self, shape: &ModelShape, h: usize) -> Result<Transitions, StatsError> {
        let counts = self.pairs[h - 1]
            .iter()
            .map(|&c| {
                u32::try_from(c).map_err(|_| {
                    StatsError::Invalid(format!(
                        "a {h}-hop pair count ({c}) exceeds the predictor's 32-bit counters"
                    ))
                })
            })
            .collect::<Result<Vec<u32>, _>>()?;
        Ok(Transitions {
            hops: h,
            layers: shape.moe_layers,
            experts: shape.experts,
            top_k: shape.top_k,
            counts,
        })
    }

    /// The static and markov predictors fitted on these counts, look-ahead 1..=`d`.
    fn fit(
        &self,
        shape: &ModelShape,
        d: usize,
    ) -> Result<(StaticPredictor, MarkovPredictor), StatsError> {
        let stat = StaticPredictor::from_counts(*shape, d, &self.load, self.tokens as usize);
        let tr = (1..=d)
            .map(|h| self.transitions(shape, h))
            .collect::<Result<Vec<_>, _>>()?;
        let markov = MarkovPredictor::from_transitions(*shape, &tr, &stat);
        Ok((stat, markov))
    }
}

impl RoutingStats {
    /// Checks that the statistics are of `model`'s routing shape (layers, experts, top-k).
    pub fn check_model(&self, model: &crate::config::ModelConfig) -> Result<(), StatsError> {
        let s = self.shape;
        if (s.moe_layers, s.experts, s.top_k) != (model.moe_layers, model.experts, model.top_k) {
            return Err(StatsError::Mismatch(format!(
                "statistics of {} MoE layers x {} experts (top-{}), model `{}` has {} x {} (top-{})",
                s.moe_layers,
                s.experts,
                s.top_k,
                model.name,
                model.moe_layers,
                model.experts,
                model.top_k
            )));
        }
        Ok(())
    }

    /// Trains a predictor of `kind` (static, markov or mix) with look-ahead `d` from the
    /// statistics alone: the same predictor `predict train` fits on the traces the statistics
    /// were aggregated from, one cross-validation fold per workload (mix needs two or more).
    pub fn train(&self, kind: Kind, d: usize) -> Result<PredictorSet, StatsError> {
        let shape = self.shape;
        if d == 0 || d > self.hops {
            return Err(StatsError::Invalid(format!(
                "look-ahead {d} outside 1..={} (the statistics hold pair counts up to {} hops; \
                 aggregate with a larger --hops)",
                self.hops, self.hops
            )));
        }
        if self.tokens() < 2 {
            return Err(StatsError::Invalid(
                "training needs at least two tokens".into(),
            ));
        }
        let (stat, markov) = self.sum_except(None).fit(&shape, d)?;
        let (stat, markov) = (Arc::new(stat), Arc::new(markov));
        let mix = match kind {
            Kind::Static | Kind::Markov => None,
            Kind::Learned => {
                return Err(StatsError::Invalid(
                    "the learned predictor trains on token-level routing, which statistics do \
                     not hold: train it on traces (-t), e.g. a sample of the fleet's logs, or \
                     choose --kind static, markov or mix"
                        .into(),
                ));
            }
            Kind::Mix => Some(MixPredictor::new(
                stat.clone(),
                markov.clone(),
                self.fit_mix(d)?,
            )),
        };
        Ok(PredictorSet {
            kind,
            trained_tokens: self.tokens() as usize,
            stat,
            temporal: TemporalPredictor { lookahead: d },
            markov,
            mix,
            learned: None,
            // The online half-life and prior weight are cross-validated on token order, which
            // statistics do not keep: files trained from statistics use the defaults.
            online: None,
        })
    }

    /// The mix weights by cross-validation over the workloads: fit on the others' counts, score
    /// on the held-out workload's sampled cases.
    fn fit_mix(&self, d: usize) -> Result<Vec<crate::predict::MixWeights>, StatsError> {
        if self.workloads.len() < 2 {
            return Err(StatsError::Invalid(format!(
                "mix cross-validates over workloads and these statistics hold {}: aggregate two \
                 or more traces (one workload each)",
                self.workloads.len()
            )));
        }
        let shape = self.shape;
        let (l, k) = (shape.moe_layers, shape.top_k);
        let mut cases: Vec<Vec<Case>> = (0..d).map(|_| Vec::new()).collect();
        let mut cur = vec![0u16; l * k];
        let mut prev = vec![0u16; l * k];
        for (name, held) in &self.workloads {
            let (stat, markov) = self.sum_except(Some(name)).fit(&shape, d)?;
            for (&(h, _, layer), c) in &held.cases {
                if h > d {
                    continue;
                }
                cur[layer * k..(layer + 1) * k].copy_from_slice(&c.cur);
                let has_prev = !c.prev.is_empty();
                if has_prev {
                    prev[(layer + h) * k..(layer + h + 1) * k].copy_from_slice(&c.prev);
                }
                let view = RoutingView {
                    shape: &shape,
                    layer,
                    current: &cur,
                    current_weights: &[],
                    previous: has_prev.then_some(prev.as_slice()),
                };
                cases[h - 1].push(Case::score(&view, h, &markov, &stat, &c.truth));
            }
        }
        Ok(choose_weights(&cases, &shape))
    }
}

/// The stream of `moeplan rebalance --stats`: every workload in label order, each one's windows
/// in index order, with their loads and consecutive-layer pairs. The statistics must hold the
/// per-window pairs and have windows of `window` tokens, and match `model`'s shape.
pub fn stats_windows(
    stats: &RoutingStats,
    model: &crate::config::ModelConfig,
    window: usize,
) -> Result<Vec<StreamWindow>, StatsError> {
    stats.check_model(model)?;
    let s = stats.shape;
    if stats.window_tokens != window as u64 {
        return Err(StatsError::Mismatch(format!(
            "the statistics have windows of {} tokens, --window is {window}: aggregate with \
             --window {window} or re-balance with --window {}",
            stats.window_tokens, stats.window_tokens
        )));
    }
    if !stats.has_window_pairs() {
        return Err(StatsError::Invalid(
            "no per-window pair counts (re-balancing scores hops window by window): aggregate \
             with `moeplan trace aggregate --window-pairs`"
                .into(),
        ));
    }
    let (l, e, k) = (s.moe_layers, s.experts, s.top_k.max(1));
    let mut out = Vec::new();
    let mut start = 0;
    for (name, w) in &stats.workloads {
        if w.windows.is_empty() && w.tokens > 0 {
            return Err(StatsError::Invalid(format!(
                "workload `{name}` has {} tokens and no per-window counts",
                w.tokens
            )));
        }
        for (id, load) in &w.windows {
            let pairs = w.window_pairs.get(id).ok_or_else(|| {
                StatsError::Invalid(format!(
                    "workload `{name}`: window {id} has loads but no pair counts"
                ))
            })?;
            let mut wl = Workload::zeros(l, e);
            wl.tokens = (load[..e].iter().sum::<u64>() / k as u64) as usize;
            wl.load = load.iter().map(|&c| c as f64).collect();
            wl.pairs = pairs.iter().map(|&c| c as f64).collect();
            let tokens = wl.tokens;
            out.push(StreamWindow {
                start,
                workload: wl,
            });
            start += tokens;
        }
    }
    Ok(out)
}
