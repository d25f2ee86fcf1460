//! `moeplan run`: an offloaded MoE forward pass. Before each layer the runtime asks the cache
//! (in-process, or the daemon over its socket) where the layer's experts are, moves the missing
//! ones through a [`crate::dataplane`] backend, waits for exactly the slots the layer reads, and
//! computes ([`crate::moe`]). Routing is teacher-forced from a trace.
//!
//! Per layer `l` of a step:
//! 1. wait for every transfer in flight (the previous layer's prefetches) and tell the cache;
//! 2. the cache's step for `l` (with a predictor: hints for the next layers); demand loads go on
//!    the data plane (misses without a slot through transient buffers);
//! 3. wait for the slots `l` reads, tell the cache they landed;
//! 4. the cache releases `l` and issues the queued prefetches: they are copied while `l`
//!    computes (the cache budget is per layer, so a prefetch never targets a slot `l` reads);
//! 5. compute `l`, experts in the step's order, each read from its slot.
//!
//! The cache sees the calls the replay simulator makes on a link that is never the bottleneck
//! (`replay::simulate` with zero transfer time), so the run's loads and hits equal the
//! replay's for the same routing (`tests/run_forward.rs`).

mod local;
mod pass;
mod remote;
mod report;
mod setup;
mod side;

pub use local::Local;
pub use pass::{Fault, PassFigures, forward};
pub use remote::Remote;
pub use report::RunReport;
pub use setup::{RunSpec, no_link, run};
pub use side::{CacheSide, Counts, LayerPlan, Move};
