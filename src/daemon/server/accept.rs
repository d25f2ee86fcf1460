//! The accept loop: `run(listener, metrics, config, shutdown)` serves until `shutdown` resolves,
//! then lets connections finish the requests they have received, and reports.
//!
//! The caller owns the listeners and the shutdown future, so tests start a real daemon on a
//! temporary socket and stop it cleanly, and `moeplan serve` passes the SIGTERM/SIGINT future.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::busy::{BusyGuard, Next};
use super::connection;
use super::http;
use super::listen::{Accepted, Listener};
use super::shutdown;
use super::state::{ServerConfig, ServerState};
use crate::daemon::wire::SessionStats;
use crate::util::stalls::Stalls;

/// How long connections get, after shutdown, to write their last replies before being dropped.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// The tokio runtime a daemon runs on: with one thread a current-thread runtime (the accept
/// loop, every connection and the I/O driver on one thread: no cross-thread wake-ups), else a
/// multi-thread runtime with `threads` workers (also with one, when `multi` is set).
pub fn runtime(threads: usize, multi: bool) -> std::io::Result<tokio::runtime::Runtime> {
    if threads <= 1 && !multi {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads.max(1))
            .enable_all()
            .build()
    }
}

/// What a daemon did, returned when it stops.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    /// Connections accepted.
    pub connections: u64,
    /// Final counters of every session closed (all of them, by the time `run` returns).
    pub sessions: Vec<SessionStats>,
    /// Connections that had not finished within [`DRAIN_TIMEOUT`] and were dropped.
    pub dropped_connections: usize,
}

/// Serves `listener` (and `/metrics` + `/healthz` on `metrics`, if given) until `shutdown`.
pub async fn run(
    listener: Listener,
    metrics: Option<TcpListener>,
    config: ServerConfig,
    shutdown: impl Future,
) -> Report {
    let shared = Arc::new(ServerState::new(config));
    let (trigger, stop) = shutdown::channel();
    let busy_task = shared.config.busy_poll.then(|| {
        // A yielded task is resumed only after the runtime has polled its I/O driver without
        // blocking, so while this task lives the thread never sleeps in epoll_wait.
        let (stop, shared) = (stop.clone(), shared.clone());
        tokio::spawn(async move {
            // Passes that took long: the thread was descheduled, or requests took that long.
            let (mut held, mut pass) = (Stalls::default(), std::time::Instant::now());
            let mut guard = BusyGuard::default();
            while !stop.is_shutdown() {
                tokio::task::yield_now().await;
                let gap = pass.elapsed();
                held.record(gap);
                if let Next::Sleep(d) = guard.pass(gap) {
                    // Contended: sleep like a daemon without --busy-poll, then try again.
                    shared
                        .metrics
                        .busy_poll_fallbacks
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    tracing::debug!(
                        back_off_s = d.as_secs_f64(),
                        "busy-poll: contended, sleeping"
                    );
                    let mut s = stop.clone();
                    tokio::select! {
                        () = tokio::time::sleep(d) => {}
                        () = s.recv() => {}
                    }
                }
                pass = std::time::Instant::now();
            }
            tracing::info!(
                held = held.count,
                held_ms = held.total_ms,
                longest_ms = held.max_ms,
                fallbacks = guard.fallbacks,
                "busy-poll passes over 0.5 ms"
            );
        })
    });
    let http_task = metrics.map(|l| tokio::spawn(http::serve(l, shared.clone(), stop.clone())));
    let limit = Arc::new(Semaphore::new(shared.config.max_connections));
    let needs_token = matches!(listener, Listener::Tcp(_));
    let mut conns = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            p = limit.clone().acquire_owned() => p.expect("the semaphore is never closed"),
            _ = &mut shutdown => break,
        };
        let accepted = tokio::select! {
            a = listener.accept() => a,
            Some(done) = conns.join_next(), if !conns.is_empty() => {
                if let Err(e) = done {
                    tracing::error!(error = %e, "a connection task failed");
                }
                continue;
            }
            _ = &mut shutdown => break,
        };
        let stream = match accepted {
            Ok(s) => s,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let (shared, stop) = (shared.clone(), stop.clone());
        conns.spawn(async move {
            let _permit = permit;
            match stream {
                Accepted::Unix(s) => connection::serve(s, needs_token, shared, stop).await,
                Accepted::Tcp(s) => connection::serve(s, needs_token, shared, stop).await,
            }
        });
    }
    drop(listener);
    trigger.fire();
    let open = conns.len();
    tracing::info!(open, "shutting down: finishing in-flight replies");
    let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
        while conns.join_next().await.is_some() {}
    })
    .await;
    let dropped_connections = if drained.is_err() { conns.len() } else { 0 };
    conns.shutdown().await;
    if let Some(t) = http_task {
        let _ = t.await;
    }
    if let Some(t) = busy_task {
        let _ = t.await;
    }
    let report = Report {
        connections: shared
            .metrics
            .connections_total
            .load(std::sync::atomic::Ordering::Relaxed),
        sessions: shared.registry.closed_stats(),
        dropped_connections,
    };
    tracing::info!(
        connections = report.connections,
        sessions = report.sessions.len(),
        dropped = dropped_connections,
        "daemon stopped"
    );
    report
}
