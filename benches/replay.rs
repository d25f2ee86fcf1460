//! Replay speed, criterion: expert demands per second through the LRU cache core alone and
//! through the full simulator (timing model), on the three real ESFT tasks concatenated, with two
//! baselines measured in the same run: a plain sum over the same demand array (the memory-bound
//! floor) and the same LRU evicting by a scan over slot priorities (`lru_scan_core`, the
//! pre-recency-list path) instead of the O(1) recency list.

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
    g.bench_function("opt_index_and_simulate", |b| {
        b.iter(|| {
            let idx = NextUse::build(&demand_keys(&trace, &steps), cfg.keys());
            let mut cache = ExpertCache::new(cfg, Opt::new(idx, cfg.keys())).unwrap();
            simulate(&trace, &steps, &mut cache, &timing, None).unwrap()
        })
    });
    g.finish();
}

criterion_group!(benches, bench_replay);
criterion_main!(benches);
