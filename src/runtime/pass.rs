//! The forward pass over a trace's steps, layer by layer, through a cache and a data plane (the
//! loop of the module docs).

use std::time::{Duration, Instant};

use super::side::{CacheSide, LayerPlan, Move};
use crate::dataplane::DataPlane;
use crate::moe::{Digest, Model};
use crate::replay::{Steps, step_experts};
use crate::trace::Trace;

/// A deliberately broken pin, for tests: at layer `layer` of step `step`, after the layer's
/// slots are ready and before it computes, the first cached expert's slot is overwritten with
/// another expert of the layer (as a cache that evicted a pinned slot would cause). The output
/// must then differ from the all-resident run's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fault {
    /// Step index.
    pub step: usize,
    /// MoE layer.
    pub layer: usize,
}

/// What a pass measured.
#[derive(Debug, Clone, Default)]
pub struct PassFigures {
    /// Final states of every token.
    pub digest: Digest,
    /// Steps run.
    pub steps: u64,
    /// Tokens run.
    pub tokens: u64,
    /// Wall time, seconds.
    pub seconds: f64,
    /// Time spent waiting for copies.
    pub wait: Duration,
}

/// Puts `moves` on the data plane; transient ones (no slot) take the transient buffers from
/// `transient` on, recorded in `tslot` by expert.
fn issue(
    plane: &mut dyn DataPlane,
    moves: &[Move],
    transient: u32,
    tslot: &mut [u32],
) -> anyhow::Result<()> {
    let mut next = transient;
    for m in moves {
        let slot = match m.slot {
            Some(s) => {
                if m.evicts {
                    plane.evict(s)?;
                }
                s
            }
            None => {
                tslot[m.expert as usize] = next;
                next += 1;
                next - 1
            }
        };
        plane.load(slot, m.layer, m.expert)?;
    }
    Ok(())
}

/// Runs `steps` of `trace` through `model`, asking `cache` (whose slots are the plane's first
/// `cache_slots`; the rest are transient buffers) and moving experts through `plane`.
pub fn forward(
    model: &Model,
    plane: &mut dyn DataPlane,
    cache: &mut dyn CacheSide,
    trace: &Trace,
    steps: &Steps,
    cache_slots: usize,
    fault: Option<Fault>,
) -> anyhow::Result<PassFigures> {
    let shape = *trace.shape();
    let hidden = model.config().hidden;
    let mut fig = PassFigures::default();
    let mut plan = LayerPlan::default();
    let mut prefetch: Vec<Move> = Vec::new();
    let mut marks = vec![0u32; shape.experts];
    let (mut stamp, mut buf) = (0u32, Vec::with_capacity(shape.experts));
    let mut tslot = vec![u32::MAX; shape.experts];
    let mut rows: Vec<u32> = Vec::new();
    let mut h: Vec<f32> = Vec::new();
    let t0 = Instant::now();
    for i in 0..steps.len() {
        let toks = steps.step(i);
        h.clear();
        for &tk in toks {
            model.input(tk, &mut h);
        }
        for l in 0..shape.moe_layers {
            // 1. Everything in flight lands (the previous layer's prefetches).
            fig.wait += plane.wait_all()?;
            cache.landed()?;
            // 2. The cache's answer; demand loads on the plane.
            step_experts(trace, toks, l, &mut marks, &mut stamp, &mut buf);
            cache.step(l, &buf, toks, trace, &mut plan)?;
            issue(plane, &plan.loads, cache_slots as u32, &mut tslot)?;
            // 3. Exactly the slots this layer reads.
            for &(e, slot) in &plan.experts {
                fig.wait += plane.wait(slot.unwrap_or(tslot[e as usize]))?;
            }
            cache.landed()?;
            // 4. Prefetches for the next layers, copied while this one computes.
            let last = i + 1 == steps.len() && l + 1 == shape.moe_layers;
            cache.release(l, !last, &mut prefetch)?;
            issue(plane, &prefetch, cache_slots as u32, &mut tslot)?;
            if fault == Some(Fault { step: i, layer: l })
                && let Some(&(e, Some(s))) = plan.experts.iter().find(|p| p.1.is_some())
            {
                plane.load(s, l as u16, ((e as usize + 1) % shape.experts) as u16)?;
                plane.wait(s)?;
            }
            // 5. Compute, experts in the step's order.
            let mut run = model.begin(l, &h, toks.len())?;
            for &(e, slot) in &plan.experts {
                rows.clear();
                rows.extend(
                    toks.iter()
                        .enumerate()
                        .filter(|&(_, &tk)| trace.experts(tk as usize, l).contains(&e))
                        .map(|(r, _)| r as u32),
                );
                let s = slot.unwrap_or(tslot[e as usize]);
                let mut res = Ok(());
                plane.read(s, &mut |bytes| {
                    res = model.add_expert(&mut run, e, &rows, bytes)
                })?;
                res?;
            }
            model.finish(run, &mut h);
        }
        for (r, &tk) in toks.iter().enumerate() {
            fig.digest.record(tk, &h[r * hidden..(r + 1) * hidden]);
        }
        fig.steps += 1;
        fig.tokens += toks.len() as u64;
    }
    fig.wait += plane.wait_all()?;
    cache.landed()?;
    fig.seconds = t0.elapsed().as_secs_f64();
    Ok(fig)
}
