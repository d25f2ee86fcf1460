//! `moeplan bench daemon` end to end: the spin client in a closed and an open loop against the
//! daemon the bench starts (a real socket), and its argument checks.

mod common;

use common::{moeplan, ok_json};

// One test for both loops, so that two spinning clients never share the machine's cores (the
// bench's own daemon spins too with --busy-poll).
#[test]
fn spin_client_runs_closed_and_open_loops() {
    // Closed loop, bounded by steps (the time bound is far): every step is answered.
    let out = moeplan()
        .args(["bench", "daemon", "--client", "spin", "--sessions", "2"])
        .args([
            "--steps",
            "300",
            "--seconds",
            "120",
            "--busy-poll",
            "--json",
        ])
        .output()
        .unwrap();
    let r = ok_json(&out);
    assert_eq!(r["steps"], 600, "{r}");
    assert!(r["offered_per_s"].is_null());
    let (p50, p99, max) = (
        r["p50_us"].as_f64(),
        r["p99_us"].as_f64(),
        r["max_us"].as_f64(),
    );
    assert!(p50 > Some(0.0) && p50 <= p99 && p99 <= max, "{r}");
    let hit = r["hit_ratio"].as_f64().unwrap();
    assert!(hit > 0.2 && hit < 1.0, "{r}");
    assert!(r["client_stalls"]["count"].is_u64(), "{r}");

    // Open loop: 4 sessions at 4,000 steps/s for 0.5 s make 2,000 steps due: each is answered
    // or, if the loop fell behind (one in flight per session), counted as due and unsent.
    let out = moeplan()
        .args(["bench", "daemon", "--client", "spin", "--sessions", "4"])
        .args(["--rate", "4000", "--seconds", "0.5", "--json"])
        .output()
        .unwrap();
    let r = ok_json(&out);
    assert_eq!(r["offered_per_s"], 4000.0, "{r}");
    let due = r["steps"].as_u64().unwrap() + r["unsent_due"].as_u64().unwrap();
    assert!((1_996..=2_004).contains(&due), "{r}");
    assert!(r["p999_us"].as_f64() <= r["max_us"].as_f64(), "{r}");
}

#[test]
fn rate_needs_the_spin_client() {
    let out = moeplan()
        .args(["bench", "daemon", "--rate", "1000", "--seconds", "0.2"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--rate needs --client spin"), "{err}");
    let out = moeplan()
        .args(["bench", "daemon", "--client", "spin", "--rate", "0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--rate must be in"));
}
