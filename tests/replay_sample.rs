//! The real sample trace through every policy, checked against figures computed here
//! independently (naive reference LRU, Belady, LFU and static caches; the timing formula).

use std::path::PathBuf;

use moeplan::cache::{Budget, PolicyKind};
use moeplan::config::{HardwareConfig, ModelConfig};
use moeplan::predict::Predictor;
use moeplan::replay::{
    Batching, PolicyReport, PrefetchOptions, ReplaySetup, TimingModel, run_policies,
};
use moeplan::trace::{Trace, read_trace};

const C: usize = 16;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn sample() -> Trace {
    read_trace(&root().join("traces/sample.parquet"), None, None).unwrap()
}

fn timing() -> TimingModel {
    let m = ModelConfig::load(&root().join("configs/models/deepseek-v2-lite.toml")).unwrap();
    let h = HardwareConfig::load(&root().join("configs/hardware/rtx4090-pcie4.toml")).unwrap();
    TimingModel::new(&m, &h, false)
}

fn run(trace: &Trace, kinds: &[PolicyKind], pred: Option<&dyn Predictor>) -> Vec<PolicyReport> {
    let setup = ReplaySetup {
        trace,
        budget: Budget::PerLayer(C),
        batching: Batching::Single,
        timing: timing(),
        train: &[],
        predictor: pred,
        online: None,
        prefetch: PrefetchOptions {
            lookahead: 2,
            top_n: 6,
        },
        half_life: 128.0,
        beta: 1.0,
        margin: 0.0,
    };
    run_policies(&setup, kinds).unwrap()
}

/// Demands in cache order: per token, per layer, the top-k as stored.
fn layer_streams(trace: &Trace) -> Vec<Vec<Vec<u16>>> {
    let s = trace.shape();
    (0..s.moe_layers)
        .map(|l| {
            (0..trace.num_tokens())
                .map(|t| trace.experts(t, l).to_vec())
                .collect()
        })
        .collect()
}

/// Naive per-layer cache: `choose` picks the victim index among `resident` (never one of `step`).
fn naive_hits(
    steps: &[Vec<u16>],
    cap: usize,
    mut choose: impl FnMut(&[u16], usize, &[u16]) -> usize,
    mut touch: impl FnMut(u16, usize),
) -> u64 {
    let mut resident: Vec<u16> = Vec::new();
    let mut hits = 0;
    for (i, step) in steps.iter().enumerate() {
        for &e in step {
            touch(e, i);
            if resident.contains(&e) {
                hits += 1;
            }
        }
        for &e in step {
            if resident.contains(&e) {
                continue;
            }
            if resident.len() < cap {
                resident.push(e);
            } else {
                let v = choose(&resident, i, step);
                assert!(!step.contains(&resident[v]), "evicted a pinned expert");
                resident[v] = e;
            }
        }
    }
    hits
}

fn demands(trace: &Trace) -> u64 {
    (trace.num_tokens() * trace.shape().entries_per_token()) as u64
}

#[test]
fn lru_matches_naive_reference_and_timing_formula() {
    let tr = sample();
    let r = &run(&tr, &[PolicyKind::Lru], None)[0];
    let mut hits = 0;
    for steps in layer_streams(&tr) {
        // Demand clock: one tick per demand, so experts of one step are ordered too.
        let last = std::cell::RefCell::new([0usize; 256]);
        let mut clock = 0usize;
        hits += naive_hits(
            &steps,
            C,
            |res, _, step| {
                let last = last.borrow();
                (0..res.len())
                    .filter(|&j| !step.contains(&res[j]))
                    .min_by_key(|&j| last[res[j] as usize])
                    .unwrap()
            },
            |e, _| {
                clock += 1;
                last.borrow_mut()[e as usize] = clock;
            },
        );
    }
    let d = demands(&tr);
    assert_eq!(r.detail.cache.demands, d);
    assert_eq!(r.detail.cache.hits, hits);
    assert_eq!(r.detail.cache.hits + r.detail.cache.misses, d);
    // Demand-only at batch 1: every miss is one transfer that starts when its layer's gate runs
    // (the link is idle by then), so stall = misses x transfer time exactly.
    let tm = timing();
    let misses = (d - hits) as f64;
    let tokens = tr.num_tokens() as f64;
    assert!((r.stall_ms_per_token - misses * tm.transfer_ms / tokens).abs() < 1e-6);
    assert!((r.loads_per_token - misses / tokens).abs() < 1e-9);
    assert!((r.bytes_per_token - misses * tm.expert_bytes as f64 / tokens).abs() < 1e-3);
    let total_ms = tokens * tr.shape().moe_layers as f64 * tm.layer_ms + misses * tm.transfer_ms;
    assert!((r.tokens_per_s - tokens / total_ms * 1e3).abs() < 1e-6 * r.tokens_per_s);
}

