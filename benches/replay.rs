//! Replay speed, criterion: expert demands per second through the LRU cache core alone and
//! through the full simulator (timing model), on the three real ESFT tasks concatenated.

use std::path::PathBuf;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use moeplan::cache::{Budget, CacheConfig, ExpertCache, Lru, NextUse, Opt, StepPlan};
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
    g.bench_function("lru_core", |b| {
        b.iter(|| {
            let mut cache = ExpertCache::new(cfg, Lru::new(cfg.keys())).unwrap();
            let mut plan = StepPlan::default();
            for t in 0..trace.num_tokens() {
                for l in 0..s.moe_layers {
                    cache.step(l, trace.experts(t, l), &mut plan).unwrap();
                    cache.loaded_all();
                }
            }
            cache.stats().hits
        })
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
