//! The replay loop: steps through one device's cache layer by layer, on the timing model. The
//! cache is any [`CacheBackend`]: the core in process ([`simulate`]) or a daemon session.
//!
//! At each layer of each step, at time `t` (its gate has run, so its routing is known):
//! 1. transfers that finished by `t` complete (in link order), and queued prefetches the link
//!    would have started before `t` are issued (they start when the link frees, no earlier than
//!    the hint that queued them);
//! 2. the cache runs the step (pins, hits, demand loads queued on the link after the prefetches
//!    in flight; with CPU offload a miss runs on the CPU when that ends sooner than its transfer);
//!    the predictor scores layers `l+1..=l+lookahead` from the routing so far and the cache
//!    queues the best-scored experts for prefetch, overlapping the compute of the layers between;
//! 3. the layer computes once every needed expert has arrived: stall = end - t - compute;
//! 4. after the step's last layer, an online predictor observes the step's tokens.

use std::collections::VecDeque;

use serde::Serialize;

use super::backend::{CacheBackend, InProcess, LayerStep};
use super::batching::{Steps, step_experts};
use super::timing::{Link, TimingModel};
use crate::cache::{CacheError, CacheStats, ExpertCache, Load, Policy, Residency, StepPlan};
use crate::predict::Predictor;
use crate::trace::Trace;

/// Bound on the prefetches offered the link in one idle gap (a backend's queue is smaller).
const MAX_PULL: usize = 4096;

/// Prefetch settings (used when a predictor is given).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PrefetchOptions {
    /// Layers ahead the predictor is asked about (capped by its own look-ahead).
    pub lookahead: usize,
    /// Experts queued per predicted layer (best scores first).
    pub top_n: usize,
}

/// What one replay measured.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct SimResult {
    /// Cache counters ([`simulate`]; left at zero by [`simulate_on`], whose backend keeps them).
    pub cache: CacheStats,
    /// Tokens replayed.
    pub tokens: u64,
    /// Steps (forward passes).
    pub steps: u64,
    /// Distinct experts demanded, summed over (step, layer): divide by steps x layers for the
    /// experts activated per batch and layer.
    pub step_layer_experts: u64,
    /// Transfers over the link (demand, transient and prefetch).
    pub transfers: u64,
    /// Bytes moved over the link.
    pub bytes: u64,
    /// Time waiting beyond pure GPU compute, ms, summed over steps.
    pub stall_ms: f64,
    /// Total time, ms.
    pub total_ms: f64,
}

/// Replays `steps` of `trace` through `cache` on `timing`. With a predictor, prefetches for the
/// next layers are queued as described in the module docs.
pub fn simulate<P: Policy>(
    trace: &Trace,
    steps: &Steps,
    cache: &mut ExpertCache<P>,
    timing: &TimingModel,
    predictor: Option<(&mut dyn Predictor, PrefetchOptions)>,
) -> Result<SimResult, CacheError> {
    let predictor = predictor.map(|(p, o)| (&mut *p as &mut dyn Predictor, o));
    let mut r = simulate_on(trace, steps, &mut InProcess::new(cache, predictor), timing)?;
    r.cache = *cache.stats();
    Ok(r)
}

/// The host-to-device link and the transfers on it that the cache has not yet seen finish.
struct Transfers {
    /// The serialised link.
    link: Link,
    /// Transfers into slots in flight, in link order: (end, layer, expert).
    pending: VecDeque<(f64, u16, u16)>,
    /// When the last transfer into each slot ends.
    finish_of_slot: Vec<f64>,
}

impl Transfers {
    /// Puts `ld` on the link, starting no earlier than `ready`; returns its end.
    #[inline]
    fn start(&mut self, ld: &Load, ready: f64, timing: &TimingModel) -> f64 {
        let end = self
            .link
            .transfer(ready, timing.transfer_ms, timing.expert_bytes);
        if let Some(s) = ld.slot {
            self.finish_of_slot[s as usize] = end;
            self.pending.push_back((end, ld.layer, ld.expert));
        }
        end
    }

