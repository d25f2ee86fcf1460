//! A `predictive` session driven on the replay's clock: the same loop as
//! [`crate::replay::simulate`], with the cache in the daemon.
//!
//! At each layer of each step, at time `t`:
//! 1. transfers that ended by `t` are reported (`loaded` of the last one: transfers complete in
//!    link order); the link's idle time before `t` is offered to the queued prefetches
//!    (`prefetch` with `release`: the previous layer has finished, as the replay releases it),
//!    and those that ended by `t` are reported too;
//! 2. the `step` carries the layer's experts and each token's routing, from which the daemon's
//!    predictor queues prefetches for the next layers (none issued with the reply);
//! 3. the layer's demand loads go on the link; it computes once everything it needs arrived.

use std::collections::VecDeque;

use super::expect_ok;
use crate::daemon::client::Client;
use crate::daemon::wire::{
    Loaded, Prefetch, RequestBody, ResponseBody, Routing, State, Step, Transfer,
};
use crate::replay::{Link, Steps, TimingModel, step_experts};
use crate::trace::{Trace, dequantize_weight};

/// Bound on the prefetches offered the link in one idle gap (the daemon's queue is smaller).
const MAX_PULL: u32 = 4096;

/// The runtime's side of the clock.
struct Clock<'a> {
    /// Timing constants.
    timing: &'a TimingModel,
    /// The host-to-device link.
    link: Link,
    /// Transfers into slots in flight, in link order: (end, layer, expert).
    pending: VecDeque<(f64, u16, u16)>,
    /// When the last transfer into each slot ends.
    finish_of_slot: Vec<f64>,
}

impl Clock<'_> {
    /// Puts a transfer on the link, starting no earlier than `ready`; returns its end.
    fn transfer(&mut self, tr: &Transfer, ready: f64) -> f64 {
        let t = self.timing;
        let end = self.link.transfer(ready, t.transfer_ms, t.expert_bytes);
        if let Some(s) = tr.slot {
            self.finish_of_slot[s as usize] = end;
            self.pending.push_back((end, tr.layer, tr.expert));
        }
        end
    }

    /// Queues a `loaded` for the transfers that ended by `t` (the last one completes the
    /// earlier ones); returns whether one was queued.
    fn report_done(&mut self, c: &mut Client, sid: u64, t: f64) -> anyhow::Result<bool> {
        let mut last = None;
        while self.pending.front().is_some_and(|&(end, ..)| end <= t) {
            last = self.pending.pop_front();
        }
        let Some((_, layer, expert)) = last else {
            return Ok(false);
        };
        c.send(RequestBody::Loaded(Loaded {
            session: sid,
            layer,
            experts: vec![expert],
        }))?;
        Ok(true)
    }

    /// Prefetches the link could start before `t` (none before `t_hint`).
    fn idle_slots(&self, t: f64, t_hint: f64) -> u32 {
        let mut probe = self.link.clone();
        let mut n = 0;
        while probe.free_at.max(t_hint) < t && n < MAX_PULL {
            probe.transfer(t_hint, self.timing.transfer_ms, 0);
            n += 1;
        }
        n
    }
}

/// Replays `steps` of `trace` through session `sid` (with `slots` slots) on `timing`'s clock.
pub fn run(
    c: &mut Client,
    sid: u64,
    slots: usize,
    trace: &Trace,
    steps: &Steps,
    timing: &TimingModel,
) -> anyhow::Result<()> {
    let shape = *trace.shape();
    let mut seq_of = vec![0u64; trace.num_tokens()];
    for r in trace.sequences() {
        seq_of[r.clone()].fill(r.start as u64);
    }
    let mut clock = Clock {
        timing,
        link: Link::default(),
        pending: VecDeque::new(),
        finish_of_slot: vec![0.0; slots],
    };
    let mut marks = vec![0u32; shape.experts];
    let (mut stamp, mut buf) = (0u32, Vec::with_capacity(shape.experts));
    let (mut t, mut t_hint) = (0.0f64, 0.0f64);
    for i in 0..steps.len() {
        let toks = steps.step(i);
        let compute = timing.layer_compute(toks.len());
        for l in 0..shape.moe_layers {
            // 1. Completions, then prefetches on the idle link, then their completions.
            let mut replies = usize::from(clock.report_done(c, sid, t)?);
            let n = clock.idle_slots(t, t_hint);
            if n > 0 {
                c.send(RequestBody::Prefetch(Prefetch {
                    session: sid,
                    max: n,
                    release: true,
                }))?;
            }
            c.flush()?;
            for _ in 0..replies {
                expect_ok(c.recv()?.body)?;
            }
            if n > 0 {
                let ResponseBody::Prefetch(p) = expect_ok(c.recv()?.body)? else {
                    anyhow::bail!("unexpected reply to a prefetch");
                };
                for tr in &p.transfers {
                    clock.transfer(tr, t_hint);
                }
            }
            replies = usize::from(clock.report_done(c, sid, t)?);
            // 2. The step, with each token's routing for the daemon's predictor.
            step_experts(trace, toks, l, &mut marks, &mut stamp, &mut buf);
            let mut routing = Routing::default();
            for &tk in toks {
                let tk = tk as usize;
                routing.seqs.push(seq_of[tk]);
                routing.experts.extend_from_slice(trace.experts(tk, l));
                // A trace without gate weights sends none (the daemon accepts routing without).
                let w = trace.weights_q(tk, l);
                routing
                    .weights
                    .extend(w.iter().map(|&q| dequantize_weight(q)));
            }
            c.send(RequestBody::Step(Step {
                routing: Some(routing),
                prefetch: Some(0),
                ..Step::new(sid, l as u16, buf.clone())
            }))?;
            c.flush()?;
            for _ in 0..replies {
                expect_ok(c.recv()?.body)?;
            }
            let ResponseBody::Step(r) = expect_ok(c.recv()?.body)? else {
                anyhow::bail!("unexpected reply to a step");
            };
            // 3. Wait for the transfers the layer needs, then compute.
            let mut ready = t;
            for tr in &r.loads {
                ready = ready.max(clock.transfer(tr, t));
            }
            for p in &r.placements {
                if p.state == State::InFlight
                    && let Some(s) = p.slot
                {
                    ready = ready.max(clock.finish_of_slot[s as usize]);
                }
            }
            t_hint = t;
            t = ready + compute;
        }
    }
    Ok(())
}
