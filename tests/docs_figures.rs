//! The sample figures the docs quote come from the code as it is: each is recomputed here with
//! the command the docs give, and the docs must quote the recomputed value.

mod common;

use common::{moeplan, ok_json};

fn read(rel: &str) -> String {
    std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)).unwrap()
}

/// Asserts that `page` quotes `text` (whitespace-insensitive: line breaks may fall anywhere).
fn assert_quotes(page: &str, text: &str) {
    let squash = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        squash(&read(page)).contains(&squash(text)),
        "{page} should quote {text:?} (recomputed from the binary)"
    );
}

fn hit_ratio(v: &serde_json::Value, policy: &str) -> f64 {
    v["policies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == policy)
        .unwrap_or_else(|| panic!("no {policy} row"))["hit_ratio"]
        .as_f64()
        .unwrap()
}

#[test]
fn sample_shape_is_what_the_docs_say() {
    let out = moeplan()
        .args(["trace", "stats", "-t", "traces/sample.parquet", "--json"])
        .output()
        .unwrap();
    let v = ok_json(&out);
    let (tokens, seqs) = (
        v["tokens"].as_u64().unwrap(),
        v["sequences"].as_u64().unwrap(),
    );
    let thousands = format!("{},{:03}", tokens / 1000, tokens % 1000);
    assert_quotes("traces/README.md", &format!("| {thousands} | {seqs} |"));
    assert_quotes(
        "docs/traces.md",
        &format!("a {thousands}-token, {seqs}-sequence sample"),
    );
}

#[test]
fn sample_lru_and_opt_are_what_the_readme_says() {
    let out = moeplan()
        .args([
            "replay",
            "-t",
            "traces/sample.parquet",
            "--capacity",
            "16",
            "--policy",
            "lru,opt",
            "--json",
        ])
        .output()
        .unwrap();
    let v = ok_json(&out);
    let (lru, opt) = (hit_ratio(&v, "lru"), hit_ratio(&v, "opt"));
    assert_quotes(
        "README.md",
        &format!("lru {lru:.4}, opt {opt:.4} hit ratio"),
    );
}

#[test]
fn sample_predictive_with_mix_is_what_the_docs_say() {
    let dir = tempfile::tempdir().unwrap();
    let pred = dir.path().join("mix.safetensors");
    let pred = pred.to_str().unwrap();
    common::moeplan_ok(&[
        "predict",
        "train",
        "-q",
        "-t",
        "traces/esft/intent.parquet",
        "--kind",
        "mix",
        "--lookahead",
        "2",
        "-o",
        pred,
    ]);
    let out = moeplan()
        .args([
            "replay",
            "-t",
            "traces/sample.parquet",
            "--capacity",
            "16",
            "--policy",
            "predictive,lru",
            "--predictor",
            pred,
            "--json",
        ])
        .output()
        .unwrap();
    let v = ok_json(&out);
    let (p, lru) = (hit_ratio(&v, "predictive"), hit_ratio(&v, "lru"));
    assert_quotes(
        "docs/daemon.md",
        &format!("hit ratios predictive {p:.4} and lru {lru:.4}"),
    );
    assert_quotes(
        "CHANGELOG.md",
        &format!("a `mix` predictor trained on intent is {p:.4}"),
    );
}
