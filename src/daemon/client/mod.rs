//! Clients of the daemon: a blocking client ([`Client`], for tests, `replay --via-daemon` and
//! the threaded load), a minimal async one for the load generator, and the load generators
//! themselves ([`load`], [`spin_load`]) over one walk of the trace ([`walk`]), and a daemon
//! session as the replay's cache backend ([`replay`]) and the replay through a daemon that
//! drives it ([`via_daemon`]).
//!
//! Built on [`crate::daemon::wire`] (and the replay, cache and trace types): nothing here knows
//! the server.

mod async_client;
mod blocking;
pub mod load;
pub mod replay;
pub mod spin_load;
pub mod via_daemon;
pub mod walk;

pub use blocking::{Client, ClientError, WRITE_STALL};
