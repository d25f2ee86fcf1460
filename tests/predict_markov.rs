//! The markov predictor recovers the transitions of a synthetic trace built with known ones, at
//! one hop and (directly, not chained) at two.

use moeplan::predict::{MarkovPredictor, Predictor, StaticPredictor, evaluate};
use moeplan::trace::{ModelShape, Trace, TraceBuilder};

const E: u16 = 16;

/// Layer l+1 expert of a layer-l expert.
fn next(e: u16, l: usize) -> u16 {
    (e * 5 + 3 + l as u16) % E
}

/// Tokens whose layer-0 experts are pseudo-random and whose later layers follow `next` exactly.
fn synthetic(tokens: usize) -> Trace {
    let shape = ModelShape {
        moe_layers: 4,
        experts: E as usize,
        top_k: 2,
        first_moe_layer: 0,
    };
    let mut b = TraceBuilder::new(shape, tokens);
    let mut x = 12345u64;
    for t in 0..tokens {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let a = ((x >> 33) % E as u64) as u16;
        let c = (a + 1 + ((x >> 40) % (E as u64 - 1)) as u16) % E;
        let mut layers = vec![[a, c]];
        for l in 0..3 {
            let [p, q] = layers[l];
            layers.push([next(p, l), next(q, l)]);
        }
        let experts: Vec<u16> = layers.iter().flatten().copied().collect();
        let weights: Vec<f32> = (0..8).map(|j| if j % 2 == 0 { 0.7 } else { 0.3 }).collect();
        b.push_token((t / 50) as u32, (t % 50) as u32, &experts, &weights);
    }
    b.finish()
}

#[test]
fn recovers_one_and_two_hop_transitions() {
    let tr = synthetic(4000);
    let stat = StaticPredictor::fit(&tr, 3);
    let m = MarkovPredictor::fit(&tr, 3, &stat);
    for l in 0..3 {
        for a in 0..E {
            let row = m.row(1, l, a as usize);
            let best = (0..E as usize)
                .max_by(|&i, &j| row[i].total_cmp(&row[j]))
                .unwrap();
            assert_eq!(best as u16, next(a, l), "layer {l} expert {a}");
            assert!(row[best] > 0.95, "P = {}", row[best]);
        }
    }
    // Two hops, direct: a -> next(next(a, 0), 1).
    for a in 0..E {
        let row = m.row(2, 0, a as usize);
        let best = (0..E as usize)
            .max_by(|&i, &j| row[i].total_cmp(&row[j]))
            .unwrap();
        assert_eq!(best as u16, next(next(a, 0), 1));
    }
    // Out of sample, on fresh tokens: every look-ahead is exact at K = k.
    let test = synthetic(500);
    let r = evaluate(&[&m as &dyn Predictor], &test, 3, &[2]);
    for h in 1..=3 {
        assert!(
            r.predictors[0].recall[&h][&2] > 0.999,
            "h={h}: {:?}",
            r.predictors[0].recall
        );
    }
}
