//! `moeplan replay` end to end: the documented JSON keys, the constants, and exit code 3 for
//! inconsistent arguments.

mod common;

use common::moeplan;

#[test]
fn replay_json_has_the_documented_keys() {
    let out = moeplan()
        .args([
            "replay",
            "-t",
            "traces/sample.parquet",
            "--capacity",
            "16",
            "--policy",
            "lru,opt,static",
            "--json",
        ])
        .output()
        .unwrap();
    let v = common::ok_json(&out);
    let ps = v["policies"].as_array().unwrap();
    assert_eq!(ps.len(), 3);
    assert_eq!(ps[0]["name"], "lru");
    for p in ps {
        for k in [
            "hit_ratio",
            "loads_per_token",
            "bytes_per_token",
            "stall_ms_per_token",
            "tokens_per_s",
        ] {
            assert!(p[k].as_f64().is_some(), "missing {k} in {p}");
        }
        // DeepSeek-V2-Lite's 2 shared experts as two more hits per step and layer:
        // (hits + 2 s) / (demands + 2 s), s = steps x layers.
        let c = &p["detail"]["cache"];
        let (h, d, s) = (
            c["hits"].as_f64(),
            c["demands"].as_f64(),
            c["steps"].as_f64(),
        );
        let (h, d, s) = (h.unwrap(), d.unwrap(), s.unwrap());
        let want = (h + 2.0 * s) / (d + 2.0 * s);
        let got = p["hit_ratio_with_shared"].as_f64().unwrap();
        assert!((got - want).abs() < 1e-12, "{got} vs {want}");
        assert!(got > p["hit_ratio"].as_f64().unwrap());
    }
    let c = &v["constants"];
    assert_eq!(c["expert_bytes"], 17301504);
    assert_eq!(c["link_gbps"], 25.0);
    assert_eq!(v["capacity"], 16);
    assert_eq!(v["total_slots"], 16 * 26);
}

#[test]
fn scheduling_reports_both_orders() {
    let out = moeplan()
        .args([
            "replay",
            "-t",
            "traces/sample.parquet",
            "--capacity",
            "16",
            "--policy",
            "lru",
            "--concurrent",
            "4",
            "--schedule",
            "--json",
        ])
        .output()
        .unwrap();
    let v = common::ok_json(&out);
    let s = v["policies"][0]["experts_per_batch"].as_f64().unwrap();
    let u = v["unscheduled"][0]["experts_per_batch"].as_f64().unwrap();
    assert!(s > 6.0 && u > 6.0 && s <= 24.0 && u <= 24.0, "{s} {u}");
}

#[test]
fn inconsistent_arguments_exit_3() {
    for args in [
        &["--capacity", "0"][..],
        &["--capacity", "65"],
        &["--capacity", "16", "--schedule"],
        &["--capacity", "16", "--batch", "4", "--concurrent", "2"],
        &[
            "--capacity",
            "16",
            "--policy",
            "predictive",
            "--predictor",
            "nonsense",
        ],
    ] {
        let out = moeplan()
            .args(["replay", "-t", "traces/sample.parquet"])
            .args(args)
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(3),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = moeplan()
        .args([
            "replay",
            "-t",
            "traces/sample.parquet",
            "--capacity",
            "16",
            "--policy",
            "fifo",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}