    /// Completes, in link order, the transfers that finished by `t`.
    #[inline]
    fn complete<B: CacheBackend>(&mut self, cache: &mut B, t: f64) -> Result<(), B::Error> {
        let mut done = 0;
        let mut last = (0, 0);
        while let Some(&(end, layer, expert)) = self.pending.front() {
            if end > t {
                break;
            }
            self.pending.pop_front();
            (done, last) = (done + 1, (layer, expert));
        }
        if done > 0 {
            cache.complete(done, last)?;
        }
        Ok(())
    }

    /// Prefetches the link could start before `t` (none before `t_hint`), at most `max`.
    #[inline]
    fn idle_slots(&self, t: f64, t_hint: f64, ms: f64, max: usize) -> usize {
        let mut probe = self.link.clone();
        let mut n = 0;
        while n < max && probe.free_at.max(t_hint) < t {
            probe.transfer(t_hint, ms, 0);
            n += 1;
        }
        n
    }
}

/// Replays `steps` of `trace` through `cache` on `timing`: the loop of the module docs, for any
/// backend. The cache counters stay with the backend (`SimResult::cache` is zero).
pub fn simulate_on<B: CacheBackend>(
    trace: &Trace,
    steps: &Steps,
    cache: &mut B,
    timing: &TimingModel,
) -> Result<SimResult, B::Error> {
    let shape = *trace.shape();
    let mut r = SimResult::default();
    let slots = cache.total_slots();
    let mut tr = Transfers {
        link: Link::default(),
        pending: VecDeque::with_capacity(slots),
        finish_of_slot: vec![0.0f64; slots],
    };
    let mut plan = StepPlan::default();
    let mut issued: Vec<Load> = Vec::new();
    let mut buf: Vec<u16> = Vec::with_capacity(shape.experts);
    let mut marks = vec![0u32; shape.experts];
    let mut stamp = 0u32;
    let mut t = 0.0f64;
    let mut t_hint = 0.0f64;
    for i in 0..steps.len() {
        let toks = steps.step(i);
        let compute = timing.layer_compute(toks.len());
        r.tokens += toks.len() as u64;
        r.steps += 1;
        for l in 0..shape.moe_layers {
            // 1. Completions and prefetches the link started before t.
            tr.complete(cache, t)?;
            let bound = cache.prefetch_bound().min(MAX_PULL);
            let n = tr.idle_slots(t, t_hint, timing.transfer_ms, bound);
            if n > 0 {
                issued.clear();
                cache.issue_prefetches(n, &mut issued)?;
                for ld in &issued {
                    tr.start(ld, t_hint, timing);
                }
            }
            tr.complete(cache, t)?;
            // 2. The step (and the predictions it hints).
            step_experts(trace, toks, l, &mut marks, &mut stamp, &mut buf);
            r.step_layer_experts += buf.len() as u64;
            let layer_step = LayerStep {
                trace,
                tokens: toks,
                layer: l,
                experts: &buf,
                now: t,
                link_free_at: tr.link.free_at,
                timing,
            };
            let cpu_ms = cache.step(&layer_step, &mut plan)?;
            // 3. Wait for the transfers the layer needs, then compute.
            let mut ready = t;
            for ld in &plan.loads {
                ready = ready.max(tr.start(ld, t, timing));
            }
            for p in &plan.placements {
                if p.residency == Residency::InFlight
                    && let Some(s) = p.slot
                {
                    ready = ready.max(tr.finish_of_slot[s as usize]);
                }
            }
            let end = (ready + compute).max(t + cpu_ms);
            r.stall_ms += end - t - compute;
            if cache.hints() {
                t_hint = t;
            }
            cache.release(l);
            t = end;
        }
        // 4. An online predictor learns the step's tokens once they are fully routed.
        cache.step_done(trace, toks);
    }
    r.transfers = tr.link.transfers;
    r.bytes = tr.link.bytes;
    r.total_ms = t;
    Ok(r)
}
