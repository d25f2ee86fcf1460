//! `place --counts`: plans from expert load counts alone (SGLang's `stat`-mode dump, or the
//! counts moeplan exports), the same plans as from the tokens the counts were taken from; the
//! methods that need token-level routing refuse, and bad counts are named.

use std::path::{Path, PathBuf};

mod common;
use common::{moeplan, moeplan_ok};

const DIR: &str = "tests/fixtures/engines";

fn fx(name: &str) -> String {
    format!("{DIR}/{name}")
}

fn tiny() -> [String; 4] {
    [
        "--model".into(),
        fx("tiny-moe.toml"),
        "--hardware".into(),
        fx("two-gpus.toml"),
    ]
}

/// The tokens SGLang's stat fixture counted: its buffer holds the first three forward passes
/// of the per-token fixture (sequence 0 positions 0..=5, sequence 1 positions 0..=2).
fn counted_tokens(dir: &Path) -> PathBuf {
    let all = std::fs::read_to_string(fx("sglang-per-token-expected.jsonl")).unwrap();
    let mut lines = all.lines();
    let mut out = vec![lines.next().unwrap().to_string()];
    for l in lines {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        let (s, p) = (v["seq"].as_u64().unwrap(), v["pos"].as_u64().unwrap());
        if (s == 0 && p <= 5) || (s == 1 && p <= 2) {
            out.push(l.to_string());
        }
    }
    assert_eq!(out.len(), 1 + 9);
    let path = dir.join("counted.jsonl");
    std::fs::write(&path, out.join("\n") + "\n").unwrap();
    path
}

/// `place` with `input` (e.g. `["--counts", F]`) and `method`; returns the plan file and the
/// JSON output.
fn plan(
    input: &[&str],
    method: &str,
    dir: &Path,
    name: &str,
) -> (serde_json::Value, serde_json::Value) {
    let out = dir.join(name);
    let mut args: Vec<String> = vec!["place".into(), "-q".into(), "--json".into()];
    args.extend(input.iter().map(|s| s.to_string()));
    args.extend(tiny());
    args.extend(
        [
            "--method",
            method,
            "--time-limit",
            "10",
            "--comm-weight",
            "0",
            "-o",
        ]
        .map(String::from),
    );
    args.push(out.display().to_string());
    let json: serde_json::Value = serde_json::from_slice(&moeplan_ok(&args)).unwrap();
    let plan = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    (plan, json)
}

#[test]
fn a_stat_dump_plans_as_the_tokens_it_counted() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = counted_tokens(dir.path());
    let tokens = tokens.to_str().unwrap();
    for method in ["contiguous", "round-robin", "eplb", "ilp"] {
        let (from_counts, j) = plan(
            &["--counts", &fx("sglang-stat.pt")],
            method,
            dir.path(),
            "c.json",
        );
        let (from_trace, jt) = plan(&["-t", tokens], method, dir.path(), "t.json");
        assert_eq!(
            from_counts["physical_to_logical_map"], from_trace["physical_to_logical_map"],
            "{method}"
        );
        assert_eq!(from_counts["built_on"][0], fx("sglang-stat.pt"));
        let m = &j["methods"][0];
        assert_eq!(m["name"], method);
        for key in ["ir_mean", "ir_worst"] {
            assert_eq!(
                m["in_sample"][key], jt["methods"][0]["in_sample"][key],
                "{method} {key}"
            );
        }
    }
}

#[test]
fn exported_counts_plan_as_the_trace_they_come_from() {
    let dir = tempfile::tempdir().unwrap();
    let counts = dir.path().join("counts.json");
    let trace = fx("sglang-per-token.pt");
    let mut args: Vec<String> = vec![
        "export".into(),
        "--to".into(),
        "sglang-counts".into(),
        "-t".into(),
        trace.clone(),
    ];
    args.extend([
        "--model".into(),
        fx("tiny-moe.toml"),
        "-o".into(),
        counts.display().to_string(),
    ]);
    moeplan_ok(&args);
    let (a, _) = plan(
        &["--counts", counts.to_str().unwrap()],
        "eplb",
        dir.path(),
        "a.json",
    );
    let (b, _) = plan(&["-t", &trace], "eplb", dir.path(), "b.json");
    assert_eq!(a["physical_to_logical_map"], b["physical_to_logical_map"]);
}

#[test]
fn all_leaves_affinity_out_and_affinity_alone_is_refused() {
    let mut args = vec![
        "place".to_string(),
        "-q".into(),
        "--json".into(),
        "--counts".into(),
        fx("sglang-stat.pt"),
    ];
    args.extend(tiny());
    args.extend(["--time-limit", "5"].map(String::from));
    let j: serde_json::Value = serde_json::from_slice(&moeplan_ok(&args)).unwrap();
    let names: Vec<&str> = j["methods"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["contiguous", "round-robin", "eplb", "ilp"]);

    args.extend(["--method", "affinity"].map(String::from));
    let o = moeplan().args(&args).output().unwrap();
    assert_eq!(o.status.code(), Some(3));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("--method affinity") && e.contains("--counts holds per-layer load counts only"),
        "{e}"
    );
}

/// Runs `place --counts FILE` on the tiny model and returns exit code and stderr.
fn refused(file: &Path, extra: &[&str]) -> (Option<i32>, String) {
    let mut args = vec![
        "place".to_string(),
        "-q".into(),
        "--counts".into(),
        file.display().to_string(),
    ];
    args.extend(tiny());
    args.extend(extra.iter().map(|s| s.to_string()));
    args.extend(["--method", "eplb"].map(String::from));
    let o = moeplan().args(&args).output().unwrap();
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn bad_counts_are_refused_naming_the_file_and_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let row = |v: u64| format!("[{}]", vec![v.to_string(); 8].join(","));
    let cases = [
        (
            "three-layers.json",
            format!("[{},{},{}]", row(1), row(1), row(1)),
            "has 3 layers, model `tiny-moe` has 4 decoder layers",
        ),
        (
            "dense.json",
            format!("[{},{},{},{}]", row(1), row(1), row(1), row(1)),
            "layer 0 is dense",
        ),
        (
            "zero.json",
            format!("[{},{},{},{}]", row(0), row(0), row(0), row(0)),
            "counts no token",
        ),
        (
            "experts.json",
            "[[0],[1],[1],[1]]".to_string(),
            "layer 0 has 1 experts, model `tiny-moe` has 8",
        ),
        (
            "negative.json",
            format!("[{},{},{},[-1,0,0,0,0,0,0,0]]", row(0), row(1), row(1)),
            "logical_count",
        ),
    ];
    for (name, rows, want) in cases {
        let p = dir.path().join(name);
        std::fs::write(&p, format!("{{\"logical_count\": {rows}}}")).unwrap();
        let (code, e) = refused(&p, &[]);
        assert_eq!(code, Some(3), "{name}: {e}");
        assert!(e.contains(name) && e.contains(want), "{name}: {e}");
    }
    let (code, e) = refused(Path::new(&fx("sglang-per-token.pt")), &[]);
    assert_eq!(code, Some(3));
    assert!(
        e.contains("no `logical_count` key") && e.contains("give it with -t"),
        "{e}"
    );
    let (code, e) = refused(Path::new(&fx("sglang-stat.pt")), &["--splits", "2"]);
    assert_eq!(code, Some(3));
    assert!(e.contains("--splits needs token-level traces"), "{e}");
}
