//! Small random problems for the solver tests (deterministic by seed).

#![allow(dead_code)]

use moeplan_solver::{Problem, Topology, Weights, Workload};

/// A tiny deterministic generator (SplitMix64).
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// A random workload with skewed loads and a few strong transitions.
pub fn workload(layers: usize, experts: usize, seed: u64) -> Workload {
    let mut r = Rng(seed);
    let mut w = Workload::zeros(layers, experts);
    w.tokens = 100;
    for x in w.load.iter_mut() {
        *x = (1 + r.below(50)) as f64;
    }
    for x in w.pairs.iter_mut() {
        *x = if r.below(3) == 0 {
            r.below(40) as f64
        } else {
            0.0
        };
    }
    w.pairs_top1 = w.pairs.iter().map(|x| (x / 3.0).floor()).collect();
    w
}

/// A problem on `nodes` x `gpn` GPUs.
pub fn problem(
    layers: usize,
    experts: usize,
    nodes: usize,
    gpn: usize,
    redundant: usize,
    seed: u64,
) -> Problem {
    let topo = Topology {
        nodes,
        gpus_per_node: gpn,
        cost_intra: 1.0,
        cost_inter: 4.0,
    };
    Problem::new(
        vec![workload(layers, experts, seed)],
        topo,
        redundant,
        Weights::default(),
    )
    .expect("valid problem")
}
