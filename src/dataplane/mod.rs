//! The data plane: real expert bytes moved from a host store into a pool of expert slots.
//!
//! One trait, [`DataPlane`], with two backends:
//! - [`HostPlane`] (always built): expert weights memory-mapped from safetensors
//!   ([`ExpertStore`]), a slot pool in a separate host buffer, copies on a copy thread, a slot
//!   ready once its copy completed;
//! - [`CudaPlane`] (feature `cuda`, cudarc with dynamic loading): the store copied once into
//!   page-locked host memory, a device slot pool, copies on a dedicated stream with one event
//!   per load, readiness by querying the event. Built without the feature, the same API
//!   returns [`DataPlaneError::NotBuiltWithCuda`]; with it but no driver,
//!   [`DataPlaneError::NoDriver`].
//!
//! The cache decides (which expert goes to which slot, evicting what); the data plane moves
//! bytes. Loads complete in issue order (one serialised link). A slot with a load still in
//! flight cannot be read: [`DataPlane::read`] refuses it, [`DataPlane::wait`] blocks until it
//! is ready. A load into a slot takes `&mut self`, so no read borrow of a slot outlives it.
//!
//! ```no_run
//! use moeplan::dataplane::{Backend, DataPlane, ExpertStore, open};
//! let store = ExpertStore::open(std::path::Path::new("model/experts.safetensors"), 1, 26, 64).unwrap();
//! let mut plane = open(Backend::Host, store, 16 * 26).unwrap();
//! plane.load(0, 3, 17).unwrap();        // expert 17 of MoE layer 3 into slot 0, asynchronously
//! plane.wait(0).unwrap();               // blocks until the copy landed
//! plane.read(0, &mut |bytes| assert!(!bytes.is_empty())).unwrap();
//! println!("{:.2} GB/s", plane.stats().bandwidth_gbps());
//! ```

#[cfg(feature = "cuda")]
#[path = "cuda_enabled.rs"]
mod cuda;
#[cfg(not(feature = "cuda"))]
#[path = "cuda_disabled.rs"]
mod cuda;
mod error;
mod host;
mod stats;
mod store;

use std::time::Duration;

pub use cuda::CudaPlane;
pub use error::DataPlaneError;
pub use host::HostPlane;
pub use stats::PlaneStats;
pub use store::{ExpertStore, PROJECTIONS, expert_tensor_name};

/// Where expert slots live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Backend {
    /// A host buffer, filled by a copy thread (always available).
    Host,
    /// GPU memory, filled over PCIe/NVLink by a copy stream (feature `cuda`).
    Cuda,
}

/// Moves experts into slots. Slots are `0..slots()`; loads complete in issue order.
pub trait DataPlane: Send {
    /// Backend name (`host`, `cuda`).
    fn name(&self) -> &'static str;
    /// Number of slots.
    fn slots(&self) -> usize;
    /// Bytes of one expert (every slot holds one).
    fn expert_bytes(&self) -> usize;
    /// Starts copying expert `expert` of MoE layer `layer` into `slot`; returns at once. The
    /// slot is not ready until the copy lands (and every load issued before it).
    fn load(&mut self, slot: u32, layer: u16, expert: u16) -> Result<(), DataPlaneError>;
    /// Marks `slot` empty (its expert was evicted): reading it is an error until the next load.
    fn evict(&mut self, slot: u32) -> Result<(), DataPlaneError>;
    /// Whether `slot` holds a completed load (never blocks).
    fn is_ready(&mut self, slot: u32) -> Result<bool, DataPlaneError>;
    /// Blocks until `slot`'s last load landed; returns the time spent waiting.
    fn wait(&mut self, slot: u32) -> Result<Duration, DataPlaneError>;
    /// Blocks until every load issued so far landed; returns the time spent waiting.
    fn wait_all(&mut self) -> Result<Duration, DataPlaneError>;
    /// Hands the bytes of a ready `slot` to `f` (host memory: the slot itself on the host
    /// backend, a copy back from the device on CUDA). Refuses a slot not ready.
    fn read(&mut self, slot: u32, f: &mut dyn FnMut(&[u8])) -> Result<(), DataPlaneError>;
    /// (layer, expert) last loaded into `slot`, if not evicted.
    fn content(&self, slot: u32) -> Option<(u16, u16)>;
    /// Copies completed so far, bytes moved and the copy engine's busy time.
    fn stats(&mut self) -> PlaneStats;
}

/// A data plane of `slots` slots on `backend`, fed from `store`.
pub fn open(
    backend: Backend,
    store: ExpertStore,
    slots: usize,
) -> Result<Box<dyn DataPlane>, DataPlaneError> {
    Ok(match backend {
        Backend::Host => Box::new(HostPlane::new(store, slots)?),
        Backend::Cuda => Box::new(CudaPlane::new(store, slots)?),
    })
}
