//! `moeplan rebalance`: plans never depend on windows not yet seen, runs are deterministic, the
//! move budget holds at every re-balance, and the JSON carries the documented keys.

mod common;

use moeplan::config::{HardwareConfig, ModelConfig};
use moeplan::placement::{build_problem, redundant_slots, time_model, topology};
use moeplan::rebalance::{RebalancePolicy, RebalanceReport, RebalanceSetup, run, trace_windows};
use moeplan::trace::{Trace, read_trace};
use moeplan_solver::{Method, MethodOptions, Unlimited, Weights, place};

fn sample() -> Trace {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("traces/sample.parquet");
    read_trace(&p, None, None).unwrap()
}

fn configs() -> (ModelConfig, HardwareConfig) {
    let m = ModelConfig::from_arg("deepseek-v2-lite").unwrap();
    let h = HardwareConfig::from_arg("h100-8x-nvlink").unwrap();
    (m, h)
}

fn report(stream: &Trace, window: usize, budget: usize) -> RebalanceReport {
    let (model, hw) = configs();
    let p = build_problem(&[stream], &model, &hw, None, Weights::default(), 0).unwrap();
    let initial = place(
        Method::Contiguous,
        &p,
        &MethodOptions::default(),
        &Unlimited,
    )
    .unwrap()
    .plan;
    let setup = RebalanceSetup {
        window,
        topology: topology(&hw),
        redundant: redundant_slots(&hw, None),
        initial,
        move_budget: budget,
        weights: Weights::default(),
        history_half_life: 1.0,
        eplb_groups: 0,
        time: time_model(&model, &hw, 128),
        expert_bytes: model.bytes_per_expert as f64,
    };
    run(
        &setup,
        &trace_windows(stream, window).unwrap(),
        &RebalancePolicy::ALL,
    )
    .unwrap()
}

/// The report without its clock readings.
fn figures(r: &RebalanceReport) -> serde_json::Value {
    let mut v = serde_json::to_value(r).unwrap();
    for p in v["policies"].as_array_mut().unwrap() {
        p["replan_seconds"] = serde_json::Value::Null;
    }
    v
}

#[test]
fn plans_never_see_the_windows_they_are_scored_on() {
    let tr = sample();
    let window = tr.num_tokens() / 6;
    let keep = 3 * window;
    // The stream after the third window, reversed token by token.
    let head = tr.slice(0..keep);
    let tail: Vec<Trace> = (keep..tr.num_tokens())
        .rev()
        .map(|t| tr.slice(t..t + 1))
        .collect();
    let mut parts = vec![&head];
    parts.extend(tail.iter());
    let other = Trace::concat(&parts).unwrap();
    let (a, b) = (report(&tr, window, 32), report(&other, window, 32));
    for (pa, pb) in a.policies.iter().zip(&b.policies) {
        // Windows 1 and 2 are scored with plans made from windows 0 and 1 only.
        assert_eq!(pa.series[..2], pb.series[..2], "{}", pa.name);
    }
    assert_ne!(
        figures(&a),
        figures(&b),
        "the future does change later windows"
    );
}

#[test]
fn deterministic_and_within_the_move_budget() {
    let tr = sample();
    let window = tr.num_tokens() / 5;
    let a = report(&tr, window, 24);
    assert_eq!(figures(&a), figures(&report(&tr, window, 24)));
    let m = a.policies.iter().find(|p| p.name == "moeplan").unwrap();
    assert!(m.rebalances >= 3);
    assert!(m.series.iter().all(|w| w.moves <= 24), "{:?}", m.series);
    assert!(m.series.iter().any(|w| w.moves > 0));
    let s = a.policies.iter().find(|p| p.name == "static").unwrap();
    assert_eq!((s.rebalances, s.moves_per_rebalance), (0, 0.0));
    let e = a.policies.iter().find(|p| p.name == "eplb").unwrap();
    assert!(e.moves_per_rebalance > m.moves_per_rebalance);
    assert!(e.mean_ir < s.mean_ir);
}

