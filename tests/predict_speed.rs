//! Inference speed of every predictor without a release build (ignored by default: a timing).
//!
//! `cargo test --test predict_speed -- --ignored --nocapture` times score + top-2k for a batch of
//! 64 real tokens at one layer, as `benches/predict.rs` does, and prints microseconds per token
//! and layer with the ratio to markov measured in the same run. The test profile optimises this
//! crate less than the bench profile, so the figures are upper bounds of the bench's.

use std::path::PathBuf;
use std::time::Instant;

use moeplan::predict::{Kind, Predictor, PredictorSet, RoutingView, TrainOptions, top_k_into};
use moeplan::trace::{Trace, read_trace};

struct Silent;
impl moeplan::Progress for Silent {
    fn inc(&self, _: u64) {}
}

fn task(name: &str) -> Trace {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("traces/esft/{name}.parquet"));
    read_trace(&p, None, None).unwrap()
}

/// Best of 5 runs of `iters` batches: microseconds per token, for look-aheads `hs`.
fn time(p: &dyn Predictor, views: &[RoutingView<'_>], hs: &[usize], iters: usize) -> f64 {
    let e = views[0].shape.experts;
    let k = views[0].shape.top_k;
    let mut out = vec![0f32; views.len() * e];
    let (mut scratch, mut idx) = (vec![0u16; e], vec![0u16; 2 * k]);
    let mut best = f64::INFINITY;
    for _ in 0..5 {
        let start = Instant::now();
        for _ in 0..iters {
            for &h in hs {
                p.score_batch(views, h, &mut out);
                for s in out.chunks_exact(e) {
                    top_k_into(s, &mut scratch, &mut idx);
                }
            }
        }
        let us = start.elapsed().as_secs_f64() * 1e6 / (iters * views.len()) as f64;
        best = best.min(us);
    }
    std::hint::black_box(&idx);
    best
}

#[test]
#[ignore]
fn inference_per_token_and_layer() {
    let (law, summary, intent) = (task("law"), task("summary"), task("intent"));
    let opts = TrainOptions {
        max_cases: Some(20_000),
        epochs: 1,
        ..TrainOptions::default()
    };
    let (set, _) = PredictorSet::train(
        &[&law, &summary],
        Kind::Learned,
        &opts,
        &Silent,
        &mut |_| {},
    )
    .unwrap();
    let views: Vec<RoutingView<'_>> = (100..164)
        .map(|t| RoutingView::from_trace(&intent, t, 10))
        .collect();
    let iters = 300;
    let markov = time(set.get("markov").unwrap(), &views, &[1], iters);
    for p in set.all() {
        let us = time(p, &views, &[1], iters);
        eprintln!(
            "{:<9} {us:6.2} us per token and layer, one h ({:.1}x markov)",
            p.name(),
            us / markov
        );
    }
    let learned = set.get("learned").unwrap();
    let all: Vec<usize> = (1..=learned.lookahead()).collect();
    let us = time(learned, &views, &all, iters);
    eprintln!(
        "learned   {us:6.2} us per token and layer, all {} h",
        all.len()
    );
}
