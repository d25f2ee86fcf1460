//! One-layer local search: first-improvement swaps and Kernighan-Lin never make a layer worse,
//! keep its replica counts, and Kernighan-Lin ends no worse than the swaps it starts from.

mod common;

use moeplan_solver::baseline::round_robin;
use moeplan_solver::layer::LayerProblem;
use moeplan_solver::objective::Scaled;
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn kernighan_lin_only_improves(
        layers in 2usize..4,
        half in 2usize..5,
        nodes in 1usize..3,
        extra in 0usize..2,
        seed in 0u64..10_000,
    ) {
        let gpn = 2;
        let experts = 2 * half * nodes;
        let p = common::problem(layers, experts, nodes, gpn, extra * nodes * gpn, seed);
        let sc = Scaled::new(&p);
        let plan = round_robin(&p);
        let spreads: Vec<_> = (0..layers).map(|l| plan.spread(l)).collect();
        for l in 0..layers {
            let lp = LayerProblem::new(&sc, &plan, l, &spreads);
            let start = plan.layer(l).to_vec();
            let mut swapped = start.clone();
            lp.local_search(&mut swapped, 20);
            prop_assert!(lp.value(&swapped) <= lp.value(&start) + 1e-9);
            let mut kl = swapped.clone();
            let changed = lp.kernighan_lin(&mut kl, 8, 3);
            prop_assert!(lp.value(&kl) <= lp.value(&swapped) + 1e-9);
            if changed {
                prop_assert!(lp.value(&kl) < lp.value(&swapped));
            }
            let (mut x, mut y) = (start.clone(), kl.clone());
            x.sort_unstable();
            y.sort_unstable();
            prop_assert_eq!(x, y, "the same replicas, rearranged");
        }
    }
}
