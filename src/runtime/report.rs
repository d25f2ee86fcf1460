//! What `moeplan run --json` reports.

use serde::Serialize;

use super::Counts;

/// One run's output digest and figures.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    /// FNV-1a hash of the final hidden states of every token (16 hex digits): equal digests,
    /// equal outputs to the bit.
    pub output_digest: String,
    /// Data plane backend (`host`, `cuda`).
    pub backend: String,
    /// Cache policy.
    pub policy: String,
    /// Slots per MoE layer.
    pub capacity: usize,
    /// Whether the cache was the daemon's.
    pub via_daemon: bool,
    /// Tokens run.
    pub tokens: u64,
    /// Steps (forward passes).
    pub steps: u64,
    /// Wall time of the forward passes, seconds.
    pub seconds: f64,
    /// tokens / seconds.
    pub tokens_per_s: f64,
    /// Bytes the data plane moved.
    pub bytes_moved: u64,
    /// Copies the data plane made.
    pub copies: u64,
    /// Bytes moved per second of copy-engine busy time, GB/s.
    pub copy_bandwidth_gbps: f64,
    /// Time the forward pass waited for copies, seconds.
    pub wait_s: f64,
    /// hits / demands.
    pub hit_ratio: f64,
    /// Distinct experts demanded (per step and layer).
    pub demands: u64,
    /// Demands found cached.
    pub hits: u64,
    /// Transfers the cache asked for (demand, transient, prefetch).
    pub loads: u64,
    /// Of `loads`, prefetches.
    pub prefetch_loads: u64,
}

impl RunReport {
    /// Fills the cache figures from `c`.
    pub fn set_counts(&mut self, c: &Counts) {
        self.demands = c.demands;
        self.hits = c.hits;
        self.loads = c.loads;
        self.prefetch_loads = c.prefetch_loads;
        self.hit_ratio = if c.demands == 0 {
            0.0
        } else {
            c.hits as f64 / c.demands as f64
        };
    }

    /// The human-readable lines `moeplan run` prints.
    pub fn render(&self) -> String {
        format!(
            "output_digest {}\n{} tokens in {} steps, {:.3} s: {:.1} tokens/s\n\
             cache: {} x {} slots per layer{}, hit ratio {:.4} ({} hits / {} demands), {} loads ({} prefetches)\n\
             data plane ({}): {} copies, {} bytes, {:.2} GB/s while copying, {:.3} s waiting for copies\n",
            self.output_digest,
            self.tokens,
            self.steps,
            self.seconds,
            self.tokens_per_s,
            self.policy,
            self.capacity,
            if self.via_daemon { " (daemon)" } else { "" },
            self.hit_ratio,
            self.hits,
            self.demands,
            self.loads,
            self.prefetch_loads,
            self.backend,
            self.copies,
            self.bytes_moved,
            self.copy_bandwidth_gbps,
            self.wait_s,
        )
    }
}
