//! Routing statistics files: native aggregation against the trace-side counts, the file round
//! trip, merging, and plans and predictors from statistics equal to those from the traces.

mod common;

use std::path::{Path, PathBuf};

use common::{moeplan, moeplan_ok};
use moeplan::fleet::{AggregateOptions, RoutingStats, read_stats, write_stats};
use moeplan::placement::workload_from_trace;
use moeplan::stats::{Transitions, expert_counts, temporal_locality};
use moeplan::trace::{Trace, read_trace};
use proptest::prelude::*;

const OPTS: AggregateOptions = AggregateOptions {
    hops: 4,
    window_tokens: 256,
    window_pairs: false,
};

fn esft(task: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("traces/esft/{task}.parquet"))
}

fn trace(task: &str) -> Trace {
    read_trace(&esft(task), None, None).unwrap()
}

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("moeplan-fleet-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

#[test]
fn streamed_aggregation_equals_the_trace_counts() {
    let t = trace("law");
    let stats = moeplan::fleet::aggregate_paths(
        &[esft("law")],
        None,
        None,
        OPTS,
        &indicatif::ProgressBar::hidden(),
    )
    .unwrap();
    assert_eq!(stats, RoutingStats::of_trace(&t, "law", 0, OPTS).unwrap());
    let w = &stats.workloads["law"];
    let s = *t.shape();
    assert_eq!(w.tokens, t.num_tokens() as u64);
    assert_eq!(w.load, expert_counts(&t));
    for h in 1..=4 {
        let tr = Transitions::count(&t, h);
        let mine: Vec<u64> = tr.counts.iter().map(|&c| c as u64).collect();
        assert_eq!(w.pairs[h - 1], mine, "hop {h}");
    }
    let ref_w = workload_from_trace(&t, 256);
    assert_eq!(w.solver_workload(&s, true), ref_w);
    // Temporal locality from the previous-token pairs (the diagonal).
    let loc = temporal_locality(&t);
    for (l, &want) in loc.iter().enumerate() {
        let e = s.experts;
        let same: u64 = (0..e).map(|x| w.prev[(l * e + x) * e + x]).sum();
        let got = same as f64 / (w.followers * s.top_k as u64) as f64;
        assert!((got - want).abs() < 1e-12, "layer {l}: {got} vs {want}");
    }
    // The held-out sample: the cases `fit_mix` draws, every stride-th (token, layer).
    for h in 1..=4 {
        let total = t.num_tokens() * (s.moe_layers - h);
        let stride = moeplan::predict::case_stride(t.num_tokens(), s.moe_layers, h);
        let keys: Vec<(usize, usize)> = w
            .cases
            .keys()
            .filter(|k| k.0 == h)
            .map(|k| (k.1 as usize, k.2))
            .collect();
        let want: Vec<(usize, usize)> = (0..total)
            .step_by(stride)
            .map(|c| (c / (s.moe_layers - h), c % (s.moe_layers - h)))
            .collect();
        assert_eq!(keys, want, "hop {h}");
    }
}

#[test]
fn file_round_trip_and_bad_rows() {
    let stats = RoutingStats::of_trace(&trace("intent"), "intent", 0, OPTS).unwrap();
    let p = tmp("roundtrip.parquet");
    write_stats(&stats, &p).unwrap();
    assert_eq!(read_stats(&p).unwrap(), stats);
    // A trace is not a statistics file: exit 3 naming the missing key.
    let out = moeplan()
        .args(["stats", "merge", "traces/esft/law.parquet"])
        .arg(&p)
        .arg("-o")
        .arg(tmp("never.parquet"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("moeplan.stats_version"), "{err}");
}

fn aggregate_cli(traces: &[&str], out: &Path) {
    let mut args = vec!["trace".to_string(), "aggregate".into(), "-q".into()];
    for t in traces {
        args.push("-t".into());
        args.push(esft(t).display().to_string());
    }
    args.push("-o".into());
    args.push(out.display().to_string());
    moeplan_ok(&args);
}

/// `place --json` output without the timings and without the ILP row: its search stops at a
/// time limit, so it is not reproducible from run to run even on the same traces (its input is
/// checked by `the_ilp_gets_the_problem_of_the_traces`).
fn place_json(input: &[&str]) -> serde_json::Value {
    let mut args = vec![
        "place",
        "-q",
        "--model",
        "deepseek-v2-lite",
        "--hardware",
        "h100-8x-nvlink",
        "--method",
        "all",
        "--time-limit",
        "5",
        "--json",
    ];
    args.extend_from_slice(input);
    let mut v: serde_json::Value = serde_json::from_slice(&moeplan_ok(&args)).unwrap();
    v["built_on"] = serde_json::Value::Null;
    v["methods"]
        .as_array_mut()
        .unwrap()
        .retain(|m| m["name"] != "ilp");
    assert_eq!(v["methods"].as_array().unwrap().len(), 4);
    for m in v["methods"].as_array_mut().unwrap() {
        m["seconds"] = serde_json::Value::Null;
        if m["solver"].is_object() {
            m["solver"]["seconds"] = serde_json::Value::Null;
        }
    }
    v
}

#[test]
fn place_from_stats_gives_the_plan_of_the_traces() {
    let stats = tmp("place.parquet");
    aggregate_cli(&["law", "summary"], &stats);
    let (law, summary) = (esft("law"), esft("summary"));
    let from_traces = place_json(&["-t", law.to_str().unwrap(), "-t", summary.to_str().unwrap()]);
    let from_stats = place_json(&["--stats", stats.to_str().unwrap()]);
    assert_eq!(from_traces, from_stats);
    // --splits needs tokens.
    let out = moeplan()
        .args([
            "place",
            "-q",
            "--model",
            "deepseek-v2-lite",
            "--hardware",
            "h100-8x-nvlink",
            "--splits",
            "2",
            "--stats",
        ])
        .arg(&stats)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
}

#[test]
fn the_ilp_gets_the_problem_of_the_traces() {
    use moeplan::config::{HardwareConfig, ModelConfig};
    use moeplan::placement::{build_problem, problem_from_workloads};
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let model = ModelConfig::load(&root.join("configs/models/deepseek-v2-lite.toml")).unwrap();
    let hw = HardwareConfig::load(&root.join("configs/hardware/h100-8x-nvlink.toml")).unwrap();
    let traces = [trace("law"), trace("summary")];
    let refs: Vec<&Trace> = traces.iter().collect();
    let w = moeplan_solver::Weights::default();
    let want = build_problem(&refs, &model, &hw, None, w, 0).unwrap();
    let mut stats = RoutingStats::of_trace(&traces[0], "law", 0, OPTS).unwrap();
    stats
        .merge(&RoutingStats::of_trace(&traces[1], "summary", 0, OPTS).unwrap())
        .unwrap();
    let p = tmp("problem.parquet");
    write_stats(&stats, &p).unwrap();
    let back = read_stats(&p).unwrap();
    let workloads = back
        .workloads
        .values()
        .map(|x| x.solver_workload(&back.shape, false))
        .collect();
    assert_eq!(
        problem_from_workloads(workloads, &hw, None, w).unwrap(),
        want
    );
}

#[test]
fn predictors_from_stats_equal_those_from_the_traces() {
    let stats = tmp("predict.parquet");
    aggregate_cli(&["law", "summary"], &stats);
    let (law, summary) = (esft("law"), esft("summary"));
    for kind in ["static", "markov", "mix"] {
        let a = tmp(&format!("{kind}-traces.safetensors"));
        let b = tmp(&format!("{kind}-stats.safetensors"));
        moeplan_ok(&[
            "predict",
            "train",
            "-q",
            "--kind",
            kind,
            "-t",
            law.to_str().unwrap(),
            "-t",
            summary.to_str().unwrap(),
            "-o",
            a.to_str().unwrap(),
        ]);
        moeplan_ok(&[
            "predict",
            "train",
            "-q",
            "--kind",
            kind,
            "--stats",
            stats.to_str().unwrap(),
            "-o",
            b.to_str().unwrap(),
        ]);
        // The online options are tuned on token order, which statistics do not keep: compare
        // the trace-trained file with them cleared.
        let mut set = moeplan::predict::PredictorSet::load(&a).unwrap();
        set.online = None;
        let a2 = tmp(&format!("{kind}-traces-offline.safetensors"));
        set.save(&a2).unwrap();
        assert_eq!(
            std::fs::read(&a2).unwrap(),
            std::fs::read(&b).unwrap(),
            "{kind}"
        );
    }
    let out = moeplan()
        .args(["predict", "train", "--kind", "learned", "--stats"])
        .arg(&stats)
        .arg("-o")
        .arg(tmp("learned.safetensors"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("token-level"));
}

#[test]
fn merge_cli_adds_workloads() {
    let (a, b, c) = (tmp("m-a.parquet"), tmp("m-b.parquet"), tmp("m-c.parquet"));
    aggregate_cli(&["law"], &a);
    aggregate_cli(&["summary"], &b);
    moeplan_ok(&[
        "stats",
        "merge",
        "-q",
        a.to_str().unwrap(),
        b.to_str().unwrap(),
        "-o",
        c.to_str().unwrap(),
    ]);
    let both = tmp("m-both.parquet");
    aggregate_cli(&["law", "summary"], &both);
    assert_eq!(read_stats(&c).unwrap(), read_stats(&both).unwrap());
}

/// A small synthetic trace of DeepSeek-V2-Lite's shape cut to `tokens`.
fn synth(tokens: usize, seed: u64) -> Trace {
    let shape = moeplan::trace::ModelShape {
        moe_layers: 5,
        experts: 8,
        top_k: 2,
        first_moe_layer: 1,
    };
    let mut p = moeplan::synth::SynthParams::default_for(shape);
    p.mean_seq_len = 7.0;
    moeplan::synth::generate(&p, tokens, seed, None)
}

const SMALL: AggregateOptions = AggregateOptions {
    hops: 2,
    window_tokens: 16,
    window_pairs: true,
};

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn merge_is_associative_and_commutative(
        seeds in prop::array::uniform3(0u64..1000),
        sizes in prop::array::uniform3(1usize..120),
        labels in prop::array::uniform3(0usize..2),
    ) {
        // Disjoint token ranges per input, so equal labels merge without sample clashes.
        let s: Vec<RoutingStats> = (0..3)
            .map(|i| {
                let t = synth(sizes[i], seeds[i]);
                RoutingStats::of_trace(&t, ["a", "b"][labels[i]], 1000 * i as i64, SMALL).unwrap()
            })
            .collect();
        let merged = |x: &RoutingStats, y: &RoutingStats| {
            let mut m = x.clone();
            m.merge(y).unwrap();
            m
        };
        prop_assert_eq!(merged(&s[0], &s[1]), merged(&s[1], &s[0]));
        prop_assert_eq!(
            merged(&merged(&s[0], &s[1]), &s[2]),
            merged(&s[0], &merged(&s[1], &s[2]))
        );
    }

    #[test]
    fn a_trace_split_in_two_aggregates_to_the_whole(seed in 0u64..1000, tokens in 2usize..200, cut in 0.0f64..1.0) {
        let t = synth(tokens, seed);
        // Cut at a sequence boundary; the second part keeps its global token ids.
        let bounds: Vec<usize> = t.sequences().map(|r| r.end).collect();
        let m = bounds[((bounds.len() - 1) as f64 * cut) as usize];
        let whole = RoutingStats::of_trace(&t, "w", 0, SMALL).unwrap();
        let mut parts = RoutingStats::of_trace(&t.slice(0..m), "w", 0, SMALL).unwrap();
        if m < t.num_tokens() {
            let second = RoutingStats::of_trace(&t.slice(m..t.num_tokens()), "w", m as i64, SMALL).unwrap();
            parts.merge(&second).unwrap();
        }
        // Every sum is the whole's; the held-out sample is drawn per part (its stride follows
        // the part's length), so it is compared apart.
        let (mut a, mut b) = (whole.clone(), parts.clone());
        let ca = std::mem::take(&mut a.workloads.get_mut("w").unwrap().cases);
        let cb = std::mem::take(&mut b.workloads.get_mut("w").unwrap().cases);
        prop_assert_eq!(a, b);
        // Each part's cases are the whole trace's routing at those tokens.
        for (k, c) in &cb {
            let (h, id, l) = *k;
            let tt = id as usize;
            prop_assert_eq!(&c.cur[..], t.experts(tt, l));
            prop_assert_eq!(&c.truth[..], t.experts(tt, l + h));
            let prev = t.prev_in_seq(tt).map_or(&[][..], |p| t.experts(p, l + h));
            prop_assert_eq!(&c.prev[..], prev);
        }
        prop_assert!(!ca.is_empty());
    }
}
