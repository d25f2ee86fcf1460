//! [`Local`]: the cache core in-process, with the replay's policies and its predictor hints.

use super::side::{CacheSide, Counts, LayerPlan, Move};
use crate::cache::{ExpertCache, Policy, StepPlan};
use crate::predict::{Predictor, RoutingView};
use crate::replay::PrefetchOptions;
use crate::trace::Trace;

/// The in-process cache.
pub struct Local<'a> {
    /// The cache core.
    cache: ExpertCache<Box<dyn Policy>>,
    /// Hints for the next layers, when given.
    predictor: Option<(&'a dyn Predictor, PrefetchOptions)>,
    /// The step's answer (reused).
    plan: StepPlan,
    /// Scratch: summed scores, one token's scores.
    scores: (Vec<f32>, Vec<f32>),
}

impl<'a> Local<'a> {
    /// Wraps `cache`; `predictor` queues prefetches as the replay does.
    pub fn new(
        cache: ExpertCache<Box<dyn Policy>>,
        predictor: Option<(&'a dyn Predictor, PrefetchOptions)>,
    ) -> Self {
        let e = cache.config().experts;
        Local {
            cache,
            predictor,
            plan: StepPlan::default(),
            scores: (vec![0.0; e], vec![0.0; e]),
        }
    }
}

impl CacheSide for Local<'_> {
    fn step(
        &mut self,
        l: usize,
        experts: &[u16],
        toks: &[u32],
        trace: &Trace,
        plan: &mut LayerPlan,
    ) -> anyhow::Result<()> {
        self.cache.step(l, experts, &mut self.plan)?;
        plan.experts.clear();
        plan.experts
            .extend(self.plan.placements.iter().map(|p| (p.expert, p.slot)));
        plan.loads.clear();
        plan.loads.extend(self.plan.loads.iter().map(|ld| Move {
            layer: ld.layer,
            expert: ld.expert,
            slot: ld.slot,
            evicts: ld.evicted.is_some(),
        }));
        // The same hints as the replay's (`replay::simulate`, step 4).
        if let Some((pred, opts)) = self.predictor {
            let layers = self.cache.config().layers;
            let (scores, tmp) = &mut self.scores;
            for h in 1..=opts.lookahead.min(pred.lookahead()) {
                if l + h >= layers {
                    break;
                }
                scores.fill(0.0);
                for &tk in toks {
                    pred.score(&RoutingView::from_trace(trace, tk as usize, l), h, tmp);
                    for (s, &x) in scores.iter_mut().zip(tmp.iter()) {
                        *s += x;
                    }
                }
                self.cache.hint(l + h, h, scores, opts.top_n)?;
            }
        }
        Ok(())
    }

    fn landed(&mut self) -> anyhow::Result<()> {
        self.cache.loaded_all();
        Ok(())
    }

    fn release(&mut self, l: usize, issue: bool, out: &mut Vec<Move>) -> anyhow::Result<()> {
        self.cache.release(l);
        out.clear();
        while issue && let Some(ld) = self.cache.issue_prefetch() {
            out.push(Move {
                layer: ld.layer,
                expert: ld.expert,
                slot: ld.slot,
                evicts: ld.evicted.is_some(),
            });
        }
        Ok(())
    }

    fn finish(&mut self) -> anyhow::Result<Counts> {
        let s = self.cache.stats();
        Ok(Counts {
            demands: s.demands,
            hits: s.hits,
            loads: s.loads(),
            prefetch_loads: s.prefetch_loads,
        })
    }
}
