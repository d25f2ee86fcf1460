//! `moeplan run`: caching never changes the output. On the real sample trace (teacher-forced
//! routing) through a tiny model in DeepSeek-V2-Lite's routing shape, every policy at several
//! capacities (1 slot per layer included), in-process and through a real daemon socket, gives
//! the all-resident run's output digest bit for bit; a deliberately broken pin does not; the
//! run's loads and hits are the replay simulator's for the same routing.

mod common;
mod support;

use std::path::{Path, PathBuf};

use moeplan::cache::{Budget, CacheConfig, ExpertCache, PolicyKind};
use moeplan::predict::PredictorSet;
use moeplan::replay::{
    Batching, PrefetchOptions, ReplaySetup, build_policy, build_steps, simulate,
};
use moeplan::runtime::{Fault, RunReport, RunSpec, no_link, run};
use moeplan::trace::{Trace, read_trace};
use support::TestDaemon;

/// Tokens run per case (the first sequence of the sample: intent).
const TOKENS: usize = 10;

struct Fixture {
    _dir: tempfile::TempDir,
    model: PathBuf,
    predictor: PathBuf,
    full: Trace,
    trace: Trace,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("m");
    common::moeplan_ok(&[
        "model",
        "init",
        "--model",
        "deepseek-v2-lite",
        "--scale",
        "0.015625",
        "-o",
        model.to_str().unwrap(),
    ]);
    // Trained on another task than the one run (out of sample).
    let predictor = dir.path().join("markov.safetensors");
    common::moeplan_ok(&[
        "predict",
        "train",
        "-t",
        "traces/esft/law.parquet",
        "--kind",
        "markov",
        "--lookahead",
        "2",
        "-o",
        predictor.to_str().unwrap(),
    ]);
    let full = read_trace(Path::new("traces/sample.parquet"), None, None).unwrap();
    let trace = full.slice(0..TOKENS);
    Fixture {
        _dir: dir,
        model,
        predictor,
        full,
        trace,
    }
}

fn spec<'a>(f: &'a Fixture, capacity: usize, policy: PolicyKind) -> RunSpec<'a> {
    RunSpec {
        trace_path: Some(Path::new("traces/sample.parquet")),
        train: Some(&f.full),
        predictor: (policy == PolicyKind::Predictive).then_some(f.predictor.as_path()),
        ..RunSpec::new(&f.model, &f.trace, capacity, policy)
    }
}

/// The replay simulator's (hits, loads, demands) for the same routing and settings.
fn replayed(f: &Fixture, capacity: usize, policy: PolicyKind) -> (u64, u64, u64) {
    let set = PredictorSet::load(&f.predictor).unwrap();
    let predictor = (policy == PolicyKind::Predictive).then(|| set.main());
    let cfg = CacheConfig {
        layers: 26,
        experts: 64,
        budget: Budget::PerLayer(capacity),
    };
    let train = [&f.full];
    let s = spec(f, capacity, policy);
    let setup = ReplaySetup {
        trace: &f.trace,
        budget: cfg.budget,
        batching: Batching::Single,
        timing: no_link(),
        train: &train,
        predictor,
        online: None,
        prefetch: PrefetchOptions {
            lookahead: s.lookahead,
            top_n: 6,
        },
        half_life: s.half_life,
        beta: s.beta,
        margin: s.margin,
    };
    let steps = build_steps(&f.trace, Batching::Single);
    let mut cache =
        ExpertCache::new(cfg, build_policy(policy, &cfg, &setup, &steps).unwrap()).unwrap();
    let mut frozen = predictor.map(moeplan::predict::Frozen);
    let r = simulate(
        &f.trace,
        &steps,
        &mut cache,
        &setup.timing,
        frozen
            .as_mut()
            .map(|p| (p as &mut dyn moeplan::predict::Predictor, setup.prefetch)),
    )
    .unwrap();
    (r.cache.hits, r.transfers, r.cache.demands)
}

fn check_moved(r: &RunReport) {
    assert_eq!(
        r.copies, r.loads,
        "every transfer the cache asked for moved bytes: {r:?}"
    );
    assert_eq!(r.bytes_moved, r.copies * 3 * 32 * 22 * 4);
}

