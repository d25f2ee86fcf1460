//! Exports on the tiny fixture model: file contents, launch flags and refusals.

use std::path::Path;

use moeplan_solver::Plan;

use super::*;
use crate::trace::torch::{Node, TorchFile};
use crate::trace::{ModelShape, TraceBuilder};

fn model() -> ModelConfig {
    ModelConfig::load(Path::new("tests/fixtures/engines/tiny-moe.toml")).unwrap()
}

/// 3 MoE layers x 8 experts on 2 GPUs x 5 slots; slot p holds (p + l) % 8.
fn plan() -> Plan {
    let mut map = Vec::new();
    for l in 0..3u16 {
        map.extend((0..10u16).map(|p| (p + l) % 8));
    }
    Plan::new(3, 8, 2, 5, map).unwrap()
}

/// Tokens route to experts {0, 1} at layer 0, {t % 8, (t + 1) % 8} at layer 1, {2, 3} at 2.
fn trace(tokens: u32) -> Trace {
    let shape = ModelShape {
        moe_layers: 3,
        experts: 8,
        top_k: 2,
        first_moe_layer: 1,
    };
    let mut b = TraceBuilder::new(shape, tokens as usize);
    for t in 0..tokens {
        let a = (t % 8) as u16;
        b.push_token_unweighted(0, t, &[0, 1, a, (a + 1) % 8, 2, 3]);
    }
    b.finish()
}

#[test]
fn sglang_placement_has_one_row_per_decoder_layer_and_prints_the_flags() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("loc.json");
    let r = sglang_placement(&plan(), &model(), &p).unwrap();
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
    let obj = v.as_object().unwrap();
    assert_eq!(obj.keys().collect::<Vec<_>>(), ["physical_to_logical_map"]);
    let rows = obj["physical_to_logical_map"].as_array().unwrap();
    assert_eq!(rows.len(), 4);
    assert_eq!(rows[0], serde_json::json!([0, 1, 2, 3, 4, 5, 6, 7, 0, 1]));
    assert_eq!(rows[2], serde_json::json!([1, 2, 3, 4, 5, 6, 7, 0, 1, 2]));
    assert!(
        r.launch
            .starts_with("--ep-size 2 --ep-num-redundant-experts 2 --init-expert-location")
    );
    assert!(r.notes.iter().any(|n| n.contains("--enable-eplb")));
    assert!(sglang_placement(&plan(), &model(), &dir.path().join("loc.txt")).is_err());
}

#[test]
fn mixtral_and_olmoe_are_warned_about() {
    let mut m = model();
    m.name = "mixtral-tiny".into();
    let dir = tempfile::tempdir().unwrap();
    let r = sglang_placement(&plan(), &m, &dir.path().join("a.json")).unwrap();
    assert!(r.warnings[0].contains("Mixtral"), "{:?}", r.warnings);
}

#[test]
fn vllm_ascend_lists_each_devices_experts_per_moe_layer() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("map.json");
    vllm_ascend_map(&plan(), &p).unwrap();
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
    assert_eq!(v["moe_layer_count"], 3);
    let l1 = &v["layer_list"][1];
    assert_eq!(l1["layer_id"], 1);
    assert_eq!(l1["device_count"], 2);
    assert_eq!(l1["device_list"][1]["device_id"], 1);
    assert_eq!(
        l1["device_list"][1]["device_expert"],
        serde_json::json!([6, 7, 0, 1, 2])
    );
    // Two replicas of one expert on one device are refused.
    let mut twice = plan();
    twice.layer_mut(0)[9] = 5;
    assert!(
        vllm_ascend_map(&twice, &p)
            .unwrap_err()
            .to_string()
            .contains("twice")
    );
}

#[test]
fn vllm_mapping_is_marked_experimental_and_keyed_by_moe_layer() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("m.jsonl");
    let r = vllm_initial_mapping(&plan(), &p).unwrap();
    assert!(r.experimental);
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&p)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[2]["2"][0], 2);
}

#[test]
fn counts_cover_decoder_layers_with_dense_rows_zero() {
    let c = decoder_counts(&trace(16), &model()).unwrap();
    assert_eq!(c.len(), 4);
    assert!(c[0].iter().all(|&x| x == 0));
    assert_eq!(c[1], vec![16, 16, 0, 0, 0, 0, 0, 0]);
    assert_eq!(c[2], vec![4; 8]);
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("c.json");
    sglang_counts(&trace(16), &model(), &p).unwrap();
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
    assert_eq!(
        v["logical_count"][3],
        serde_json::json!([0, 0, 16, 16, 0, 0, 0, 0])
    );
}

#[test]
fn kt_counts_pt_reads_back_as_int32_buffer_layers_experts() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("c.pt");
    let r = kt_counts(&trace(16), &model(), Some(2), &p).unwrap();
    assert!(
        r.launch
            .contains("--kt-expert-placement-strategy frequency --kt-num-gpu-experts 2")
    );
    let f = TorchFile::open(&p).unwrap();
    let Node::Tensor(t) = f.node(f.get(f.root(), "logical_count").unwrap()) else {
        panic!()
    };
    let t = f.tensor(t).unwrap();
    assert_eq!(t.shape, vec![1, 4, 8]);
    assert_eq!(t.dtype, crate::trace::torch::DType::I32);
    assert_eq!(&t.ints().unwrap()[8..10], &[16, 16]);
    assert!(kt_counts(&trace(4), &model(), None, &dir.path().join("c.json")).is_err());
}

#[test]
fn kt_permutation_puts_the_most_used_experts_first() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("perm.json");
    let r = kt_permutation(&trace(16), &model(), 2, &p).unwrap();
    assert!(r.experimental);
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
    let rows = &v["physical_to_logical_map"];
    assert_eq!(rows[1], serde_json::json!([0, 1, 2, 3, 4, 5, 6, 7]));
    assert_eq!(rows[3], serde_json::json!([2, 3, 0, 1, 4, 5, 6, 7]));
    assert!(r.notes[0].contains("75.0%"), "{:?}", r.notes);
}

#[test]
fn llamacpp_keeps_the_layers_that_touch_most_experts() {
    let m = model();
    // One layer of 8 experts is 8 x 12288 bytes; a budget of two layers.
    let c = llamacpp_offload(&trace(64), &m, 2 * 8 * 12288, 16).unwrap();
    // Layer 1 (block 2) touches all 8 experts per 16-token batch, the others 2.
    assert_eq!(c.distinct_per_batch, vec![2.0, 8.0, 2.0]);
    assert_eq!(c.gpu_blocks, vec![1, 2]);
    assert_eq!(c.cpu_blocks, vec![3]);
    assert_eq!(
        c.override_tensor,
        "blk\\.(3)\\.ffn_(up|down|gate|gate_up)_(ch|)exps=CPU"
    );
    assert_eq!(c.n_cpu_moe, None);
    let c = llamacpp_offload(&trace(64), &m, 8 * 12288, 16).unwrap();
    assert_eq!(c.gpu_blocks, vec![2]);
    assert_eq!(c.n_cpu_moe, None);
    let c = llamacpp_offload(&trace(64), &m, 0, 16).unwrap();
    assert_eq!(c.n_cpu_moe, Some(4));
    let c = llamacpp_offload(&trace(64), &m, 1 << 30, 16).unwrap();
    assert!(c.override_tensor.is_empty());
    assert_eq!(parse_bytes("8GiB").unwrap(), 8 << 30);
    assert_eq!(parse_bytes("1.5 MiB").unwrap(), 1572864);
    assert!(parse_bytes("8 parsecs").is_err());
}