#[test]
fn opt_matches_naive_belady() {
    let tr = sample();
    let r = &run(&tr, &[PolicyKind::Opt], None)[0];
    let mut hits = 0;
    for steps in layer_streams(&tr) {
        hits += naive_hits(
            &steps,
            C,
            |res, i, step| {
                let next = |e: u16| {
                    steps[i + 1..]
                        .iter()
                        .position(|s| s.contains(&e))
                        .unwrap_or(usize::MAX)
                };
                (0..res.len())
                    .filter(|&j| !step.contains(&res[j]))
                    .max_by_key(|&j| (next(res[j]), std::cmp::Reverse(j)))
                    .unwrap()
            },
            |_, _| {},
        );
    }
    assert_eq!(r.detail.cache.hits, hits);
}

#[test]
fn lfu_matches_eager_decayed_counts() {
    let tr = sample();
    let r = &run(&tr, &[PolicyKind::Lfu], None)[0];
    let gamma = 0.5f64.powf(1.0 / 128.0);
    let mut hits = 0;
    for steps in layer_streams(&tr) {
        let mut f = vec![0f64; tr.shape().experts];
        let mut seen = vec![0usize; tr.shape().experts];
        let mut clock = 0usize;
        let fc = std::cell::RefCell::new((&mut f, &mut seen, &mut clock));
        hits += naive_hits(
            &steps,
            C,
            |res, _, step| {
                let g = fc.borrow();
                (0..res.len())
                    .filter(|&j| !step.contains(&res[j]))
                    .min_by(|&a, &b| {
                        let (ea, eb) = (res[a] as usize, res[b] as usize);
                        g.0[ea].total_cmp(&g.0[eb]).then(g.1[ea].cmp(&g.1[eb]))
                    })
                    .unwrap()
            },
            |e, i| {
                let mut g = fc.borrow_mut();
                if *g.2 != i + 1 {
                    *g.2 = i + 1;
                    g.0.iter_mut().for_each(|x| *x *= gamma);
                }
                g.0[e as usize] += 1.0 - gamma;
                g.1[e as usize] = i + 1;
            },
        );
    }
    // Eager and lazy decay round differently; near-ties may break the other way.
    let got = r.detail.cache.hits as f64;
    assert!(
        (got - hits as f64).abs() <= 0.002 * hits as f64,
        "lfu hits {got} vs reference {hits}"
    );
}

#[test]
fn static_matches_top_counts() {
    let tr = sample();
    let r = &run(&tr, &[PolicyKind::Static], None)[0];
    let (ls, es) = (tr.shape().moe_layers, tr.shape().experts);
    let mut expected = 0u64;
    for l in 0..ls {
        let mut count = vec![0u64; es];
        for t in 0..tr.num_tokens() {
            for &e in tr.experts(t, l) {
                count[e as usize] += 1;
            }
        }
        let mut idx: Vec<usize> = (0..es).collect();
        idx.sort_by(|&a, &b| count[b].cmp(&count[a]).then(a.cmp(&b)));
        // Each chosen expert misses once (cold start), then always hits.
        expected += idx[..C]
            .iter()
            .map(|&e| count[e].saturating_sub(1))
            .sum::<u64>();
    }
    assert_eq!(r.detail.cache.hits, expected);
    assert_eq!(
        r.detail.cache.transient_loads + r.detail.cache.demand_loads,
        r.detail.cache.misses
    );
}

#[test]
fn every_policy_accounts_and_opt_moves_least() {
    let tr = sample();
    let pred = markov(&tr);
    let rs = run(&tr, &PolicyKind::ALL, Some(pred.main()));
    let d = demands(&tr);
    let opt = rs.iter().find(|r| r.name == "opt").unwrap();
    for r in &rs {
        let c = &r.detail.cache;
        assert_eq!(c.demands, d, "{}", r.name);
        assert_eq!(c.hits + c.misses, d, "{}", r.name);
        assert_eq!(r.detail.transfers, c.loads(), "{}", r.name);
        assert!(
            r.hit_ratio > 0.3 && r.hit_ratio < 1.0,
            "{} {}",
            r.name,
            r.hit_ratio
        );
        // Belady moves the fewest experts of any policy, prefetching or not.
        assert!(opt.detail.transfers <= r.detail.transfers, "{}", r.name);
        if r.name != "predictive" {
            assert!(opt.detail.cache.misses <= c.misses, "{}", r.name);
        }
    }
    let p = rs.iter().find(|r| r.name == "predictive").unwrap();
    assert!(p.detail.cache.prefetch_loads > 0);
    assert!(p.detail.cache.prefetch_used <= p.detail.cache.prefetch_loads);
}

#[test]
fn replay_is_deterministic() {
    let tr = sample().first_sequences(8);
    let pred = markov(&tr);
    let a = run(&tr, &PolicyKind::ALL, Some(pred.main()));
    let b = run(&tr, &PolicyKind::ALL, Some(pred.main()));
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x.detail, y.detail, "{}", x.name);
    }
}

/// A markov predictor (look-ahead 2) trained on `trace` itself.
fn markov(trace: &Trace) -> moeplan::predict::PredictorSet {
    let opts = moeplan::predict::TrainOptions {
        lookahead: 2,
        ..Default::default()
    };
    let bar = indicatif::ProgressBar::hidden();
    moeplan::predict::PredictorSet::train(
        &[trace],
        moeplan::predict::Kind::Markov,
        &opts,
        &bar,
        &mut |_| {},
    )
    .unwrap()
    .0
}
