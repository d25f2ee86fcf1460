//! A replay through a running daemon (`moeplan replay --via-daemon SOCKET`): drives it exactly as a runtime would
//! (one session per policy, i.e. per simulated GPU; per step and layer a `step`, then `loaded` for
//! its transfers), so its hit ratios must equal the in-process replay's on the same settings.
//!
//! The replay loop is the in-process one ([`simulate_on`]) with a daemon session as its cache
//! ([`DaemonSession`]): the replay's clock ([`TimingModel`]) decides when transfers finish
//! (`loaded`) and when the idle link pulls queued prefetches (`prefetch`). `predictive` sessions
//! load the `--predictor` file in the daemon and send each token's routing with the steps (with
//! `--online` the session is registered `online`: the daemon's predictor learns from the tokens
//! served, as the replay's does).

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Serialize;

use super::Client;
use super::replay::DaemonSession;
use crate::BadInput;
use crate::cache::PolicyKind;
use crate::daemon::wire::{self, Register};
use crate::replay::{Batching, CapacityMode, ReplayOptions, TimingModel, build_steps, simulate_on};
use crate::trace::Trace;

/// One policy's figures, as the daemon counted them.
#[derive(Debug, Clone, Serialize)]
pub struct DaemonRow {
    /// Policy name.
    pub name: String,
    /// hits / demands.
    pub hit_ratio: f64,
    /// Distinct experts demanded.
    pub demands: u64,
    /// Demands found resident or in flight.
    pub hits: u64,
    /// Transfers asked of the runtime.
    pub loads: u64,
    /// Steps (one per step and layer).
    pub steps: u64,
    /// The predictor's live recall@top_k one layer ahead (`predictive` only; 0 otherwise).
    pub live_recall: f64,
    /// Tokens the session's online predictor learned from (`--online`).
    pub learned: u64,
}

/// A path as the daemon must see it (absolute: the daemon's working directory may differ).
fn absolute(p: &Path) -> anyhow::Result<String> {
    let abs: PathBuf =
        std::fs::canonicalize(p).with_context(|| format!("resolving {}", p.display()))?;
    Ok(abs.display().to_string())
}

/// Refuses the settings the daemon cannot replay exactly, with the reason.
fn check(args: &ReplayOptions) -> anyhow::Result<()> {
    if args.cpu_offload {
        return Err(BadInput(
            "--via-daemon does not model --cpu-offload (the runtime decides what runs on its \
             CPU; the daemon only sees the steps)"
                .into(),
        )
        .into());
    }
    if args.policies.contains(&PolicyKind::Opt) {
        return Err(BadInput(
            "--via-daemon cannot replay `opt`: it needs the future routing, which a runtime \
             does not have (use the in-process replay)"
                .into(),
        )
        .into());
    }
    if args.policies.contains(&PolicyKind::Predictive) {
        if !cold_start(args) && !Path::new(&args.predictor).is_file() {
            return Err(BadInput(format!(
                "--via-daemon with `predictive` needs --predictor FILE (the daemon loads it, or --online --predictor none for a cold start; \
                 {:?} is not a file: train one with `moeplan predict train -o FILE`)",
                args.predictor
            ))
            .into());
        }
        if matches!(args.batching, Batching::Consecutive { .. }) {
            return Err(BadInput(
                "--via-daemon with `predictive` replays --batch 1 or --concurrent N: with \
                 --batch B a token's previous token is in the same step, whose later layers a \
                 runtime has not routed yet"
                    .into(),
            )
            .into());
        }
    }
    Ok(())
}

/// `--online --predictor none`: the daemon's session learns from nothing but what it serves.
fn cold_start(args: &ReplayOptions) -> bool {
    args.online && args.predictor == "none"
}

/// Replays `trace` through the daemon at `socket`, one session per policy of `args`
/// (`timing` drives the `predictive` sessions' clock); `static` sessions rank experts on the
/// files `train_paths`.
pub fn replay_via_daemon(
    socket: &Path,
    args: &ReplayOptions,
    trace: &Trace,
    train_paths: &[PathBuf],
    timing: &TimingModel,
) -> anyhow::Result<Vec<DaemonRow>> {
    check(args)?;
    let shape = *trace.shape();
    let train = train_paths
        .iter()
        .map(|p| absolute(p))
        .collect::<anyhow::Result<Vec<String>>>()?;
    let steps = build_steps(trace, args.batching);
    let mut rows = Vec::new();
    for &kind in &args.policies {
        let mut c = Client::connect_unix(socket)?;
        let (mode, capacity) = match args.capacity_mode {
            CapacityMode::PerLayer => (wire::CapacityMode::PerLayer, args.capacity),
            CapacityMode::Shared => (wire::CapacityMode::Shared, args.capacity * shape.moe_layers),
        };
        let mut reg = Register {
            policy: kind.as_str().into(),
            capacity_mode: mode,
            half_life: Some(args.half_life),
            beta: Some(args.beta),
            prefetch_top: Some(0),
            ..Register::new(format!("replay-{kind}"), &shape, capacity as u32)
        };
        match kind {
            PolicyKind::Static => reg.train = train.clone(),
            PolicyKind::Predictive => {
                if !cold_start(args) {
                    reg.predictor = Some(absolute(Path::new(&args.predictor))?);
                }
                reg.online = args.online;
                reg.predictor_name = args.predictor_name.clone();
                reg.lookahead = Some(args.lookahead_for(&shape)? as u16);
                reg.prefetch_top = Some(args.prefetch_top.unwrap_or(shape.top_k) as u16);
                reg.prefetch_margin = Some(args.prefetch_margin);
            }
            _ => {}
        }
        let reply = c.register(reg)?;
        let predictive = kind == PolicyKind::Predictive;
        let mut session = DaemonSession::new(
            &mut c,
            reply.session,
            reply.slots as usize,
            trace,
            predictive,
        );
        simulate_on(trace, &steps, &mut session, timing).context("the daemon refused a request")?;
        let st = session.finish()?;
        rows.push(DaemonRow {
            name: kind.as_str().into(),
            hit_ratio: st.hit_ratio,
            demands: st.demands,
            hits: st.hits,
            loads: st.loads,
            steps: st.steps,
            live_recall: st.live_recall,
            learned: st.learned,
        });
    }
    Ok(rows)
}

/// The table `moeplan replay --via-daemon` prints.
pub fn render_rows(socket: &Path, rows: &[DaemonRow]) -> String {
    let mut s = format!("replay through the daemon at {}\n", socket.display());
    s += &format!(
        "{:<10} {:>9} {:>10} {:>10} {:>10}\n",
        "policy", "hit ratio", "demands", "hits", "loads"
    );
    for r in rows {
        s += &format!(
            "{:<10} {:>9.4} {:>10} {:>10} {:>10}\n",
            r.name, r.hit_ratio, r.demands, r.hits, r.loads
        );
    }
    s
}
