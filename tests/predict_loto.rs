//! Leave-one-task-out figures for the README (ignored by default: minutes of training).
//!
//! `cargo test --test predict_loto -- --ignored --nocapture` trains the learned predictor (with
//! its baselines) on two ESFT tasks and scores every predictor on the third, for each task.
//! `MOEPLAN_LOTO_CASES` caps the training cases per epoch, `MOEPLAN_LOTO_EPOCHS` the epochs,
//! `MOEPLAN_LOTO_HELD` picks one held-out task; `_HIDDEN`, `_BATCH`, `_LR`, `_PATIENCE` vary the
//! model; `MOEPLAN_LOTO_FAST=1` trains only the learned model and scores it and markov at h = 1.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use moeplan::predict::{
    Kind, MarkovPredictor, Predictor, PredictorSet, StaticPredictor, TrainOptions, evaluate,
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

fn envf(name: &str) -> Option<f64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

fn env(name: &str) -> Option<usize> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

#[test]
#[ignore]
fn leave_one_task_out() {
    let tasks = ["intent", "law", "summary"];
    let only = std::env::var("MOEPLAN_LOTO_HELD").ok();
    let traces: Vec<Trace> = tasks.iter().map(|t| task(t)).collect();
    let defaults = TrainOptions::default();
    let opts = TrainOptions {
        max_cases: env("MOEPLAN_LOTO_CASES").or(defaults.max_cases),
        epochs: env("MOEPLAN_LOTO_EPOCHS").unwrap_or(defaults.epochs),
        hidden: env("MOEPLAN_LOTO_HIDDEN").unwrap_or(defaults.hidden),
        batch: env("MOEPLAN_LOTO_BATCH").unwrap_or(defaults.batch),
        patience: env("MOEPLAN_LOTO_PATIENCE").unwrap_or(defaults.patience),
        lr: envf("MOEPLAN_LOTO_LR").unwrap_or(defaults.lr),
        ..defaults
    };
    eprintln!("options: {opts:?}");
    for (i, held) in tasks.iter().enumerate() {
        if only.as_deref().is_some_and(|o| o != *held) {
            continue;
        }
        let train: Vec<&Trace> = (0..3).filter(|&j| j != i).map(|j| &traces[j]).collect();
        let start = Instant::now();
        if std::env::var_os("MOEPLAN_LOTO_FAST").is_some() {
            let all = Trace::concat(&train).unwrap();
            let stat = StaticPredictor::fit(&all, opts.lookahead);
            let markov = Arc::new(MarkovPredictor::fit(&all, opts.lookahead, &stat));
            let (p, r) = moeplan::predict::learned::train(
                &train,
                markov.clone(),
                &opts,
                &Silent,
                &mut |e| eprintln!("  {e:?}"),
            )
            .unwrap();
            let k = traces[i].shape().top_k;
            let ps: [&dyn Predictor; 2] = [markov.as_ref(), &p];
            let rep = evaluate(&ps, &traces[i], 1, &[k, 2 * k]);
            eprintln!(
                "held out {held}: {:.0} s, best epoch {}",
                r.seconds, r.best_epoch
            );
            eprintln!("{}", rep.render());
            continue;
        }
        let (set, report) = PredictorSet::train(&train, Kind::Learned, &opts, &Silent, &mut |e| {
            eprintln!(
                "  epoch {}: train {:.5} held-out {:.5} ({:.0} s)",
                e.epoch, e.train_loss, e.holdout_loss, e.elapsed_s
            )
        })
        .unwrap();
        let r = report.unwrap();
        eprintln!(
            "held out {held}: trained in {:.0} s ({} cases/epoch, best epoch {})",
            start.elapsed().as_secs_f64(),
            r.train_cases,
            r.best_epoch
        );
        let k = traces[i].shape().top_k;
        let rep = evaluate(&set.all(), &traces[i], 4, &[k, 2 * k]);
        eprintln!("{}", rep.render());
    }
}
