//! The `moeplan` binary end to end: help, demo, stats JSON keys, exit codes for bad input.

mod common;

use common::moeplan;

#[test]
fn help_teaches_with_examples() {
    let out = moeplan().arg("--help").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("Examples:") && text.contains("moeplan demo"),
        "{text}"
    );
}

#[test]
fn demo_runs_on_the_shipped_sample() {
    let out = moeplan().arg("demo").output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("2186 tokens in 14 sequences"), "{text}");
}

#[test]
fn stats_json_has_the_documented_keys() {
    let out = moeplan()
        .args([
            "trace",
            "stats",
            "-t",
            "traces/sample.parquet",
            "--against",
            "traces/esft/law.parquet",
            "--json",
        ])
        .output()
        .unwrap();
    let v = common::ok_json(&out);
    assert_eq!(v["version"], 1);
    assert_eq!(v["tokens"], 2186);
    assert_eq!(v["layers"].as_array().unwrap().len(), 26);
    for key in [
        "counts",
        "imbalance",
        "entropy_bits",
        "entropy_norm",
        "temporal_locality",
        "layer",
        "model_layer",
    ] {
        assert!(!v["layers"][0][key].is_null(), "layers[].{key}");
    }
    for key in [
        "imbalance_mean",
        "imbalance_max",
        "entropy_norm_mean",
        "temporal_locality_mean",
        "temporal_chance",
    ] {
        assert!(v["summary"][key].is_number(), "summary.{key}");
    }
    assert_eq!(v["transitions"].as_array().unwrap().len(), 4);
    assert!(v["transitions"][0]["top_k_successor_mass"].is_number());
    assert!(v["transitions"][0]["strongest"][0]["lift"].is_number());
    let ns: Vec<u64> = v["chunk_sparsity"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["n"].as_u64().unwrap())
        .collect();
    assert_eq!(ns, vec![1, 2, 4, 8, 16]);
    assert_eq!(v["shift"]["jsd_per_layer"].as_array().unwrap().len(), 26);
}

#[test]
fn bad_trace_exits_3_naming_file_line_field() {
    let out = moeplan()
        .args([
            "trace",
            "stats",
            "-t",
            "tests/fixtures/bad/esft_expert_out_of_range",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("expert_weights_2.txt:2: field `ids[15]"),
        "{err}"
    );
}

#[test]
fn usage_error_exits_2_and_missing_file_exits_3() {
    assert_eq!(
        moeplan()
            .args(["trace", "stats"])
            .output()
            .unwrap()
            .status
            .code(),
        Some(2)
    );
    let out = moeplan()
        .args(["trace", "stats", "-t", "no/such.parquet"])
        .output()
        .unwrap();
    // A missing input is bad input (exit 3), named with the OS error once.
    assert_eq!(out.status.code(), Some(3));
}

#[test]
fn convert_and_synth_write_readable_traces() {
    let dir = tempfile::tempdir().unwrap();
    let j = dir.path().join("s.jsonl");
    let st = moeplan()
        .args([
            "trace",
            "convert",
            "-t",
            "traces/esft-excerpt",
            "--first-sequences",
            "2",
            "-o",
        ])
        .arg(&j)
        .status()
        .unwrap();
    assert!(st.success());
    let t = moeplan::trace::read_trace(&j, None, None).unwrap();
    assert_eq!(t.num_tokens(), 64 + 63);
    let s = dir.path().join("v3.parquet");
    let st = moeplan()
        .args([
            "trace",
            "synth",
            "--model",
            "deepseek-v3",
            "--tokens",
            "300",
            "-o",
        ])
        .arg(&s)
        .status()
        .unwrap();
    assert!(st.success());
    let t = moeplan::trace::read_trace(&s, None, None).unwrap();
    assert_eq!(
        (t.num_tokens(), t.shape().experts, t.shape().moe_layers),
        (300, 256, 58)
    );
    // A fit to the real sample for a model of another shape (16 layers x 64 experts, top-8).
    let o = dir.path().join("olmoe.jsonl");
    let st = moeplan()
        .args([
            "trace",
            "synth",
            "--model",
            "olmoe-1b-7b",
            "--tokens",
            "200",
            "--fit",
            "traces/sample.parquet",
            "-o",
        ])
        .arg(&o)
        .status()
        .unwrap();
    assert!(st.success());
    let t = moeplan::trace::read_trace(&o, None, None).unwrap();
    assert_eq!((t.shape().moe_layers, t.shape().top_k), (16, 8));
}
