//! The replay loop: steps through one device's cache layer by layer, on the timing model.
//!
//! At each layer of each step, at time `t` (its gate has run, so its routing is known):
//! 1. transfers that finished by `t` complete (in link order), and queued prefetches the link
//!    would have started before `t` are issued (they start when the link frees, no earlier than
//!    the hint that queued them);
//! 2. the cache runs the step (pins, hits, demand loads queued on the link after the prefetches
//!    in flight; with CPU offload a miss runs on the CPU when that ends sooner than its transfer);
//! 3. the layer computes once every needed expert has arrived: stall = end - t - compute;
//! 4. the predictor scores layers `l+1..=l+lookahead` from the routing so far and the cache
//!    queues the best-scored experts for prefetch, overlapping the compute of the layers between;
//! 5. after the step's last layer, an online predictor observes the step's tokens.

use std::collections::VecDeque;

use serde::Serialize;

use super::batching::{Steps, step_experts};
use super::timing::{Link, TimingModel};
use crate::cache::{CacheError, CacheStats, ExpertCache, Policy, Residency, StepPlan};
use crate::predict::{Predictor, RoutingView};
use crate::trace::Trace;

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
    /// Cache counters.
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
    mut predictor: Option<(&mut dyn Predictor, PrefetchOptions)>,
) -> Result<SimResult, CacheError> {
    let shape = *trace.shape();
    let mut r = SimResult::default();
    let mut link = Link::default();
    let mut pending: VecDeque<f64> = VecDeque::with_capacity(cache.config().total_slots());
    let mut finish_of_slot = vec![0.0f64; cache.config().total_slots()];
    let mut plan = StepPlan::default();
    let mut buf: Vec<u16> = Vec::with_capacity(shape.experts);
    let mut on_cpu: Vec<u16> = Vec::with_capacity(shape.experts);
    let mut marks = vec![0u32; shape.experts];
    let mut stamp = 0u32;
    let mut scores = vec![0.0f32; shape.experts];
    let mut tmp = vec![0.0f32; shape.experts];
    let mut t = 0.0f64;
    let mut t_hint = 0.0f64;
    for i in 0..steps.len() {
        let toks = steps.step(i);
        let compute = timing.layer_compute(toks.len());
        r.tokens += toks.len() as u64;
        r.steps += 1;
        for l in 0..shape.moe_layers {
            // 1. Completions and prefetches the link started before t.
            complete(cache, &mut pending, t);
            while link.free_at.max(t_hint) < t {
                let Some(ld) = cache.issue_prefetch() else {
                    break;
                };
                let end = link.transfer(t_hint, timing.transfer_ms, timing.expert_bytes);
                if let Some(s) = ld.slot {
                    finish_of_slot[s as usize] = end;
                    pending.push_back(end);
                }
            }
            complete(cache, &mut pending, t);
            // 2. The step.
            step_experts(trace, toks, l, &mut marks, &mut stamp, &mut buf);
            r.step_layer_experts += buf.len() as u64;
            let mut cpu_ms = 0.0;
            on_cpu.clear();
            if timing.cpu_offload {
                let mut free = link.free_at.max(t);
                for &e in &buf {
                    if cache.residency(l, e).is_some() {
                        continue;
                    }
                    let users = toks
                        .iter()
                        .filter(|&&tk| trace.experts(tk as usize, l).contains(&e))
                        .count();
                    let cpu = timing.cpu_expert_ms * users as f64;
                    if cpu_ms + cpu < free + timing.transfer_ms - t {
                        cpu_ms += cpu;
                        on_cpu.push(e);
                    } else {
                        free += timing.transfer_ms;
                    }
                }
            }
            cache.step_with_cpu(l, &buf, &on_cpu, &mut plan)?;
            // 3. Wait for the transfers the layer needs, then compute.
            let mut ready = t;
            for ld in &plan.loads {
                let end = link.transfer(t, timing.transfer_ms, timing.expert_bytes);
                if let Some(s) = ld.slot {
                    finish_of_slot[s as usize] = end;
                    pending.push_back(end);
                }
                ready = ready.max(end);
            }
            for p in &plan.placements {
                if p.residency == Residency::InFlight
                    && let Some(s) = p.slot
                {
                    ready = ready.max(finish_of_slot[s as usize]);
                }
            }
            let end = (ready + compute).max(t + cpu_ms);
            r.stall_ms += end - t - compute;
            // 4. Predictions for the next layers, queued at t.
            if let Some((pred, opts)) = &predictor {
                let (pred, opts) = (&**pred, *opts);
                let la = opts.lookahead.min(pred.lookahead());
                for h in 1..=la {
                    if l + h >= shape.moe_layers {
                        break;
                    }
                    scores.fill(0.0);
                    for &tk in toks {
                        let view = RoutingView::from_trace(trace, tk as usize, l);
                        pred.score(&view, h, &mut tmp);
                        for (s, &x) in scores.iter_mut().zip(&tmp) {
                            *s += x;
                        }
                    }
                    cache.hint(l + h, h, &scores, opts.top_n)?;
                }
                t_hint = t;
            }
            cache.release(l);
            t = end;
        }
        // 5. An online predictor learns the step's tokens once they are fully routed.
        if let Some((pred, _)) = &mut predictor
            && pred.is_online()
        {
            for &tk in toks {
                pred.observe(trace.token_experts(tk as usize));
            }
        }
    }
    r.cache = *cache.stats();
    r.transfers = link.transfers;
    r.bytes = link.bytes;
    r.total_ms = t;
    Ok(r)
}

/// Completes, in link order, the transfers that finished by `t`.
#[inline]
fn complete<P: Policy>(cache: &mut ExpertCache<P>, pending: &mut VecDeque<f64>, t: f64) {
    while pending.front().is_some_and(|&end| end <= t) {
        pending.pop_front();
        cache.complete_next();
    }
}
