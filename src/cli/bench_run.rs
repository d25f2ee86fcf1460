//! `moeplan bench run`: the offloaded forward pass all-resident vs 25% capacity with `lru` vs
//! 25% with `predictive` and a predictor (tokens/s, bytes moved, copy bandwidth, wait), and the
//! host data plane's copy throughput next to a plain memcpy of the same bytes, in one run.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use serde::Serialize;

use super::choices::BackendArg;
use crate::cache::PolicyKind;
use crate::dataplane::{Backend, DataPlane, ExpertStore, HostPlane};
use crate::moe::{EXPERTS_FILE, MoeConfig};
use crate::runtime::{RunReport, RunSpec, run};
use crate::trace::read_trace;

/// `bench run` options.
#[derive(Debug, clap::Args)]
#[command(after_help = "Example:\n  \
    moeplan model init --model deepseek-v2-lite --scale 0.125 -o moe-0.125\n  \
    moeplan predict train -t traces/esft/law.parquet --kind markov -o markov.safetensors\n  \
    moeplan bench run --model-dir moe-0.125 --predictor markov.safetensors --tokens 300\n\n\
    Rows: capacity 64 (every expert of a layer resident), 16 (25%) with lru, 16 with predictive.\n\
    Not a timed test: figures depend on the machine.")]
