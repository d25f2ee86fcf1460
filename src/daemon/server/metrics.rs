//! Daemon-wide counters and their Prometheus text rendering (with the per-session counters).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::session::Registry;
use crate::daemon::wire::{ErrorCode, RequestBody, SessionStats};

/// Request verbs counted, in the order of [`Metrics::requests`].
const OPS: [&str; RequestBody::OPS.len()] = RequestBody::OPS;

/// Upper bounds (seconds) of the step-handling-time histogram buckets (`+Inf` is implied).
const STEP_BUCKETS: [f64; 9] = [1e-6, 2e-6, 5e-6, 1e-5, 2e-5, 5e-5, 1e-4, 1e-3, 1e-2];

/// Daemon-wide counters; lock-free, updated on every request.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Connections accepted since start.
    pub connections_total: AtomicU64,
    /// Connections open now.
    pub connections_active: AtomicU64,
    /// Requests handled, by verb (indexed like [`OPS`]).
    pub requests: [AtomicU64; OPS.len()],
    /// Error replies (and unanswerable errors), by code (indexed like [`ErrorCode::ALL`]).
    pub errors: [AtomicU64; ErrorCode::ALL.len()],
    /// Step handling time histogram: counts per bucket of [`STEP_BUCKETS`], then `+Inf`.
    step_buckets: [AtomicU64; STEP_BUCKETS.len() + 1],
    /// Sum of step handling times, nanoseconds.
    step_nanos: AtomicU64,
    /// Largest outgoing buffer any connection held, bytes (shows backpressure bounds it).
    pub out_buffer_high_water: AtomicU64,
    /// Times `--busy-poll` fell back to sleeping under CPU contention (see [`super::busy`]).
    pub busy_poll_fallbacks: AtomicU64,
}

