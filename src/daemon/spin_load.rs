//! The busy-polling load client: one thread owns every session's non-blocking socket and spins
//! over them, so no client wake-up sits inside a measured round trip (it takes a whole core).
//!
//! Closed loop by default (each session sends its next step when a reply frees a slot of its
//! `pipeline`); open loop with a rate: session i sends step k at `start + (i + k * sessions) /
//! rate`, and a step's latency runs from that scheduled time, not from when it was actually
//! written, so a daemon that falls behind shows its backlog in the percentiles (no coordinated
//! omission).

use std::collections::VecDeque;
use std::path::Path;
use std::time::{Duration, Instant};

use super::client::{Client, ClientError};
use super::cmd::{Register, Step};
use super::load::{LoadSpec, SessionResult};
use super::protocol::{RequestBody, ResponseBody};
use crate::trace::Trace;

/// One session's state in the spin loop.
struct Spin {
    c: Client,
    sid: u64,
    /// Token and layer of the next step.
    t: usize,
    l: usize,
    /// Replies expected in order: a step's start time and layer, or `None` for a `loaded`.
    expect: VecDeque<Option<(Instant, u16)>>,
    steps_in_flight: usize,
    sent: u64,
    /// Open loop: when the next step is due.
    due: Instant,
    lat: Vec<u32>,
}

/// A pass of the spin loop longer than this means the thread did not run (preempted or
/// interrupted): counted, since every step due meanwhile waits too.
pub const STALL: Duration = Duration::from_micros(500);

/// Times the spin loop itself was held up (passes longer than [`STALL`]).
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Stalls {
    /// Passes longer than [`STALL`].
    pub count: u64,
    /// Their total length, milliseconds.
    pub total_ms: f64,
    /// The longest, milliseconds.
    pub max_ms: f64,
}

/// Runs every session of `spec` on this thread; `spec.rate` (steps/s, all sessions together)
/// selects the open loop. Also returns how long the loop itself was held up.
pub fn run(
    socket: &Path,
    trace: &Trace,
    spec: &LoadSpec,
    deadline: Instant,
) -> Result<(Vec<SessionResult>, Stalls), ClientError> {
    let shape = *trace.shape();
    let tokens = trace.num_tokens().max(1);
    let n = spec.sessions.max(1);
    let gap = spec.rate.map(|r| Duration::from_secs_f64(n as f64 / r));
    let mut sessions = Vec::with_capacity(n);
    for i in 0..n {
        let mut c = Client::connect_unix(socket)?;
        let sid = c
            .register(Register {
                policy: spec.policy.clone(),
                ..Register::new(format!("load{i}"), &shape, spec.capacity)
            })?
            .session;
        c.set_nonblocking(true)?;
        sessions.push(Spin {
            c,
            sid,
            t: i * tokens / n,
            l: 0,
            expect: VecDeque::new(),
            steps_in_flight: 0,
            sent: 0,
            due: Instant::now(),
            lat: Vec::with_capacity(spec.max_steps.min(1 << 22) as usize),
        });
    }
    let start = Instant::now();
    if let Some(r) = spec.rate {
        for (i, s) in sessions.iter_mut().enumerate() {
            s.due = start + Duration::from_secs_f64(i as f64 / r);
        }
    }
    let depth = spec.pipeline.max(1);
    let (mut stalls, mut pass) = (Stalls::default(), Instant::now());
    loop {
        let took = pass.elapsed();
        pass = Instant::now();
        if took > STALL {
            let ms = took.as_secs_f64() * 1e3;
            stalls.count += 1;
            stalls.total_ms += ms;
            stalls.max_ms = stalls.max_ms.max(ms);
        }
        let mut busy = false;
        for s in sessions.iter_mut() {
            let now = Instant::now();
            let open = s.sent < spec.max_steps && now < deadline;
            let mut wrote = false;
            while s.steps_in_flight < depth
                && s.sent < spec.max_steps
                && now < deadline
                && gap.is_none_or(|_| s.due <= now)
            {
                let experts = trace.experts(s.t % tokens, s.l).to_vec();
                s.c.send(RequestBody::Step(Step::new(s.sid, s.l as u16, experts)))?;
                let t0 = if let Some(g) = gap {
                    let due = s.due;
                    s.due += g;
                    due
                } else {
                    now
                };
                s.expect.push_back(Some((t0, s.l as u16)));
                (s.sent, s.steps_in_flight, wrote) = (s.sent + 1, s.steps_in_flight + 1, true);
                s.l += 1;
                if s.l == shape.moe_layers {
                    (s.l, s.t) = (0, s.t + 1);
                }
            }
            if wrote {
                s.c.flush()?;
            }
            while let Some(reply) = s.c.try_recv()? {
                let got = Instant::now();
                let Some(next) = s.expect.pop_front() else {
                    return Err(ClientError::Unexpected(format!("unasked reply {reply:?}")));
                };
                let Some((t0, layer)) = next else {
                    continue;
                };
                s.lat.push(
                    got.saturating_duration_since(t0)
                        .as_nanos()
                        .min(u32::MAX as u128) as u32,
                );
                s.steps_in_flight -= 1;
                let ResponseBody::Step(r) = reply.body else {
                    return Err(ClientError::Unexpected(format!("{:?}", reply.body)));
                };
                if let Some(loaded) = r.loaded_report(s.sid, layer) {
                    s.c.send(RequestBody::Loaded(loaded))?;
                    s.c.flush()?;
                    s.expect.push_back(None);
                }
            }
            busy |= open || !s.expect.is_empty();
        }
        if !busy {
            break;
        }
        std::hint::spin_loop();
    }
    let results = sessions
        .into_iter()
        .map(|mut s| {
            s.c.set_nonblocking(false)?;
            let st = s.c.close(s.sid)?;
            Ok((s.lat, st.hit_ratio))
        })
        .collect();
    Ok((results, stalls))
}
