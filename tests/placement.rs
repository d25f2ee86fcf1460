//! Placement on the shipped sample trace: every method through the library, plan files and the
//! SGLang export, and the CLI's errors for infeasible settings (exit code 3, constraint named).

mod common;

use std::path::PathBuf;

use moeplan::config::{HardwareConfig, ModelConfig};
use moeplan::placement::{PlanFile, build_problem, score, sglang_location, topology};
use moeplan::trace::read_trace;
use moeplan_solver::ilp::IlpOptions;
use moeplan_solver::{Method, MethodOptions, Unlimited, Weights, place};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn configs() -> (ModelConfig, HardwareConfig) {
    let m = ModelConfig::load(&root().join("configs/models/deepseek-v2-lite.toml")).unwrap();
    let h = HardwareConfig::load(&root().join("configs/hardware/h100-8x-nvlink.toml")).unwrap();
    (m, h)
}

#[test]
fn every_method_on_the_sample_trace() {
    let trace = read_trace(&root().join("traces/sample.parquet"), None, None).unwrap();
    let (model, hw) = configs();
    let p = build_problem(&[&trace], &model, &hw, Some(8), Weights::default(), 0).unwrap();
    let opts = MethodOptions {
        eplb_groups: 0,
        ilp: IlpOptions {
            max_sweeps: 1,
            layer_binaries: 0,
            window_binaries: 0,
            ..Default::default()
        },
    };
    let topo = topology(&hw);
    let mut eplb_ir = 0.0;
    for m in Method::ALL {
        let placed = place(m, &p, &opts, &Unlimited).unwrap();
        let metrics = score(&placed.plan, &trace, &topo, 256);
        assert!(
            metrics.ir_mean >= 1.0 && metrics.hop_rate <= 1.0,
            "{m:?}: {metrics:?}"
        );
        if m == Method::Eplb {
            eplb_ir = metrics.ir_mean;
        }
        if m == Method::Ilp {
            // The ILP is warm-started from a balanced packing: it may trade a little balance for
            // hops, not much.
            assert!(metrics.ir_mean < eplb_ir + 0.25);
            // Plan file round trip and the SGLang layout.
            let file = PlanFile::new(&placed.plan, &model, &hw, "ilp", vec!["sample".into()]);
            let text = serde_json::to_string(&file).unwrap();
            let back: PlanFile = serde_json::from_str(&text).unwrap();
            assert_eq!(back.plan().unwrap(), placed.plan);
            let sg = sglang_location(&placed.plan, &model);
            assert_eq!(sg.physical_to_logical_map.len(), model.layers);
            assert_eq!(sg.physical_to_logical_map[1].len(), 64 + 8);
            assert_eq!(sg.physical_to_logical_map[1], placed.plan.layer(0));
        }
    }
}

fn moeplan(args: &[&str]) -> (i32, String) {
    let out = common::moeplan().args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn infeasible_settings_exit_3_naming_the_constraint() {
    let base = [
        "place",
        "-q",
        "-t",
        "traces/sample.parquet",
        "--method",
        "eplb",
    ];
    let (code, err) = moeplan(
        &[
            &base[..],
            &[
                "--model",
                "deepseek-v2-lite",
                "--hardware",
                "h100-8x-nvlink",
                "--redundant",
                "3",
            ],
        ]
        .concat(),
    );
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("not divisible"), "{err}");
    let (code, err) = moeplan(
        &[
            &base[..],
            &["--model", "mixtral-8x7b", "--hardware", "h100-8x-nvlink"],
        ]
        .concat(),
    );
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("model `mixtral-8x7b` has 32 x 8"), "{err}");
}

#[test]
fn place_writes_plan_and_sglang_files() {
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("plan.json");
    let sg = dir.path().join("sglang.json");
    let (code, err) = moeplan(
        &[
            &common::PLACE_SAMPLE[..],
            &[
                "--method",
                "eplb",
                "--json",
                "-o",
                plan.to_str().unwrap(),
                "--sglang",
                sg.to_str().unwrap(),
            ],
        ]
        .concat(),
    );
    assert_eq!(code, 0, "{err}");
    let file = PlanFile::read(&plan).unwrap();
    assert_eq!(file.version, 2);
    assert!(file.plan().is_ok());
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&sg).unwrap()).unwrap();
    assert_eq!(v["physical_to_logical_map"].as_array().unwrap().len(), 27);
}

#[test]
fn migration_weight_keeps_the_plan_in_service_and_a2a_bytes_follow_hops() {
    let dir = tempfile::tempdir().unwrap();
    let prev = dir.path().join("prev.json");
    let base = [&common::PLACE_SAMPLE[..], &["--json"]].concat();
    let run = |extra: &[&str]| {
        serde_json::from_slice::<serde_json::Value>(&common::moeplan_ok(
            &[&base[..], extra].concat(),
        ))
        .unwrap()
    };
    let v = run(&["--method", "eplb", "-o", prev.to_str().unwrap()]);
    let m = &v["methods"][0]["in_sample"];
    let want = m["hops_per_token"].as_f64().unwrap() * 2048.0 * 2.0;
    assert!((m["a2a_bytes_per_token"].as_f64().unwrap() - want).abs() < 1e-6);
    assert!(want > 0.0);
    let p = prev.to_str().unwrap();
    let common = ["--method", "ilp", "--time-limit", "10", "--previous", p];
    let free = run(&[&common[..], &["--migration-weight", "0"]].concat());
    let sticky = run(&[&common[..], &["--migration-weight", "100"]].concat());
    let moved = |v: &serde_json::Value| v["methods"][0]["experts_moved"].as_u64().unwrap();
    assert!(moved(&free) > 0);
    assert_eq!(moved(&sticky), 0);
    // The weight without a plan to weigh against is refused by the argument parser.
    let (code, err) = moeplan(&[&base[..], &["--migration-weight", "1"]].concat());
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--previous"), "{err}");
}
