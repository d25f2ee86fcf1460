//! The busy-polling load client: one thread owns every session's non-blocking socket and spins
//! over them, so no client wake-up sits inside a measured round trip (it takes a whole core).
//!
//! Closed loop by default (each session sends its next step when a reply frees a slot of its
//! `pipeline`); open loop with a rate: session i's step k falls due at `start + (i + k *
//! sessions) / rate` and is sent then, or as soon as one of its `pipeline` slots frees, and its
//! latency runs from when it fell due, not from when it was written, so a daemon that falls
//! behind shows its backlog in the percentiles (no coordinated omission). Steps that fell due
//! before the deadline but were never sent are counted, and enter the percentiles with the
//! time from falling due to the deadline (a lower bound of what they would have waited).

use std::collections::VecDeque;
use std::path::Path;
use std::time::{Duration, Instant};

use super::load::{LoadSpec, SessionResult};
use super::walk::{self, Walk, expect_loaded, step_reply};
use super::{Client, ClientError};
use crate::daemon::wire::RequestBody;
use crate::trace::Trace;
use crate::util::stalls::Stalls;

/// How long after the deadline the loop waits for the replies still owed before giving up.
pub const REPLY_GRACE: Duration = Duration::from_secs(10);

/// One session's state in the spin loop.
struct Spin {
    /// Its connection (non-blocking).
    c: Client,
    /// Its session id.
    sid: u64,
    /// Where it is in the trace.
    walk: Walk,
    /// Replies expected in order: a step's start time and layer, or `None` for a `loaded`.
    expect: VecDeque<Option<(Instant, u16)>>,
    /// Steps sent and not answered.
    steps_in_flight: usize,
    /// Steps sent.
    sent: u64,
    /// Open loop: when the next step falls due.
    due: Instant,
    /// Round trips of the answered steps, ns.
    lat: Vec<u32>,
}

/// What the spin loop saw besides the round trips.
#[derive(Debug, Clone, Default)]
pub struct SpinExtra {
    /// How long the loop itself was held up.
    pub stalls: Stalls,
    /// Open loop: steps that fell due before the deadline and were never sent.
    pub unsent: u64,
    /// Their time from falling due to the deadline, ns.
    pub unsent_wait: Vec<u32>,
}

/// Runs every session of `spec` on this thread; `spec.rate` (steps/s, all sessions together,
/// finite and positive: checked by the caller) selects the open loop.
pub fn run(
    socket: &Path,
    trace: &Trace,
    spec: &LoadSpec,
    deadline: Instant,
) -> Result<(Vec<SessionResult>, SpinExtra), ClientError> {
    // The time allowed counts from when every session is registered.
    let budget = deadline.saturating_duration_since(Instant::now());
    let n = spec.sessions.max(1);
    let gap_per_session = spec.rate.map(|r| Duration::from_secs_f64(n as f64 / r));
    let mut sessions = Vec::with_capacity(n);
    for i in 0..n {
        let mut c = Client::connect_unix(socket)?;
        let sid = c.register(walk::register(spec, trace, i))?.session;
        c.set_nonblocking(true)?;
        sessions.push(Spin {
            c,
            sid,
            walk: Walk::new(trace, i, n),
            expect: VecDeque::new(),
            steps_in_flight: 0,
            sent: 0,
            due: Instant::now(),
            lat: Vec::with_capacity(spec.max_steps.min(1 << 22) as usize),
        });
    }
    let start = Instant::now();
    let deadline = start + budget;
    if let Some(r) = spec.rate {
        for (i, s) in sessions.iter_mut().enumerate() {
            s.due = start + Duration::from_secs_f64(i as f64 / r);
        }
    }
    let depth = spec.pipeline.max(1);
    let mut extra = SpinExtra::default();
    let mut clock = Instant::now();
    loop {
        let mut busy = false;
        for s in sessions.iter_mut() {
            let now = Instant::now();
            extra.stalls.record(now - clock);
            clock = now;
            let open = s.sent < spec.max_steps && now < deadline;
            let mut wrote = false;
            while s.steps_in_flight < depth
                && s.sent < spec.max_steps
                && now < deadline
                && gap_per_session.is_none_or(|_| s.due <= now)
            {
                let (layer, step) = s.walk.next(trace, s.sid);
                s.c.send(step)?;
                let t0 = if let Some(g) = gap_per_session {
                    let due = s.due;
                    s.due += g;
                    due
                } else {
                    now
                };
                s.expect.push_back(Some((t0, layer)));
                (s.sent, s.steps_in_flight, wrote) = (s.sent + 1, s.steps_in_flight + 1, true);
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
                    expect_loaded(reply)?;
                    continue;
                };
                s.lat.push(walk::ns(t0, got));
                s.steps_in_flight -= 1;
                if let Some(loaded) = step_reply(reply, s.sid, layer)? {
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
        if clock > deadline + REPLY_GRACE {
            return Err(ClientError::Timeout(format!(
                "replies still owed {} s after the deadline",
                REPLY_GRACE.as_secs()
            )));
        }
        std::hint::spin_loop();
    }
    if let Some(g) = gap_per_session {
        for s in sessions.iter_mut() {
            while s.sent < spec.max_steps && s.due < deadline {
                extra.unsent_wait.push(walk::ns(s.due, deadline));
                extra.unsent += 1;
                (s.sent, s.due) = (s.sent + 1, s.due + g);
            }
        }
    }
    let results = sessions
        .into_iter()
        .map(|mut s| {
            s.c.set_nonblocking(false)?;
            let st = s.c.close(s.sid)?;
            Ok((s.lat, st.hit_ratio))
        })
        .collect();
    Ok((results, extra))
}