#[test]
fn caching_never_changes_the_output_in_process_and_matches_the_replay() {
    let f = fixture();
    let all = run(&spec(&f, 64, PolicyKind::Lru)).unwrap();
    assert_eq!(all.tokens, TOKENS as u64);
    assert_eq!(all.loads, all.demands - all.hits);
    check_moved(&all);
    for policy in [
        PolicyKind::Lru,
        PolicyKind::Lfu,
        PolicyKind::Static,
        PolicyKind::Predictive,
        PolicyKind::Opt,
    ] {
        for capacity in [1, 4, 16] {
            let r = run(&spec(&f, capacity, policy)).unwrap();
            assert_eq!(
                r.output_digest, all.output_digest,
                "{policy} at {capacity} slots per layer changed the output"
            );
            check_moved(&r);
            assert!(
                r.loads >= all.loads,
                "{policy} at {capacity}: fewer loads than compulsory"
            );
            if capacity == 1 {
                assert!(r.loads > all.loads, "{policy} at 1 slot per layer reloads");
            }
            let (hits, loads, demands) = replayed(&f, capacity, policy);
            assert_eq!(
                (r.hits, r.loads, r.demands),
                (hits, loads, demands),
                "{policy} at {capacity}: run vs replay (hits, loads, demands)"
            );
            if policy == PolicyKind::Predictive {
                assert!(
                    r.prefetch_loads > 0,
                    "predictive at {capacity} prefetched nothing"
                );
            }
        }
    }
}

#[test]
fn caching_never_changes_the_output_through_the_daemon() {
    let f = fixture();
    let d = TestDaemon::start();
    let all = run(&spec(&f, 64, PolicyKind::Lru)).unwrap();
    for policy in [
        PolicyKind::Lru,
        PolicyKind::Lfu,
        PolicyKind::Static,
        PolicyKind::Predictive,
    ] {
        for capacity in [1, 16] {
            let local = run(&spec(&f, capacity, policy)).unwrap();
            let remote = run(&RunSpec {
                via_daemon: Some(d.socket.as_path()),
                ..spec(&f, capacity, policy)
            })
            .unwrap();
            assert!(remote.via_daemon);
            assert_eq!(
                remote.output_digest, all.output_digest,
                "{policy} at {capacity} via the daemon"
            );
            check_moved(&remote);
            assert_eq!(
                (
                    remote.hits,
                    remote.loads,
                    remote.demands,
                    remote.prefetch_loads
                ),
                (local.hits, local.loads, local.demands, local.prefetch_loads),
                "{policy} at {capacity}: daemon vs in-process cache"
            );
        }
    }
    assert_eq!(d.metric("moeplan_sessions_active"), 0.0);
}

#[test]
fn a_broken_pin_is_caught_by_the_output_digest() {
    let f = fixture();
    let all = run(&spec(&f, 64, PolicyKind::Lru)).unwrap();
    let ok = run(&spec(&f, 4, PolicyKind::Lru)).unwrap();
    assert_eq!(ok.output_digest, all.output_digest);
    let broken = run(&RunSpec {
        fault: Some(Fault { step: 3, layer: 5 }),
        ..spec(&f, 4, PolicyKind::Lru)
    })
    .unwrap();
    assert_ne!(
        broken.output_digest, all.output_digest,
        "a slot overwritten while its layer ran went unnoticed"
    );
}

#[test]
fn batched_steps_agree_across_capacities() {
    let f = fixture();
    let at = |capacity| {
        run(&RunSpec {
            batch: 4,
            ..spec(&f, capacity, PolicyKind::Lru)
        })
        .unwrap()
    };
    let all = at(64);
    assert!(all.steps < TOKENS as u64);
    for capacity in [1, 8] {
        assert_eq!(
            at(capacity).output_digest,
            all.output_digest,
            "batch 4 at {capacity}"
        );
    }
}

/// `moeplan run` of the first `tokens` tokens of the sample with model directory `m`.
fn run_args<'a>(m: &'a str, tokens: &'a str) -> [&'a str; 7] {
    [
        "run",
        "--model-dir",
        m,
        "--trace",
        "traces/sample.parquet",
        "--tokens",
        tokens,
    ]
}

