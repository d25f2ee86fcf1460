//! A bounded load generator: N concurrent sessions replaying a trace's routing over the socket,
//! one step per (token, layer), timing each round trip; like a runtime, each step's loads are
//! reported done with a `loaded` sent along with the next step.
//!
//! Two clients: [`ClientMode::Async`] drives every session from one thread (a tokio
//! current-thread runtime, one connection per session, `pipeline` steps in flight per session),
//! [`ClientMode::Threads`] gives each session a blocking thread (one step in flight),
//! [`ClientMode::Spin`] busy-polls every session from one thread ([`super::spin_load`]; the only
//! one with an open loop, `rate`). Bounded
//! twice: at most `max_steps` steps per session and at most `max_time` in all. Session i starts
//! at token `i * tokens / N` of the trace (so sessions do not ask the same thing in lockstep) and
//! wraps around.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::async_client::AsyncClient;
use super::walk::{self, Walk, expect_loaded, step_reply};
use super::{Client, ClientError};
use crate::daemon::wire::{Close, RequestBody, ResponseBody};
use crate::trace::Trace;
use crate::util::stalls::Stalls;

/// How the load generator runs its sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientMode {
    /// Every session on one thread (tokio current-thread runtime).
    Async,
    /// One blocking thread per session.
    Threads,
    /// Every session on one thread that busy-polls non-blocking sockets (no client wake-ups;
    /// takes a whole core); the only client with an open loop (`rate`).
    Spin,
}

/// The workload.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    /// Concurrent sessions (one connection and one thread each).
    pub sessions: usize,
    /// Steps per session at most.
    pub max_steps: u64,
    /// Wall time at most.
    pub max_time: Duration,
    /// Expert slots per layer of each session.
    pub capacity: u32,
    /// Policy of each session.
    pub policy: String,
    /// How the sessions are driven.
    pub client: ClientMode,
    /// Steps in flight per session at most (async and spin clients; the threaded client keeps 1).
    pub pipeline: usize,
    /// Open loop (spin client): steps per second offered, all sessions together, each step
    /// timed from when it was due.
    pub rate: Option<f64>,
}

/// What the load measured.
#[derive(Debug, Clone, Serialize)]
pub struct LoadReport {
    /// Sessions run.
    pub sessions: usize,
    /// Steps per second offered (open loop), or `None` (closed loop).
    pub offered_per_s: Option<f64>,
    /// Steps answered in all.
    pub steps: u64,
    /// Open loop: steps that fell due before the deadline and were never sent (the daemon or
    /// the machine fell behind); they enter the percentiles with their wait until the deadline.
    pub unsent_due: Option<u64>,
    /// Wall time, seconds.
    pub seconds: f64,
    /// Steps answered per second, all sessions together.
    pub steps_per_s: f64,
    /// Median step round trip (open loop: from when the step fell due), microseconds.
    pub p50_us: f64,
    /// 99th percentile step round trip, microseconds.
    pub p99_us: f64,
    /// Slowest step round trip, microseconds.
    pub max_us: f64,
    /// 99.9th percentile step round trip, microseconds.
    pub p999_us: f64,
    /// Mean hit ratio over the sessions.
    pub hit_ratio: f64,
    /// Spin client: how long its loop was held up (descheduled or interrupted); steps due
    /// meanwhile wait too, so these show in the tail.
    pub client_stalls: Option<Stalls>,
}

/// One session's round-trip times (ns) and final hit ratio.
pub(crate) type SessionResult = Result<(Vec<u32>, f64), ClientError>;

/// Runs the load against the daemon at `socket`.
pub fn run(socket: &Path, trace: &Trace, spec: &LoadSpec) -> Result<LoadReport, ClientError> {
    let start = Instant::now();
    let deadline = start + spec.max_time;
    if let Some(r) = spec.rate {
        if spec.client != ClientMode::Spin {
            return Err(ClientError::Settings(
                "an open loop (rate) needs the spin client".into(),
            ));
        }
        if !(r.is_finite() && r > 0.0) {
            return Err(ClientError::Settings(format!(
                "rate {r} must be finite and positive"
            )));
        }
    }
    let (mut client_stalls, mut unsent_due, mut unsent_wait) = (None, None, Vec::new());
    let results: Vec<SessionResult> = match spec.client {
        ClientMode::Threads => std::thread::scope(|scope| {
            let handles: Vec<_> = (0..spec.sessions)
                .map(|i| scope.spawn(move || one_session(socket, trace, spec, i, deadline)))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("load thread panicked"))
                .collect()
        }),
        ClientMode::Async => run_async(socket, trace, spec, deadline)?,
        ClientMode::Spin => {
            let (r, extra) = super::spin_load::run(socket, trace, spec, deadline)?;
            client_stalls = Some(extra.stalls);
            if spec.rate.is_some() {
                unsent_due = Some(extra.unsent);
            }
            unsent_wait = extra.unsent_wait;
            r
        }
    };
    let seconds = start.elapsed().as_secs_f64();
    let mut lat = Vec::new();
    let mut ratio = 0.0;
    for r in results {
        let (l, h) = r?;
        lat.extend(l);
        ratio += h;
    }
    let steps = lat.len() as u64;
    // Open loop: steps never sent wait at least until the deadline.
    lat.extend(unsent_wait);
    lat.sort_unstable();
    let pct = |p: f64| {
        if lat.is_empty() {
            0.0
        } else {
            lat[((lat.len() - 1) as f64 * p).round() as usize] as f64 / 1e3
        }
    };
    Ok(LoadReport {
        sessions: spec.sessions,
        offered_per_s: spec.rate,
        steps,
        unsent_due,
        seconds,
        steps_per_s: steps as f64 / seconds,
        p50_us: pct(0.5),
        p99_us: pct(0.99),
        max_us: pct(1.0),
        p999_us: pct(0.999),
        hit_ratio: ratio / spec.sessions.max(1) as f64,
        client_stalls,
    })
}

