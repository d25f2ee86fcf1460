//! `moeplan export` and `place --to` end to end on the engine fixtures: a plan built from an
//! imported SGLang dump, exported for each engine, with the launch flags printed.

use std::path::Path;

mod common;
use common::moeplan;

const MODEL: &str = "tests/fixtures/engines/tiny-moe.toml";
const HW: &str = "tests/fixtures/engines/two-gpus.toml";
const DUMP: &str = "tests/fixtures/engines/sglang-tp";

fn run(args: &[&str]) -> (Option<i32>, String, String) {
    let o = moeplan().args(args).output().unwrap();
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn ok(args: &[&str]) -> String {
    let (code, out, err) = run(args);
    assert_eq!(code, Some(0), "moeplan {args:?}: {err}");
    out
}

fn plan(dir: &Path) -> String {
    plan_with(dir, "eplb")
}

fn plan_with(dir: &Path, method: &str) -> String {
    let p = dir
        .join(format!("plan-{method}.json"))
        .display()
        .to_string();
    // The dump is read directly: place takes any trace format.
    ok(&[
        "place",
        "-q",
        "-t",
        DUMP,
        "--model",
        MODEL,
        "--hardware",
        HW,
        "--method",
        method,
        "-o",
        &p,
    ]);
    p
}

#[test]
fn a_plan_exports_for_sglang_and_vllm_ascend_with_their_flags() {
    let dir = tempfile::tempdir().unwrap();
    let plan = plan(dir.path());
    let text = std::fs::read_to_string(&plan).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["version"], 2);
    assert!(v.get("replica_count").is_some() && v.get("logical_count").is_none());
    let loc = dir.path().join("loc.json").display().to_string();
    let out = ok(&[
        "export", "--model", MODEL, "--plan", &plan, "--to", "sglang", "-o", &loc,
    ]);
    assert!(
        out.contains(&format!(
            "launch flags: --ep-size 2 --ep-num-redundant-experts 2 --init-expert-location {loc}"
        )),
        "{out}"
    );
    assert!(out.contains("--enable-eplb"), "{out}");
    let l: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&loc).unwrap()).unwrap();
    let rows = l["physical_to_logical_map"].as_array().unwrap();
    assert_eq!(rows.len(), 4);
    assert_eq!(rows[1], v["physical_to_logical_map"][0]);
    let asc = dir.path().join("map.json").display().to_string();
    // EPLB puts two replicas of expert 3 on one GPU here, which vLLM-Ascend cannot load: refused.
    let (code, _, err) = run(&[
        "export",
        "--model",
        MODEL,
        "--plan",
        &plan,
        "--to",
        "vllm-ascend",
        "-o",
        &asc,
    ]);
    assert_eq!(code, Some(3), "{err}");
    assert!(err.contains("holds expert 3 twice"), "{err}");
    // The ILP plan keeps one replica of an expert per GPU.
    let ilp = plan_with(dir.path(), "ilp");
    let out = ok(&[
        "export",
        "--model",
        MODEL,
        "--plan",
        &ilp,
        "--to",
        "vllm-ascend",
        "-o",
        &asc,
    ]);
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&asc).unwrap()).unwrap();
    assert_eq!(m["moe_layer_count"], 3);
    assert!(out.contains("expert_map_path"), "{out}");
    let vl = dir.path().join("m.jsonl").display().to_string();
    let out = ok(&[
        "export", "--model", MODEL, "--plan", &plan, "--to", "vllm", "-o", &vl,
    ]);
    assert!(out.contains("EXPERIMENTAL"), "{out}");
    // A non-.json SGLang path is bad input.
    let (code, _, err) = run(&[
        "export", "--model", MODEL, "--plan", &plan, "--to", "sglang", "-o", "loc.txt",
    ]);
    assert_eq!(code, Some(3), "{err}");
    assert!(err.contains("must end in .json"), "{err}");
}

#[test]
fn a_version_1_plan_with_logical_count_is_still_read() {
    let dir = tempfile::tempdir().unwrap();
    let plan = plan(dir.path());
    let text = std::fs::read_to_string(&plan)
        .unwrap()
        .replace("\"replica_count\"", "\"logical_count\"")
        .replace("\"version\": 2", "\"version\": 1");
    let v1 = dir.path().join("v1.json");
    std::fs::write(&v1, text).unwrap();
    let loc = dir.path().join("loc.json").display().to_string();
    ok(&[
        "export",
        "--model",
        MODEL,
        "--plan",
        v1.to_str().unwrap(),
        "--to",
        "sglang",
        "-o",
        &loc,
    ]);
}

#[test]
fn place_to_exports_the_chosen_plan() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("p.json").display().to_string();
    let o = moeplan()
        .args([
            "place",
            "-q",
            "-t",
            DUMP,
            "--model",
            MODEL,
            "--hardware",
            HW,
            "--method",
            "eplb",
        ])
        .args(["--to", "sglang", "--export", &f])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--init-expert-location"));
    assert!(Path::new(&f).exists());
}

#[test]
fn trace_targets_write_counts_and_llamacpp_prints_the_override() {
    let dir = tempfile::tempdir().unwrap();
    let pt = dir.path().join("c.pt").display().to_string();
    let out = ok(&[
        "export",
        "--to",
        "kt",
        "-t",
        DUMP,
        "--model",
        MODEL,
        "--gpu-experts",
        "2",
        "-o",
        &pt,
    ]);
    assert!(
        out.contains("--kt-expert-placement-strategy frequency --kt-num-gpu-experts 2"),
        "{out}"
    );
    let js = dir.path().join("c.json").display().to_string();
    ok(&[
        "export",
        "--to",
        "sglang-counts",
        "-t",
        DUMP,
        "--model",
        MODEL,
        "-o",
        &js,
    ]);
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&js).unwrap()).unwrap();
    let total: u64 = v["logical_count"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r.as_array().unwrap().iter().map(|x| x.as_u64().unwrap()))
        .sum();
    // 16 tokens x 3 MoE layers x top-2.
    assert_eq!(total, 16 * 3 * 2);
    // One layer of 8 x 12288 bytes fits in 100 KB: two of the three MoE layers go to the CPU.
    let out = ok(&[
        "export",
        "--to",
        "llamacpp",
        "-t",
        DUMP,
        "--model",
        MODEL,
        "--gpu-memory",
        "100KB",
    ]);
    assert!(out.contains("-ot \"blk\\.("), "{out}");
    assert!(
        out.contains("\\.ffn_(up|down|gate|gate_up)_(ch|)exps=CPU\""),
        "{out}"
    );
    let (code, _, err) = run(&["export", "--to", "llamacpp", "-t", DUMP, "--model", MODEL]);
    assert_eq!(code, Some(3), "{err}");
}
