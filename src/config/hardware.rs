//! A cluster or a single machine as placement and caching see it (`configs/hardware/*.toml`).

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{ConfigError, parse_toml, read_text};

/// Most GPUs a hardware config may have (nodes x GPUs per node).
pub const MAX_GPUS: usize = 4096;
/// Most redundant expert slots per GPU per layer.
pub const MAX_REDUNDANT_PER_GPU: usize = 1024;

/// Nodes, GPUs and the links between them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HardwareConfig {
    /// Human-readable name.
    pub name: String,
    /// Number of nodes.
    pub nodes: usize,
    /// GPUs per node.
    pub gpus_per_node: usize,
    /// GPU model (informational).
    pub gpu: String,
    /// HBM per GPU, GiB.
    pub hbm_gib: f64,
    /// HBM bandwidth per GPU, GB/s.
    pub hbm_gbps: f64,
    /// GPU-to-GPU bandwidth within a node (NVLink; PCIe peer-to-peer without it), GB/s per GPU.
    pub intra_node_gbps: f64,
    /// Bandwidth between nodes per GPU (InfiniBand/RoCE), GB/s; 0 for a single node.
    pub inter_node_gbps: f64,
    /// Host-to-device bandwidth per GPU (PCIe), GB/s: what an expert load from host RAM costs.
    pub host_to_device_gbps: f64,
    /// Relative cost of a token hop to another GPU of the same node (same GPU = 0).
    pub cost_intra_node: f64,
    /// Relative cost of a token hop to a GPU of another node.
    pub cost_inter_node: f64,
    /// Expert slots per GPU per layer beyond the even share (for redundant replicas); 0 = none.
    pub redundant_slots_per_gpu: usize,
    /// Time to compute one MoE layer for one token on the GPU, milliseconds (batch-1 decode).
    pub layer_compute_ms: f64,
    /// Extra time per additional token in a batch, milliseconds.
    pub layer_compute_ms_per_token: f64,
    /// Time to run one expert for one token on the CPU instead of loading it, milliseconds.
    pub cpu_expert_ms: f64,
    /// Sustained expert-GEMM throughput of one GPU, TFLOP/s (the layer-time model's compute
    /// roofline; below the datasheet peak).
    #[serde(default = "default_gpu_tflops")]
    pub gpu_tflops: f64,
    /// Fixed latency of one all-to-all phase (dispatch or combine), microseconds.
    #[serde(default = "default_a2a_latency_us")]
    pub a2a_latency_us: f64,
}

/// `gpu_tflops` of a config that does not set it.
fn default_gpu_tflops() -> f64 {
    100.0
}

/// `a2a_latency_us` of a config that does not set it.
fn default_a2a_latency_us() -> f64 {
    20.0
}

impl HardwareConfig {
    /// Loads and checks a hardware config.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        Self::parse(&read_text(path)?, path)
    }

    /// Parses and checks a hardware config's TOML text (`path` names it in errors).
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        Self::check(parse_toml(text, path)?, path)
    }

    /// Checks every value: counts in range, every float finite and in its range.
    fn check(h: HardwareConfig, path: &Path) -> Result<Self, ConfigError> {
        let bad = |key: &str, message: &str| ConfigError::Invalid {
            path: path.into(),
            key: key.into(),
            message: message.into(),
        };
        if h.nodes == 0 {
            return Err(bad("nodes", "must be at least 1"));
        }
        if h.gpus_per_node == 0 {
            return Err(bad("gpus_per_node", "must be at least 1"));
        }
        if h.nodes > MAX_GPUS || h.gpus_per_node > MAX_GPUS || h.nodes * h.gpus_per_node > MAX_GPUS
        {
            return Err(bad(
                "nodes",
                &format!("nodes x gpus_per_node must be at most {MAX_GPUS}"),
            ));
        }
        // Every float finite, and in range: an infinite or NaN cost or time poisons every
        // objective and timing built on it (a solve that cannot compare plans never ends).
        for (key, v) in [
            ("hbm_gib", h.hbm_gib),
            ("hbm_gbps", h.hbm_gbps),
            ("host_to_device_gbps", h.host_to_device_gbps),
            ("layer_compute_ms", h.layer_compute_ms),
            ("cpu_expert_ms", h.cpu_expert_ms),
            ("gpu_tflops", h.gpu_tflops),
        ] {
            if !(v > 0.0 && v.is_finite()) {
                return Err(bad(
                    key,
                    &format!("must be a finite number above 0, got {v}"),
                ));
            }
        }
        for (key, v) in [
            ("intra_node_gbps", h.intra_node_gbps),
            ("inter_node_gbps", h.inter_node_gbps),
            ("cost_intra_node", h.cost_intra_node),
            ("cost_inter_node", h.cost_inter_node),
            ("layer_compute_ms_per_token", h.layer_compute_ms_per_token),
            ("a2a_latency_us", h.a2a_latency_us),
        ] {
            if !(v >= 0.0 && v.is_finite()) {
                return Err(bad(
                    key,
                    &format!("must be a finite number of at least 0, got {v}"),
                ));
            }
        }
        if h.nodes > 1 && h.inter_node_gbps <= 0.0 {
            return Err(bad(
                "inter_node_gbps",
                "must be positive with more than one node",
            ));
        }
        if h.cost_inter_node > moeplan_solver::problem::MAX_COEFFICIENT {
            return Err(bad("cost_inter_node", "must be at most 1e6"));
        }
        if h.cost_inter_node < h.cost_intra_node {
            return Err(bad(
                "cost_inter_node",
                "costs must satisfy 0 <= cost_intra_node <= cost_inter_node",
            ));
        }
        if h.redundant_slots_per_gpu > MAX_REDUNDANT_PER_GPU {
            return Err(bad(
                "redundant_slots_per_gpu",
                &format!("must be at most {MAX_REDUNDANT_PER_GPU}"),
            ));
        }
        Ok(h)
    }

    /// Total GPUs.
    pub fn gpus(&self) -> usize {
        self.nodes * self.gpus_per_node
    }

    /// The node of GPU `g`.
    pub fn node_of(&self, g: usize) -> usize {
        g / self.gpus_per_node
    }
}
