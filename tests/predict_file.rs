//! Predictor files: save/load gives identical predictions for every kind; bad files are refused
//! with a clear error (and exit code 3 from the CLI).

mod common;

use std::path::PathBuf;
use std::process::Command;

use moeplan::predict::{FILE_VERSION, Kind, PredictError, PredictorSet, RoutingView, TrainOptions};
use moeplan::trace::{Trace, read_trace};

struct Silent;
impl moeplan::Progress for Silent {
    fn inc(&self, _: u64) {}
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn task(name: &str, seqs: usize) -> Trace {
    read_trace(
        &root().join(format!("traces/esft/{name}.parquet")),
        None,
        None,
    )
    .unwrap()
    .first_sequences(seqs)
}

fn quick() -> TrainOptions {
    TrainOptions {
        lookahead: 2,
        hidden: 16,
        epochs: 1,
        max_cases: Some(4000),
        batch: 512,
        ..TrainOptions::default()
    }
}

/// Every predictor of both sets gives bit-identical scores on every case of `trace`.
fn assert_same(a: &PredictorSet, b: &PredictorSet, trace: &Trace) {
    let (pa, pb) = (a.all(), b.all());
    assert_eq!(pa.len(), pb.len());
    let e = trace.shape().experts;
    let (mut sa, mut sb) = (vec![0f32; e], vec![0f32; e]);
    for (x, y) in pa.iter().zip(&pb) {
        assert_eq!(x.name(), y.name());
        for t in (0..trace.num_tokens()).step_by(7) {
            for l in 0..trace.shape().moe_layers - 1 {
                let v = RoutingView::from_trace(trace, t, l);
                for h in 1..=x.lookahead().min(trace.shape().moe_layers - 1 - l) {
                    x.score(&v, h, &mut sa);
                    y.score(&v, h, &mut sb);
                    assert_eq!(sa, sb, "{} t={t} l={l} h={h}", x.name());
                }
            }
        }
    }
}

#[test]
fn save_load_gives_identical_predictions() {
    let (a, b) = (task("law", 6), task("summary", 6));
    let test = task("intent", 3);
    let dir = tempfile::tempdir().unwrap();
    for kind in [Kind::Markov, Kind::Mix, Kind::Learned] {
        let (set, _) =
            PredictorSet::train(&[&a, &b], kind, &quick(), &Silent, &mut |_| {}).unwrap();
        let path = dir.path().join(format!("{kind:?}.safetensors"));
        set.save(&path).unwrap();
        let back = PredictorSet::load(&path).unwrap();
        assert_eq!(back.kind, kind);
        assert_eq!(back.main().name(), set.main().name());
        assert_same(&set, &back, &test);
    }
}

#[test]
fn bad_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.safetensors");
    std::fs::write(&junk, b"not a safetensors file").unwrap();
    assert!(matches!(
        PredictorSet::load(&junk),
        Err(PredictError::BadFile { .. })
    ));
    // A valid file whose header claims another version.
    let (a, b) = (task("law", 4), task("summary", 4));
    let (set, _) =
        PredictorSet::train(&[&a, &b], Kind::Markov, &quick(), &Silent, &mut |_| {}).unwrap();
    let good = dir.path().join("good.safetensors");
    set.save(&good).unwrap();
    let mut bytes = std::fs::read(&good).unwrap();
    let pat = format!(r#"\"version\":{FILE_VERSION}"#).into_bytes();
    let at = bytes.windows(pat.len()).position(|w| w == pat).unwrap();
    bytes[at + pat.len() - 1] = b'9';
    let bad = dir.path().join("v9.safetensors");
    std::fs::write(&bad, &bytes).unwrap();
    match PredictorSet::load(&bad) {
        Err(PredictError::BadFile { reason, .. }) => {
            assert!(reason.contains("version 9"), "{reason}")
        }
        other => panic!("expected a version error, got {other:?}"),
    }
    let missing = dir.path().join("nope.safetensors");
    assert!(matches!(
        PredictorSet::load(&missing),
        Err(PredictError::Io { .. })
    ));
    // The CLI: bad input exits 3, and a good file evaluates.
    let bin = env!("CARGO_BIN_EXE_moeplan");
    let trace = root().join("traces/sample.parquet");
    let st = Command::new(bin)
        .args(["-q", "predict", "eval", "--predictor"])
        .arg(&junk)
        .arg("-t")
        .arg(&trace)
        .status()
        .unwrap();
    assert_eq!(st.code(), Some(3));
    let out = Command::new(bin)
        .args(["-q", "predict", "eval", "--json", "--predictor"])
        .arg(&good)
        .arg("-t")
        .arg(root().join("traces/esft/intent.parquet"))
        .output()
        .unwrap();
    let doc = common::ok_json(&out);
    let names: Vec<&str> = doc["predictors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["static", "temporal", "markov"]);
    let r = doc["predictors"][2]["recall"]["1"]["6"].as_f64().unwrap();
    assert!(r > 0.0 && r <= 1.0);
    assert!(doc["predictors"][2]["recall"]["2"]["12"].as_f64().is_some());
}
