//! The daemon's wire types: the frame, the envelope, every request and reply, the error codes
//! and a session's counters. Shared by the server and the clients; depends on neither.
//!
//! On the wire every message is a frame ([`frame`]: a 4-byte big-endian length, then a msgpack
//! map). A request is `{"id": u64, "op": "<verb>", "args": {...}}`, its reply `{"id", "op",
//! "result"}` ([`protocol`]). One file per verb holds its request and reply types.

mod close;
mod envelope;
pub mod frame;
mod hello;
mod loaded;
mod observe;
mod prefetch;
pub mod protocol;
mod register;
mod replan;
mod stats;
mod step;

pub use close::{Close, CloseReply};
pub use hello::{Hello, HelloReply};
pub use loaded::{Loaded, LoadedReply};
pub use observe::Observe;
pub use prefetch::{Prefetch, PrefetchReply};
pub use protocol::{
    ErrorCode, ErrorReply, PROTOCOL_VERSION, Request, RequestBody, Response, ResponseBody,
    decode_request, decode_response,
};
pub use register::{CapacityMode, Register, RegisterReply};
pub use replan::{Replan, ReplanReply, SlotChange};
pub use stats::{SessionStats, Stats, StatsReply};
pub use step::{
    ExpertRef, ExpertSlot, MAX_STEP_EXPERTS, MAX_STEP_TOKENS, Routing, State, Step, StepReply,
    Transfer, reply_bound, transfers_within,
};
