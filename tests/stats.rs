//! Statistics on hand-made traces, checked against values computed by hand.

use moeplan::stats::{
    StatsOptions, Transitions, chunk_sparsity, compute, expert_counts, js_divergence,
    temporal_locality,
};
use moeplan::trace::{ModelShape, Trace, TraceBuilder};

/// 2 layers, 4 experts, top-2. Sequence 0: three tokens; sequence 1: one token.
fn tiny() -> Trace {
    let shape = ModelShape {
        moe_layers: 2,
        experts: 4,
        top_k: 2,
        first_moe_layer: 0,
    };
    let mut b = TraceBuilder::new(shape, 4);
    let w = [0.6, 0.4, 0.6, 0.4];
    // token: [layer0 top-2, layer1 top-2]
    b.push_token(0, 0, &[0, 1, 2, 3], &w);
    b.push_token(0, 1, &[0, 2, 2, 3], &w);
    b.push_token(0, 2, &[0, 1, 1, 3], &w);
    b.push_token(1, 0, &[3, 1, 0, 2], &w);
    b.finish()
}

#[test]
fn counts_imbalance_entropy() {
    let t = tiny();
    let c = expert_counts(&t);
    // layer 0 selections: 0 x3, 1 x3, 2 x1, 3 x1; layer 1: 0 x1, 1 x1, 2 x3, 3 x3.
    assert_eq!(c, vec![3, 3, 1, 1, 1, 1, 3, 3]);
    let s = compute(&t, None, &StatsOptions::default()).unwrap();
    // max 3 / mean 2 = 1.5 on both layers.
    assert!((s.layers[0].imbalance - 1.5).abs() < 1e-12);
    assert!((s.summary.imbalance_max - 1.5).abs() < 1e-12);
    // entropy of (3,3,1,1)/8 = 2 * 3/8 log2(8/3) + 2 * 1/8 log2 8
    let h = 2.0 * 0.375 * (8.0f64 / 3.0).log2() + 2.0 * 0.125 * 3.0;
    assert!((s.layers[1].entropy_bits - h).abs() < 1e-12);
    assert_eq!(s.tokens, 4);
    assert_eq!(s.sequences, 2);
}

#[test]
fn temporal_locality_by_hand() {
    // Pairs (t1,t0), (t2,t1) in sequence 0; token 3 starts a new sequence.
    // layer 0: {0,2}&{0,1} = 1, {0,1}&{0,2} = 1 -> 2 / (2 pairs * 2) = 0.5
    // layer 1: {2,3}&{2,3} = 2, {1,3}&{2,3} = 1 -> 3 / 4 = 0.75
    assert_eq!(temporal_locality(&tiny()), vec![0.5, 0.75]);
}

#[test]
fn transitions_by_hand() {
    let tr = Transitions::count(&tiny(), 1);
    // Expert 0 at layer 0 (tokens 0,1,2) goes to {2,3}, {2,3}, {1,3}.
    assert_eq!(tr.row(0, 0), &[0, 1, 2, 3]);
    // Expert 3 at layer 0 (token 3) goes to {0,2}.
    assert_eq!(tr.row(0, 3), &[1, 0, 1, 0]);
    let total: u32 = tr.counts.iter().sum();
    assert_eq!(total, 4 * 2 * 2);
}

#[test]
fn chunk_sparsity_by_hand() {
    let t = tiny();
    let one = chunk_sparsity(&t, 1);
    assert_eq!(one.chunks, 4);
    assert!((one.active_fraction - 0.5).abs() < 1e-12); // 2 of 4 experts per token
    // n = 2: only the chunk (t0, t1) of sequence 0 is full.
    // layer 0: {0,1,2} -> 3/4; layer 1: {2,3} -> 2/4.
    let two = chunk_sparsity(&t, 2);
    assert_eq!(two.chunks, 1);
    assert_eq!(two.per_layer, vec![0.75, 0.5]);
}

#[test]
fn js_divergence_bounds() {
    assert_eq!(js_divergence(&[5, 5], &[1, 1]), 0.0);
    assert!((js_divergence(&[1, 0], &[0, 1]) - 1.0).abs() < 1e-12);
    let mid = js_divergence(&[3, 1], &[1, 3]);
    assert!(mid > 0.0 && mid < 1.0);
}

#[test]
fn shift_of_a_trace_against_itself_is_zero_and_shapes_must_agree() {
    let t = tiny();
    let s = compute(&t, Some(("same", &t)), &StatsOptions::default()).unwrap();
    assert_eq!(s.shift.unwrap().jsd_max, 0.0);
    let other = TraceBuilder::new(
        ModelShape {
            moe_layers: 2,
            experts: 8,
            top_k: 2,
            first_moe_layer: 0,
        },
        0,
    )
    .finish();
    assert!(compute(&t, Some(("other", &other)), &StatsOptions::default()).is_err());
}
