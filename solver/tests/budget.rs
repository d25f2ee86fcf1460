//! The move-budgeted re-plan never spends more moves than its budget, keeps the plan valid and
//! never makes the objective worse; with no budget it changes nothing.

mod common;

use moeplan_solver::{BudgetOptions, Method, MethodOptions, Unlimited, evaluate, place, replan};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn budget_is_never_exceeded(
        seed in 0u64..1000,
        budget in 0usize..40,
        nodes in 1usize..3,
        redundant in 0usize..2,
        comm in 0.0f64..3.0,
    ) {
        let gpn = 2;
        let gpus = nodes * gpn;
        let p = common::problem(3, 8, nodes, gpn, redundant * gpus, seed);
        let prev = place(Method::Contiguous, &p, &MethodOptions::default(), &Unlimited)
            .unwrap()
            .plan;
        // Re-plan for a different workload than the one the plan was built for.
        let w = common::workload(3, 8, seed + 1);
        let opts = BudgetOptions { moves: budget, balance: 1.0, comm };
        let r = replan(&prev, &w, &p.topology, opts);
        prop_assert!(r.plan.check().is_ok());
        prop_assert!(r.moves <= budget, "{} moves > budget {}", r.moves, budget);
        prop_assert_eq!(r.moves, r.plan.moved_from(&prev));
        prop_assert!(r.objective.1 <= r.objective.0 + 1e-9);
        for l in 0..3 {
            prop_assert_eq!(r.plan.counts(l), prev.counts(l));
        }
        if budget < 2 {
            prop_assert_eq!(&r.plan, &prev);
        }
    }
}

#[test]
fn a_budget_buys_balance() {
    let p = common::problem(4, 16, 1, 4, 0, 3);
    let prev = place(
        Method::Contiguous,
        &p,
        &MethodOptions::default(),
        &Unlimited,
    )
    .unwrap()
    .plan;
    let w = &p.workloads[0];
    let before = evaluate(w, &prev, &p.topology);
    let opts = BudgetOptions {
        moves: 16,
        balance: 1.0,
        comm: 0.0,
    };
    let r = replan(&prev, w, &p.topology, opts);
    let after = evaluate(w, &r.plan, &p.topology);
    assert!(r.moves <= 16 && r.moves > 0);
    assert!(after.ir_mean < before.ir_mean, "{after:?} vs {before:?}");
}