/// One session's loop; returns its round-trip times (ns) and final hit ratio.
fn one_session(
    socket: &Path,
    trace: &Trace,
    spec: &LoadSpec,
    i: usize,
    deadline: Instant,
) -> Result<(Vec<u32>, f64), ClientError> {
    let mut c = Client::connect_unix(socket)?;
    let sid = c.register(walk::register(spec, trace, i))?.session;
    let mut walk = Walk::new(trace, i, spec.sessions);
    let mut lat = Vec::with_capacity(spec.max_steps.min(1 << 22) as usize);
    // Like a runtime, report each step's loads done; the `loaded` is written with the next step
    // (pipelined), and the timed round trip covers both. The deadline is checked per token.
    let mut queued_loaded = false;
    while (lat.len() as u64) < spec.max_steps && (walk.layer() != 0 || Instant::now() < deadline) {
        let t0 = Instant::now();
        let (layer, step) = walk.next(trace, sid);
        c.send(step)?;
        c.flush()?;
        if std::mem::take(&mut queued_loaded) {
            expect_loaded(c.recv()?)?;
        }
        let reply = c.recv()?;
        lat.push(walk::ns(t0, Instant::now()));
        if let Some(loaded) = step_reply(reply, sid, layer)? {
            c.send(RequestBody::Loaded(loaded))?;
            queued_loaded = true;
        }
    }
    c.flush()?;
    if queued_loaded {
        expect_loaded(c.recv()?)?;
    }
    let st = c.close(sid)?;
    Ok((lat, st.hit_ratio))
}

/// Every session as a task of one current-thread runtime on this thread.
fn run_async(
    socket: &Path,
    trace: &Trace,
    spec: &LoadSpec,
    deadline: Instant,
) -> Result<Vec<SessionResult>, ClientError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let trace = Arc::new(trace.clone());
    rt.block_on(async {
        let mut set = tokio::task::JoinSet::new();
        for i in 0..spec.sessions {
            let (socket, trace, spec) = (socket.to_path_buf(), trace.clone(), spec.clone());
            set.spawn(async move { (i, async_session(socket, trace, spec, i, deadline).await) });
        }
        let mut out: Vec<Option<SessionResult>> = (0..spec.sessions).map(|_| None).collect();
        while let Some(r) = set.join_next().await {
            let (i, res) = r.map_err(|e| ClientError::Unexpected(format!("load task: {e}")))?;
            out[i] = Some(res);
        }
        Ok(out.into_iter().flatten().collect())
    })
}

/// One session of the async client: keeps `spec.pipeline` steps in flight.
async fn async_session(
    socket: PathBuf,
    trace: Arc<Trace>,
    spec: LoadSpec,
    i: usize,
    deadline: Instant,
) -> SessionResult {
    let mut c = AsyncClient::connect(&socket).await?;
    let register = walk::register(&spec, &trace, i);
    let sid = match c.call(RequestBody::Register(register)).await? {
        ResponseBody::Register(r) => r.session,
        other => return Err(ClientError::Unexpected(format!("{other:?}"))),
    };
    let mut walk = Walk::new(&trace, i, spec.sessions);
    let mut lat = Vec::with_capacity(spec.max_steps.min(1 << 22) as usize);
    // Replies expected, in order: a step's send time and layer, or `None` for a `loaded`.
    let mut expect: VecDeque<Option<(Instant, u16)>> = VecDeque::new();
    let (mut sent, mut steps_in_flight) = (0u64, 0usize);
    loop {
        while steps_in_flight < spec.pipeline.max(1)
            && sent < spec.max_steps
            && Instant::now() < deadline
        {
            let (layer, step) = walk.next(&trace, sid);
            c.send(step)?;
            expect.push_back(Some((Instant::now(), layer)));
            (sent, steps_in_flight) = (sent + 1, steps_in_flight + 1);
        }
        c.flush().await?;
        let Some(next) = expect.pop_front() else {
            break;
        };
        let reply = c.recv().await?;
        let Some((t0, layer)) = next else {
            expect_loaded(reply)?;
            continue;
        };
        lat.push(walk::ns(t0, Instant::now()));
        steps_in_flight -= 1;
        if let Some(loaded) = step_reply(reply, sid, layer)? {
            c.send(RequestBody::Loaded(loaded))?;
            expect.push_back(None);
        }
    }
    let st = match c.call(RequestBody::Close(Close { session: sid })).await? {
        ResponseBody::Close(r) => r.stats,
        other => return Err(ClientError::Unexpected(format!("{other:?}"))),
    };
    Ok((lat, st.hit_ratio))
}
