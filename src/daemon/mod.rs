//! The runtime cache daemon: a runtime asks it, before each MoE layer, where the layer's experts
//! are and what to load, evict and prefetch; it runs the same cache core as the replay.
//!
//! Three rooms, each depending only on the ones before it:
//! - [`wire`]: the frame, the envelope, every request and reply, the error codes (a 4-byte
//!   big-endian length, then a msgpack map; requests carry ids so a runtime can pipeline).
//!   Requests: `hello` (version check), `register`, `step`, `loaded`, `prefetch`, `observe`,
//!   `stats`, `close`.
//! - [`server`]: [`server::run`] serves a Unix socket (default
//!   [`server::default_socket_path`], mode 0600) or loopback TCP with a token, plus `/metrics`
//!   and `/healthz` over HTTP, until a shutdown future resolves.
//! - [`client`]: a blocking client and the load generators, speaking the wire types only.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use moeplan::daemon::server::{self, Listener, ServerConfig};
//! let sock = server::bind_unix(std::path::Path::new("/tmp/moeplan-doc.sock"))?;
//! let report = server::run(
//!     Listener::Unix(sock),
//!     None,
//!     ServerConfig::default(),
//!     server::shutdown::signal(),
//! )
//! .await;
//! println!("{} sessions served", report.sessions.len());
//! # Ok(()) }
//! ```

pub mod client;
pub mod server;
pub mod wire;

/// Hold-up counter of a spinning loop (the server's busy-poll thread, the spinning load client).
pub use crate::util::stalls::Stalls;
