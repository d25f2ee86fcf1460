//! The separable lower bounds (`relax`) never exceed what a plan achieves: random plans, with
//! replicas (two replicas of an expert may share a GPU) and several nodes, term by term.

mod common;

use moeplan_solver::Plan;
use moeplan_solver::objective::Scaled;
use moeplan_solver::relax::{balance_bound, pair_cost_bound};
use proptest::prelude::*;

/// A random plan: every expert once, the redundant slots drawn at random, shuffled over slots.
fn random_plan(layers: usize, experts: usize, physical: usize, gpus: usize, seed: u64) -> Plan {
    let mut r = common::Rng(seed);
    let mut phy2log = Vec::with_capacity(layers * physical);
    for _ in 0..layers {
        let mut layer: Vec<u16> = (0..experts as u16).collect();
        while layer.len() < physical {
            layer.push(r.below(experts as u64) as u16);
        }
        for i in (1..layer.len()).rev() {
            layer.swap(i, r.below(i as u64 + 1) as usize);
        }
        phy2log.extend(layer);
    }
    Plan::new(layers, experts, gpus, physical / gpus, phy2log).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn separable_bounds_hold_for_any_plan(
        layers in 2usize..4,
        half in 1usize..4,
        nodes in 1usize..3,
        extra in 0usize..2,
        seed in 0u64..10_000,
    ) {
        let gpn = 2;
        let experts = 2 * half * nodes;
        let redundant = extra * nodes * gpn;
        let p = common::problem(layers, experts, nodes, gpn, redundant, seed);
        let sc = Scaled::new(&p);
        let plan = random_plan(layers, experts, p.physical(), p.gpus(), seed ^ 0x5eed);
        let spreads: Vec<_> = (0..layers).map(|l| plan.spread(l)).collect();
        for l in 0..layers {
            let counts = plan.counts(l);
            let got = sc.layer_balance(l, &spreads[l]);
            let lb = balance_bound(&sc, l, &counts);
            prop_assert!(lb <= got + 1e-9, "layer {}: balance bound {} > {}", l, lb, got);
            if l + 1 < layers {
                let got = sc.weights.comm * sc.pair_cost(l, &spreads[l], &spreads[l + 1]);
                let lb = pair_cost_bound(&sc, l, &counts, &plan.counts(l + 1));
                prop_assert!(lb <= got + 1e-9, "pair {}: cost bound {} > {}", l, lb, got);
            }
        }
    }
}

#[test]
fn pair_bound_is_tight_on_a_perfect_block_structure() {
    // 4 experts on 2 GPUs, all mass on pairs (0,1)->(0,1) and (2,3)->(2,3): co-locating the
    // blocks costs nothing, and the bound must see that (0), while a 1-slot-per-GPU split of the
    // same mass cannot avoid half of it.
    let mut p = common::problem(2, 4, 1, 2, 0, 1);
    let w = &mut p.workloads[0];
    w.pairs.fill(0.0);
    for (a, b) in [
        (0, 0),
        (0, 1),
        (1, 0),
        (1, 1),
        (2, 2),
        (2, 3),
        (3, 2),
        (3, 3),
    ] {
        w.pairs[a * 4 + b] = 10.0;
    }
    let sc = Scaled::new(&p);
    let ones = vec![1u32; 4];
    assert!(pair_cost_bound(&sc, 0, &ones, &ones).abs() < 1e-12);
    let p4 = common::problem(2, 4, 1, 4, 0, 1);
    let mut sc4 = Scaled::new(&p4);
    sc4.tn = sc.tn.clone();
    // One slot per GPU: each expert keeps at most its best partner, 1/2 of its mass.
    assert!((pair_cost_bound(&sc4, 0, &ones, &ones) - 0.5).abs() < 1e-12);
}
