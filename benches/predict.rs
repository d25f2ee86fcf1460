//! Predictor speed, criterion: scoring plus top-K per (token, layer, h), batched 64 tokens, for
//! every predictor; online update + score per token-layer next to the offline score; and the
//! learned model's training time on a fixed slice of real data.

use std::path::PathBuf;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use moeplan::predict::{
    Kind, OnlinePredictor, Predictor, PredictorSet, RoutingView, TrainOptions, top_k_into,
};
use moeplan::trace::{Trace, read_trace};

struct Silent;
impl moeplan::Progress for Silent {
    fn inc(&self, _: u64) {}
}

fn task(name: &str) -> Trace {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("traces/esft/{name}.parquet"));
    read_trace(&p, None, None).unwrap()
}

/// The predictor set (learned included) trained on law and summary, and the held-out intent task.
fn trained_on_law_and_summary() -> (PredictorSet, Trace) {
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
    (set, intent)
}

fn bench_inference(c: &mut Criterion) {
    let (set, intent) = trained_on_law_and_summary();
    let shape = *intent.shape();
    let (e, k) = (shape.experts, shape.top_k);
    let layer = 10;
    let views: Vec<RoutingView<'_>> = (100..164)
        .map(|t| RoutingView::from_trace(&intent, t, layer))
        .collect();
    let mut out = vec![0f32; views.len() * e];
    let mut scratch = vec![0u16; e];
    let mut idx = vec![0u16; 2 * k];
    let mut g = c.benchmark_group("predict_batch64_top2k");
    g.throughput(Throughput::Elements(views.len() as u64));
    for p in set.all() {
        g.bench_function(p.name(), |b| {
            b.iter(|| {
                p.score_batch(&views, 1, &mut out);
                for s in out.chunks_exact(e) {
                    top_k_into(s, &mut scratch, &mut idx);
                }
                idx[0]
            })
        });
    }
    // All look-aheads of one layer (what a prefetcher asks for at each layer).
    let learned = set.get("learned").unwrap();
    g.throughput(Throughput::Elements(views.len() as u64));
    g.bench_function("learned_all_h", |b| {
        b.iter(|| {
            for h in 1..=learned.lookahead() {
                learned.score_batch(&views, h, &mut out);
                for s in out.chunks_exact(e) {
                    top_k_into(s, &mut scratch, &mut idx);
                }
            }
            idx[0]
        })
    });
    g.finish();
}

/// Online update + score per token-layer next to the offline score of the same predictor: one
/// element is one (token, layer) at h = 1 with top-2k; the online run also observes each token
/// once (its cost spread over the token's layers).
fn bench_online(c: &mut Criterion) {
    let (set, intent) = trained_on_law_and_summary();
    let shape = *intent.shape();
    let (e, k, layers) = (shape.experts, shape.top_k, shape.moe_layers);
    let tokens: Vec<usize> = (100..164).collect();
    let mut out = vec![0f32; e];
    let mut scratch = vec![0u16; e];
    let mut idx = vec![0u16; 2 * k];
    let mut g = c.benchmark_group("predict_online_token_layer");
    g.throughput(Throughput::Elements((tokens.len() * (layers - 1)) as u64));
    let online_opts = set.online_options(None);
    for name in ["markov", "mix", "learned"] {
        let offline = set.get(name).unwrap();
        g.bench_function(format!("{name}_offline_score"), |b| {
            b.iter(|| {
                for &t in &tokens {
                    for l in 0..layers - 1 {
                        offline.score(&RoutingView::from_trace(&intent, t, l), 1, &mut out);
                        top_k_into(&out, &mut scratch, &mut idx);
                    }
                }
                idx[0]
            })
        });
        let mut online = OnlinePredictor::from_set(&set, name, online_opts).unwrap();
        g.bench_function(format!("{name}_online_update_score"), |b| {
            b.iter(|| {
                for &t in &tokens {
                    for l in 0..layers - 1 {
                        online.score(&RoutingView::from_trace(&intent, t, l), 1, &mut out);
                        top_k_into(&out, &mut scratch, &mut idx);
                    }
                    online.observe(intent.token_experts(t), intent.prev_experts(t));
                }
                idx[0]
            })
        });
    }
    g.finish();
}

fn bench_training(c: &mut Criterion) {
    let (law, summary) = (task("law"), task("summary"));
    let opts = TrainOptions {
        max_cases: Some(20_000),
        epochs: 1,
        ..TrainOptions::default()
    };
    let mut g = c.benchmark_group("predict_train");
    g.sample_size(10);
    g.throughput(Throughput::Elements(20_000));
    g.bench_function("learned_20k_cases_incl_mix_fit", |b| {
        b.iter(|| {
            PredictorSet::train(
                &[&law, &summary],
                Kind::Learned,
                &opts,
                &Silent,
                &mut |_| {},
            )
            .unwrap()
        })
    });
    g.finish();
}

criterion_group!(benches, bench_inference, bench_online, bench_training);
criterion_main!(benches);
