//! One client connection: read frames, apply requests in order, write replies, clean up.
//!
//! Replies to every complete frame already received are written before the next read, so a
//! pipelining client gets its replies in order with one write per batch. Backpressure: while a
//! client does not read its replies, the write blocks and no more requests are read; the read
//! buffer holds at most one frame plus one read, and the write buffer is flushed whenever it
//! passes [`FLUSH_AT`], so nothing grows without bound. However the connection ends, its
//! sessions' pins are released and the sessions closed (also if the task panics or is aborted).

use std::sync::Arc;
use std::time::Instant;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::cmd::{self, ConnState, Ctx, check_budget, check_room};
use super::shutdown::Shutdown;
use super::state::ServerState;
use crate::daemon::wire::frame::{self, FrameError, HEADER_LEN};
use crate::daemon::wire::{
    ErrorCode, ErrorReply, Register, RequestBody, Response, ResponseBody, decode_request,
};

/// Bytes asked of each socket read.
const READ_CHUNK: usize = 64 * 1024;

/// Outgoing bytes that trigger a write even while more requests are buffered.
pub const FLUSH_AT: usize = 64 * 1024;

/// Time a new connection may take to send its `hello` before it needs a permit of the
/// pre-handshake budget.
pub const HANDSHAKE_GRACE: std::time::Duration = std::time::Duration::from_millis(50);

/// What woke a connection waiting for input.
enum Wake {
    /// Bytes arrived (0: end of stream).
    Read(usize),
    /// The grace period without a `hello` ended.
    Grace,
    /// The handshake deadline passed.
    Deadline,
}

/// Whether to go on after a request.
#[derive(Debug, PartialEq, Eq)]
enum Flow {
    Continue,
    Close,
}

/// What [`handle`] did with a request.
enum Handled {
    /// Applied (its reply, if any, is written).
    Done(Flow),
    /// A `register` that reads files, with its request id: prepared on a blocking thread so
    /// that the other connections' steps go on meanwhile, then installed, in request order.
    Deferred(u64, Box<Register>),
}

