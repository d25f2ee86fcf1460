//! The layer-time model's constants from the model and hardware configs (the model itself is
//! [`moeplan_solver::layer_time`]).

use moeplan_solver::TimeModel;

use crate::config::{HardwareConfig, ModelConfig};

/// Tokens per batch the layer time is reported for by default.
pub const DEFAULT_TIME_BATCH: usize = 128;

/// The constants for batches of `batch_tokens` tokens: expert FLOPs `2 x 3 x hidden x ffn`
/// (gate, up and down projections), weights `bytes_per_expert`, hidden vectors in bf16, and the
/// hardware's `gpu_tflops`, `hbm_gbps`, `intra_node_gbps`, `inter_node_gbps` and
/// `a2a_latency_us`.
pub fn time_model(model: &ModelConfig, hw: &HardwareConfig, batch_tokens: usize) -> TimeModel {
    let gb_per_s_to_bytes_per_ms = 1e6;
    TimeModel {
        batch_tokens: batch_tokens as f64,
        flops_per_selection: 2.0 * 3.0 * model.hidden_size as f64 * model.expert_ffn_size as f64,
        gpu_flops_per_ms: hw.gpu_tflops * 1e9,
        expert_bytes: model.bytes_per_expert as f64,
        hbm_bytes_per_ms: hw.hbm_gbps * gb_per_s_to_bytes_per_ms,
        hidden_bytes: model.hidden_size as f64 * 2.0,
        intra_bytes_per_ms: hw.intra_node_gbps * gb_per_s_to_bytes_per_ms,
        inter_bytes_per_ms: hw.inter_node_gbps * gb_per_s_to_bytes_per_ms,
        a2a_latency_ms: hw.a2a_latency_us * 1e-3,
    }
}
