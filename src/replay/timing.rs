//! The timing model: one serialised host-to-device link per GPU, per-layer compute as a function
//! of batch size, CPU expert compute. Every constant comes from the configs and is reported.

use serde::Serialize;

use crate::config::{HardwareConfig, ModelConfig};

/// Constants of the timing model (milliseconds and bytes).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct TimingModel {
    /// Bytes of one expert's weights.
    pub expert_bytes: u64,
    /// Host-to-device bandwidth, GB/s (1e9 bytes/s).
    pub link_gbps: f64,
    /// One expert transfer over the link: `expert_bytes / link_gbps`, ms.
    pub transfer_ms: f64,
    /// One MoE layer's GPU compute for a batch of one token, ms.
    pub layer_ms: f64,
    /// Extra GPU compute per additional token of a batch, ms.
    pub layer_ms_per_token: f64,
    /// One expert for one token on the CPU, ms.
    pub cpu_expert_ms: f64,
    /// Run a missed expert on the CPU when that finishes sooner than moving it (Fiddler-style).
    pub cpu_offload: bool,
}

impl TimingModel {
    /// The model for `model` on `hw`.
    pub fn new(model: &ModelConfig, hw: &HardwareConfig, cpu_offload: bool) -> Self {
        let transfer_ms = model.bytes_per_expert as f64 / (hw.host_to_device_gbps * 1e9) * 1e3;
        TimingModel {
            expert_bytes: model.bytes_per_expert,
            link_gbps: hw.host_to_device_gbps,
            transfer_ms,
            layer_ms: hw.layer_compute_ms,
            layer_ms_per_token: hw.layer_compute_ms_per_token,
            cpu_expert_ms: hw.cpu_expert_ms,
            cpu_offload,
        }
    }

    /// GPU compute of one MoE layer for a batch of `tokens`.
    #[inline]
    pub fn layer_compute(&self, tokens: usize) -> f64 {
        self.layer_ms + self.layer_ms_per_token * tokens.saturating_sub(1) as f64
    }
}

/// The serialised link: transfers run one after another, in issue order.
#[derive(Debug, Clone, Default)]
pub struct Link {
    /// When the last committed transfer finishes, ms.
    pub free_at: f64,
    /// Bytes moved so far.
    pub bytes: u64,
    /// Transfers so far.
    pub transfers: u64,
}

impl Link {
    /// Commits a transfer of `ms` that may start no earlier than `ready`; returns its end.
    #[inline]
    pub fn transfer(&mut self, ready: f64, ms: f64, bytes: u64) -> f64 {
        let start = self.free_at.max(ready);
        self.free_at = start + ms;
        self.bytes += bytes;
        self.transfers += 1;
        self.free_at
    }
}