#[test]
fn run_cli_reports_the_contract_keys_and_refuses_bad_input() {
    let f = fixture();
    let m = f.model.to_str().unwrap();
    let base = run_args(m, "4");
    let mut args = base.to_vec();
    args.extend(["--capacity", "2", "--policy", "lru", "--json"]);
    let v = common::ok_json(&common::moeplan().args(&args).output().unwrap());
    for key in [
        "output_digest",
        "tokens_per_s",
        "bytes_moved",
        "copy_bandwidth_gbps",
        "wait_s",
        "hit_ratio",
        "loads",
    ] {
        assert!(v.get(key).is_some(), "missing {key}: {v}");
    }
    assert_eq!(v["output_digest"].as_str().unwrap().len(), 16);
    for (extra, needle) in [
        (vec!["--capacity", "0"], "--capacity 0"),
        (
            vec!["--capacity", "4", "--policy", "predictive"],
            "needs --predictor",
        ),
    ] {
        let mut a = base.to_vec();
        a.extend(extra);
        let out = common::moeplan().args(&a).output().unwrap();
        assert_eq!(out.status.code(), Some(3), "{a:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(needle),
            "{a:?}"
        );
    }
    // A trace of another model's shape: bad input.
    let other = f._dir.path().join("mixtral.jsonl");
    common::moeplan_ok(&[
        "trace",
        "synth",
        "--model",
        "mixtral-8x7b",
        "--tokens",
        "20",
        "-o",
        other.to_str().unwrap(),
    ]);
    let out = common::moeplan()
        .args([
            "run",
            "--model-dir",
            m,
            "--trace",
            other.to_str().unwrap(),
            "--capacity",
            "2",
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = common::moeplan()
        .args([
            "run",
            "--model-dir",
            "/nonexistent",
            "--trace",
            "traces/sample.parquet",
            "--capacity",
            "2",
        ])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("model init"));
}

#[test]
fn run_cli_through_the_daemon_in_batches_with_a_predictor_keeps_the_output() {
    let f = fixture();
    let d = TestDaemon::start();
    let m = f.model.to_str().unwrap();
    let p = f.predictor.to_str().unwrap();
    let sock = d.socket.to_str().unwrap();
    let base = run_args(m, "8");
    let digest = |extra: &[&str]| {
        let mut args = base.to_vec();
        args.push("--json");
        args.extend(extra);
        let v = common::ok_json(&common::moeplan().args(&args).output().unwrap());
        (v["output_digest"].as_str().unwrap().to_string(), v)
    };
    let (all, _) = digest(&["--capacity", "64"]);
    for extra in [
        vec![
            "--capacity",
            "2",
            "--policy",
            "predictive",
            "--predictor",
            p,
        ],
        vec!["--capacity", "2", "--policy", "lru", "--batch", "2"],
    ] {
        let mut a = extra.clone();
        a.extend(["--via-daemon", sock]);
        let (remote, v) = digest(&a);
        // Batched compute sums in another order: compared with all-resident at the same batch.
        let want = match extra.last() {
            Some(&"2") => digest(&["--capacity", "64", "--batch", "2"]).0,
            _ => all.clone(),
        };
        assert_eq!(remote, want, "{a:?}: {v}");
        assert_eq!(v["via_daemon"], true, "{v}");
        assert!(v["loads"].as_u64().unwrap() > 0, "{v}");
    }
    // A predictor through the daemon learns a token's predecessor from an earlier step only.
    let out = common::moeplan()
        .args(base)
        .args([
            "--capacity",
            "2",
            "--policy",
            "predictive",
            "--predictor",
            p,
            "--batch",
            "2",
            "--via-daemon",
            sock,
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--batch 1"));
}

#[test]
fn bench_run_compares_the_three_rows_and_the_copies() {
    let f = fixture();
    let v = common::ok_json(
        &common::moeplan()
            .args([
                "bench",
                "run",
                "--model-dir",
                f.model.to_str().unwrap(),
                "--predictor",
                f.predictor.to_str().unwrap(),
                "--tokens",
                "6",
                "--copy-experts",
                "32",
                "--json",
            ])
            .output()
            .unwrap(),
    );
    assert_eq!(v["outputs_equal"], true, "{v}");
    assert_eq!(v["rows"].as_array().unwrap().len(), 3, "{v}");
    assert!(v["copy"]["memcpy_gbps"].as_f64().unwrap() > 0.0, "{v}");
    assert!(v["copy"]["ratio"].as_f64().unwrap() > 0.0, "{v}");
}
