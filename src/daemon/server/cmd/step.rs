//! Applies `step`: checks ranges against the session's shape, asks its cache, and turns the
//! cache's answer into the reply (placements, loads, prefetches).

use super::{Apply, Ctx, check_experts, check_layer};
use crate::cache::{Load, Residency};
use crate::daemon::server::engine::{StepInput, StepOutcome, TokenRouting};
use crate::daemon::server::session::lock;
use crate::daemon::wire::{
    ErrorCode, ErrorReply, ExpertRef, ExpertSlot, MAX_STEP_EXPERTS, MAX_STEP_TOKENS, State, Step,
    StepReply, Transfer, reply_bound,
};
use crate::trace::ModelShape;

impl Apply for Step {
    type Reply = StepReply;

    fn apply(self, ctx: &mut Ctx<'_>) -> Result<StepReply, ErrorReply> {
        let handle = ctx.session(self.session)?;
        let mut s = lock(&handle);
        let checked = (|| {
            let layer = check_layer(self.layer, s.shape.moe_layers)?;
            if self.experts.len() > MAX_STEP_EXPERTS {
                return Err(ErrorReply::new(
                    ErrorCode::BadRequest,
                    format!(
                        "experts: {} ids, at most {MAX_STEP_EXPERTS}",
                        self.experts.len()
                    ),
                ));
            }
            check_experts(&self.experts, s.shape.experts)?;
            if let Some(sc) = &self.next_scores
                && (sc.len() != s.shape.experts || sc.iter().any(|x| !x.is_finite()))
            {
                return Err(ErrorReply::new(
                    ErrorCode::BadRequest,
                    format!(
                        "next_scores: expected {} finite scores, got {}",
                        s.shape.experts,
                        sc.len()
                    ),
                ));
            }
            Ok(layer)
        })();
        let layer = match checked.and_then(|l| check_routing(&self, &s.shape).map(|()| l)) {
            Ok(l) => l,
            Err(e) => {
                s.rejected += 1;
                return Err(e);
            }
        };
        // Refused before it changes anything: a reply that could exceed the frame limit would
        // be refused after the cache had already moved (loads issued, experts pinned).
        let distinct = self.experts.len().min(s.shape.experts);
        let issue = self
            .prefetch
            .map_or(s.engine.prefetch_top(), |n| n as usize)
            .min(s.engine.slots() as usize);
        let worst = reply_bound(distinct, issue);
        if worst > ctx.shared.config.max_frame {
            s.rejected += 1;
            return Err(ErrorReply::new(
                ErrorCode::BadRequest,
                format!(
                    "the reply to {distinct} experts with up to {issue} prefetches could take \
                     {worst} bytes, over the daemon's frame limit of {}: send fewer experts or \
                     a smaller `prefetch` (nothing was changed)",
                    ctx.shared.config.max_frame
                ),
            ));
        }
        let input = StepInput {
            layer,
            experts: &self.experts,
            next_scores: self.next_scores.as_deref(),
            routing: self.routing.as_ref().map(|r| TokenRouting {
                seqs: &r.seqs,
                experts: &r.experts,
                weights: &r.weights,
            }),
            keep_pins: self.keep_pins,
        };
        let mut reply = StepReply::default();
        let outcome = s
            .engine
            .step(input)
            .map_err(|e| ErrorReply::new(ErrorCode::BadRequest, e.to_string()))?;
        fill_reply(&outcome, &mut reply);
        let issue = self
            .prefetch
            .map_or(s.engine.prefetch_top(), |n| n as usize);
        reply
            .prefetch
            .extend(s.engine.issue_prefetches(issue).map(|ld| transfer(&ld)));
        s.steps += 1;
        Ok(reply)
    }
}

/// The reply's placements, counts and demand loads from the cache's answer: the experts of other
/// GPUs first (`remote`), then this GPU's in request order.
fn fill_reply(o: &StepOutcome<'_>, out: &mut StepReply) {
    out.placements
        .extend(o.remote.iter().map(|&(expert, gpu)| ExpertSlot {
            expert,
            slot: None,
            state: State::Remote,
            gpu: Some(gpu),
        }));
    out.placements
        .extend(o.plan.placements.iter().map(|p| ExpertSlot {
            expert: p.expert,
            slot: p.slot,
            state: match p.residency {
                Residency::Resident => State::Resident,
                Residency::InFlight => State::InFlight,
                Residency::Loading => State::Loading,
                Residency::Transient | Residency::Cpu => State::Transient,
            },
            gpu: o.gpu,
        }));
    out.hits = o.plan.hits;
    out.misses = o.plan.misses;
    out.loads.extend(o.plan.loads.iter().map(transfer));
}

/// A core load as a wire transfer.
pub(super) fn transfer(ld: &Load) -> Transfer {
    Transfer {
        layer: ld.layer,
        expert: ld.expert,
        slot: ld.slot,
        evict: ld.evicted.map(|expert| ExpertRef {
            layer: ld.evicted_layer.unwrap_or(ld.layer),
            expert,
        }),
    }
}

/// Checks a step's `routing` against the model shape.
fn check_routing(step: &Step, shape: &ModelShape) -> Result<(), ErrorReply> {
    let Some(r) = &step.routing else {
        return Ok(());
    };
    let bad = |m: String| Err(ErrorReply::new(ErrorCode::BadRequest, m));
    if r.seqs.len() > MAX_STEP_TOKENS {
        return bad(format!(
            "routing.seqs: {} tokens, at most {MAX_STEP_TOKENS}",
            r.seqs.len()
        ));
    }
    if r.experts.len() != r.seqs.len() * shape.top_k {
        return bad(format!(
            "routing.experts: expected {} ids ({} tokens x top_k {}), got {}",
            r.seqs.len() * shape.top_k,
            r.seqs.len(),
            shape.top_k,
            r.experts.len()
        ));
    }
    if !r.weights.is_empty() && r.weights.len() != r.experts.len() {
        return bad(format!(
            "routing.weights: expected none or {}, got {}",
            r.experts.len(),
            r.weights.len()
        ));
    }
    if r.weights.iter().any(|w| !w.is_finite()) {
        return bad("routing.weights: must be finite".into());
    }
    check_experts(&r.experts, shape.experts)
}
