//! The learned predictor, out of sample: trained on two ESFT tasks, it beats static and markov on
//! the third; and training is deterministic (same seed, same weights).
//!
//! Kept fast for the debug/test profile: a subset of cases, a narrow model, few epochs. The
//! margins asserted were measured with these exact settings (see the README for full figures).

use std::path::PathBuf;

use moeplan::predict::{Kind, PredictorSet, TrainOptions, evaluate};
use moeplan::trace::{Trace, read_trace};

struct Silent;
impl moeplan::Progress for Silent {
    fn inc(&self, _: u64) {}
}

fn task(name: &str, seqs: usize) -> Trace {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("traces/esft/{name}.parquet"));
    read_trace(&p, None, None).unwrap().first_sequences(seqs)
}

fn small() -> TrainOptions {
    TrainOptions {
        lookahead: 2,
        hidden: 64,
        epochs: 3,
        max_cases: Some(60_000),
        batch: 512,
        ..TrainOptions::default()
    }
}

#[test]
fn learned_beats_static_and_markov_on_a_held_out_task() {
    let (law, summary) = (task("law", usize::MAX), task("summary", usize::MAX));
    let intent = task("intent", 40);
    let (set, _) = PredictorSet::train(
        &[&law, &summary],
        Kind::Learned,
        &small(),
        &Silent,
        &mut |_| {},
    )
    .unwrap();
    let k = intent.shape().top_k;
    let r = evaluate(&set.all(), &intent, 1, &[k, 2 * k]);
    let get = |name: &str, kk: usize| {
        r.predictors.iter().find(|p| p.name == name).unwrap().recall[&1][&kk]
    };
    eprintln!("{}", r.render());
    for kk in [k, 2 * k] {
        let (l, m, s) = (get("learned", kk), get("markov", kk), get("static", kk));
        assert!(
            l > m + MARGIN,
            "recall@{kk}: learned {l:.3} vs markov {m:.3}"
        );
        assert!(
            l > s + MARGIN,
            "recall@{kk}: learned {l:.3} vs static {s:.3}"
        );
    }
}

/// Smallest advantage asserted; measured with `small()` on intent[..40]: +0.128 @6, +0.131 @12
/// over markov (learned 0.501 / 0.708, markov 0.373 / 0.577, static 0.121 / 0.225).
const MARGIN: f64 = 0.08;

#[test]
fn same_seed_gives_same_weights() {
    let (a, b) = (task("law", 5), task("summary", 5));
    let opts = TrainOptions {
        lookahead: 2,
        hidden: 16,
        epochs: 2,
        max_cases: Some(3000),
        batch: 256,
        seed: 7,
        ..TrainOptions::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for (i, seed) in [7, 7, 8].into_iter().enumerate() {
        let o = TrainOptions {
            seed,
            ..opts.clone()
        };
        let (set, _) =
            PredictorSet::train(&[&a, &b], Kind::Learned, &o, &Silent, &mut |_| {}).unwrap();
        let p = dir.path().join(format!("{i}.safetensors"));
        set.save(&p).unwrap();
        files.push(std::fs::read(&p).unwrap());
    }
    assert!(files[0] == files[1], "same seed, different weights");
    assert!(files[0] != files[2], "different seeds, same weights");
}
