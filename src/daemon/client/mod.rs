//! Clients of the daemon: a blocking client ([`Client`], for tests, `replay --via-daemon` and
//! the threaded load), a minimal async one for the load generator, and the load generators
//! themselves ([`load`], [`spin_load`]) over one walk of the trace ([`walk`]).
//!
//! Built on [`crate::daemon::wire`] only: nothing here knows the server.

mod async_client;
mod blocking;
pub mod load;
pub mod spin_load;
pub mod walk;

pub use blocking::{Client, ClientError, WRITE_STALL};
