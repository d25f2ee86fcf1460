//! Invariants of every method on random problems (proptest), infeasible settings named, and
//! determinism of the ILP.

mod common;

use moeplan_solver::ilp::IlpOptions;
use moeplan_solver::objective::Scaled;
use moeplan_solver::{
    Method, MethodOptions, Problem, ProblemError, Topology, Unlimited, Weights, place,
};
use proptest::prelude::*;

fn opts() -> MethodOptions {
    MethodOptions {
        eplb_groups: 0,
        ilp: IlpOptions {
            joint_binaries: 0,
            chain_states: 0,
            window_binaries: 0,
            max_sweeps: 3,
            ..Default::default()
        },
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]
    #[test]
    fn every_method_places_every_expert(
        layers in 1usize..4,
        half in 1usize..4,
        nodes in 1usize..3,
        extra in 0usize..2,
        seed in 0u64..1000,
    ) {
        let experts = 2 * half * nodes;
        let gpn = 2;
        let redundant = extra * nodes * gpn;
        let p = common::problem(layers, experts, nodes, gpn, redundant, seed);
        let sc = Scaled::new(&p);
        for m in Method::ALL {
            let placed = place(m, &p, &opts(), &Unlimited).unwrap();
            let plan = &placed.plan;
            prop_assert!(plan.check().is_ok());
            prop_assert_eq!(plan.physical(), experts + redundant);
            for l in 0..layers {
                let c = plan.counts(l);
                prop_assert_eq!(c.iter().sum::<u32>() as usize, experts + redundant);
                prop_assert!(c.iter().all(|&x| x >= 1));
            }
            if let Some(r) = placed.report {
                prop_assert!(r.bound <= r.objective + 1e-9);
                prop_assert!(r.objective <= r.warm_start + 1e-9);
                prop_assert!((r.objective - sc.value(plan)).abs() < 1e-9);
            }
        }
    }
}

#[test]
fn infeasible_settings_name_the_constraint() {
    let w = common::workload(2, 6, 1);
    let topo = Topology {
        nodes: 1,
        gpus_per_node: 4,
        cost_intra: 1.0,
        cost_inter: 1.0,
    };
    let err = Problem::new(vec![w.clone()], topo, 0, Weights::default()).unwrap_err();
    assert_eq!(
        err,
        ProblemError::SlotsNotDivisible {
            physical: 6,
            gpus: 4
        }
    );
    assert!(err.to_string().contains("not divisible"));
    let err = Problem::new(vec![w.clone()], topo, 30, Weights::default()).unwrap_err();
    assert!(matches!(err, ProblemError::TooManySlots { .. }));
    let other = common::workload(3, 6, 1);
    let err = Problem::new(vec![w, other], topo, 2, Weights::default()).unwrap_err();
    assert!(matches!(err, ProblemError::ShapeMismatch { index: 1, .. }));
}

#[test]
fn ilp_is_deterministic() {
    // Swaps only and no window bound: nothing depends on a solver time limit.
    let p = common::problem(4, 8, 1, 4, 4, 42);
    let mut o = opts();
    o.ilp.layer_binaries = 0;
    let a = place(Method::Ilp, &p, &o, &Unlimited).unwrap();
    let b = place(Method::Ilp, &p, &o, &Unlimited).unwrap();
    assert_eq!(a.plan, b.plan);
    assert_eq!(a.report, b.report);
}
