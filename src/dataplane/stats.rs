//! What a data plane measured: copies, bytes and the copy engine's busy time.

use serde::Serialize;

/// Counters of one data plane.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct PlaneStats {
    /// Copies completed.
    pub copies: u64,
    /// Bytes moved by completed copies.
    pub bytes: u64,
    /// Time the copy engine spent copying (thread time on the host backend, the events'
    /// elapsed time on CUDA), seconds.
    pub busy_s: f64,
}

impl PlaneStats {
    /// Bytes per busy second, in GB/s (1e9 bytes/s); 0 before any copy.
    pub fn bandwidth_gbps(&self) -> f64 {
        if self.busy_s > 0.0 {
            self.bytes as f64 / self.busy_s / 1e9
        } else {
            0.0
        }
    }
}