pub struct BenchRunArgs {
    /// Model directory (`moeplan model init -o DIR`).
    #[arg(long)]
    pub model_dir: PathBuf,
    /// Routing trace.
    #[arg(long, short, default_value = "traces/sample.parquet")]
    pub trace: PathBuf,
    /// Predictor file for the predictive row (trained on another task than the trace's).
    #[arg(long)]
    pub predictor: PathBuf,
    /// First N tokens of the trace.
    #[arg(long, default_value_t = 300)]
    pub tokens: usize,
    /// Where the slots live.
    #[arg(long, value_enum, default_value = "host")]
    pub backend: BackendArg,
    /// Experts copied for the copy-throughput comparison (host plane vs memcpy).
    #[arg(long, default_value_t = 1664)]
    pub copy_experts: usize,
    /// JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

/// Copy throughput of the host plane and of a plain memcpy over the same experts.
#[derive(Debug, Serialize)]
pub struct CopyFigures {
    /// Experts copied by each.
    pub experts: usize,
    /// Bytes copied by each.
    pub bytes: u64,
    /// Host plane: loads issued until the last landed, GB/s.
    pub plane_gbps: f64,
    /// Host plane: bytes per second of copy-thread busy time, GB/s.
    pub plane_busy_gbps: f64,
    /// `copy_from_slice` of the same experts from the same mapping, GB/s.
    pub memcpy_gbps: f64,
    /// plane_gbps / memcpy_gbps.
    pub ratio: f64,
}

/// The benchmark's output.
#[derive(Debug, Serialize)]
pub struct BenchRunReport {
    /// One row per configuration.
    pub rows: Vec<RunReport>,
    /// Whether every row's output digest is the all-resident one.
    pub outputs_equal: bool,
    /// Copy throughput comparison.
    pub copy: CopyFigures,
}

/// Reads every expert once, so the runs and copies below read memory, not the disk.
fn warm(store: &ExpertStore) {
    let mut sink = vec![0u8; store.expert_bytes()];
    for i in 0..store.layers() * store.experts() {
        for part in store.projections(i) {
            sink[..part.len()].copy_from_slice(part);
        }
    }
    std::hint::black_box(&sink);
}

fn copy_figures(dir: &std::path::Path, cfg: &MoeConfig, n: usize) -> anyhow::Result<CopyFigures> {
    let open = || {
        ExpertStore::open(
            &dir.join(EXPERTS_FILE),
            cfg.first_moe_layer,
            cfg.moe_layers,
            cfg.experts,
        )
    };
    let store = open()?;
    let total = cfg.moe_layers * cfg.experts;
    let n = n.clamp(1, total);
    let eb = store.expert_bytes();
    let slots = 64.min(n);
    let mut dst = vec![0u8; slots * eb];
    let t0 = Instant::now();
    for i in 0..n {
        let d = &mut dst[(i % slots) * eb..(i % slots + 1) * eb];
        let mut at = 0;
        for part in store.projections(i % total) {
            d[at..at + part.len()].copy_from_slice(part);
            at += part.len();
        }
    }
    let memcpy_s = t0.elapsed().as_secs_f64();
    std::hint::black_box(&dst);
    let mut plane = HostPlane::new(open()?, slots)?;
    let t0 = Instant::now();
    for i in 0..n {
        let (l, e) = ((i % total) / cfg.experts, (i % total) % cfg.experts);
        plane.load((i % slots) as u32, l as u16, e as u16)?;
    }
    plane.wait_all()?;
    let plane_s = t0.elapsed().as_secs_f64();
    let bytes = (n * eb) as u64;
    let gbps = |s: f64| bytes as f64 / s / 1e9;
    Ok(CopyFigures {
        experts: n,
        bytes,
        plane_gbps: gbps(plane_s),
        plane_busy_gbps: plane.stats().bandwidth_gbps(),
        memcpy_gbps: gbps(memcpy_s),
        ratio: memcpy_s / plane_s,
    })
}

/// Runs `bench run`.
pub fn run_bench(a: BenchRunArgs) -> anyhow::Result<()> {
    let cfg = MoeConfig::load(&a.model_dir)?;
    let full = read_trace(&a.trace, None, Some(&cfg.shape()))
        .with_context(|| format!("reading trace {}", a.trace.display()))?;
    let trace = full.slice(0..a.tokens.min(full.num_tokens()));
    warm(&ExpertStore::open(
        &a.model_dir.join(EXPERTS_FILE),
        cfg.first_moe_layer,
        cfg.moe_layers,
        cfg.experts,
    )?);
    let quarter = (cfg.experts / 4).max(1);
    let mut rows = Vec::new();
    for (capacity, policy) in [
        (cfg.experts, PolicyKind::Lru),
        (quarter, PolicyKind::Lru),
        (quarter, PolicyKind::Predictive),
    ] {
        let spec = RunSpec {
            trace_path: Some(&a.trace),
            train: Some(&full),
            predictor: (policy == PolicyKind::Predictive).then_some(a.predictor.as_path()),
            backend: a.backend.into(),
            ..RunSpec::new(&a.model_dir, &trace, capacity, policy)
        };
        rows.push(run(&spec)?);
    }
    let copy = copy_figures(&a.model_dir, &cfg, a.copy_experts)?;
    let outputs_equal = rows
        .iter()
        .all(|r| r.output_digest == rows[0].output_digest);
    let report = BenchRunReport {
        rows,
        outputs_equal,
        copy,
    };
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    println!(
        "{} tokens, {} ({} x {} x {} f32, {} bytes per expert), data plane {:?}",
        trace.num_tokens(),
        cfg.model,
        cfg.moe_layers,
        cfg.experts,
        cfg.hidden,
        cfg.expert_bytes(),
        Backend::from(a.backend)
    );
    println!(
        "{:<11} {:>8} {:>9} {:>8} {:>12} {:>8} {:>9} {:>9}",
        "policy", "capacity", "tokens/s", "hit", "bytes moved", "loads", "copy GB/s", "wait s"
    );
    for r in &report.rows {
        println!(
            "{:<11} {:>8} {:>9.1} {:>8.4} {:>12} {:>8} {:>9.2} {:>9.3}",
            r.policy,
            r.capacity,
            r.tokens_per_s,
            r.hit_ratio,
            r.bytes_moved,
            r.loads,
            r.copy_bandwidth_gbps,
            r.wait_s
        );
    }
    println!(
        "outputs equal to all-resident: {} (digest {})",
        if report.outputs_equal { "yes" } else { "NO" },
        report.rows[0].output_digest
    );
    let c = &report.copy;
    println!(
        "copy {} experts ({} bytes): host plane {:.2} GB/s ({:.2} GB/s busy), memcpy {:.2} GB/s, ratio {:.2}",
        c.experts, c.bytes, c.plane_gbps, c.plane_busy_gbps, c.memcpy_gbps, c.ratio
    );
    Ok(())
}
