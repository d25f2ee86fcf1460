//! `moeplan bench daemon`: a bounded load on the cache daemon (N sessions over the socket):
//! p50/p99/max step round trip and steps/s. A fixed workload, never a timed assertion in a test.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;

use super::BadInput;
use super::choices::ClientArg;
use crate::daemon::client::load::{self, LoadSpec};
use crate::daemon::server::{self, Listener, ServerConfig, listen};
use crate::trace::sample::read_or_sample;

/// Options of `moeplan bench daemon`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
    moeplan bench daemon                                          # 8 sessions, closed loop, 10 s\n  \
    moeplan bench daemon --client spin --rate 50000 --busy-poll   # open loop at 50k steps/s\n  \
    moeplan bench daemon --sessions 1 --client spin --busy-poll   # one runtime's round trip\n  \
    moeplan bench daemon --socket /run/moeplan.sock --json        # against a running daemon\n\n\
    Closed loop: each session sends its next step when its reply comes (by Little's law the\n\
    mean round trip is sessions / throughput). Open loop (--rate): steps fall due on a\n\
    schedule and are timed from then, as a runtime's steps come at the pace of its GPUs.\n\
    scripts/daemon_latency.sh runs the README's table.")]
pub struct BenchDaemonArgs {
    /// Trace whose routing the sessions replay.
    #[arg(long, short, default_value = "traces/sample.parquet")]
    pub trace: PathBuf,
    /// Concurrent sessions (one connection and client thread each).
    #[arg(long, default_value_t = 8)]
    pub sessions: usize,
    /// Steps per session at most.
    #[arg(long, default_value_t = 100_000)]
    pub steps: u64,
    /// Seconds at most.
    #[arg(long, default_value_t = 10.0)]
    pub seconds: f64,
    /// Expert slots per layer of each session.
    #[arg(long, default_value_t = 16)]
    pub capacity: u32,
    /// Policy of each session.
    #[arg(long, default_value = "lru")]
    pub policy: String,
    /// A running daemon's socket; by default the bench starts its own on a temporary socket.
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// Worker threads of the daemon the bench starts (1: a current-thread runtime).
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Run the bench's daemon on a multi-thread runtime even with one worker (the flavour
    /// before the current-thread default; for comparison).
    #[arg(long)]
    pub multi_thread: bool,
    /// The bench's daemon busy-polls its sockets instead of sleeping (`serve --busy-poll`).
    #[arg(long)]
    pub busy_poll: bool,
    /// How the load generator drives the sessions: all on one thread (async), a blocking
    /// thread each (threads), or one thread busy-polling every socket (spin: no client wake-up
    /// inside a measured round trip; takes a whole core).
    #[arg(long, value_enum, default_value = "async")]
    pub client: ClientArg,
    /// Steps in flight per session at most (async and spin clients).
    #[arg(long, default_value_t = 1)]
    pub pipeline: usize,
    /// Open loop: offer this many steps per second (all sessions together, evenly spaced) and
    /// time each step from when it was due, so a backlog shows in the percentiles. Needs
    /// `--client spin`. Without it each session sends its next step when a reply comes back.
    #[arg(long, value_name = "STEPS_PER_S")]
    pub rate: Option<f64>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Runs `moeplan bench daemon`.
pub fn run(args: BenchDaemonArgs) -> anyhow::Result<()> {
    if args.sessions == 0 || args.sessions > 256 || args.steps == 0 || args.threads == 0 {
        return Err(
            BadInput("--sessions in 1..=256, --steps and --threads at least 1".into()).into(),
        );
    }
    if !(1..=64).contains(&args.pipeline) {
        return Err(BadInput("--pipeline must be in 1..=64".into()).into());
    }
    if args.pipeline > 1 && args.client == ClientArg::Threads {
        return Err(BadInput("--pipeline needs --client async or spin".into()).into());
    }
    if args.busy_poll && (args.threads > 1 || args.multi_thread || args.socket.is_some()) {
        return Err(BadInput(
            "--busy-poll is for the bench's own current-thread daemon (not with --threads > 1, \
             --multi-thread or --socket)"
                .into(),
        )
        .into());
    }
    if let Some(r) = args.rate {
        if args.client != ClientArg::Spin {
            return Err(BadInput("--rate needs --client spin".into()).into());
        }
        if !(r.is_finite() && (1.0..=10_000_000.0).contains(&r)) {
            return Err(BadInput("--rate must be in 1..=10000000 steps/s".into()).into());
        }
    }
    if !(args.seconds > 0.0 && args.seconds <= 600.0) {
        return Err(BadInput("--seconds must be in (0, 600]".into()).into());
    }
    let trace = read_or_sample(&args.trace)?;
    let spec = LoadSpec {
        sessions: args.sessions,
        max_steps: args.steps,
        max_time: Duration::from_secs_f64(args.seconds),
        capacity: args.capacity,
        policy: args.policy.clone(),
        client: args.client.into(),
        pipeline: args.pipeline,
        rate: args.rate,
    };
    let report = match &args.socket {
        Some(sock) => load::run(sock, &trace, &spec)?,
        None => {
            let dir = tempfile_dir()?;
            let sock = dir.join("bench.sock");
            let rt = server::runtime(args.threads, args.multi_thread)?;
            let listener = rt.block_on(async { listen::bind_unix(&sock) })?;
            let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
            // The daemon runs on its own thread (a current-thread runtime runs only there).
            let server = std::thread::spawn(move || {
                rt.block_on(server::run(
                    Listener::Unix(listener),
                    None,
                    ServerConfig {
                        busy_poll: args.busy_poll,
                        ..ServerConfig::default()
                    },
                    async {
                        let _ = stop_rx.await;
                    },
                ))
            });
            let r = load::run(&sock, &trace, &spec);
            let _ = stop_tx.send(());
            let _ = server.join();
            let _ = std::fs::remove_dir_all(&dir);
            r?
        }
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "moeplan bench daemon: {} sessions, {} ({} tokens), capacity {}/layer, {}, \
             client {:?} (pipeline {}{}), daemon {} thread(s){}",
            args.sessions,
            args.trace.display(),
            trace.num_tokens(),
            args.capacity,
            args.policy,
            args.client,
            args.pipeline,
            match args.rate {
                Some(r) => format!(", open loop at {r:.0} steps/s"),
                None => ", closed loop".into(),
            },
            args.threads,
            if args.multi_thread || args.threads > 1 {
                " multi-thread"
            } else {
                " current-thread"
            }
        );
        println!(
            "{:>10} {:>9} {:>12} {:>9} {:>9} {:>9} {:>9} {:>9}",
            "steps", "seconds", "steps/s", "p50 us", "p99 us", "p99.9 us", "max us", "hit"
        );
        println!(
            "{:>10} {:>9.2} {:>12.0} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>9.3}",
            report.steps,
            report.seconds,
            report.steps_per_s,
            report.p50_us,
            report.p99_us,
            report.p999_us,
            report.max_us,
            report.hit_ratio
        );
        if let Some(n) = report.unsent_due {
            println!(
                "steps due but never sent (the loop fell behind): {n}; in the percentiles with \
                 their wait until the deadline"
            );
        }
        if let Some(s) = report.client_stalls {
            println!(
                "client loop held up {} times for more than {} us: {:.1} ms in all, longest {:.1} ms",
                s.count,
                crate::util::stalls::STALL.as_micros(),
                s.total_ms,
                s.max_ms
            );
        }
    }
    Ok(())
}

/// A fresh private directory for the bench's socket.
fn tempfile_dir() -> anyhow::Result<PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    let dir = std::env::temp_dir().join(format!("moeplan-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&dir)
        .with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}
