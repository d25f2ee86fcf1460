//! The migration term: a plan far from the one in service pays for the slots it must copy.

mod common;

use moeplan_solver::baseline::contiguous;
use moeplan_solver::ilp::{IlpOptions, solve_ilp};
use moeplan_solver::objective::Scaled;
use moeplan_solver::{Problem, ProblemError, Unlimited};

fn with_weight(p: &Problem, migration: f64) -> Problem {
    let mut q = p.clone();
    q.weights.migration = migration;
    q.with_previous(contiguous(p)).unwrap()
}

fn moved(p: &Problem, opts: &IlpOptions) -> usize {
    let (plan, rep) = solve_ilp(p, opts, &Unlimited).unwrap();
    let sc = Scaled::new(p);
    assert!((rep.objective - sc.value(&plan)).abs() < 1e-9);
    plan.moved_from(p.previous.as_ref().unwrap())
}

#[test]
fn a_heavy_migration_weight_keeps_the_plan_in_service() {
    // Chain DP path (8 experts, 4 GPUs) and BCD path (chain off), single and two nodes.
    for (nodes, gpn) in [(1, 4), (2, 2)] {
        let p = common::problem(4, 8, nodes, gpn, 0, 5);
        for chain_states in [5_000, 0] {
            // The joint ILP and window bounds off: they do not model migration, and are slow.
            let opts = IlpOptions {
                chain_states,
                joint_binaries: 0,
                window_binaries: 0,
                ..Default::default()
            };
            let free = moved(&with_weight(&p, 0.0), &opts);
            let sticky = moved(&with_weight(&p, 1e3), &opts);
            assert!(free > 0, "without the term the optimum moves experts");
            assert_eq!(sticky, 0, "nodes {nodes}, chain {chain_states}");
            let some = moved(&with_weight(&p, 0.3), &opts);
            assert!(some <= free, "{some} > {free}");
        }
    }
}

#[test]
fn migration_term_is_the_weighted_share_of_copied_slots() {
    let p = common::problem(2, 8, 1, 4, 0, 9);
    let q = with_weight(&p, 2.0);
    let sc = Scaled::new(&q);
    let prev = q.previous.clone().unwrap();
    assert!(sc.layer_moves(0, prev.layer(0)).abs() < 1e-12);
    // Swap two experts of different GPUs in layer 0: 2 of 8 slots copied, weight 2.
    let mut plan = prev.clone();
    plan.layer_mut(0).swap(0, 7);
    assert!((sc.layer_moves(0, plan.layer(0)) - 2.0 * 2.0 / 8.0).abs() < 1e-12);
    let base = Scaled::new(&p);
    assert!((sc.value(&plan) - base.value(&plan) - 0.5).abs() < 1e-9);
}

#[test]
fn a_previous_plan_of_another_shape_is_refused() {
    let p = common::problem(2, 8, 1, 4, 0, 1);
    let other = contiguous(&common::problem(3, 8, 1, 4, 0, 1));
    assert!(matches!(
        p.with_previous(other),
        Err(ProblemError::PreviousShape { .. })
    ));
}
