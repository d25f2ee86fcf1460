//! The ILP against exhaustive enumeration on tiny instances: the joint model's optimum equals the
//! brute-force optimum, so does the exact chain programme, block-coordinate descent never beats it,
//! and every bound stays below it.

mod common;

use moeplan_solver::chain::{count_states, enumerate, solve_chain};
use moeplan_solver::ilp::{IlpOptions, solve_ilp};
use moeplan_solver::joint::Joint;
use moeplan_solver::objective::Scaled;
use moeplan_solver::{Plan, Problem, Unlimited};

/// Every way to fill `gpus` GPUs with `slots` distinct experts each (one replica per expert).
fn layer_maps(experts: usize, gpus: usize, slots: usize) -> Vec<Vec<u16>> {
    let mut out = Vec::new();
    let mut cur = vec![0u16; experts];
    fn rec(
        i: usize,
        cur: &mut Vec<u16>,
        fill: &mut Vec<usize>,
        slots: usize,
        out: &mut Vec<Vec<u16>>,
    ) {
        if i == cur.len() {
            out.push(cur.clone());
            return;
        }
        for g in 0..fill.len() {
            if fill[g] < slots {
                fill[g] += 1;
                cur[i] = g as u16;
                rec(i + 1, cur, fill, slots, out);
                fill[g] -= 1;
            }
        }
    }
    let mut fill = vec![0; gpus];
    rec(0, &mut cur, &mut fill, slots, &mut out);
    // expert -> GPU assignments to slot maps
    out.into_iter()
        .map(|gpu_of| {
            let mut lists = vec![Vec::new(); gpus];
            for (e, &g) in gpu_of.iter().enumerate() {
                lists[g as usize].push(e as u16);
            }
            lists.concat()
        })
        .collect()
}

fn brute(p: &Problem) -> f64 {
    let sc = Scaled::new(p);
    let maps = layer_maps(p.experts(), p.gpus(), p.slots_per_gpu);
    let layers = p.layers();
    let mut idx = vec![0usize; layers];
    let mut best = f64::INFINITY;
    loop {
        let phy2log = idx.iter().flat_map(|&i| maps[i].iter().copied()).collect();
        let plan = Plan::new(layers, p.experts(), p.gpus(), p.slots_per_gpu, phy2log).unwrap();
        best = best.min(sc.value(&plan));
        let mut k = 0;
        loop {
            if k == layers {
                return best;
            }
            idx[k] += 1;
            if idx[k] < maps.len() {
                break;
            }
            idx[k] = 0;
            k += 1;
        }
    }
}

fn check(p: &Problem) {
    let want = brute(p);
    let sc = Scaled::new(p);
    let counts: Vec<Vec<u32>> = vec![vec![1; p.experts()]; p.layers()];
    let joint = Joint::new(&sc, 0, vec![1.0; p.layers()], counts.clone())
        .solve(None, 60.0)
        .unwrap();
    assert!(joint.optimal);
    let plan = Plan::from_gpu_lists(p.experts(), p.slots_per_gpu, &joint.lists).unwrap();
    assert!(
        (sc.value(&plan) - want).abs() < 1e-6,
        "joint {} vs brute {want}",
        sc.value(&plan)
    );
    assert!(
        (joint.objective - want).abs() < 1e-6,
        "reported objective (constant added back)"
    );
    assert!(joint.bound <= want + 1e-6);
    // The ilp method whole (joint path) and by decomposition (BCD + window bound).
    let (plan, rep) = solve_ilp(p, &IlpOptions::default(), &Unlimited).unwrap();
    assert!((sc.value(&plan) - want).abs() < 1e-6);
    assert_eq!(rep.status, "optimal");
    // The exact chain programme (joint ILP off) finds the same optimum.
    let opts = IlpOptions {
        joint_binaries: 0,
        ..Default::default()
    };
    let (plan, rep) = solve_ilp(p, &opts, &Unlimited).unwrap();
    assert!(rep.how.contains("chain DP"), "{}", rep.how);
    assert_eq!(rep.status, "optimal");
    assert!(
        (sc.value(&plan) - want).abs() < 1e-6,
        "chain {} vs brute {want}",
        sc.value(&plan)
    );
    assert!((rep.bound - want).abs() < 1e-6);
    // Decomposition (BCD + window bound), both exact paths off.
    let opts = IlpOptions {
        joint_binaries: 0,
        chain_states: 0,
        ..Default::default()
    };
    let (plan, rep) = solve_ilp(p, &opts, &Unlimited).unwrap();
    assert!(sc.value(&plan) >= want - 1e-9);
    assert!(
        rep.bound <= want + 1e-6,
        "bound {} above optimum {want}",
        rep.bound
    );
    assert!((rep.objective - sc.value(&plan)).abs() < 1e-9);
}

#[test]
fn single_node_three_layers() {
    for seed in 0..3 {
        check(&common::problem(3, 4, 1, 2, 0, seed));
    }
}

#[test]
fn two_nodes_two_layers() {
    for seed in 10..12 {
        check(&common::problem(2, 4, 2, 2, 0, seed));
    }
}

/// The chain programme alone against enumeration, with two workloads (the balance term is then
/// the worst of the workloads and their envelope) and larger layers than the joint ILP handles.
fn check_chain(layers: usize, experts: usize, nodes: usize, gpn: usize, seed: u64) {
    let mut p = common::problem(layers, experts, nodes, gpn, 0, seed);
    p.workloads
        .push(common::workload(layers, experts, seed + 100));
    let want = brute(&p);
    let sc = Scaled::new(&p);
    let r = solve_chain(&sc, 10_000, &Unlimited).expect("small enough");
    let plan = Plan::from_gpu_lists(p.experts(), p.slots_per_gpu, &r.lists).unwrap();
    assert!(
        (sc.value(&plan) - want).abs() < 1e-9,
        "chain {} vs brute {want}",
        sc.value(&plan)
    );
    assert!(
        (r.value - want).abs() < 1e-9,
        "reported {} vs brute {want}",
        r.value
    );
}

#[test]
fn chain_matches_enumeration() {
    check_chain(3, 6, 1, 3, 21);
    check_chain(4, 4, 2, 2, 22);
}

#[test]
fn chain_counts_and_caps_states() {
    assert_eq!(count_states(8, 4, 2), 2520);
    assert_eq!(enumerate(8, 4, 2, 10_000).unwrap().len(), 2520);
    assert!(enumerate(8, 4, 2, 2519).is_none());
    // Replicas (more slots than experts) or a zero cap: not the chain programme's business.
    assert!(enumerate(8, 4, 3, 10_000).is_none());
    assert!(enumerate(8, 4, 2, 0).is_none());
    // 64 experts on 8 GPUs: far beyond any cap, counted without overflow.
    assert_eq!(count_states(64, 8, 8), u64::MAX);
    assert!(enumerate(64, 8, 8, usize::MAX).is_none());
}
