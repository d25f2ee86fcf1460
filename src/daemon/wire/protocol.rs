//! The messages: an envelope with a request id, one request type per verb's file, the replies,
//! the error codes, and the protocol version checked at the handshake.
//!
//! On the wire every message is a msgpack map. A request is
//! `{"id": u64, "op": "<verb>", "args": {...}}`; its reply is `{"id": <same>, "op": "<verb>",
//! "result": {...}}`, or `{"id": <same>, "op": "error", "result": {"code", "message"}}`.
//! Replies come in request order on a connection, so a runtime may pipeline (send layer l+1's
//! `step` before reading layer l's reply) and match replies by id. `observe` has no reply.

use serde::{Deserialize, Serialize};

pub use super::envelope::{decode_request, decode_response};
use super::{
    Close, CloseReply, Hello, HelloReply, Loaded, LoadedReply, Observe, Prefetch, PrefetchReply,
    Register, RegisterReply, Replan, ReplanReply, Stats, StatsReply, Step, StepReply,
};

/// Protocol version; `hello` must carry exactly this one.
pub const PROTOCOL_VERSION: u32 = 1;

/// A request: its id and what it asks. Serialised by hand ([`super::envelope`]: no buffering);
/// the derived `Deserialize` reads the same format (the server uses [`decode_request`]).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Request {
    /// Chosen by the client, echoed in the reply (0 is allowed; uniqueness is the client's job).
    pub id: u64,
    /// The request proper.
    #[serde(flatten)]
    pub body: RequestBody,
}

/// The requests, by verb (`op` on the wire), arguments under `args`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", content = "args", rename_all = "snake_case")]
pub enum RequestBody {
    /// Handshake: must be the first request of a connection.
    Hello(Hello),
    /// Opens a session (one runtime process, one GPU).
    Register(Register),
    /// The experts a layer needs now: where they are, what to load, what to prefetch.
    Step(Step),
    /// Transfers the runtime finished.
    Loaded(Loaded),
    /// Issue queued prefetches now (the runtime's copy engine is idle).
    Prefetch(Prefetch),
    /// Fire-and-forget routing counts (no reply).
    Observe(Observe),
    /// Counters of one or all of this connection's sessions.
    Stats(Stats),
    /// Ends a session.
    Close(Close),
    /// The move-budgeted re-plan from the session's observed counts.
    Replan(Replan),
}

/// A reply: the id of the request it answers and the outcome. Serialised by hand like
/// [`Request`]; clients decode it with [`decode_response`].
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Response {
    /// The request's id (0 when the request was too malformed to read one).
    pub id: u64,
    /// The outcome.
    #[serde(flatten)]
    pub body: ResponseBody,
}

/// The replies, tagged like the requests they answer (`op`), payload under `result`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", content = "result", rename_all = "snake_case")]
pub enum ResponseBody {
    /// Answers [`Hello`].
    Hello(HelloReply),
    /// Answers [`Register`].
    Register(RegisterReply),
    /// Answers [`Step`].
    Step(StepReply),
    /// Answers [`Loaded`].
    Loaded(LoadedReply),
    /// Answers [`Prefetch`].
    Prefetch(PrefetchReply),
    /// Answers [`Stats`].
    Stats(StatsReply),
    /// Answers [`Close`].
    Close(CloseReply),
    /// Answers [`Replan`].
    Replan(ReplanReply),
    /// Any request that failed.
    Error(ErrorReply),
}

impl RequestBody {
    /// Every verb, in the order of [`RequestBody::index`].
    pub const OPS: [&'static str; 9] = [
        "hello", "register", "step", "loaded", "prefetch", "observe", "stats", "close", "replan",
    ];

    /// Position of this request's verb in [`RequestBody::OPS`].
    pub fn index(&self) -> usize {
        match self {
            RequestBody::Hello(_) => 0,
            RequestBody::Register(_) => 1,
            RequestBody::Step(_) => 2,
            RequestBody::Loaded(_) => 3,
            RequestBody::Prefetch(_) => 4,
            RequestBody::Observe(_) => 5,
            RequestBody::Stats(_) => 6,
            RequestBody::Close(_) => 7,
            RequestBody::Replan(_) => 8,
        }
    }

