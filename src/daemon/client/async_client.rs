//! A minimal async client (tokio) for the load generator: many sessions driven from one thread,
//! each a connection with its own buffers, reused for every frame.

use std::path::Path;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

use super::ClientError;
use crate::daemon::wire::frame::{self, DEFAULT_MAX_FRAME, HEADER_LEN};
use crate::daemon::wire::{
    Hello, PROTOCOL_VERSION, Request, RequestBody, Response, ResponseBody, decode_response,
};

/// One connection to the daemon, past the handshake.
#[derive(Debug)]
pub struct AsyncClient {
    /// The socket.
    stream: UnixStream,
    /// Bytes read and not yet consumed (`rbuf[rpos..]`).
    rbuf: Vec<u8>,
    /// Start of the unconsumed bytes.
    rpos: usize,
    /// Requests queued and not yet written.
    wbuf: Vec<u8>,
    /// Id of the next request.
    next_id: u64,
}

impl AsyncClient {
    /// Connects to the Unix socket at `path` and shakes hands.
    pub async fn connect(path: &Path) -> Result<AsyncClient, ClientError> {
        let mut c = AsyncClient {
            stream: UnixStream::connect(path).await?,
            rbuf: Vec::with_capacity(64 * 1024),
            rpos: 0,
            wbuf: Vec::with_capacity(4096),
            next_id: 1,
        };
        let hello = Hello {
            version: PROTOCOL_VERSION,
            client: format!("moeplan-load {}", env!("CARGO_PKG_VERSION")),
            token: None,
        };
        match c.call(RequestBody::Hello(hello)).await? {
            ResponseBody::Hello(_) => Ok(c),
            other => Err(ClientError::Unexpected(format!("{other:?}"))),
        }
    }

    /// Queues a request; returns its id.
    pub fn send(&mut self, body: RequestBody) -> Result<u64, ClientError> {
        let id = self.next_id;
        self.next_id += 1;
        frame::encode(&Request { id, body }, DEFAULT_MAX_FRAME, &mut self.wbuf)?;
        Ok(id)
    }

    /// Writes every queued request.
    pub async fn flush(&mut self) -> Result<(), ClientError> {
        if !self.wbuf.is_empty() {
            self.stream.write_all(&self.wbuf).await?;
            self.wbuf.clear();
        }
        Ok(())
    }

    /// Reads the next reply.
    pub async fn recv(&mut self) -> Result<Response, ClientError> {
        loop {
            let avail = &self.rbuf[self.rpos..];
            let found =
                frame::check(avail, usize::MAX).map_err(|e| ClientError::Decode(e.to_string()))?;
            if let Some(len) = found {
                let resp = decode_response(&avail[HEADER_LEN..HEADER_LEN + len])
                    .map_err(|e| ClientError::Decode(e.to_string()));
                self.rpos += HEADER_LEN + len;
                return resp;
            }
            if self.rpos > 0 {
                self.rbuf.drain(..self.rpos);
                self.rpos = 0;
            }
            self.rbuf.reserve(64 * 1024);
            if self.stream.read_buf(&mut self.rbuf).await? == 0 {
                return Err(ClientError::Closed);
            }
        }
    }

    /// Sends one request and waits for its reply; an error reply becomes `Refused`.
    pub async fn call(&mut self, body: RequestBody) -> Result<ResponseBody, ClientError> {
        self.send(body)?;
        self.flush().await?;
        match self.recv().await?.body {
            ResponseBody::Error(e) => Err(ClientError::Refused(e)),
            b => Ok(b),
        }
    }
}
