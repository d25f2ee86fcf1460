//! Property versions of the fuzz targets (fuzz/fuzz_targets/), run in the normal suite: trace
//! headers with any shape, mutated trace bytes and config values of any float never panic or
//! abort, and what is accepted is within the documented limits.

use std::path::Path;

use moeplan::config::{HardwareConfig, ModelConfig};
use moeplan::trace::{Format, ModelShape, read_trace};
use proptest::prelude::*;

fn read_bytes(bytes: &[u8], name: &str, format: Format) -> Option<moeplan::trace::Trace> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).unwrap();
    read_trace(&path, Some(format), None).ok()
}

fn any_size() -> impl Strategy<Value = u64> {
    prop_oneof![
        0u64..8,
        0u64..5000,
        Just(u64::MAX),
        Just(1u64 << 32),
        any::<u64>()
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// A JSONL header with any shape: read or refused, never an abort; accepted shapes are
    /// within the limits.
    #[test]
    fn jsonl_headers_of_any_shape(l in any_size(), e in any_size(), k in any_size(), f in any_size()) {
        let header = format!(
            r#"{{"moeplan_trace": 1, "shape": {{"moe_layers": {l}, "experts": {e}, "top_k": {k}, "first_moe_layer": {f}}}}}"#
        );
        let rec = r#"{"seq": 0, "pos": 0, "experts": [[0]], "weights": [[1.0]]}"#;
        let text = format!("{header}\n{rec}\n");
        if let Some(t) = read_bytes(text.as_bytes(), "t.jsonl", Format::Jsonl) {
            prop_assert!(t.shape().check().is_ok());
            prop_assert_eq!(t.num_tokens(), 1);
        }
    }

    /// Bytes of a valid JSONL trace with some of them overwritten: read or refused.
    #[test]
    fn mutated_jsonl_bytes(edits in proptest::collection::vec((0usize..400, any::<u8>()), 1..8)) {
        let mut bytes = concat!(
            r#"{"moeplan_trace": 1, "shape": {"moe_layers": 2, "experts": 4, "top_k": 2, "first_moe_layer": 0}}"#,
            "\n",
            r#"{"seq": 0, "pos": 0, "experts": [[0, 1], [2, 3]], "weights": [[0.5, 0.5], [0.9, 0.1]]}"#,
            "\n",
            r#"{"seq": 0, "pos": 1, "experts": [[3, 1], [2, 0]], "weights": [[0.6, 0.4], [0.7, 0.3]]}"#,
            "\n"
        )
        .as_bytes()
        .to_vec();
        for (at, b) in edits {
            let n = bytes.len();
            bytes[at % n] = b;
        }
        if let Some(t) = read_bytes(&bytes, "t.jsonl", Format::Jsonl) {
            prop_assert!(t.shape().check().is_ok());
        }
    }

    /// Bytes of a valid Parquet trace with some of them overwritten (footer and metadata
    /// included): read or refused.
    #[test]
    fn mutated_parquet_bytes(edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6)) {
        let mut bytes = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/traces/sample.parquet")).unwrap();
        let n = bytes.len();
        for (at, b) in edits {
            // Half the edits near the end, where the footer and the shape metadata are.
            let i = if at % 2 == 0 { n - 1 - (at / 2) % 2048.min(n) } else { at % n };
            bytes[i] = b;
        }
        if let Some(t) = read_bytes(&bytes, "t.parquet", Format::Parquet) {
            prop_assert!(t.shape().check().is_ok());
        }
    }

    /// A hardware config with any float in any key: accepted only finite and in range.
    #[test]
    fn hardware_floats(key in 0usize..10, v in prop_oneof![
        Just(f64::NAN), Just(f64::INFINITY), Just(f64::NEG_INFINITY), Just(-1.0), Just(0.0),
        Just(1e300), -1e9f64..1e9
    ]) {
        let keys = [
            "hbm_gib", "hbm_gbps", "intra_node_gbps", "inter_node_gbps", "host_to_device_gbps",
            "cost_intra_node", "cost_inter_node", "layer_compute_ms",
            "layer_compute_ms_per_token", "cpu_expert_ms",
        ];
        let base = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/configs/hardware/h100-2x8-ib.toml"
        ))
        .unwrap();
        let lit = if v.is_nan() { "nan".to_string() } else if v.is_infinite() {
            if v > 0.0 { "inf".into() } else { "-inf".into() }
        } else { format!("{v:?}") };
        let text: String = base
            .lines()
            .map(|l| if l.starts_with(&format!("{} ", keys[key])) {
                format!("{} = {lit}", keys[key])
            } else { l.to_string() })
            .collect::<Vec<_>>()
            .join("\n");
        if let Ok(h) = HardwareConfig::parse(&text, Path::new("hw.toml")) {
            for x in [h.hbm_gib, h.hbm_gbps, h.intra_node_gbps, h.inter_node_gbps,
                      h.host_to_device_gbps, h.cost_intra_node, h.cost_inter_node,
                      h.layer_compute_ms, h.layer_compute_ms_per_token, h.cpu_expert_ms] {
                prop_assert!(x.is_finite() && x >= 0.0, "accepted {x}");
            }
            prop_assert!(h.cost_inter_node <= 1e6);
        }
    }

    /// A model config with any sizes: accepted only within the shape limits, never a panic.
    #[test]
    fn model_sizes(l in any_size(), e in any_size(), k in any_size(), h in any_size()) {
        let text = format!(
            "name = \"m\"\nlayers = {}\nfirst_moe_layer = 0\nmoe_layers = {l}\nexperts = {e}\n\
             shared_experts = 0\ntop_k = {k}\nhidden_size = {h}\nexpert_ffn_size = {h}\n\
             dtype = \"bf16\"\nbytes_per_expert = 1000\n",
            l.min(i64::MAX as u64)
        );
        if let Ok(m) = ModelConfig::parse(&text, Path::new("m.toml")) {
            prop_assert!(m.shape().check().is_ok());
        }
    }
}

