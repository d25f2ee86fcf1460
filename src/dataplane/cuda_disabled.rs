//! [`CudaPlane`] stand-in for builds without the `cuda` feature: the same API, and
//! [`CudaPlane::new`] returns [`DataPlaneError::NotBuiltWithCuda`].

use std::time::Duration;

use super::{DataPlane, DataPlaneError, ExpertStore, PlaneStats};

/// The CUDA data plane (not built in: rebuild with `--features cuda`).
pub struct CudaPlane {
    /// Never constructed.
    never: std::convert::Infallible,
}

impl CudaPlane {
    /// Always [`DataPlaneError::NotBuiltWithCuda`].
    pub fn new(_store: ExpertStore, _slots: usize) -> Result<CudaPlane, DataPlaneError> {
        Err(DataPlaneError::NotBuiltWithCuda)
    }

    /// The device's name (never reached).
    pub fn device_name(&self) -> Result<String, DataPlaneError> {
        match self.never {}
    }
}

impl DataPlane for CudaPlane {
    fn name(&self) -> &'static str {
        "cuda"
    }
    fn slots(&self) -> usize {
        match self.never {}
    }
    fn expert_bytes(&self) -> usize {
        match self.never {}
    }
    fn load(&mut self, _: u32, _: u16, _: u16) -> Result<(), DataPlaneError> {
        match self.never {}
    }
    fn evict(&mut self, _: u32) -> Result<(), DataPlaneError> {
        match self.never {}
    }
    fn is_ready(&mut self, _: u32) -> Result<bool, DataPlaneError> {
        match self.never {}
    }
    fn wait(&mut self, _: u32) -> Result<Duration, DataPlaneError> {
        match self.never {}
    }
    fn wait_all(&mut self) -> Result<Duration, DataPlaneError> {
        match self.never {}
    }
    fn read(&mut self, _: u32, _: &mut dyn FnMut(&[u8])) -> Result<(), DataPlaneError> {
        match self.never {}
    }
    fn content(&self, _: u32) -> Option<(u16, u16)> {
        match self.never {}
    }
    fn stats(&mut self) -> PlaneStats {
        match self.never {}
    }
}
