//! Applying requests: one file per verb (its [`Apply`] impl for the wire type), dispatch by
//! verb, and what a request may touch ([`Ctx`]). To add a verb: its types in
//! [`crate::daemon::wire`], its `apply` here, a line in [`dispatch`].

mod close;
mod hello;
mod loaded;
mod observe;
mod prefetch;
mod register;
mod replan;
mod stats;
mod step;

pub use register::{MAX_NAME_LEN, Prepared, check_budget, check_room, prepare};

use std::collections::HashMap;

use super::session::SessionHandle;
use super::state::ServerState;
use crate::daemon::wire::{ErrorCode, ErrorReply, RequestBody, ResponseBody};

/// A request the server applies: checked against its connection and session, then done.
pub trait Apply {
    /// What it answers (`()` for `observe`, which has no reply).
    type Reply;
    /// Applies the request.
    fn apply(self, ctx: &mut Ctx<'_>) -> Result<Self::Reply, ErrorReply>;
}

/// What one connection knows between its requests.
#[derive(Debug, Default)]
pub struct ConnState {
    /// Whether `hello` succeeded.
    pub handshaken: bool,
    /// Whether `hello` must carry the shared token (TCP connections).
    pub needs_token: bool,
    /// The sessions this connection registered, by id; nobody else can use them.
    pub sessions: HashMap<u64, SessionHandle>,
}

/// What a request's `apply` may touch: its connection's state and the daemon's shared state.
pub struct Ctx<'a> {
    /// This connection.
    pub conn: &'a mut ConnState,
    /// The daemon.
    pub shared: &'a ServerState,
}

impl Ctx<'_> {
    /// The session `id` of this connection, or `unknown_session`.
    pub fn session(&self, id: u64) -> Result<SessionHandle, ErrorReply> {
        self.conn.sessions.get(&id).cloned().ok_or_else(|| {
            ErrorReply::new(
                ErrorCode::UnknownSession,
                format!("session {id} is not registered on this connection"),
            )
        })
    }
}

/// Applies one request; `Ok(None)` for requests without a reply (`observe`).
pub fn dispatch(body: RequestBody, ctx: &mut Ctx<'_>) -> Result<Option<ResponseBody>, ErrorReply> {
    if !ctx.conn.handshaken && !matches!(body, RequestBody::Hello(_)) {
        return Err(ErrorReply::new(
            ErrorCode::HandshakeRequired,
            "the first request of a connection must be `hello`",
        ));
    }
    Ok(Some(match body {
        RequestBody::Hello(r) => ResponseBody::Hello(r.apply(ctx)?),
        RequestBody::Register(r) => ResponseBody::Register(r.apply(ctx)?),
        RequestBody::Step(r) => ResponseBody::Step(r.apply(ctx)?),
        RequestBody::Loaded(r) => ResponseBody::Loaded(r.apply(ctx)?),
        RequestBody::Prefetch(r) => ResponseBody::Prefetch(r.apply(ctx)?),
        RequestBody::Observe(r) => {
            r.apply(ctx)?;
            return Ok(None);
        }
        RequestBody::Stats(r) => ResponseBody::Stats(r.apply(ctx)?),
        RequestBody::Close(r) => ResponseBody::Close(r.apply(ctx)?),
        RequestBody::Replan(r) => ResponseBody::Replan(r.apply(ctx)?),
    }))
}

/// Checks `layer` against a shape's MoE layer count.
pub(crate) fn check_layer(layer: u16, moe_layers: usize) -> Result<usize, ErrorReply> {
    let l = layer as usize;
    if l >= moe_layers {
        return Err(ErrorReply::new(
            ErrorCode::OutOfRange,
            format!("layer {layer} out of range: the model has {moe_layers} MoE layers (0-based)"),
        ));
    }
    Ok(l)
}

/// Checks every expert id of `experts` against a shape's expert count.
pub(crate) fn check_experts(experts: &[u16], n: usize) -> Result<(), ErrorReply> {
    if let Some(&e) = experts.iter().find(|&&e| e as usize >= n) {
        return Err(ErrorReply::new(
            ErrorCode::OutOfRange,
            format!("expert {e} out of range: the model has {n} experts per layer (0-based)"),
        ));
    }
    Ok(())
}
