//! [`Remote`]: the cache in a running daemon, driven over its socket as a runtime would: a
//! `step` per layer (with each token's routing when the session has a predictor), `loaded` once
//! transfers landed (pipelined: written with the next request), and `prefetch` with `release`
//! when the layer's step is over, whose transfers overlap the layer's compute.

use std::path::Path;

use anyhow::Context;

use super::side::{CacheSide, Counts, LayerPlan, Move};
use crate::daemon::client::Client;
use crate::daemon::wire::protocol::{RequestBody, ResponseBody};
use crate::daemon::wire::{Loaded, Prefetch, Register, Routing, State, Step, Transfer};
use crate::trace::{Trace, dequantize_weight};

/// Bound on the prefetches pulled after one layer (the daemon's queue is smaller).
const MAX_PULL: u32 = 4096;

/// A daemon session.
pub struct Remote {
    /// The connection.
    c: Client,
    /// Session id.
    sid: u64,
    /// The session has a predictor: send routing, pull prefetches.
    predicts: bool,
    /// The last transfer into a slot not yet reported `loaded` (transfers land in link order,
    /// so reporting it reports every earlier one).
    last: Option<(u16, u16)>,
    /// Replies of pipelined `loaded` requests not yet read.
    acks: usize,
    /// Sequence id of each token (the start of its sequence), for the routing.
    seq_of: Vec<u64>,
}

fn ok(body: ResponseBody) -> anyhow::Result<ResponseBody> {
    match body {
        ResponseBody::Error(e) => {
            Err(anyhow::Error::new(e).context("the daemon refused a request"))
        }
        b => Ok(b),
    }
}

fn to_move(t: &Transfer) -> Move {
    Move {
        layer: t.layer,
        expert: t.expert,
        slot: t.slot,
        evicts: t.evict.is_some(),
    }
}

impl Remote {
    /// Connects to `socket` and registers `reg` (`predicts`: it names a predictor).
    pub fn connect(socket: &Path, reg: Register, trace: &Trace) -> anyhow::Result<Remote> {
        let predicts = reg.predictor.is_some();
        let mut c = Client::connect_unix(socket)
            .with_context(|| format!("connecting to the daemon at {}", socket.display()))?;
        let sid = c
            .register(reg)
            .context("registering with the daemon")?
            .session;
        let mut seq_of = vec![0u64; trace.num_tokens()];
        for r in trace.sequences() {
            seq_of[r.clone()].fill(r.start as u64);
        }
        Ok(Remote {
            c,
            sid,
            predicts,
            last: None,
            acks: 0,
            seq_of,
        })
    }

    /// Flushes and reads the pending `loaded` replies.
    fn drain(&mut self) -> anyhow::Result<()> {
        self.c.flush()?;
        for _ in 0..std::mem::take(&mut self.acks) {
            ok(self.c.recv()?.body)?;
        }
        Ok(())
    }

    fn note(&mut self, ts: &[Transfer]) {
        if let Some(t) = ts.iter().rev().find(|t| t.slot.is_some()) {
            self.last = Some((t.layer, t.expert));
        }
    }
}

impl CacheSide for Remote {
    fn step(
        &mut self,
        l: usize,
        experts: &[u16],
        toks: &[u32],
        trace: &Trace,
        plan: &mut LayerPlan,
    ) -> anyhow::Result<()> {
        let routing = self.predicts.then(|| {
            let k = trace.shape().top_k;
            let mut r = Routing::default();
            for &tk in toks {
                let tk = tk as usize;
                r.seqs.push(self.seq_of[tk]);
                r.experts.extend_from_slice(trace.experts(tk, l));
                let w = &trace.token_weights_q(tk)[l * k..(l + 1) * k];
                r.weights.extend(w.iter().map(|&q| dequantize_weight(q)));
            }
            r
        });
        self.c.send(RequestBody::Step(Step {
            routing,
            prefetch: Some(0),
            ..Step::new(self.sid, l as u16, experts.to_vec())
        }))?;
        self.drain()?;
        let ResponseBody::Step(r) = ok(self.c.recv()?.body)? else {
            anyhow::bail!("unexpected reply to a step");
        };
        plan.experts.clear();
        for p in &r.placements {
            anyhow::ensure!(
                p.state != State::Remote,
                "the daemon answered `remote` (no plan was registered)"
            );
            let slot = if p.state == State::Transient {
                None
            } else {
                p.slot
            };
            plan.experts.push((p.expert, slot));
        }
        plan.loads.clear();
        plan.loads.extend(r.loads.iter().map(to_move));
        self.note(&r.loads);
        Ok(())
    }

    fn landed(&mut self) -> anyhow::Result<()> {
        if let Some((layer, e)) = self.last.take() {
            self.c.send(RequestBody::Loaded(Loaded {
                session: self.sid,
                layer,
                experts: vec![e],
            }))?;
            self.acks += 1;
        }
        Ok(())
    }

    fn release(&mut self, _l: usize, issue: bool, out: &mut Vec<Move>) -> anyhow::Result<()> {
        out.clear();
        // Without a predictor nothing is queued; the next step releases the pins itself.
        if !(self.predicts && issue) {
            return Ok(());
        }
        self.c.send(RequestBody::Prefetch(Prefetch {
            session: self.sid,
            max: MAX_PULL,
            release: true,
        }))?;
        self.drain()?;
        let ResponseBody::Prefetch(p) = ok(self.c.recv()?.body)? else {
            anyhow::bail!("unexpected reply to a prefetch");
        };
        out.extend(p.transfers.iter().map(to_move));
        self.note(&p.transfers);
        Ok(())
    }

    fn finish(&mut self) -> anyhow::Result<Counts> {
        self.drain()?;
        let st = self.c.close(self.sid)?;
        Ok(Counts {
            demands: st.demands,
            hits: st.hits,
            loads: st.loads,
            prefetch_loads: st.prefetches,
        })
    }
}
