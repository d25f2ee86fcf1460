//! Fuzzes the model and hardware config parsers: any text must parse into a config whose every
//! float is finite (and shape within the limits), or be refused; never a panic.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use moeplan::config::{HardwareConfig, MAX_LAYERS, ModelConfig};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(h) = HardwareConfig::parse(text, Path::new("fuzz.toml")) {
        for v in [
            h.hbm_gib,
            h.hbm_gbps,
            h.intra_node_gbps,
            h.inter_node_gbps,
            h.host_to_device_gbps,
            h.cost_intra_node,
            h.cost_inter_node,
            h.layer_compute_ms,
            h.layer_compute_ms_per_token,
            h.cpu_expert_ms,
            h.gpu_tflops,
            h.a2a_latency_us,
        ] {
            assert!(v.is_finite() && v >= 0.0, "accepted {v}");
        }
    }
    if let Ok(m) = ModelConfig::parse(text, Path::new("fuzz.toml")) {
        assert!(m.shape().check().is_ok());
        assert!(m.layers <= MAX_LAYERS && m.first_moe_layer + m.moe_layers <= m.layers);
    }
});
