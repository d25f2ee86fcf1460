//! The synthetic generator: determinism, shape, and a fit that lands close to the real trace.

use std::path::PathBuf;

use moeplan::stats::{StatsOptions, compute};
use moeplan::synth::{SynthParams, generate};
use moeplan::trace::read_trace;

fn law() -> moeplan::trace::Trace {
    read_trace(
        &PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("traces/esft/law.parquet"),
        None,
        None,
    )
    .unwrap()
}

#[test]
fn same_seed_same_trace_other_seed_other_trace() {
    let real = law();
    let p = SynthParams::default_for(*real.shape());
    let a = generate(&p, 3000, 7, None);
    let b = generate(&p, 3000, 7, None);
    let c = generate(&p, 3000, 8, None);
    assert_eq!(a, b);
    assert_ne!(a, c);
    assert_eq!(a.num_tokens(), 3000);
}

#[test]
fn every_top_k_is_valid() {
    let shape = moeplan::trace::ModelShape {
        moe_layers: 4,
        experts: 256,
        top_k: 8,
        first_moe_layer: 3,
    };
    let t = generate(&SynthParams::default_for(shape), 500, 1, None);
    for tok in 0..t.num_tokens() {
        for l in 0..4 {
            let e = t.experts(tok, l);
            assert!(e.iter().all(|&x| x < 256));
            let mut s = e.to_vec();
            s.sort();
            s.dedup();
            assert_eq!(s.len(), 8, "distinct experts");
            assert!(t.weights_q(tok, l).windows(2).all(|w| w[0] >= w[1]));
        }
    }
}

#[test]
fn fitted_trace_matches_real_statistics() {
    let real = law();
    let params = SynthParams::fit(&real, *real.shape(), 3);
    let synth = generate(&params, real.num_tokens(), 3, None);
    let opts = StatsOptions {
        max_hops: 2,
        top_pairs: 0,
    };
    let r = compute(&real, None, &opts).unwrap();
    let s = compute(&synth, None, &opts).unwrap();
    eprintln!("real: {:?}\nsynthetic: {:?}", r.summary, s.summary);
    eprintln!(
        "affinity real {:.3} synthetic {:.3}; n=16 real {:.3} synthetic {:.3}; affinity {:.3} temporal {:.2?}",
        r.transitions[0].top_k_successor_mass,
        s.transitions[0].top_k_successor_mass,
        r.chunk_sparsity[4].active_fraction,
        s.chunk_sparsity[4].active_fraction,
        params.affinity,
        params.temporal
    );
    let close = |name: &str, a: f64, b: f64, tol: f64| {
        assert!(
            (a - b).abs() <= tol,
            "{name}: real {a:.3} vs synthetic {b:.3} (tolerance {tol})"
        );
    };
    close(
        "entropy",
        r.summary.entropy_norm_mean,
        s.summary.entropy_norm_mean,
        0.01,
    );
    close(
        "imbalance",
        r.summary.imbalance_mean,
        s.summary.imbalance_mean,
        0.5,
    );
    close(
        "temporal locality",
        r.summary.temporal_locality_mean,
        s.summary.temporal_locality_mean,
        0.03,
    );
    close(
        "1-hop affinity",
        r.transitions[0].top_k_successor_mass,
        s.transitions[0].top_k_successor_mass,
        0.03,
    );
    close(
        "2-hop affinity",
        r.transitions[1].top_k_successor_mass,
        s.transitions[1].top_k_successor_mass,
        0.04,
    );
    close(
        "chunk sparsity n=16",
        r.chunk_sparsity[4].active_fraction,
        s.chunk_sparsity[4].active_fraction,
        0.06,
    );
}

#[test]
fn memory_is_at_most_4_5_bytes_per_entry() {
    let shape = moeplan::trace::ModelShape {
        moe_layers: 58,
        experts: 256,
        top_k: 8,
        first_moe_layer: 3,
    };
    let t = generate(&SynthParams::default_for(shape), 2000, 5, None);
    let per_entry = t.memory_bytes() as f64 / t.num_entries() as f64;
    assert!(
        per_entry <= 4.5,
        "{per_entry} bytes per (token, layer, k) entry"
    );
}