    /// The verb (`op` on the wire).
    pub fn op(&self) -> &'static str {
        Self::OPS[self.index()]
    }
}

impl ResponseBody {
    /// The verb answered, or `error` (`op` on the wire).
    pub fn op(&self) -> &'static str {
        match self {
            ResponseBody::Hello(_) => "hello",
            ResponseBody::Register(_) => "register",
            ResponseBody::Step(_) => "step",
            ResponseBody::Loaded(_) => "loaded",
            ResponseBody::Prefetch(_) => "prefetch",
            ResponseBody::Stats(_) => "stats",
            ResponseBody::Close(_) => "close",
            ResponseBody::Replan(_) => "replan",
            ResponseBody::Error(_) => "error",
        }
    }
}

/// Why a request failed: a stable code and a message for humans.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ErrorReply {
    /// Stable machine-readable code.
    pub code: ErrorCode,
    /// What was wrong, naming the field at fault.
    pub message: String,
}

impl ErrorReply {
    /// An error with `code` and `message`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ErrorReply {
            code,
            message: message.into(),
        }
    }
}

/// The error codes (snake_case strings on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The frame body is not a valid request (bad msgpack, unknown op, missing field).
    Malformed,
    /// The frame header announced a body over the maximum (connection closed).
    FrameTooLarge,
    /// The frame header announced an empty body (connection closed).
    EmptyFrame,
    /// The connection ended in the middle of a frame.
    Truncated,
    /// `hello` carried another protocol version (connection closed).
    VersionMismatch,
    /// A request came before `hello`, or `hello` came twice.
    HandshakeRequired,
    /// The shared token is missing or wrong (TCP only; connection closed).
    Unauthorized,
    /// The session does not exist on this connection.
    UnknownSession,
    /// A layer or expert id is out of the session's model shape.
    OutOfRange,
    /// A request's values are inconsistent (e.g. a register the cache cannot honour).
    BadRequest,
    /// A limit was reached (sessions per connection).
    LimitReached,
    /// The daemon is shutting down.
    ShuttingDown,
}

impl ErrorCode {
    /// Every code, for metrics.
    pub const ALL: [ErrorCode; 12] = [
        ErrorCode::Malformed,
        ErrorCode::FrameTooLarge,
        ErrorCode::EmptyFrame,
        ErrorCode::Truncated,
        ErrorCode::VersionMismatch,
        ErrorCode::HandshakeRequired,
        ErrorCode::Unauthorized,
        ErrorCode::UnknownSession,
        ErrorCode::OutOfRange,
        ErrorCode::BadRequest,
        ErrorCode::LimitReached,
        ErrorCode::ShuttingDown,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Malformed => "malformed",
            ErrorCode::FrameTooLarge => "frame_too_large",
            ErrorCode::EmptyFrame => "empty_frame",
            ErrorCode::Truncated => "truncated",
            ErrorCode::VersionMismatch => "version_mismatch",
            ErrorCode::HandshakeRequired => "handshake_required",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::UnknownSession => "unknown_session",
            ErrorCode::OutOfRange => "out_of_range",
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::LimitReached => "limit_reached",
            ErrorCode::ShuttingDown => "shutting_down",
        }
    }

    /// Whether the server closes the connection after answering with this code.
    pub fn is_fatal(self) -> bool {
        matches!(
            self,
            ErrorCode::FrameTooLarge
                | ErrorCode::EmptyFrame
                | ErrorCode::Truncated
                | ErrorCode::VersionMismatch
                | ErrorCode::Unauthorized
                | ErrorCode::ShuttingDown
        )
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Response {
    /// An error reply to request `id`.
    pub fn error(id: u64, code: ErrorCode, message: impl Into<String>) -> Self {
        Response {
            id,
            body: ResponseBody::Error(ErrorReply::new(code, message)),
        }
    }
}
