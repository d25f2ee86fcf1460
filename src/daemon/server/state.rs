//! What every connection of one daemon shares: its settings, the session registry, the metrics.

use super::metrics::Metrics;
use super::session::Registry;
use crate::daemon::wire::frame::DEFAULT_MAX_FRAME;

/// Default time a connection has to complete its handshake.
pub const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

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
    /// How long a new connection has to send its `hello`; it is closed after that.
    pub handshake_timeout: std::time::Duration,
    /// Connections that may wait for their `hello` at once (a budget apart from the handshaken
    /// ones, at most half of `max_connections`: idle connections cannot take every slot); more
    /// are refused `limit_reached`.
    pub max_pending_handshakes: usize,
    /// (layer, expert) keys all live sessions may hold together (their memory); a `register`
    /// beyond is refused `limit_reached` before anything is allocated for it.
    pub max_live_keys: u64,
    /// Connections to the `--metrics` endpoint served at once; more are closed unanswered.
    pub max_metrics_connections: usize,
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
            handshake_timeout: HANDSHAKE_TIMEOUT,
            max_pending_handshakes: 64,
            max_metrics_connections: 16,
            max_live_keys: super::session::MAX_LIVE_KEYS,
            busy_poll: false,
        }
    }
}

/// State shared by the accept loop, every connection and the metrics endpoint.
#[derive(Debug)]
pub struct ServerState {
    /// Settings.
    pub config: ServerConfig,
    /// Live sessions and closed sessions' counters.
    pub registry: Registry,
    /// Daemon-wide counters.
    pub metrics: Metrics,
    /// Permits of connections still waiting for their `hello`.
    pub pending: tokio::sync::Semaphore,
}

impl ServerState {
    /// Fresh state with `config`.
    pub fn new(config: ServerConfig) -> Self {
        ServerState {
            // At most half the connection slots wait for a hello: the rest stay for runtimes.
            pending: tokio::sync::Semaphore::new(
                config
                    .max_pending_handshakes
                    .min(config.max_connections / 2)
                    .max(1),
            ),
            config,
            registry: Registry::default(),
            metrics: Metrics::default(),
        }
    }
}

impl Default for ServerState {
    fn default() -> Self {
        ServerState::new(ServerConfig::default())
    }
}
