//! Sessions: one runtime process (one GPU) each, with its cache; the registry of live sessions.
//!
//! A session belongs to the connection that registered it: only that connection can use it,
//! and when the connection ends (cleanly or not) the session's pins are released and it is
//! closed. A runtime that reconnects, or finds the daemon restarted, registers again.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use super::engine::{Engine, EngineCounters};
use super::replanner::Replanner;
use crate::daemon::wire::SessionStats;
use crate::trace::ModelShape;

/// A live session.
#[derive(Debug)]
pub struct Session {
    /// Id given at `register`, unique within this daemon's run.
    pub id: u64,
    /// Label the runtime chose (for logs and metrics).
    pub name: String,
    /// The runtime's model shape: every step is checked against it.
    pub shape: ModelShape,
    /// Policy name, as registered.
    pub policy: String,
    /// The cache.
    pub engine: Engine,
    /// Steps answered.
    pub steps: u64,
    /// Requests on this session refused (out of range, bad values).
    pub rejected: u64,
    /// Expert selections reported by `observe`.
    pub observed: u64,
    /// With a plan: the plan in service and the counts `replan` re-plans on.
    pub replanner: Option<Replanner>,
}

/// A session shared between its connection and the metrics endpoint.
pub type SessionHandle = Arc<Mutex<Session>>;

/// Locks a session; a panic while holding the lock (a bug) must not take other requests down.
pub fn lock(s: &SessionHandle) -> MutexGuard<'_, Session> {
    s.lock().unwrap_or_else(|p| p.into_inner())
}

impl Session {
    /// The session's counters now.
    pub fn stats(&self) -> SessionStats {
        let c: EngineCounters = self.engine.counters();
        let ratio = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
        SessionStats {
            session: self.id,
            name: self.name.clone(),
            policy: self.policy.clone(),
            steps: self.steps,
            demands: c.demands,
            hits: c.hits,
            misses: c.misses,
            hit_ratio: ratio(c.hits, c.demands),
            loads: c.loads,
            bytes_loaded: c.bytes_loaded,
            prefetches: c.prefetches,
            prefetch_hits: c.prefetch_hits,
            prefetch_accuracy: ratio(c.prefetch_hits, c.prefetches),
            pending_loads: c.pending_loads,
            pinned: self.engine.pinned() as u64,
            rejected: self.rejected,
            observed: self.observed,
            predicted: c.predicted,
            predicted_hits: c.predicted_hits,
            live_recall: ratio(c.predicted_hits, c.predicted),
            learned: c.learned,
        }
    }
}

/// Bound on the closed sessions remembered for the shutdown report.
pub const MAX_CLOSED: usize = 4096;

/// Bound on the (layer, expert) keys of all live sessions together: each key costs a session's
/// cache a few tens of bytes, so this caps the daemon's session memory near 1 GiB whatever the
/// runtimes register (one DeepSeek-V3 session has 14,848 keys).
pub const MAX_LIVE_KEYS: u64 = 1 << 24;

/// Every live session, and the final counters of those closed.
#[derive(Debug, Default)]
pub struct Registry {
    /// Next session id to hand out (ids start at 1).
    next_id: AtomicU64,
    /// Live sessions by id, for `/metrics`.
    live: Mutex<BTreeMap<u64, SessionHandle>>,
    /// Final counters of closed sessions (the most recent [`MAX_CLOSED`]).
    closed: Mutex<Vec<SessionStats>>,
    /// (layer, expert) keys of the live sessions (see [`MAX_LIVE_KEYS`]).
    live_keys: AtomicU64,
}

impl Registry {
    /// Adds a session built by `make(id)`; returns its handle.
    pub fn insert(&self, make: impl FnOnce(u64) -> Session) -> SessionHandle {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let session = make(id);
        self.live_keys
            .fetch_add(session_keys(&session.shape), Ordering::Relaxed);
        let handle = Arc::new(Mutex::new(session));
        self.live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, handle.clone());
        handle
    }

    /// Closes a session: releases its pins, records and returns its final counters.
    pub fn close(&self, handle: &SessionHandle) -> SessionStats {
        let stats = {
            let mut s = lock(handle);
            s.engine.release_all();
            self.live_keys
                .fetch_sub(session_keys(&s.shape), Ordering::Relaxed);
            s.stats()
        };
        self.live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&stats.session);
        let mut closed = self.closed.lock().unwrap_or_else(|p| p.into_inner());
        if closed.len() == MAX_CLOSED {
            closed.remove(0);
        }
        closed.push(stats.clone());
        tracing::info!(
            session = stats.session,
            name = %stats.name,
            steps = stats.steps,
            hit_ratio = stats.hit_ratio,
            "session closed"
        );
        stats
    }

    /// Counters of every live session, by id.
    pub fn live_stats(&self) -> Vec<SessionStats> {
        let handles: Vec<SessionHandle> = self
            .live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        handles.iter().map(|h| lock(h).stats()).collect()
    }

    /// (layer, expert) keys of the live sessions together.
    pub fn live_keys(&self) -> u64 {
        self.live_keys.load(Ordering::Relaxed)
    }

    /// Number of live sessions.
    pub fn live_count(&self) -> usize {
        self.live.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Final counters of the sessions closed so far (most recent last).
    pub fn closed_stats(&self) -> Vec<SessionStats> {
        self.closed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// The (layer, expert) keys of a session of `shape`.
pub fn session_keys(shape: &ModelShape) -> u64 {
    (shape.moe_layers * shape.experts) as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::{Budget, PolicyKind};
    use crate::daemon::server::engine::EngineSpec;

    fn session(id: u64) -> Session {
        let shape = ModelShape {
            moe_layers: 1,
            experts: 2,
            top_k: 1,
            first_moe_layer: 0,
        };
        let engine = Engine::new(EngineSpec {
            shape,
            bytes_per_expert: 1,
            budget: Budget::PerLayer(1),
            policy: PolicyKind::Lru,
            half_life: 1.0,
            beta: 0.0,
            prefetch_top: 1,
            margin: 0.0,
            static_counts: None,
            predictor: None,
            plan: None,
        })
        .unwrap();
        Session {
            id,
            name: format!("s{id}"),
            shape,
            policy: "lru".into(),
            engine,
            steps: 0,
            rejected: 0,
            observed: 0,
            replanner: None,
        }
    }

    /// The shutdown report keeps the most recent [`MAX_CLOSED`] sessions, whatever the churn.
    #[test]
    fn closed_history_is_capped_at_the_most_recent() {
        let r = Registry::default();
        let n = MAX_CLOSED + 10;
        for _ in 0..n {
            let h = r.insert(session);
            r.close(&h);
        }
        let closed = r.closed_stats();
        assert_eq!(closed.len(), MAX_CLOSED);
        assert_eq!(closed.first().unwrap().session, 11);
        assert_eq!(closed.last().unwrap().session, n as u64);
        assert_eq!((r.live_count(), r.live_keys()), (0, 0));
    }
}