impl Metrics {
    /// Counts one request of verb index `op` (see [`OPS`]).
    pub fn request(&self, op: usize) {
        self.requests[op].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one error.
    pub fn error(&self, code: ErrorCode) {
        let i = ErrorCode::ALL.iter().position(|&c| c == code).unwrap_or(0);
        self.errors[i].fetch_add(1, Ordering::Relaxed);
    }

    /// Records the time one step took to handle.
    pub fn step_time(&self, d: Duration) {
        let s = d.as_secs_f64();
        let b = STEP_BUCKETS
            .iter()
            .position(|&ub| s <= ub)
            .unwrap_or(STEP_BUCKETS.len());
        self.step_buckets[b].fetch_add(1, Ordering::Relaxed);
        self.step_nanos
            .fetch_add(d.as_nanos() as u64, Ordering::Relaxed);
    }

    /// Raises the outgoing-buffer high-water mark to `bytes` if larger.
    pub fn out_buffer(&self, bytes: usize) {
        self.out_buffer_high_water
            .fetch_max(bytes as u64, Ordering::Relaxed);
    }

    /// Errors counted with `code` so far.
    pub fn errors_of(&self, code: ErrorCode) -> u64 {
        let i = ErrorCode::ALL.iter().position(|&c| c == code).unwrap_or(0);
        self.errors[i].load(Ordering::Relaxed)
    }

    /// Renders every metric, daemon-wide and per live session, in Prometheus text format 0.0.4.
    pub fn render(&self, registry: &Registry) -> String {
        let mut o = String::with_capacity(4096);
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let head = |o: &mut String, name: &str, kind: &str, help: &str| {
            let _ = writeln!(
                o,
                "# HELP moeplan_{name} {help}\n# TYPE moeplan_{name} {kind}"
            );
        };
        head(
            &mut o,
            "connections_total",
            "counter",
            "Connections accepted.",
        );
        let _ = writeln!(
            o,
            "moeplan_connections_total {}",
            get(&self.connections_total)
        );
        head(&mut o, "connections_active", "gauge", "Connections open.");
        let _ = writeln!(
            o,
            "moeplan_connections_active {}",
            get(&self.connections_active)
        );
        head(
            &mut o,
            "busy_poll_fallbacks_total",
            "counter",
            "Times --busy-poll slept instead of spinning because the CPU was contended.",
        );
        let _ = writeln!(
            o,
            "moeplan_busy_poll_fallbacks_total {}",
            get(&self.busy_poll_fallbacks)
        );
        head(&mut o, "sessions_active", "gauge", "Live sessions.");
        let _ = writeln!(o, "moeplan_sessions_active {}", registry.live_count());
        head(
            &mut o,
            "requests_total",
            "counter",
            "Requests handled, by verb.",
        );
        for (op, c) in OPS.iter().zip(&self.requests) {
            let _ = writeln!(o, "moeplan_requests_total{{op=\"{op}\"}} {}", get(c));
        }
        head(&mut o, "errors_total", "counter", "Errors, by code.");
        for (code, c) in ErrorCode::ALL.iter().zip(&self.errors) {
            let _ = writeln!(o, "moeplan_errors_total{{code=\"{code}\"}} {}", get(c));
        }
        head(
            &mut o,
            "out_buffer_high_water_bytes",
            "gauge",
            "Largest outgoing buffer of any connection.",
        );
        let _ = writeln!(
            o,
            "moeplan_out_buffer_high_water_bytes {}",
            get(&self.out_buffer_high_water)
        );
        head(
            &mut o,
            "step_seconds",
            "histogram",
            "Time to handle one step, in the daemon.",
        );
        let mut cum = 0;
        for (ub, c) in STEP_BUCKETS.iter().zip(&self.step_buckets) {
            cum += get(c);
            let _ = writeln!(o, "moeplan_step_seconds_bucket{{le=\"{ub:e}\"}} {cum}");
        }
        cum += get(&self.step_buckets[STEP_BUCKETS.len()]);
        let _ = writeln!(o, "moeplan_step_seconds_bucket{{le=\"+Inf\"}} {cum}");
        let _ = writeln!(
            o,
            "moeplan_step_seconds_sum {}",
            get(&self.step_nanos) as f64 * 1e-9
        );
        let _ = writeln!(o, "moeplan_step_seconds_count {cum}");
        render_sessions(&mut o, registry);
        o
    }
}

/// Per-session metrics, labelled by session id and name.
fn render_sessions(o: &mut String, registry: &Registry) {
    let stats = registry.live_stats();
    type Field = fn(&SessionStats) -> f64;
    let series: [(&str, &str, &str, Field); 15] = [
        ("session_steps_total", "counter", "Steps answered.", |s| {
            s.steps as f64
        }),
        (
            "session_demands_total",
            "counter",
            "Experts demanded.",
            |s| s.demands as f64,
        ),
        (
            "session_hits_total",
            "counter",
            "Demands found resident.",
            |s| s.hits as f64,
        ),
        ("session_hit_ratio", "gauge", "Hits over demands.", |s| {
            s.hit_ratio
        }),
        (
            "session_loads_total",
            "counter",
            "Transfers asked of the runtime.",
            |s| s.loads as f64,
        ),
        (
            "session_bytes_loaded_total",
            "counter",
            "Bytes those transfers move.",
            |s| s.bytes_loaded as f64,
        ),
        (
            "session_prefetches_total",
            "counter",
            "Prefetches planned.",
            |s| s.prefetches as f64,
        ),
        (
            "session_prefetch_accuracy",
            "gauge",
            "Prefetched experts demanded before their eviction over prefetches.",
            |s| s.prefetch_accuracy,
        ),
        (
            "session_queue_depth",
            "gauge",
            "Transfers not yet reported loaded.",
            |s| s.pending_loads as f64,
        ),
        ("session_pinned", "gauge", "Experts pinned now.", |s| {
            s.pinned as f64
        }),
        (
            "session_prefetch_hits_total",
            "counter",
            "Prefetched experts demanded before their eviction.",
            |s| s.prefetch_hits as f64,
        ),
        (
            "session_predicted_total",
            "counter",
            "Experts predicted in a token's top-k for its next layer and checked against the next step's routing.",
            |s| s.predicted as f64,
        ),
        (
            "session_predicted_hits_total",
            "counter",
            "Predicted experts the next step's routing confirmed.",
            |s| s.predicted_hits as f64,
        ),
        (
            "session_live_recall",
            "gauge",
            "Predicted hits over predicted: the predictor's live recall@top_k one layer ahead.",
            |s| s.live_recall,
        ),
        (
            "session_learned_tokens_total",
            "counter",
            "Tokens the session's online predictor learned from.",
            |s| s.learned as f64,
        ),
    ];
    for (name, kind, help, f) in series {
        let _ = writeln!(
            o,
            "# HELP moeplan_{name} {help}\n# TYPE moeplan_{name} {kind}"
        );
        for s in &stats {
            let _ = writeln!(
                o,
                "moeplan_{name}{{session=\"{}\",name=\"{}\"}} {}",
                s.session,
                escape(&s.name),
                f(s)
            );
        }
    }
}

/// Escapes a Prometheus label value.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
