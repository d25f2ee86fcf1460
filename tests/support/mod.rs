//! A real daemon on a temporary Unix socket (in-process, on its own runtime thread) and raw-socket
//! helpers, shared by the daemon tests.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::thread::JoinHandle;

use moeplan::daemon::client::Client;
use moeplan::daemon::server::ServerConfig;
use moeplan::daemon::server::{self, Report};
use moeplan::daemon::server::{Listener, bind_unix};
use moeplan::daemon::wire::Register;
use moeplan::daemon::wire::{PROTOCOL_VERSION, Response};

/// A daemon serving a temporary socket until `stop`.
pub struct TestDaemon {
    /// Holds the socket's directory.
    _dir: tempfile::TempDir,
    /// The socket.
    pub socket: PathBuf,
    /// The `/metrics` address.
    pub metrics: SocketAddr,
    /// Fires the shutdown.
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    /// The runtime thread, returning the report.
    thread: Option<JoinHandle<Report>>,
}

impl TestDaemon {
    /// Starts a daemon with default settings.
    pub fn start() -> Self {
        Self::start_with(ServerConfig::default())
    }

    /// Starts a daemon with `config` (on a multi-thread runtime with 2 workers).
    pub fn start_with(config: ServerConfig) -> Self {
        Self::start_on(config, false)
    }

    /// Starts a daemon as `moeplan serve` runs it: one current-thread runtime, so anything that
    /// blocks its thread stalls every connection.
    pub fn start_single() -> Self {
        Self::start_on(ServerConfig::default(), true)
    }

    /// Starts a daemon as `moeplan serve --busy-poll` runs it (one current-thread runtime).
    pub fn start_on_busy_poll() -> Self {
        Self::start_on(
            ServerConfig {
                busy_poll: true,
                ..Default::default()
            },
            true,
        )
    }

    fn start_on(config: ServerConfig, single: bool) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("d.sock");
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let path = socket.clone();
        let thread = std::thread::spawn(move || {
            let rt = if single {
                server::runtime(1, false).unwrap()
            } else {
                server::runtime(2, true).unwrap()
            };
            rt.block_on(async move {
                let l = bind_unix(&path).unwrap();
                let m = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                ready_tx.send(m.local_addr().unwrap()).unwrap();
                server::run(Listener::Unix(l), Some(m), config, async {
                    let _ = stop_rx.await;
                })
                .await
            })
        });
        let metrics = ready_rx.recv().unwrap();
        TestDaemon {
            _dir: dir,
            socket,
            metrics,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    /// A client past the handshake.
    pub fn client(&self) -> Client {
        Client::connect_unix(&self.socket).unwrap()
    }

    /// A raw connection (no handshake).
    pub fn raw(&self) -> UnixStream {
        let s = UnixStream::connect(&self.socket).unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        s
    }

    /// `GET path` on the metrics endpoint: (status line, body).
    pub fn http_get(&self, path: &str) -> (String, String) {
        let mut s = std::net::TcpStream::connect(self.metrics).unwrap();
        write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        let (head, body) = out.split_once("\r\n\r\n").unwrap();
        (head.lines().next().unwrap().to_string(), body.to_string())
    }

    /// The value of the metric line starting with `prefix` (e.g. `moeplan_sessions_active`).
    pub fn metric(&self, prefix: &str) -> f64 {
        let (_, body) = self.http_get("/metrics");
        body.lines()
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.rsplit(' ').next())
            .map(|v| v.parse().unwrap())
            .unwrap_or_else(|| panic!("no metric {prefix}"))
    }

    /// Waits (bounded) until `cond` holds.
    pub fn wait_until(&self, what: &str, mut cond: impl FnMut(&Self) -> bool) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !cond(self) {
            assert!(
                std::time::Instant::now() < deadline,
                "timed out waiting for {what}"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }

    /// Stops the daemon; returns its report.
    pub fn stop(mut self) -> Report {
        let _ = self.stop.take().unwrap().send(());
        self.thread.take().unwrap().join().unwrap()
    }
}

impl Drop for TestDaemon {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A small model's registration: 4 layers of 16 experts, top-2, `capacity` slots per layer.
pub fn small(capacity: u32) -> Register {
    let shape = moeplan::trace::ModelShape {
        moe_layers: 4,
        experts: 16,
        top_k: 2,
        first_moe_layer: 0,
    };
    Register {
        bytes_per_expert: 1000,
        ..Register::new("test", &shape, capacity)
    }
}

/// Writes one frame with `body` as is.
pub fn write_frame(s: &mut UnixStream, body: &[u8]) {
    s.write_all(&(body.len() as u32).to_be_bytes()).unwrap();
    s.write_all(body).unwrap();
}

/// Writes `value` as a msgpack frame (maps with field names).
pub fn write_msg<T: serde::Serialize>(s: &mut UnixStream, value: &T) {
    write_frame(s, &rmp_serde::to_vec_named(value).unwrap());
}

/// The handshake, by hand.
pub fn hello(s: &mut UnixStream) {
    write_msg(
        s,
        &serde_json::json!({"id": 1, "op": "hello", "args": {"version": PROTOCOL_VERSION}}),
    );
    let r = read_reply(s).expect("hello reply");
    assert!(
        matches!(r.body, moeplan::daemon::wire::ResponseBody::Hello(_)),
        "{r:?}"
    );
}

/// Reads one reply; `None` at a clean end of stream.
pub fn read_reply(s: &mut UnixStream) -> Option<Response> {
    let mut h = [0u8; 4];
    match s.read_exact(&mut h) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return None,
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return None,
        Err(e) => panic!("reading a reply: {e}"),
    }
    let mut body = vec![0u8; u32::from_be_bytes(h) as usize];
    s.read_exact(&mut body).unwrap();
    Some(rmp_serde::from_slice(&body).unwrap())
}

/// The error code of an error reply (panics on anything else).
pub fn error_code(r: &Response) -> moeplan::daemon::wire::ErrorCode {
    match &r.body {
        moeplan::daemon::wire::ResponseBody::Error(e) => e.code,
        other => panic!("expected an error, got {other:?}"),
    }
}
