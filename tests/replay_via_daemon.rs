//! `moeplan replay --via-daemon` reproduces the in-process replay's hit ratios exactly on the
//! real sample trace (lru, lfu, static; per-layer and shared budgets).

mod support;

use std::process::Command;

use support::TestDaemon;

fn hit_ratios(args: &[&str]) -> Vec<(String, f64)> {
    let out = Command::new(env!("CARGO_BIN_EXE_moeplan"))
        .args([
            "replay",
            "-t",
            "traces/sample.parquet",
            "--policy",
            "lru,lfu,static",
            "--json",
        ])
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
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
        vec!["--capacity", "16"],
        vec![
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