#[test]
fn cli_reports_the_documented_keys() {
    let out = common::moeplan()
        .args([
            "rebalance",
            "-t",
            "traces/sample.parquet",
            "--model",
            "deepseek-v2-lite",
            "--hardware",
            "h100-8x-nvlink",
            "--window",
            "500",
            "--policy",
            "eplb,moeplan",
            "--move-budget",
            "16",
            "--json",
        ])
        .output()
        .unwrap();
    let v = common::ok_json(&out);
    assert_eq!(v["window"], 500);
    let ps = v["policies"].as_array().unwrap();
    assert_eq!(ps.len(), 2);
    for p in ps {
        for key in [
            "name",
            "mean_ir",
            "worst_ir",
            "mean_hop",
            "a2a_bytes_per_token",
            "mean_layer_ms",
            "moves_per_rebalance",
            "bytes_moved_per_rebalance",
            "replan_seconds",
            "rebalances",
        ] {
            assert!(p.get(key).is_some(), "missing {key} in {p}");
        }
    }
    let bad = common::moeplan()
        .args([
            "rebalance",
            "-t",
            "traces/sample.parquet",
            "--model",
            "deepseek-v2-lite",
            "--hardware",
            "h100-8x-nvlink",
            "--window",
            "0",
        ])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(3));
}

/// `rebalance -t ... --json` without its clock readings.
fn cli_figures(args: &[&str]) -> serde_json::Value {
    let mut all = vec![
        "rebalance",
        "--model",
        "deepseek-v2-lite",
        "--hardware",
        "h100-8x-nvlink",
        "--json",
    ];
    all.extend(args);
    let mut v = common::ok_json(&common::moeplan().args(&all).output().unwrap());
    for p in v["policies"].as_array_mut().unwrap() {
        p["replan_seconds"] = serde_json::Value::Null;
    }
    v
}

/// `trace aggregate -t PATH... --window W [--window-pairs] -o OUT`.
fn aggregate(paths: &[&str], window: &str, pairs: bool, out: &str) {
    let mut args = vec!["trace", "aggregate", "-q"];
    for p in paths {
        args.extend(["-t", p]);
    }
    args.extend(["--window", window, "-o", out]);
    if pairs {
        args.push("--window-pairs");
    }
    common::moeplan_ok(&args);
}

/// The same stream from the statistics file `trace aggregate --window-pairs` makes of the traces:
/// the same report. Two traces of whole windows (a trace's last partial window would be carried
/// into the next trace's first in the trace stream, not in the statistics').
#[test]
fn stats_file_gives_the_traces_report() {
    let dir = tempfile::tempdir().unwrap();
    let window = 500;
    let mut paths = Vec::new();
    for task in ["law", "summary"] {
        let t = read_trace(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join(format!("traces/esft/{task}.parquet")),
            None,
            None,
        )
        .unwrap();
        let whole = t.num_tokens() / window * window;
        let p = dir.path().join(format!("{task}.parquet"));
        moeplan::trace::write_trace(&t.slice(0..whole), &p, None).unwrap();
        paths.push(p.to_str().unwrap().to_string());
    }
    let stats = dir.path().join("stats.parquet");
    let w = window.to_string();
    aggregate(&[&paths[0], &paths[1]], &w, true, stats.to_str().unwrap());
    let s = stats.to_str().unwrap();
    let from_traces = cli_figures(&["-t", &paths[0], "-t", &paths[1], "--window", &w]);
    let from_stats = cli_figures(&["--stats", s, "--window", &w]);
    assert_eq!(from_stats, from_traces);
    assert!(from_stats["windows"].as_u64().unwrap() > 20);
    // One trace with a partial last window: the same too.
    let law = cli_figures(&["-t", "traces/esft/law.parquet", "--window", "700"]);
    aggregate(&["traces/esft/law.parquet"], "700", true, s);
    assert_eq!(cli_figures(&["--stats", s, "--window", "700"]), law);
}

#[test]
fn stats_file_without_window_pairs_or_with_another_window_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let stats = dir.path().join("stats.parquet");
    let s = stats.to_str().unwrap();
    aggregate(&["traces/sample.parquet"], "200", false, s);
    let run = |window: &str| {
        let out = common::moeplan()
            .args([
                "rebalance",
                "--stats",
                s,
                "--model",
                "deepseek-v2-lite",
                "--hardware",
                "h100-8x-nvlink",
                "--window",
                window,
            ])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(3));
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let err = run("200");
    assert!(
        err.contains("stats.parquet") && err.contains("--window-pairs"),
        "{err}"
    );
    aggregate(&["traces/sample.parquet"], "200", true, s);
    let err = run("300");
    assert!(
        err.contains("windows of 200 tokens, --window is 300"),
        "{err}"
    );
}
