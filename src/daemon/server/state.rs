//! What every connection of one daemon shares: its settings, the session registry, the metrics.

use super::metrics::Metrics;
use super::session::Registry;
use crate::daemon::wire::frame::DEFAULT_MAX_FRAME;

/// Daemon settings (validated by the caller; defaults suit one machine's runtimes).
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Largest frame body accepted or sent, bytes.
    pub max_frame: usize,
    /// Connections served at once; further ones wait in the listen backlog.
    pub max_connections: usize,
    /// Sessions one connection may hold (one per GPU the runtime drives).
    pub max_sessions_per_connection: usize,
    /// Shared secret TCP clients must present in `hello` (Unix-socket clients are trusted by the
    /// socket's file mode). TCP is refused at start-up without one.
    pub token: Option<String>,
    /// Never sleep: a task keeps yielding so the runtime polls its sockets without blocking
    /// (no wake-up latency on a request, at the cost of a whole core).
    pub busy_poll: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            max_frame: DEFAULT_MAX_FRAME,
            max_connections: 256,
            max_sessions_per_connection: 64,
            token: None,
            busy_poll: false,
        }
    }
}

/// State shared by the accept loop, every connection and the metrics endpoint.
#[derive(Debug, Default)]
pub struct ServerState {
    /// Settings.
    pub config: ServerConfig,
    /// Live sessions and closed sessions' counters.
    pub registry: Registry,
    /// Daemon-wide counters.
    pub metrics: Metrics,
}

impl ServerState {
    /// Fresh state with `config`.
    pub fn new(config: ServerConfig) -> Self {
        ServerState {
            config,
            ..Default::default()
        }
    }
}
