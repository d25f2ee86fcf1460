//! The daemon's server: the accept loop ([`run`]), one task per connection ([`connection`]),
//! the request handlers ([`cmd`], one file per verb), sessions and their cache engines,
//! `/metrics` + `/healthz` over HTTP ([`http`]), and graceful shutdown ([`shutdown`]).
//!
//! Built on [`crate::daemon::wire`]; knows nothing of the clients.

mod accept;
pub mod busy;
pub mod cmd;
mod connection;
pub mod engine;
pub mod gpu_plan;
pub mod http;
pub mod listen;
pub mod metrics;
pub mod replanner;
pub mod routing;
pub mod session;
mod settings;
pub mod shutdown;
pub mod state;

pub use accept::{DRAIN_TIMEOUT, Report, run, runtime};
pub use connection::FLUSH_AT;
pub use listen::{Listener, bind_tcp, bind_unix, default_socket_path};
pub use settings::ServeSettings;
pub use state::ServerConfig;
