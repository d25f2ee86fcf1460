//! Import speed (MB/s of ESFT text) and statistics throughput (entries/s), criterion.

use std::path::PathBuf;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use moeplan::stats::{StatsOptions, Transitions, compute, expert_counts};
use moeplan::trace::{Format, read_trace, write_trace};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn bench_import(c: &mut Criterion) {
    // The full law task written back out in the ESFT layout: real text, ~13 MB.
    let law = read_trace(&root().join("traces/esft/law.parquet"), None, None).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let esft = dir.path().join("law");
    write_trace(&law, &esft, Some(Format::Esft)).unwrap();
    let bytes: u64 = std::fs::read_dir(&esft)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    let pq = dir.path().join("law.parquet");
    write_trace(&law, &pq, None).unwrap();
    let mut g = c.benchmark_group("import");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(bytes));
    // Baseline in the same run: just reading the same bytes (page cache), no parsing.
    g.bench_function("esft_read_bytes_baseline", |b| {
        b.iter(|| {
            std::fs::read_dir(&esft)
                .unwrap()
                .map(|e| std::fs::read(e.unwrap().path()).unwrap().len())
                .sum::<usize>()
        })
    });
    g.bench_function("esft_text", |b| {
        b.iter(|| read_trace(&esft, Some(Format::Esft), None).unwrap())
    });
    g.throughput(Throughput::Elements(law.num_entries() as u64));
    g.bench_function("parquet_entries", |b| {
        b.iter(|| read_trace(&pq, None, None).unwrap())
    });
    g.finish();
}

fn bench_stats(c: &mut Criterion) {
    let law = read_trace(&root().join("traces/esft/law.parquet"), None, None).unwrap();
    let mut g = c.benchmark_group("stats");
    g.sample_size(10);
    g.throughput(Throughput::Elements(law.num_entries() as u64));
    g.bench_function("expert_counts", |b| b.iter(|| expert_counts(&law)));
    g.bench_function("transitions_h1", |b| b.iter(|| Transitions::count(&law, 1)));
    g.bench_function("all_stats", |b| {
        b.iter(|| compute(&law, None, &StatsOptions::default()).unwrap())
    });
    g.finish();
}

criterion_group!(benches, bench_import, bench_stats);
criterion_main!(benches);
