//! What can go wrong moving experts: a bad store file, a slot out of range or not ready, a
//! backend not built in or without a driver.

use std::path::PathBuf;

/// A data-plane error.
#[derive(Debug, thiserror::Error)]
pub enum DataPlaneError {
    /// The store file could not be opened or mapped.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The store file is not what the model needs (bad header, missing tensor, wrong shape).
    #[error("{path}: {message}")]
    Store {
        /// The file.
        path: PathBuf,
        /// What is wrong, naming the tensor.
        message: String,
    },
    /// A slot index beyond the pool.
    #[error("slot {slot} out of range (the pool has {slots} slots)")]
    Slot {
        /// The slot asked for.
        slot: u32,
        /// Slots in the pool.
        slots: usize,
    },
    /// An expert the store does not hold.
    #[error(
        "expert {expert} of layer {layer} is not in the store ({layers} layers x {experts} experts)"
    )]
    Expert {
        /// MoE layer.
        layer: u16,
        /// Expert id.
        expert: u16,
        /// Layers in the store.
        layers: usize,
        /// Experts per layer in the store.
        experts: usize,
    },
    /// A read of a slot whose last load has not landed, or of an empty slot.
    #[error("slot {slot} is not ready ({why}): a slot is read only after its load completed")]
    NotReady {
        /// The slot.
        slot: u32,
        /// `loading` or `empty`.
        why: &'static str,
    },
    /// The copy thread stopped.
    #[error("the copy thread stopped: {0}")]
    CopyThread(String),
    /// `cuda` asked of a binary built without the `cuda` feature.
    #[error(
        "built without CUDA: rebuild with `cargo build --features cuda` to use the cuda data plane"
    )]
    NotBuiltWithCuda,
    /// The CUDA driver library (libcuda) could not be loaded.
    #[error("no CUDA driver: libcuda could not be loaded (is an NVIDIA driver installed?)")]
    NoDriver,
    /// A CUDA driver call failed.
    #[error("CUDA: {0}")]
    Cuda(String),
}