#[test]
fn the_limits_admit_the_shipped_models_and_refuse_the_probes() {
    for kind in ["models", "hardware"] {
        let dir = format!("{}/configs/{kind}", env!("CARGO_MANIFEST_DIR"));
        for f in std::fs::read_dir(dir).unwrap() {
            let path = f.unwrap().path();
            if kind == "models" {
                ModelConfig::load(&path).unwrap();
            } else {
                HardwareConfig::load(&path).unwrap();
            }
        }
    }
    let probe = ModelShape {
        moe_layers: 65534,
        experts: 65535,
        top_k: 1,
        first_moe_layer: 0,
    };
    assert!(probe.check().is_err());
}

/// Every byte of the footer region (and the bytes before it) of a small trace file and of a
/// small statistics file overwritten, one at a time, with a few values: each reader returns a
/// value or an error naming the file, never a panic. (A column chunk offset made negative used
/// to panic inside the Parquet decoder.)
#[test]
fn every_single_byte_edit_of_a_parquet_footer_is_read_or_refused() {
    use moeplan::fleet::{AggregateOptions, RoutingStats, read_stats, write_stats};
    use moeplan::trace::parquet::read_chunks;
    let sample = read_trace(
        Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/traces/sample.parquet"
        )),
        None,
        None,
    )
    .unwrap();
    let small = sample.slice(0..40);
    let dir = tempfile::tempdir().unwrap();
    let trace_file = dir.path().join("small.parquet");
    moeplan::trace::write_trace(&small, &trace_file, Some(Format::Parquet)).unwrap();
    let opts = AggregateOptions {
        hops: 2,
        window_tokens: 16,
        window_pairs: true,
    };
    let stats_file = dir.path().join("small.stats.parquet");
    write_stats(
        &RoutingStats::of_trace(&small, "w", 0, opts).unwrap(),
        &stats_file,
    )
    .unwrap();
    let edited = dir.path().join("edited.parquet");
    let mut panics = Vec::new();
    // The footer (thrift metadata, key-value metadata, length, magic) is the last ~1 KB of
    // each file; the streamed reader shares the whole-file reader's footer checks.
    for (original, reader) in [(&trace_file, 0), (&trace_file, 1), (&stats_file, 2)] {
        let bytes = std::fs::read(original).unwrap();
        let n = bytes.len();
        let from = n.saturating_sub(if reader == 1 { 256 } else { 1200 });
        for i in from..n {
            for v in [0x00u8, 0xa1, 0xff] {
                if bytes[i] == v {
                    continue;
                }
                let mut b = bytes.clone();
                b[i] = v;
                std::fs::write(&edited, &b).unwrap();
                let out = std::panic::catch_unwind(|| match reader {
                    0 => read_trace(&edited, Some(Format::Parquet), None)
                        .err()
                        .map(|e| e.to_string()),
                    1 => read_chunks(&edited, None, 7, &mut |_, _| Ok(()))
                        .err()
                        .map(|e| e.to_string()),
                    _ => read_stats(&edited).err().map(|e| format!("{e:#}")),
                });
                match out {
                    Err(_) => panics.push((reader, i, v)),
                    Ok(Some(msg)) => assert!(msg.contains("edited.parquet"), "{msg}"),
                    Ok(None) => {}
                }
            }
        }
    }
    assert!(
        panics.is_empty(),
        "panicked on (reader, byte, value): {panics:?}"
    );
}