/// Closes the connection's sessions when dropped, however the task ends.
struct Cleanup {
    /// The connection's state (sessions, handshake).
    state: ConnState,
    /// Registry and metrics.
    shared: Arc<ServerState>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for (_, h) in self.state.sessions.drain() {
            self.shared.registry.close(&h);
        }
        self.shared
            .metrics
            .connections_active
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Serves one connection until the client leaves, a fatal error, or shutdown.
pub async fn serve<S>(
    mut stream: S,
    needs_token: bool,
    shared: Arc<ServerState>,
    mut shutdown: Shutdown,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    use std::sync::atomic::Ordering::Relaxed;
    shared.metrics.connections_total.fetch_add(1, Relaxed);
    shared.metrics.connections_active.fetch_add(1, Relaxed);
    let mut cleanup = Cleanup {
        state: ConnState {
            needs_token,
            ..Default::default()
        },
        shared,
    };
    if let Err(e) = run(
        &mut stream,
        &mut cleanup.state,
        &cleanup.shared,
        &mut shutdown,
    )
    .await
    {
        tracing::debug!(error = %e, "connection ended with an I/O error");
    }
    let _ = stream.shutdown().await;
}

/// The read-apply-write loop.
async fn run<S>(
    stream: &mut S,
    state: &mut ConnState,
    shared: &ServerState,
    shutdown: &mut Shutdown,
) -> std::io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let max = shared.config.max_frame;
    // A connection has `handshake_timeout` to send its `hello`. One that has not sent it within
    // [`HANDSHAKE_GRACE`] (a runtime sends it at once) must hold a permit of the pre-handshake
    // budget until it does: idle connections cannot take the slots of runtimes.
    let now = tokio::time::Instant::now();
    let (grace, deadline) = (now + HANDSHAKE_GRACE, now + shared.config.handshake_timeout);
    let mut pending = None;
    let mut rbuf: Vec<u8> = Vec::with_capacity(READ_CHUNK);
    let mut wbuf: Vec<u8> = Vec::with_capacity(4096);
    loop {
        let mut start = 0;
        let mut flow = Flow::Continue;
        while flow == Flow::Continue {
            match frame::check(&rbuf[start..], max) {
                Ok(Some(len)) => {
                    let body = &rbuf[start + HEADER_LEN..start + HEADER_LEN + len];
                    let handled = handle(state, shared, body, &mut wbuf);
                    start += HEADER_LEN + len;
                    flow = match handled {
                        Handled::Done(f) => f,
                        Handled::Deferred(id, reg) => {
                            register_off_loop(state, shared, id, *reg, &mut wbuf).await
                        }
                    };
                    if wbuf.len() >= FLUSH_AT {
                        flush(stream, &mut wbuf, shared).await?;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    let code = match e {
                        FrameError::TooLarge { .. } => ErrorCode::FrameTooLarge,
                        FrameError::Empty => ErrorCode::EmptyFrame,
                    };
                    flow = reply_error(shared, &mut wbuf, 0, code, e.to_string());
                }
            }
        }
        rbuf.drain(..start);
        if state.handshaken {
            pending.take();
        }
        flush(stream, &mut wbuf, shared).await?;
        if flow == Flow::Close || shutdown.is_shutdown() {
            return Ok(());
        }
        rbuf.reserve(READ_CHUNK);
        let waiting = !state.handshaken;
        let wake = tokio::select! {
            biased;
            r = stream.read_buf(&mut rbuf) => Wake::Read(r?),
            () = shutdown.recv() => return Ok(()),
            () = tokio::time::sleep_until(deadline), if waiting => Wake::Deadline,
            () = tokio::time::sleep_until(grace), if waiting && pending.is_none() => Wake::Grace,
        };
        let n = match wake {
            Wake::Read(n) => n,
            Wake::Grace => {
                if let Ok(p) = shared.pending.try_acquire() {
                    pending = Some(p);
                    continue;
                }
                let msg = "too many connections waiting for their hello".to_string();
                reply_error(shared, &mut wbuf, 0, ErrorCode::LimitReached, msg);
                return flush(stream, &mut wbuf, shared).await;
            }
            Wake::Deadline => {
                let msg = format!(
                    "no hello within {:.1} s of connecting",
                    shared.config.handshake_timeout.as_secs_f64()
                );
                reply_error(shared, &mut wbuf, 0, ErrorCode::HandshakeRequired, msg);
                return flush(stream, &mut wbuf, shared).await;
            }
        };
        if n == 0 {
            if !rbuf.is_empty() {
                let msg = format!(
                    "connection closed in the middle of a frame ({} bytes of it received)",
                    rbuf.len()
                );
                reply_error(shared, &mut wbuf, 0, ErrorCode::Truncated, msg);
                flush(stream, &mut wbuf, shared).await?;
            }
            return Ok(());
        }
    }
}

/// Writes out `wbuf` and empties it.
async fn flush<S: AsyncWrite + Unpin>(
    stream: &mut S,
    wbuf: &mut Vec<u8>,
    shared: &ServerState,
) -> std::io::Result<()> {
    if wbuf.is_empty() {
        return Ok(());
    }
    shared.metrics.out_buffer(wbuf.len());
    stream.write_all(wbuf).await?;
    wbuf.clear();
    Ok(())
}

/// Prepares a `register` that reads files on a blocking thread, then adds the session and
/// appends the reply to `out`.
async fn register_off_loop(
    state: &mut ConnState,
    shared: &ServerState,
    id: u64,
    reg: Register,
    out: &mut Vec<u8>,
) -> Flow {
    let prepared = match tokio::task::spawn_blocking(move || cmd::prepare(reg)).await {
        Ok(p) => p,
        Err(e) => Err(ErrorReply::new(
            ErrorCode::BadRequest,
            format!("register failed while reading its files: {e}"),
        )),
    };
    let mut ctx = Ctx {
        conn: state,
        shared,
    };
    match prepared.and_then(|p| p.install(&mut ctx)) {
        Ok(r) => encode_reply(shared, out, id, ResponseBody::Register(r)),
        Err(e) => reply_error(shared, out, id, e.code, e.message),
    }
}

/// Appends a reply (or, if it cannot be encoded, an error reply).
fn encode_reply(shared: &ServerState, out: &mut Vec<u8>, id: u64, body: ResponseBody) -> Flow {
    let resp = Response { id, body };
    if let Err(e) = frame::encode(&resp, shared.config.max_frame, out) {
        let msg = format!("the reply cannot be sent: {e}");
        return reply_error(shared, out, id, ErrorCode::BadRequest, msg);
    }
    Flow::Continue
}

/// Decodes and applies one request, appending its reply (if any) to `out`; a `register` that
/// reads files is handed back instead.
fn handle(state: &mut ConnState, shared: &ServerState, body: &[u8], out: &mut Vec<u8>) -> Handled {
    let req = match decode_request(body) {
        Ok(r) => r,
        Err((id, e)) => return Handled::Done(reply_error(shared, out, id, e.code, e.message)),
    };
    let op = req.body.index();
    shared.metrics.request(op);
    let body = match req.body {
        RequestBody::Register(r) if state.handshaken && r.reads_files() => {
            let ctx = Ctx {
                conn: state,
                shared,
            };
            if let Err(e) = check_room(&ctx).and_then(|()| check_budget(&r, &ctx)) {
                return Handled::Done(reply_error(shared, out, req.id, e.code, e.message));
            }
            return Handled::Deferred(req.id, Box::new(r));
        }
        other => other,
    };
    let is_observe = matches!(body, RequestBody::Observe(_));
    let t0 = matches!(body, RequestBody::Step(_)).then(Instant::now);
    let mut ctx = Ctx {
        conn: state,
        shared,
    };
    let res = cmd::dispatch(body, &mut ctx);
    if let Some(t0) = t0 {
        shared.metrics.step_time(t0.elapsed());
    }
    Handled::Done(match res {
        Ok(None) => Flow::Continue,
        Ok(Some(body)) => encode_reply(shared, out, req.id, body),
        Err(e) if is_observe => {
            shared.metrics.error(e.code);
            Flow::Continue
        }
        Err(e) => reply_error(shared, out, req.id, e.code, e.message),
    })
}

/// Appends an error reply, counts it, and says whether the connection must close.
fn reply_error(
    shared: &ServerState,
    out: &mut Vec<u8>,
    id: u64,
    code: ErrorCode,
    msg: String,
) -> Flow {
    shared.metrics.error(code);
    tracing::debug!(id, %code, %msg, "request refused");
    let resp = Response::error(id, code, msg);
    if frame::encode(&resp, usize::MAX, out).is_err() {
        return Flow::Close;
    }
    if code.is_fatal() {
        Flow::Close
    } else {
        Flow::Continue
    }
}
