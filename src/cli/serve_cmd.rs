//! `moeplan serve`: parse and check the daemon's settings, bind, run until SIGTERM/SIGINT.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;

use super::BadInput;
use crate::daemon::server::{self, Listener, ServeSettings, listen, shutdown};

/// How long shutdown waits for blocking work (a `register` reading its files) before exiting.
pub const SHUTDOWN_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Options of `moeplan serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Unix socket to listen on (mode 0600) [default: $XDG_RUNTIME_DIR/moeplan.sock, else
    /// /tmp/moeplan-$USER.sock].
    #[arg(long, value_name = "PATH", conflicts_with = "tcp")]
    pub socket: Option<PathBuf>,
    /// Listen on TCP instead (loopback only unless --allow-remote; needs --token).
    #[arg(long, value_name = "ADDR")]
    pub tcp: Option<SocketAddr>,
    /// Shared token TCP clients must present (or MOEPLAN_TOKEN).
    #[arg(long)]
    pub token: Option<String>,
    /// Allow a non-loopback --tcp address.
    #[arg(long)]
    pub allow_remote: bool,
    /// Serve /metrics (Prometheus) and /healthz over HTTP on this loopback address.
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<SocketAddr>,
    /// Largest frame body, bytes.
    #[arg(long, default_value_t = crate::daemon::wire::frame::DEFAULT_MAX_FRAME)]
    pub max_frame: usize,
    /// Connections served at once.
    #[arg(long, default_value_t = 256)]
    pub max_connections: usize,
    /// Worker threads (1, the default: one current-thread runtime, the lowest latency on a small
    /// machine).
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Never sleep between requests: the daemon's thread busy-polls its sockets, which takes
    /// the wake-up latency (tens of microseconds on a VM) out of every step's round trip at the
    /// cost of one whole core. For a host with a core to spare beside the inference runtime.
    #[arg(long)]
    pub busy_poll: bool,
    /// Write every session's final counters here as JSON at shutdown.
    #[arg(long, value_name = "FILE")]
    pub stats_out: Option<PathBuf>,
}

/// Runs the daemon until SIGTERM or SIGINT.
pub fn run(mut args: ServeArgs) -> anyhow::Result<()> {
    if args.token.is_none() {
        args.token = std::env::var("MOEPLAN_TOKEN").ok();
    }
    let config = ServeSettings {
        tcp: args.tcp,
        token: args.token.clone(),
        allow_remote: args.allow_remote,
        metrics: args.metrics,
        max_frame: args.max_frame,
        max_connections: args.max_connections,
        threads: args.threads,
        busy_poll: args.busy_poll,
    }
    .config()?;
    if let Some(p) = &args.stats_out {
        // Found now, not at shutdown when the counters would be lost.
        crate::util::check_writable(p)
            .map_err(|e| BadInput(format!("--stats-out {}: {e}", p.display())))?;
    }
    open_files(&config);
    let rt = server::runtime(args.threads, false).context("starting the tokio runtime")?;
    let mut socket_lock = None;
    let report = rt.block_on(async {
        let (listener, socket) = match args.tcp {
            Some(addr) => {
                let l = listen::bind_tcp(addr, args.allow_remote)
                    .await
                    .with_context(|| format!("binding {addr}"))?;
                tracing::info!(addr = %l.local_addr()?, "listening (TCP, token required)");
                (Listener::Tcp(l), None)
            }
            None => {
                let path = args
                    .socket
                    .clone()
                    .unwrap_or_else(listen::default_socket_path);
                let (l, lock) = listen::bind_unix_locked(&path)
                    .with_context(|| format!("binding {}", path.display()))?;
                tracing::debug!(lock = %lock.path().display(), "socket lock taken");
                socket_lock = Some(lock);
                tracing::info!(socket = %path.display(), "listening (Unix socket, mode 0600)");
                (Listener::Unix(l), Some(path))
            }
        };
        let metrics = match args.metrics {
            Some(a) => {
                let l = tokio::net::TcpListener::bind(a)
                    .await
                    .with_context(|| format!("binding metrics on {a}"))?;
                tracing::info!(addr = %l.local_addr()?, "metrics on /metrics, health on /healthz");
                Some(l)
            }
            None => None,
        };
        let stop = async {
            if let Err(e) = shutdown::signal().await {
                tracing::error!(error = %e, "cannot listen for signals");
                std::future::pending::<()>().await;
            }
        };
        let report = server::run(listener, metrics, config, stop).await;
        if let Some(p) = socket {
            let _ = std::fs::remove_file(p);
        }
        anyhow::Ok(report)
    });
    // A `register` still reading a file that never ends (a FIFO) must not keep the process
    // alive: blocking preparations get a bounded wait, then are abandoned.
    rt.shutdown_timeout(SHUTDOWN_WAIT);
    drop(socket_lock);
    let report = report?;
    if let Some(p) = &args.stats_out {
        let json = serde_json::to_string_pretty(&report)?;
        crate::util::atomic_write_bytes(p, (json + "\n").as_bytes())
            .with_context(|| format!("writing {}", p.display()))?;
    }
    eprintln!(
        "moeplan serve: stopped after {} connections, {} sessions",
        report.connections,
        report.sessions.len()
    );
    Ok(())
}

/// Raises the soft open-files limit to the hard one (every connection is a descriptor) and
/// says what it is; warns when it is below what the connection limits may hold.
fn open_files(config: &crate::daemon::server::ServerConfig) {
    // Connections, metrics connections, and some 32 for listeners, the lock, the runtime's
    // own descriptors and files read by `register`.
    let wanted = (config.max_connections + config.max_metrics_connections + 32) as u64;
    match crate::util::raise_open_files() {
        Ok(l) => {
            if l.now > l.before {
                tracing::info!(
                    limit = l.now,
                    was = l.before,
                    "open files: soft limit raised to the hard limit"
                );
            } else {
                tracing::info!(limit = l.now, hard = l.hard, "open files: soft limit");
            }
            if l.now < wanted {
                tracing::warn!(
                    limit = l.now,
                    wanted,
                    "open files: the limit is below --max-connections plus the metrics budget; \
                     connections past it are refused (raise the hard limit, e.g. ulimit -Hn)"
                );
            }
        }
        Err(e) => tracing::warn!(error = %e, "open files: the limit could not be raised"),
    }
}
