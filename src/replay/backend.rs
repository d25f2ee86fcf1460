//! What the replay loop drives: one device's expert cache behind [`CacheBackend`], either the
//! cache core in this process ([`InProcess`]) or a daemon session over a socket
//! ([`crate::daemon::client::replay::DaemonSession`]). One loop ([`super::simulate_on`]) times
//! both, so a daemon replays exactly what the in-process replay simulates.

use super::sim::PrefetchOptions;
use super::timing::TimingModel;
use crate::cache::{CacheError, ExpertCache, Load, Policy, StepPlan};
use crate::predict::{Predictor, RoutingView};
use crate::trace::Trace;

/// One layer of one step, as the loop hands it to the backend.
#[derive(Debug, Clone, Copy)]
pub struct LayerStep<'a> {
    /// The trace replayed.
    pub trace: &'a Trace,
    /// The step's tokens (indices into `trace`).
    pub tokens: &'a [u32],
    /// MoE layer.
    pub layer: usize,
    /// The distinct experts the step's tokens select at `layer`, in first-use order.
    pub experts: &'a [u16],
    /// The loop's clock: when the layer's gate has run, ms.
    pub now: f64,
    /// When the link finishes the transfers committed so far, ms.
    pub link_free_at: f64,
    /// Timing constants.
    pub timing: &'a TimingModel,
}

/// A device's expert cache as the replay loop sees it.
pub trait CacheBackend {
    /// Why a request failed.
    type Error;

    /// Slots of the device (slot ids are below this).
    fn total_slots(&self) -> usize;

    /// Most prefetches [`CacheBackend::issue_prefetches`] could issue now (0: none queued;
    /// `usize::MAX`: unknown, as many as the link has room for).
    fn prefetch_bound(&self) -> usize;

    /// Whether steps queue prefetches for the next layers (the loop then starts them no
    /// earlier than the step that queued them).
    fn hints(&self) -> bool;

    /// The oldest `n` transfers in flight finished (transfers finish in link order); `last`
    /// (layer, expert) is the last of them.
    fn complete(&mut self, n: usize, last: (u16, u16)) -> Result<(), Self::Error>;

    /// Issues up to `max` queued prefetches into `out`, in link order.
    fn issue_prefetches(&mut self, max: usize, out: &mut Vec<Load>) -> Result<(), Self::Error>;

    /// Runs a layer's step into `plan` (and queues the prefetches it hints); returns the CPU time
    /// of the misses run on the CPU instead of moved, ms.
    fn step(&mut self, s: &LayerStep<'_>, plan: &mut StepPlan) -> Result<f64, Self::Error>;

    /// The layer's compute finished: its experts are unpinned.
    fn release(&mut self, layer: usize);

    /// Every layer of the step over `tokens` ran (an online predictor learns their routing).
    fn step_done(&mut self, _trace: &Trace, _tokens: &[u32]) {}
}

/// The cache core in this process, with the predictor that hints its prefetches.
pub struct InProcess<'a, P: Policy> {
    /// The cache.
    cache: &'a mut ExpertCache<P>,
    /// Scores the next layers after each step (`predictive`).
    predictor: Option<(&'a mut dyn Predictor, PrefetchOptions)>,
    /// Scratch: the misses of a step run on the CPU.
    on_cpu: Vec<u16>,
    /// Scratch: summed predictor scores of a layer.
    scores: Vec<f32>,
    /// Scratch: one token's predictor scores.
    tmp: Vec<f32>,
}

impl<'a, P: Policy> InProcess<'a, P> {
    /// `cache`, hinted by `predictor` if given.
    pub fn new(
        cache: &'a mut ExpertCache<P>,
        predictor: Option<(&'a mut dyn Predictor, PrefetchOptions)>,
    ) -> Self {
        let experts = cache.config().experts;
        InProcess {
            cache,
            predictor,
            on_cpu: Vec::with_capacity(experts),
            scores: vec![0.0; experts],
            tmp: vec![0.0; experts],
        }
    }

    /// With CPU offload: the misses of `s` that finish sooner on the CPU than over the link
    /// (into `self.on_cpu`); returns their CPU time, ms.
    fn offload(&mut self, s: &LayerStep<'_>) -> f64 {
        let (timing, l) = (s.timing, s.layer);
        let mut cpu_ms = 0.0;
        self.on_cpu.clear();
        if !timing.cpu_offload {
            return cpu_ms;
        }
        let mut free = s.link_free_at.max(s.now);
        for &e in s.experts {
            if self.cache.residency(l, e).is_some() {
                continue;
            }
            let users = s
                .tokens
                .iter()
                .filter(|&&tk| s.trace.experts(tk as usize, l).contains(&e))
                .count();
            let cpu = timing.cpu_expert_ms * users as f64;
            if cpu_ms + cpu < free + timing.transfer_ms - s.now {
                cpu_ms += cpu;
                self.on_cpu.push(e);
            } else {
                free += timing.transfer_ms;
            }
        }
        cpu_ms
    }
}

impl<P: Policy> CacheBackend for InProcess<'_, P> {
    type Error = CacheError;

    fn total_slots(&self) -> usize {
        self.cache.config().total_slots()
    }

    fn prefetch_bound(&self) -> usize {
        self.cache.queued()
    }

    fn hints(&self) -> bool {
        self.predictor.is_some()
    }

    fn complete(&mut self, n: usize, _last: (u16, u16)) -> Result<(), CacheError> {
        for _ in 0..n {
            self.cache.complete_next();
        }
        Ok(())
    }

    fn issue_prefetches(&mut self, max: usize, out: &mut Vec<Load>) -> Result<(), CacheError> {
        out.extend(std::iter::from_fn(|| self.cache.issue_prefetch()).take(max));
        Ok(())
    }

    fn step(&mut self, s: &LayerStep<'_>, plan: &mut StepPlan) -> Result<f64, CacheError> {
        let cpu_ms = self.offload(s);
        let l = s.layer;
        self.cache.step_with_cpu(l, s.experts, &self.on_cpu, plan)?;
        // Predictions for the next layers, queued now (they overlap this layer's compute).
        if let Some((pred, opts)) = &self.predictor {
            let (pred, opts) = (&**pred, *opts);
            let layers = s.trace.shape().moe_layers;
            for h in 1..=opts.lookahead.min(pred.lookahead()) {
                if l + h >= layers {
                    break;
                }
                self.scores.fill(0.0);
                for &tk in s.tokens {
                    let view = RoutingView::from_trace(s.trace, tk as usize, l);
                    pred.score(&view, h, &mut self.tmp);
                    for (a, &x) in self.scores.iter_mut().zip(&self.tmp) {
                        *a += x;
                    }
                }
                self.cache.hint(l + h, h, &self.scores, opts.top_n)?;
            }
        }
        Ok(cpu_ms)
    }

    fn release(&mut self, layer: usize) {
        self.cache.release(layer);
    }

    fn step_done(&mut self, trace: &Trace, tokens: &[u32]) {
        if let Some((pred, _)) = &mut self.predictor
            && pred.is_online()
        {
            for &tk in tokens {
                pred.observe(
                    trace.token_experts(tk as usize),
                    trace.prev_experts(tk as usize),
                );
            }
        }
    }
}
