//! The EPLB port against DeepSeek's EPLB itself: 201 cases of `rebalance_experts` output for
//! integer loads (tests/fixtures/eplb-reference-cases.json, origin in the .md beside it), and
//! `place --method eplb` fed counts, not shares (a tie exact on the counts stays a tie).

use moeplan_solver::eplb::rebalance_experts;
use moeplan_solver::{
    Method, MethodOptions, Problem, Topology, Unlimited, Weights, Workload, place,
};
use serde::Deserialize;

#[derive(Deserialize)]
struct Case {
    weight: Vec<Vec<f64>>,
    num_replicas: usize,
    num_groups: usize,
    num_nodes: usize,
    num_gpus: usize,
    phy2log: Vec<Vec<usize>>,
    logcnt: Vec<Vec<u32>>,
}

#[derive(Deserialize)]
struct Cases {
    cases: Vec<Case>,
}

fn cases() -> Vec<Case> {
    let text = include_str!("fixtures/eplb-reference-cases.json");
    serde_json::from_str::<Cases>(text)
        .expect("fixture parses")
        .cases
}

#[test]
fn port_matches_eplb_on_all_201_reference_cases() {
    let cases = cases();
    assert_eq!(cases.len(), 201);
    let mut wrong = Vec::new();
    for (i, c) in cases.iter().enumerate() {
        for (l, w) in c.weight.iter().enumerate() {
            let got = rebalance_experts(w, c.num_replicas, c.num_groups, c.num_nodes, c.num_gpus);
            let mut cnt = vec![0u32; w.len()];
            for &x in &got {
                cnt[x] += 1;
            }
            if got != c.phy2log[l] || cnt != c.logcnt[l] {
                wrong.push(format!(
                    "case {i} layer {l}: got {got:?}, EPLB {:?}",
                    c.phy2log[l]
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "{} layers differ:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

/// The smallest case where shares broke a tie: counts [3, 2, 3, 2], 2 nodes x 2 GPUs, 8
/// redundant slots, 2 groups. EPLB on the counts reaches balancedness 1.0 (every GPU the same
/// load); fed shares it reached 1.0667.
#[test]
fn place_eplb_is_fed_counts_and_keeps_exact_ties() {
    let load = vec![3.0, 2.0, 3.0, 2.0];
    let w = Workload {
        layers: 1,
        experts: 4,
        tokens: 10,
        load: load.clone(),
        pairs: vec![],
        pairs_top1: vec![],
        batch_load: vec![],
    };
    let topo = Topology {
        nodes: 2,
        gpus_per_node: 2,
        cost_intra: 1.0,
        cost_inter: 2.0,
    };
    let weights = Weights {
        balance: 1.0,
        comm: 0.0,
        migration: 0.0,
    };
    let p = Problem::new(vec![w], topo, 8, weights).unwrap();
    let opts = MethodOptions {
        eplb_groups: 2,
        ..Default::default()
    };
    let plan = place(Method::Eplb, &p, &opts, &Unlimited).unwrap().plan;
    let direct = rebalance_experts(&load, 12, 2, 2, 4);
    assert_eq!(
        plan.layer(0)
            .iter()
            .map(|&x| x as usize)
            .collect::<Vec<_>>(),
        direct
    );
    let mut cnt = [0.0f64; 4];
    for &x in plan.layer(0) {
        cnt[x as usize] += 1.0;
    }
    let mut gpu = [0.0f64; 4];
    for (q, &x) in plan.layer(0).iter().enumerate() {
        gpu[q / 3] += load[x as usize] / cnt[x as usize];
    }
    let mean = gpu.iter().sum::<f64>() / 4.0;
    let max = gpu.iter().cloned().fold(0.0, f64::max);
    assert!(
        (max / mean - 1.0).abs() < 1e-12,
        "balancedness {}",
        max / mean
    );
}
