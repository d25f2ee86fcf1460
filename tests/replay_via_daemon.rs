//! `moeplan replay --via-daemon` reproduces the in-process replay's hit ratios exactly on the
//! real sample trace (lru, lfu, static; per-layer and shared budgets; `predictive` with a
//! predictor file trained out of sample, at batch 1 and with continuous batching; online, from a
//! file and cold: the daemon's predictor learns from the tokens it serves), and refuses what it
//! cannot reproduce (`opt`, `--cpu-offload`) with the reason.

mod common;
mod support;

use support::TestDaemon;

fn moeplan(args: &[&str]) -> std::process::Output {
    common::moeplan().args(args).output().unwrap()
}

fn hit_ratios(args: &[&str]) -> Vec<(String, f64)> {
    let mut all = vec!["replay", "-t", "traces/sample.parquet", "--json"];
    all.extend(args);
    let stdout = common::moeplan_ok(&all);
    let v: serde_json::Value = serde_json::from_slice(&stdout).unwrap();
    v["policies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_string(),
                p["hit_ratio"].as_f64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn replay_through_the_daemon_matches_the_in_process_replay_exactly() {
    let d = TestDaemon::start();
    let sock = d.socket.to_str().unwrap().to_string();
    for settings in [
        vec!["--policy", "lru,lfu,static", "--capacity", "16"],
        vec![
            "--policy",
            "lru,lfu,static",
            "--capacity",
            "8",
            "--capacity-mode",
            "shared",
            "--batch",
            "4",
        ],
    ] {
        let local = hit_ratios(&settings);
        let mut remote_args = settings.clone();
        remote_args.extend(["--via-daemon", &sock]);
        let remote = hit_ratios(&remote_args);
        assert_eq!(local.len(), 3);
        assert_eq!(remote, local, "settings {settings:?}");
    }
    assert_eq!(d.metric("moeplan_sessions_active"), 0.0);
}

/// A `kind` predictor (look-ahead 2, `extra` training flags) trained in `dir` on the intent
/// task: another ESFT task than most of the sample (out of sample for law and summary).
/// Returns its path.
fn trained_on_intent(dir: &std::path::Path, kind: &str, extra: &[&str]) -> String {
    let pred = dir.join(format!("{kind}.safetensors"));
    let pred = pred.to_str().unwrap().to_string();
    let mut args = vec![
        "predict",
        "train",
        "-t",
        "traces/esft/intent.parquet",
        "--kind",
        kind,
        "--lookahead",
        "2",
        "-o",
        &pred,
    ];
    args.extend(extra);
    common::moeplan_ok(&args);
    pred
}

/// A mix predictor trained on the intent task.
fn mix_on_intent(dir: &std::path::Path) -> String {
    trained_on_intent(dir, "mix", &[])
}

#[test]
fn predictive_through_the_daemon_matches_the_in_process_replay_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let pred = mix_on_intent(dir.path());
    let pred = pred.as_str();
    let d = TestDaemon::start();
    let sock = d.socket.to_str().unwrap().to_string();
    for settings in [
        vec!["--capacity", "16"],
        vec![
            "--capacity",
            "4",
            "--capacity-mode",
            "shared",
            "--concurrent",
            "4",
        ],
        // The previous token of each sequence: the daemon's routing memory.
        vec!["--capacity", "8", "--predictor-name", "temporal"],
    ] {
        let mut local_args = vec!["--policy", "predictive,lru", "--predictor", pred];
        local_args.extend(&settings);
        let local = hit_ratios(&local_args);
        let mut remote_args = local_args.clone();
        remote_args.extend(["--via-daemon", &sock]);
        let remote = hit_ratios(&remote_args);
        assert_eq!(local.len(), 2);
        assert!(local[0].1 > 0.0);
        assert_eq!(remote, local, "settings {settings:?}");
    }
    assert_eq!(d.metric("moeplan_sessions_active"), 0.0);
}

/// The JSON of `moeplan ARGS --json`.
fn json(args: &[&str]) -> serde_json::Value {
    let mut all = args.to_vec();
    all.push("--json");
    serde_json::from_slice(&common::moeplan_ok(&all)).unwrap()
}

/// Prequential recall@k at h = 1 of predictor `name` in a `predict eval --online` document.
fn eval_recall(v: &serde_json::Value, name: &str, k: usize) -> f64 {
    let p = v["predictors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("no predictor {name} in {v}"));
    p["recall"]["1"][k.to_string()].as_f64().unwrap()
}

#[test]
fn online_predictive_through_the_daemon_matches_the_in_process_replay_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let pred = mix_on_intent(dir.path());
    let pred = pred.as_str();
    let small = ["--hidden", "16", "--epochs", "1", "--max-cases", "4000"];
    let learned = trained_on_intent(dir.path(), "learned", &small);
    let learned = learned.as_str();
    let d = TestDaemon::start();
    let sock = d.socket.to_str().unwrap().to_string();
    for settings in [
        // Learning from the file's offline prior, and from nothing (cold start).
        vec!["--predictor", pred, "--capacity", "16"],
        vec!["--predictor", "none", "--capacity", "16"],
        // The learned model's heads adapting, one sequence and four at a time.
        vec!["--predictor", learned, "--capacity", "16"],
        vec![
            "--predictor",
            learned,
            "--capacity",
            "16",
            "--concurrent",
            "4",
        ],
        vec![
            "--predictor",
            pred,
            "--capacity",
            "4",
            "--capacity-mode",
            "shared",
            "--concurrent",
            "4",
        ],
    ] {
        let mut local_args = vec!["--policy", "predictive,lru", "--online"];
        local_args.extend(&settings);
        let local = hit_ratios(&local_args);
        let mut remote_args = local_args.clone();
        remote_args.extend(["--via-daemon", &sock]);
        let remote = hit_ratios(&remote_args);
        assert!(local[0].1 > 0.0);
        assert_eq!(remote, local, "settings {settings:?}");
    }
    // Learning changes the cache: the online replay differs from the offline one.
    let offline = hit_ratios(&[
        "--policy",
        "predictive",
        "--predictor",
        pred,
        "--capacity",
        "16",
    ]);
    let online = hit_ratios(&[
        "--policy",
        "predictive",
        "--predictor",
        pred,
        "--capacity",
        "16",
        "--online",
    ]);
    assert_ne!(offline, online);
    assert_eq!(d.metric("moeplan_sessions_active"), 0.0);
}

#[test]
fn the_daemons_live_recall_is_the_prequential_recall() {
    let d = TestDaemon::start();
    let sock = d.socket.to_str().unwrap().to_string();
    let trace = "traces/sample.parquet";
    for (predictor, extra) in [
        ("none", vec![]),
        ("none", vec!["--predictor-name", "markov"]),
    ] {
        let mut args = vec![
            "replay",
            "-t",
            trace,
            "--policy",
            "predictive",
            "--capacity",
            "16",
            "--online",
            "--predictor",
            predictor,
            "--via-daemon",
            &sock,
        ];
        args.extend(&extra);
        let v = json(&args);
        let row = &v["policies"][0];
        let name = extra.get(1).copied().unwrap_or("mix");
        let eval = json(&[
            "predict",
            "eval",
            "--predictor",
            predictor,
            "--online",
            "--lookahead",
            "1",
            "-t",
            trace,
        ]);
        let k = eval["ks"][0].as_u64().unwrap() as usize;
        let want = eval_recall(&eval, name, k);
        let got = row["live_recall"].as_f64().unwrap();
        assert!(want > 0.2, "{eval}");
        assert!(
            (got - want).abs() < 1e-9,
            "{name}: daemon {got} vs eval {want}"
        );
        assert_eq!(
            row["learned"], eval["tokens"],
            "every token served was learned"
        );
    }
}

#[test]
fn what_a_runtime_cannot_reproduce_is_refused_with_the_reason() {
    let d = TestDaemon::start();
    let sock = d.socket.to_str().unwrap();
    for (extra, reason) in [
        (vec!["--policy", "opt"], "needs the future routing"),
        (vec!["--policy", "lru", "--cpu-offload"], "--cpu-offload"),
        (
            vec!["--policy", "predictive", "--predictor", "mix"],
            "needs --predictor FILE",
        ),
    ] {
        let mut args = vec!["replay", "-t", "traces/sample.parquet", "--capacity", "16"];
        args.extend(extra);
        args.extend(["--via-daemon", sock]);
        let out = moeplan(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{err}");
        assert!(err.contains(reason), "{err}");
    }
}
