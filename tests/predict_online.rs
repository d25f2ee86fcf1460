//! Online predictors: prequential scoring never reads the future, is deterministic, learns a
//! planted shift that an offline predictor cannot, and works from a cold start.

mod common;

use moeplan::predict::online::cold_set;
use moeplan::predict::{
    Kind, OnlineOptions, OnlinePredictor, Predictor, PredictorSet, TrainOptions, evaluate,
    evaluate_online,
};
use moeplan::synth::{SynthParams, generate};
use moeplan::trace::{Trace, read_trace};

struct Silent;
impl moeplan::Progress for Silent {
    fn inc(&self, _: u64) {}
}

fn sample() -> Trace {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("traces/sample.parquet");
    read_trace(&p, None, None).unwrap()
}

fn task(name: &str) -> Trace {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(format!("traces/esft/{name}.parquet"));
    read_trace(&p, None, None).unwrap()
}

fn train(traces: &[&Trace], kind: Kind) -> PredictorSet {
    let opts = TrainOptions {
        lookahead: 2,
        ..TrainOptions::default()
    };
    train_with(traces, kind, &opts)
}

fn train_with(traces: &[&Trace], kind: Kind, opts: &TrainOptions) -> PredictorSet {
    PredictorSet::train(traces, kind, opts, &Silent, &mut |_| {})
        .unwrap()
        .0
}

/// recall@k at h = 1 of predictor `name` in a report.
fn r1(report: &moeplan::predict::EvalReport, name: &str) -> f64 {
    let k = report.shape.top_k;
    report
        .predictors
        .iter()
        .find(|p| p.name == name)
        .unwrap()
        .recall[&1][&k]
}

/// The trace with tokens `keep..` replaced by the same tokens in reverse sequence order.
fn shuffled_future(t: &Trace, keep: usize) -> Trace {
    let head = t.slice(0..keep);
    let tail = t.slice(keep..t.num_tokens());
    let mut seqs: Vec<Trace> = tail.sequences().map(|r| tail.slice(r)).collect();
    seqs.reverse();
    let mut parts = vec![&head];
    parts.extend(seqs.iter());
    Trace::concat(&parts).unwrap()
}

#[test]
fn prequential_scores_ignore_the_future() {
    let tr = sample();
    let n = tr.num_tokens();
    let keep = n / 2;
    let other = shuffled_future(&tr, keep);
    assert_eq!(other.num_tokens(), n);
    assert_ne!(
        tr.token_experts(n - 1),
        other.token_experts(n - 1),
        "the future differs"
    );
    let half = tr.slice(0..keep);
    let set = train(&[&half], Kind::Mix);
    let opts = set.online_options(None);
    let k = tr.shape().top_k;
    let a = evaluate_online(&mut set.all_online(opts), &tr, 2, &[k, 2 * k], 0..keep);
    let b = evaluate_online(&mut set.all_online(opts), &other, 2, &[k, 2 * k], 0..keep);
    assert_eq!(
        serde_json::to_value(&a).unwrap(),
        serde_json::to_value(&b).unwrap()
    );
    // And the whole trace does differ once the shuffled part is scored.
    let c = evaluate_online(&mut set.all_online(opts), &tr, 2, &[k, 2 * k], 0..n);
    let d = evaluate_online(&mut set.all_online(opts), &other, 2, &[k, 2 * k], 0..n);
    assert_ne!(
        serde_json::to_value(&c).unwrap(),
        serde_json::to_value(&d).unwrap()
    );
}

#[test]
fn online_eval_is_deterministic_and_observe_changes_scores() {
    let tr = sample();
    let k = tr.shape().top_k;
    let run = || {
        let mut ps = cold_set(*tr.shape(), 2, OnlineOptions::DEFAULT);
        serde_json::to_string(&evaluate_online(
            &mut ps,
            &tr,
            2,
            &[k, 2 * k],
            0..tr.num_tokens(),
        ))
        .unwrap()
    };
    assert_eq!(run(), run());
    let mut p = OnlinePredictor::cold("markov", *tr.shape(), 2, OnlineOptions::DEFAULT).unwrap();
    let view = moeplan::predict::RoutingView::from_trace(&tr, 5, 3);
    let mut before = vec![0f32; tr.shape().experts];
    let mut after = before.clone();
    p.score(&view, 1, &mut before);
    p.observe(tr.token_experts(5), tr.prev_experts(5));
    p.score(&view, 1, &mut after);
    assert_ne!(before, after);
    // The observed successors of layer 3's experts gained.
    let next = tr.experts(5, 4);
    assert!(next.iter().all(|&e| after[e as usize] > before[e as usize]));
}

