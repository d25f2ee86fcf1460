//! What every load client does alike: register a session, walk the trace step by step, time a
//! round trip, read a step's reply.

use std::time::Instant;

use super::ClientError;
use super::load::LoadSpec;
use crate::daemon::wire::{Loaded, Register, RequestBody, Response, ResponseBody, Step};
use crate::trace::Trace;

/// The registration of load session `i` of `spec`.
pub fn register(spec: &LoadSpec, trace: &Trace, i: usize) -> Register {
    Register {
        policy: spec.policy.clone(),
        ..Register::new(format!("load{i}"), trace.shape(), spec.capacity)
    }
}

/// Where a session is in the trace: the token and layer of its next step. Session `i` of `n`
/// starts at token `i * tokens / n` (so sessions do not ask the same thing in lockstep) and wraps
/// around.
#[derive(Debug, Clone)]
pub struct Walk {
    /// Token of the next step (modulo the trace's tokens).
    t: usize,
    /// Layer of the next step.
    l: usize,
}

impl Walk {
    /// Session `i` of `n` over `trace`.
    pub fn new(trace: &Trace, i: usize, n: usize) -> Self {
        Walk {
            t: i * trace.num_tokens().max(1) / n.max(1),
            l: 0,
        }
    }

    /// Layer of the next step (0: a new token starts).
    pub fn layer(&self) -> usize {
        self.l
    }

    /// The next step of session `sid` (its layer and request); moves on.
    pub fn next(&mut self, trace: &Trace, sid: u64) -> (u16, RequestBody) {
        let layer = self.l as u16;
        let experts = trace.experts(self.t % trace.num_tokens().max(1), self.l);
        let step = RequestBody::Step(Step::new(sid, layer, experts.to_vec()));
        self.l += 1;
        if self.l == trace.shape().moe_layers {
            (self.l, self.t) = (0, self.t + 1);
        }
        (layer, step)
    }
}

/// Nanoseconds from `t0` to `t1` (0 if earlier, saturating at `u32::MAX`).
pub fn ns(t0: Instant, t1: Instant) -> u32 {
    t1.saturating_duration_since(t0)
        .as_nanos()
        .min(u32::MAX as u128) as u32
}

/// The `loaded` report a step's reply calls for (its demand loads into slots, as a runtime
/// reports them done), or an error if the reply is not a step's.
pub fn step_reply(reply: Response, sid: u64, layer: u16) -> Result<Option<Loaded>, ClientError> {
    match reply.body {
        ResponseBody::Step(r) => Ok(r.loaded_report(sid, layer)),
        other => Err(ClientError::Unexpected(format!("{other:?}"))),
    }
}

/// The reply to a `loaded`, or an error naming what came instead.
pub fn expect_loaded(reply: Response) -> Result<(), ClientError> {
    match reply.body {
        ResponseBody::Loaded(_) => Ok(()),
        other => Err(ClientError::Unexpected(format!("{other:?}"))),
    }
}
