//! `moeplan replay --via-daemon SOCKET`: drives a running daemon exactly as a runtime would
//! (one session per policy, i.e. per simulated GPU; per step and layer a `step`, then `loaded` for
//! its transfers), so its hit ratios must equal the in-process replay's on the same settings.

use std::path::Path;

use serde::Serialize;

use super::BadInput;
use super::replay_cmd::{CapacityMode, ReplayArgs};
use crate::cache::PolicyKind;
use crate::daemon::client::Client;
use crate::daemon::cmd::{self, Register, Step};
use crate::daemon::protocol::{RequestBody, ResponseBody};
use crate::replay::{Batching, build_steps, step_experts};
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
}

/// Replays `trace` through the daemon at `socket`, one session per policy of `args`.
pub fn replay(
    socket: &Path,
    args: &ReplayArgs,
    trace: &Trace,
    batching: Batching,
) -> anyhow::Result<Vec<DaemonRow>> {
    if args.cpu_offload {
        return Err(BadInput("--via-daemon does not model --cpu-offload".into()).into());
    }
    let shape = *trace.shape();
    let train: Vec<String> = if args.train_trace.is_empty() {
        args.input
            .traces
            .iter()
            .map(|p| p.display().to_string())
            .collect()
    } else {
        args.train_trace
            .iter()
            .map(|p| p.display().to_string())
            .collect()
    };
    let steps = build_steps(trace, batching);
    let mut rows = Vec::new();
    for &kind in &args.policy {
        if !matches!(kind, PolicyKind::Lru | PolicyKind::Lfu | PolicyKind::Static) {
            return Err(BadInput(format!(
                "--via-daemon replays lru, lfu and static; `{kind}` needs the in-process \
                 replay (predictions on the replay's clock, or the future for opt)"
            ))
            .into());
        }
        let mut c = Client::connect_unix(socket)?;
        let (mode, capacity) = match args.capacity_mode {
            CapacityMode::PerLayer => (cmd::CapacityMode::PerLayer, args.capacity),
            CapacityMode::Shared => (cmd::CapacityMode::Shared, args.capacity * shape.moe_layers),
        };
        let sid = c
            .register(Register {
                policy: kind.as_str().into(),
                capacity_mode: mode,
                half_life: Some(args.half_life),
                beta: Some(args.beta),
                prefetch_top: Some(0),
                train: if kind == PolicyKind::Static {
                    train.clone()
                } else {
                    Vec::new()
                },
                ..Register::new(format!("replay-{kind}"), &shape, capacity as u32)
            })?
            .session;
        let mut marks = vec![0u32; shape.experts];
        let (mut stamp, mut buf) = (0u32, Vec::with_capacity(shape.experts));
        // A `loaded` is queued after each step that loads, and written with the next step
        // (pipelined): the daemon applies them in order, so the cache sees what the replay does.
        let mut queued_loaded = false;
        for i in 0..steps.len() {
            for l in 0..shape.moe_layers {
                step_experts(trace, steps.step(i), l, &mut marks, &mut stamp, &mut buf);
                c.send(RequestBody::Step(Step {
                    session: sid,
                    layer: l as u16,
                    experts: buf.clone(),
                    next_scores: None,
                    keep_pins: false,
                }))?;
                c.flush()?;
                if std::mem::take(&mut queued_loaded) {
                    expect_ok(c.recv()?.body)?;
                }
                let ResponseBody::Step(r) = expect_ok(c.recv()?.body)? else {
                    anyhow::bail!("unexpected reply to a step");
                };
                if let Some(loaded) = r.loaded_report(sid, l as u16) {
                    c.send(RequestBody::Loaded(loaded))?;
                    queued_loaded = true;
                }
            }
        }
        c.flush()?;
        if queued_loaded {
            expect_ok(c.recv()?.body)?;
        }
        let st = c.close(sid)?;
        rows.push(DaemonRow {
            name: kind.as_str().into(),
            hit_ratio: st.hit_ratio,
            demands: st.demands,
            hits: st.hits,
            loads: st.loads,
            steps: st.steps,
        });
    }
    Ok(rows)
}

/// A reply, or the daemon's refusal as an error.
fn expect_ok(body: ResponseBody) -> anyhow::Result<ResponseBody> {
    match body {
        ResponseBody::Error(e) => {
            Err(anyhow::Error::new(e).context("the daemon refused a request"))
        }
        b => Ok(b),
    }
}

/// The table `moeplan replay --via-daemon` prints.
pub fn render(socket: &Path, rows: &[DaemonRow]) -> String {
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
