//! A blocking Rust client of the daemon (used by tests, `replay --via-daemon` and the load bench).
//!
//! `send` queues a request and returns its id, `flush` writes the queue, `recv` reads the next
//! reply: together they pipeline. The typed calls (`register`, `step`, ...) send one request and
//! wait for its reply.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::Path;

use crate::daemon::wire::frame::{self, DEFAULT_MAX_FRAME, HEADER_LEN};
use crate::daemon::wire::{
    Close, ErrorReply, Hello, Loaded, Observe, PROTOCOL_VERSION, Prefetch, PrefetchReply, Register,
    RegisterReply, Replan, ReplanReply, Request, RequestBody, Response, ResponseBody, SessionStats,
    Stats, Step, StepReply, decode_response,
};

/// A client-side failure.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The socket failed.
    #[error("daemon connection: {0}")]
    Io(#[from] io::Error),
    /// A request could not be encoded.
    #[error(transparent)]
    Encode(#[from] frame::EncodeError),
    /// A reply could not be decoded.
    #[error("undecodable reply: {0}")]
    Decode(String),
    /// The daemon closed the connection.
    #[error("the daemon closed the connection")]
    Closed,
    /// The daemon answered with an error.
    #[error("daemon refused the request: {0}")]
    Refused(ErrorReply),
    /// The daemon answered with another reply than the one expected.
    #[error("unexpected reply: {0}")]
    Unexpected(String),
    /// The daemon neither answered nor read for too long.
    #[error("the daemon did not answer: {0}")]
    Timeout(String),
    /// The caller's settings cannot be run.
    #[error("invalid load settings: {0}")]
    Settings(String),
}

/// How long a non-blocking [`Client::flush`] waits for the daemon to read before giving up.
pub const WRITE_STALL: std::time::Duration = std::time::Duration::from_secs(10);

/// Either kind of stream.
#[derive(Debug)]
enum Stream {
    Unix(UnixStream),
    Tcp(TcpStream),
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Unix(s) => s.read(buf),
            Stream::Tcp(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Unix(s) => s.write(buf),
            Stream::Tcp(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A connection to the daemon, past the handshake.
#[derive(Debug)]
pub struct Client {
    /// The socket.
    stream: Stream,
    /// Read buffer: bytes `rpos..rend` are read and not yet consumed as replies.
    rbuf: Vec<u8>,
    /// Start of the unconsumed bytes in `rbuf`.
    rpos: usize,
    /// End of the bytes read into `rbuf`.
    rend: usize,
    /// Requests queued by `send` and not yet written.
    wbuf: Vec<u8>,
    /// Id of the next request.
    next_id: u64,
    /// The daemon's frame limit (from `hello`).
    max_frame: usize,
}

impl Client {
    /// Connects to a Unix socket and shakes hands.
    pub fn connect_unix(path: &Path) -> Result<Client, ClientError> {
        Self::start(Stream::Unix(UnixStream::connect(path)?), None)
    }

    /// Connects over TCP with the daemon's token and shakes hands.
    pub fn connect_tcp(addr: SocketAddr, token: &str) -> Result<Client, ClientError> {
        let s = TcpStream::connect(addr)?;
        s.set_nodelay(true)?;
        Self::start(Stream::Tcp(s), Some(token.to_owned()))
    }

    fn start(stream: Stream, token: Option<String>) -> Result<Client, ClientError> {
        let mut c = Client {
            stream,
            rbuf: vec![0; 64 * 1024],
            rpos: 0,
            rend: 0,
            wbuf: Vec::with_capacity(4096),
            next_id: 1,
            max_frame: DEFAULT_MAX_FRAME,
        };
        let hello = Hello {
            version: PROTOCOL_VERSION,
            client: format!("moeplan-rs {}", env!("CARGO_PKG_VERSION")),
            token,
        };
        match c.call(RequestBody::Hello(hello))? {
            ResponseBody::Hello(h) => c.max_frame = h.max_frame as usize,
            other => return Err(unexpected(&other)),
        }
        Ok(c)
    }

    /// Queues a request; returns its id. Nothing is written until [`Client::flush`].
    pub fn send(&mut self, body: RequestBody) -> Result<u64, ClientError> {
        let id = self.next_id;
        self.next_id += 1;
        frame::encode(&Request { id, body }, self.max_frame, &mut self.wbuf)?;
        Ok(id)
    }

    /// Writes every queued request.
    pub fn flush(&mut self) -> Result<(), ClientError> {
        let mut done = 0;
        let mut blocked_since = None;
        while done < self.wbuf.len() {
            match self.stream.write(&self.wbuf[done..]) {
                Ok(0) => return Err(ClientError::Closed),
                Ok(n) => (done, blocked_since) = (done + n, None),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    // Non-blocking: the daemon is not reading; give up after a while.
                    let since = *blocked_since.get_or_insert_with(std::time::Instant::now);
                    if since.elapsed() > WRITE_STALL {
                        return Err(ClientError::Timeout(format!(
                            "it read nothing for {} s",
                            WRITE_STALL.as_secs()
                        )));
                    }
                    std::hint::spin_loop()
                }
                Err(e) => return Err(e.into()),
            }
        }
        self.wbuf.clear();
        Ok(())
    }

    /// Reads the next reply (blocking; on a non-blocking stream a `WouldBlock` is an error:
    /// use [`Client::try_recv`]).
    pub fn recv(&mut self) -> Result<Response, ClientError> {
        loop {
            if let Some(r) = self.buffered()? {
                return Ok(r);
            }
            self.fill()?;
        }
    }

    /// The next reply if one is already here: decodes a buffered one, else reads once without
    /// waiting. The stream must be non-blocking ([`Client::set_nonblocking`]).
    pub fn try_recv(&mut self) -> Result<Option<Response>, ClientError> {
        if let Some(r) = self.buffered()? {
            return Ok(Some(r));
        }
        match self.fill() {
            Ok(()) => self.buffered(),
            Err(ClientError::Io(e))
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Makes reads return at once when nothing is there (for a busy-polling driver); writes
    /// then retry until every queued byte is out.
    pub fn set_nonblocking(&mut self, on: bool) -> Result<(), ClientError> {
        match &self.stream {
            Stream::Unix(s) => s.set_nonblocking(on)?,
            Stream::Tcp(s) => s.set_nonblocking(on)?,
        }
        Ok(())
    }

    /// Decodes the next complete reply already in the read buffer.
    fn buffered(&mut self) -> Result<Option<Response>, ClientError> {
        let avail = &self.rbuf[self.rpos..self.rend];
        let found =
            frame::check(avail, usize::MAX).map_err(|e| ClientError::Decode(e.to_string()))?;
        let Some(len) = found else {
            return Ok(None);
        };
        let body = &avail[HEADER_LEN..HEADER_LEN + len];
        let resp = decode_response(body).map_err(|e| ClientError::Decode(e.to_string()));
        // Past the frame even when it does not decode, so a caller that goes on reads the next.
        self.rpos += HEADER_LEN + len;
        resp.map(Some)
    }

    /// One read into the buffer (compacting and growing it first as needed).
    fn fill(&mut self) -> Result<(), ClientError> {
        if self.rpos > 0 {
            self.rbuf.copy_within(self.rpos..self.rend, 0);
            self.rend -= self.rpos;
            self.rpos = 0;
        }
        if self.rend == self.rbuf.len() {
            self.rbuf.resize(self.rbuf.len() * 2, 0);
        }
        let n = self.stream.read(&mut self.rbuf[self.rend..])?;
        if n == 0 {
            return Err(ClientError::Closed);
        }
        self.rend += n;
        Ok(())
    }

    /// Sends one request and waits for its reply; an error reply becomes `Refused`.
    pub fn call(&mut self, body: RequestBody) -> Result<ResponseBody, ClientError> {
        let id = self.send(body)?;
        self.flush()?;
        let r = self.recv()?;
        if r.id != id {
            return Err(ClientError::Unexpected(format!(
                "reply id {} for request {id}",
                r.id
            )));
        }
        match r.body {
            ResponseBody::Error(e) => Err(ClientError::Refused(e)),
            b => Ok(b),
        }
    }

    /// Opens a session.
    pub fn register(&mut self, r: Register) -> Result<RegisterReply, ClientError> {
        match self.call(RequestBody::Register(r))? {
            ResponseBody::Register(r) => Ok(r),
            other => Err(unexpected(&other)),
        }
    }

    /// Asks for layer `layer`'s experts.
    pub fn step(
        &mut self,
        session: u64,
        layer: u16,
        experts: &[u16],
    ) -> Result<StepReply, ClientError> {
        match self.call(RequestBody::Step(Step::new(
            session,
            layer,
            experts.to_vec(),
        )))? {
            ResponseBody::Step(r) => Ok(r),
            other => Err(unexpected(&other)),
        }
    }

    /// Reports finished transfers; returns the transfers still pending.
    pub fn loaded(
        &mut self,
        session: u64,
        layer: u16,
        experts: &[u16],
    ) -> Result<u64, ClientError> {
        let l = Loaded {
            session,
            layer,
            experts: experts.to_vec(),
        };
        match self.call(RequestBody::Loaded(l))? {
            ResponseBody::Loaded(r) => Ok(r.pending),
            other => Err(unexpected(&other)),
        }
    }

    /// Issues up to `max` queued prefetches (after releasing the running steps' pins when
    /// `release`).
    pub fn prefetch(
        &mut self,
        session: u64,
        max: u32,
        release: bool,
    ) -> Result<PrefetchReply, ClientError> {
        let p = Prefetch {
            session,
            max,
            release,
        };
        match self.call(RequestBody::Prefetch(p))? {
            ResponseBody::Prefetch(r) => Ok(r),
            other => Err(unexpected(&other)),
        }
    }

    /// Queues routing counts (no reply; written at the next flush).
    pub fn observe(&mut self, o: Observe) -> Result<(), ClientError> {
        self.send(RequestBody::Observe(o)).map(|_| ())
    }

    /// Counters of one session, or of all this connection's sessions.
    pub fn stats(&mut self, session: Option<u64>) -> Result<Vec<SessionStats>, ClientError> {
        match self.call(RequestBody::Stats(Stats { session }))? {
            ResponseBody::Stats(r) => Ok(r.sessions),
            other => Err(unexpected(&other)),
        }
    }

    /// The move-budgeted re-plan from the counts `observe` reported (the session must have a
    /// plan); the re-plan becomes the session's plan in service.
    pub fn replan(&mut self, r: Replan) -> Result<ReplanReply, ClientError> {
        match self.call(RequestBody::Replan(r))? {
            ResponseBody::Replan(r) => Ok(r),
            other => Err(unexpected(&other)),
        }
    }

    /// Ends a session; returns its final counters.
    pub fn close(&mut self, session: u64) -> Result<SessionStats, ClientError> {
        match self.call(RequestBody::Close(Close { session }))? {
            ResponseBody::Close(r) => Ok(r.stats),
            other => Err(unexpected(&other)),
        }
    }
}

fn unexpected(b: &ResponseBody) -> ClientError {
    ClientError::Unexpected(format!("{b:?}"))
}
