//! A daemon session as the replay's cache ([`crate::replay::CacheBackend`]): the replay loop
//! drives it exactly as a runtime would, on the replay's clock.
//!
//! Per layer of each step: the transfers that ended are reported (`loaded` of the last one:
//! transfers complete in link order), the link's idle time is offered to the queued prefetches
//! (`prefetch` with `release`: the previous layer has finished), and the `step` carries the
//! layer's experts (and, for a session with a predictor, each token's routing, from which the
//! daemon queues prefetches for the next layers). `loaded` reports are written with the next
//! request (pipelined): the daemon applies them in order, so its cache sees what the in-process
//! replay simulates.

use super::{Client, ClientError};
use crate::cache::{ExpertSlot, Load, LoadKind, Residency, StepPlan};
use crate::daemon::wire::{
    Loaded, Prefetch, RequestBody, Response, ResponseBody, Routing, SessionStats, State, Step,
    Transfer,
};
use crate::replay::{CacheBackend, LayerStep};
use crate::trace::{Trace, dequantize_weight};

/// One daemon session driven by the replay loop.
#[derive(Debug)]
pub struct DaemonSession<'c> {
    /// The connection.
    client: &'c mut Client,
    /// The session id.
    sid: u64,
    /// Its slots.
    slots: usize,
    /// Whether the session has a predictor: steps then carry routing, and prefetches are pulled.
    predictor: bool,
    /// Sequence id of each token of the trace (the start of its sequence).
    seq_of: Vec<u64>,
    /// Replies owed to `loaded` reports sent and not yet read.
    owed: usize,
}

impl<'c> DaemonSession<'c> {
    /// Session `sid` (with `slots` slots) of `client`, replaying `trace`; with `predictor`, steps
    /// carry each token's routing and the idle link pulls queued prefetches.
    pub fn new(
        client: &'c mut Client,
        sid: u64,
        slots: usize,
        trace: &Trace,
        predictor: bool,
    ) -> Self {
        let mut seq_of = Vec::new();
        if predictor {
            seq_of = vec![0u64; trace.num_tokens()];
            for r in trace.sequences() {
                seq_of[r.clone()].fill(r.start as u64);
            }
        }
        DaemonSession {
            client,
            sid,
            slots,
            predictor,
            seq_of,
            owed: 0,
        }
    }

    /// Writes what is queued and reads the replies owed to `loaded` reports.
    fn settle(&mut self) -> Result<(), ClientError> {
        self.client.flush()?;
        while self.owed > 0 {
            match ok(self.client.recv()?)? {
                ResponseBody::Loaded(_) => self.owed -= 1,
                other => return Err(ClientError::Unexpected(format!("{other:?}"))),
            }
        }
        Ok(())
    }

    /// Sends `body`, reads the replies owed, then its own.
    fn call(&mut self, body: RequestBody) -> Result<ResponseBody, ClientError> {
        self.client.send(body)?;
        self.settle()?;
        ok(self.client.recv()?)
    }

    /// Reads what is still owed and closes the session; returns its final counters.
    pub fn finish(mut self) -> Result<SessionStats, ClientError> {
        self.settle()?;
        self.client.close(self.sid)
    }
}

/// A reply's body, or the daemon's refusal as an error.
fn ok(r: Response) -> Result<ResponseBody, ClientError> {
    match r.body {
        ResponseBody::Error(e) => Err(ClientError::Refused(e)),
        b => Ok(b),
    }
}

/// A wire transfer as a core load of `kind`.
fn load(t: &Transfer, kind: LoadKind) -> Load {
    Load {
        layer: t.layer,
        expert: t.expert,
        slot: t.slot,
        evicted_layer: t.evict.map(|e| e.layer),
        evicted: t.evict.map(|e| e.expert),
        kind,
    }
}

impl CacheBackend for DaemonSession<'_> {
    type Error = ClientError;

    fn total_slots(&self) -> usize {
        self.slots
    }

    fn prefetch_bound(&self) -> usize {
        // The daemon's queue length is not known here: as many as the link has room for.
        if self.predictor { usize::MAX } else { 0 }
    }

    fn hints(&self) -> bool {
        self.predictor
    }

    fn complete(&mut self, _n: usize, (layer, expert): (u16, u16)) -> Result<(), ClientError> {
        self.client.send(RequestBody::Loaded(Loaded {
            session: self.sid,
            layer,
            experts: vec![expert],
        }))?;
        self.owed += 1;
        Ok(())
    }

    fn issue_prefetches(&mut self, max: usize, out: &mut Vec<Load>) -> Result<(), ClientError> {
        let body = RequestBody::Prefetch(Prefetch {
            session: self.sid,
            max: max as u32,
            release: true,
        });
        match self.call(body)? {
            ResponseBody::Prefetch(p) => {
                out.extend(p.transfers.iter().map(|t| load(t, LoadKind::Prefetch)));
                Ok(())
            }
            other => Err(ClientError::Unexpected(format!("{other:?}"))),
        }
    }

    fn step(&mut self, s: &LayerStep<'_>, plan: &mut StepPlan) -> Result<f64, ClientError> {
        let (l, trace) = (s.layer, s.trace);
        let step = Step::new(self.sid, l as u16, s.experts.to_vec());
        let step = if self.predictor {
            let mut routing = Routing::default();
            for &tk in s.tokens {
                let tk = tk as usize;
                routing.seqs.push(self.seq_of[tk]);
                routing.experts.extend_from_slice(trace.experts(tk, l));
                // A trace without gate weights sends none (the daemon accepts routing without).
                let w = trace.weights_q(tk, l);
                routing
                    .weights
                    .extend(w.iter().map(|&q| dequantize_weight(q)));
            }
            Step {
                routing: Some(routing),
                prefetch: Some(0),
                ..step
            }
        } else {
            step
        };
        let ResponseBody::Step(r) = self.call(RequestBody::Step(step))? else {
            return Err(ClientError::Unexpected(
                "a reply to a step that is not a step's".into(),
            ));
        };
        plan.clear();
        plan.hits = r.hits;
        plan.misses = r.misses;
        for p in &r.placements {
            let residency = match p.state {
                State::Resident => Residency::Resident,
                State::InFlight => Residency::InFlight,
                State::Loading => Residency::Loading,
                State::Transient => Residency::Transient,
                State::Remote => {
                    return Err(ClientError::Unexpected(format!(
                        "expert {} answered `remote`: the replay registers no placement plan",
                        p.expert
                    )));
                }
            };
            plan.placements.push(ExpertSlot {
                expert: p.expert,
                slot: p.slot,
                residency,
            });
        }
        plan.loads
            .extend(r.loads.iter().map(|t| load(t, LoadKind::Demand)));
        Ok(0.0)
    }

    /// Nothing to send: the next `prefetch` (with `release`) or `step` releases the pins.
    fn release(&mut self, _layer: usize) {}
}
