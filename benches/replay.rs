//! Replay speed, criterion: expert demands per second through the LRU cache core alone and
//! through the full simulator (timing model), on the three real ESFT tasks concatenated, with two
//! baselines measured in the same run: a plain sum over the same demand array (the memory-bound
//! floor) and the same LRU evicting by a scan over slot priorities (`lru_scan_core`, the
//! pre-recency-list path) instead of the O(1) recency list. `opt` (next-use index built inside
//! the timing) the same way: victims from per-group heaps of the evictable slots (`opt_heap_*`)
//! against a scan over the slots' remembered priorities (`opt_scan_*`), with 16 slots per layer
//! and with one budget of 416 slots shared by the layers (`ExpertCache::new` picks the heap from
//! `HEAP_FROM` slots per group).

use std::path::PathBuf;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use moeplan::cache::{Budget, CacheConfig, ExpertCache, Lru, NextUse, Opt, Policy, StepPlan};
use moeplan::config::{HardwareConfig, ModelConfig};
use moeplan::replay::{Batching, TimingModel, build_steps, demand_keys, simulate};
use moeplan::trace::{Trace, read_trace};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn esft() -> Trace {
    let ts: Vec<Trace> = ["intent", "law", "summary"]
        .iter()
        .map(|n| read_trace(&root().join(format!("traces/esft/{n}.parquet")), None, None).unwrap())
        .collect();
    Trace::concat(&ts.iter().collect::<Vec<_>>()).unwrap()
}

/// Every token through `cache` at batch 1, each load completing at once; returns the hits.
fn replay_core<P: Policy>(trace: &Trace, mut cache: ExpertCache<P>) -> u64 {
    let layers = trace.shape().moe_layers;
    let mut plan = StepPlan::default();
    for t in 0..trace.num_tokens() {
        for l in 0..layers {
            cache.step(l, trace.experts(t, l), &mut plan).unwrap();
            cache.loaded_all();
        }
    }
    cache.stats().hits
}

fn bench_replay(c: &mut Criterion) {
    let trace = esft();
    let s = *trace.shape();
    let cfg = CacheConfig {
        layers: s.moe_layers,
        experts: s.experts,
        budget: Budget::PerLayer(16),
    };
    let m = ModelConfig::load(&root().join("configs/models/deepseek-v2-lite.toml")).unwrap();
    let h = HardwareConfig::load(&root().join("configs/hardware/rtx4090-pcie4.toml")).unwrap();
    let timing = TimingModel::new(&m, &h, false);
    let steps = build_steps(&trace, Batching::Single);
    let demands = trace.num_entries() as u64;
    let mut g = c.benchmark_group("replay");
    g.sample_size(10);
    g.throughput(Throughput::Elements(demands));
    // Same hits both ways, or the comparison means nothing.
    let lru = ExpertCache::new(cfg, Lru::new(cfg.keys())).unwrap();
    let scan = ExpertCache::new(cfg, Lru::scanning(cfg.keys())).unwrap();
    assert_eq!(replay_core(&trace, lru), replay_core(&trace, scan));
    g.bench_function("byte_sum", |b| {
        b.iter(|| {
            (0..trace.num_tokens())
                .flat_map(|t| (0..s.moe_layers).map(move |l| (t, l)))
                .map(|(t, l)| trace.experts(t, l).iter().map(|&e| e as u64).sum::<u64>())
                .sum::<u64>()
        })
    });
    g.bench_function("lru_scan_core", |b| {
        b.iter(|| {
            replay_core(
                &trace,
                ExpertCache::new(cfg, Lru::scanning(cfg.keys())).unwrap(),
            )
        })
    });
    g.bench_function("lru_core", |b| {
        b.iter(|| replay_core(&trace, ExpertCache::new(cfg, Lru::new(cfg.keys())).unwrap()))
    });
    g.bench_function("lru_simulate", |b| {
        b.iter(|| {
            let mut cache = ExpertCache::new(cfg, Lru::new(cfg.keys())).unwrap();
            simulate(&trace, &steps, &mut cache, &timing, None).unwrap()
        })
    });
    let shared = CacheConfig {
        budget: Budget::Shared(16 * s.moe_layers),
        ..cfg
    };
    for (label, cfg) in [("per_layer", cfg), ("shared", shared)] {
        // Both timings include building the next-use index.
        let opt = || {
            let idx = NextUse::build(&demand_keys(&trace, &steps), cfg.keys());
            Opt::new(idx, cfg.keys())
        };
        for (name, heaps) in [("heap", true), ("scan", false)] {
            g.bench_function(format!("opt_{name}_simulate_{label}"), |b| {
                b.iter(|| {
                    let mut cache = ExpertCache::with_heaps(cfg, opt(), heaps).unwrap();
                    simulate(&trace, &steps, &mut cache, &timing, None).unwrap()
                })
            });
        }
        let heap = ExpertCache::with_heaps(cfg, opt(), true).unwrap();
        let scan = ExpertCache::with_heaps(cfg, opt(), false).unwrap();
        assert_eq!(replay_core(&trace, heap), replay_core(&trace, scan));
    }
    g.finish();
}

criterion_group!(benches, bench_replay);
criterion_main!(benches);
