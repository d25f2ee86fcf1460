//! The runtime cache daemon: a runtime asks it, before each MoE layer, where the layer's experts
//! are and what to load, evict and prefetch; it runs the same cache core as the replay.
//!
//! Wire format ([`frame`], [`protocol`]): a 4-byte big-endian length, then a msgpack map;
//! requests carry ids so a runtime can pipeline. Requests ([`cmd`]): `hello` (version check),
//! `register`, `step`, `loaded`, `prefetch`, `observe`, `stats`, `close`. [`server::run`] serves a Unix
//! socket (default [`listen::default_socket_path`], mode 0600) or loopback TCP with a token, plus
//! `/metrics` and `/healthz` over HTTP ([`http`]), until a shutdown future resolves.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use moeplan::daemon::{listen, server, state::ServerConfig};
//! let sock = listen::bind_unix(std::path::Path::new("/tmp/moeplan-doc.sock"))?;
//! let report = server::run(
//!     listen::Listener::Unix(sock),
//!     None,
//!     ServerConfig::default(),
//!     moeplan::daemon::shutdown::signal(),
//! )
//! .await;
//! println!("{} sessions served", report.sessions.len());
//! # Ok(()) }
//! ```

mod async_client;
pub mod busy;
pub mod client;
pub mod cmd;
mod connection;
pub use connection::FLUSH_AT;
pub mod engine;
mod envelope;
pub mod frame;
pub mod gpu_plan;
pub mod http;
pub mod listen;
pub mod load;
pub mod metrics;
pub mod protocol;
pub mod routing;
pub mod server;
pub mod session;
pub mod shutdown;
pub mod spin_load;
pub mod state;
pub mod walk;