#[test]
fn online_recall_beats_offline_after_a_planted_shift() {
    // Two workloads fitted to different tasks, with different route structures.
    let shape = *task("law").shape();
    let a = SynthParams::fit(&task("law"), shape, 1);
    let mut b = SynthParams::fit(&task("summary"), shape, 2);
    b.structure_seed = a.structure_seed.wrapping_add(7);
    let before = generate(&a, 3000, 11, None);
    let train_a = generate(&a, 3000, 12, None);
    let after = generate(&b, 3000, 13, None);
    let stream = Trace::concat(&[&before, &after]).unwrap();
    let set = train(&[&train_a], Kind::Markov);
    let k = shape.top_k;
    let offline = evaluate(&set.all(), &stream, 1, &[k]);
    let mut ps = set.all_online(set.online_options(None));
    let online = evaluate_online(&mut ps, &stream, 1, &[k], 0..stream.num_tokens());
    let (off, on) = (r1(&offline, "markov"), r1(&online, "markov"));
    assert!(on > off + 0.05, "online {on:.3} vs offline {off:.3}");
}

#[test]
fn cold_start_learns_from_nothing() {
    let tr = sample();
    let k = tr.shape().top_k;
    let n = tr.num_tokens();
    let mut ps = cold_set(*tr.shape(), 1, OnlineOptions::DEFAULT);
    let r = evaluate_online(&mut ps, &tr, 1, &[k], n / 4..n);
    assert!(r.online && r.warmup == n / 4);
    // Transitions learned live beat per-layer popularity learned live.
    assert!(r1(&r, "markov") > r1(&r, "static") + 0.05, "{}", r.render());
}

#[test]
fn cli_online_eval_adds_the_online_key() {
    let out = common::moeplan()
        .args([
            "predict",
            "eval",
            "--predictor",
            "none",
            "--online",
            "--lookahead",
            "1",
            "--warmup",
            "100",
            "-t",
            "traces/sample.parquet",
            "--json",
        ])
        .output()
        .unwrap();
    let v = common::ok_json(&out);
    assert_eq!(v["online"], true);
    assert_eq!(v["warmup"], 100);
    let names: Vec<&str> = v["predictors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["static", "temporal", "markov", "mix"]);
    let refused = common::moeplan()
        .args([
            "predict",
            "eval",
            "--predictor",
            "none",
            "-t",
            "traces/sample.parquet",
        ])
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(3));
}

/// A small learned model on `traces` (quick in the test profile).
fn small_learned(traces: &[&Trace]) -> PredictorSet {
    let opts = TrainOptions {
        lookahead: 2,
        hidden: 32,
        epochs: 2,
        max_cases: Some(20_000),
        batch: 512,
        ..TrainOptions::default()
    };
    train_with(traces, Kind::Learned, &opts)
}

#[test]
fn learned_heads_adapt_online_and_never_read_the_future() {
    // The learned model built on one workload, scored prequentially on a stream that shifts to
    // another: heads that learn from the live stream beat frozen ones.
    let shape = *task("law").shape();
    let a = SynthParams::fit(&task("law"), shape, 1);
    let mut b = SynthParams::fit(&task("summary"), shape, 2);
    b.structure_seed = a.structure_seed.wrapping_add(7);
    let train_a = generate(&a, 2000, 12, None);
    let stream =
        Trace::concat(&[&generate(&a, 1000, 11, None), &generate(&b, 2000, 13, None)]).unwrap();
    let set = small_learned(&[&train_a]);
    let k = shape.top_k;
    let n = stream.num_tokens();
    let base = set.online_options(None);
    assert!(base.head_lr > 0.0, "heads adapt by default");
    let recall = |head_lr: f32, tr: &Trace, scored: std::ops::Range<usize>| {
        let opts = OnlineOptions { head_lr, ..base };
        let mut ps: Vec<Box<dyn Predictor>> = vec![Box::new(
            OnlinePredictor::from_set(&set, "learned", opts).unwrap(),
        )];
        evaluate_online(&mut ps, tr, 1, &[k], scored)
    };
    let (frozen, adapted) = (
        recall(0.0, &stream, 0..n),
        recall(base.head_lr, &stream, 0..n),
    );
    let (f, ad) = (r1(&frozen, "learned"), r1(&adapted, "learned"));
    assert!(ad > f + 0.01, "adapted {ad:.3} vs frozen heads {f:.3}");
    // Causal: the tokens before `keep` score the same whatever follows them.
    let keep = n / 2;
    let other = shuffled_future(&stream, keep);
    let json = |r: &moeplan::predict::EvalReport| serde_json::to_value(r).unwrap();
    assert_eq!(
        json(&recall(base.head_lr, &stream, 0..keep)),
        json(&recall(base.head_lr, &other, 0..keep))
    );
    assert_ne!(json(&adapted), json(&recall(base.head_lr, &other, 0..n)));
}
