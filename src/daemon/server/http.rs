//! A minimal loopback HTTP/1.1 responder: `GET /metrics` (Prometheus text) and `GET /healthz`.
//!
//! One request per connection (`Connection: close`); request heads over 8 KiB or slower than
//! 5 s are dropped, and at most `max_metrics_connections` are served at once. Enough for a Prometheus scraper and a liveness probe, no web framework.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::shutdown::Shutdown;
use super::state::ServerState;

/// Largest request head read.
const MAX_HEAD: usize = 8 * 1024;
/// Time a client gets to send its request head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(5);

/// Serves HTTP on `listener` until shutdown, at most `max_metrics_connections` connections at
/// once: one over the budget is closed at once, so idle scrapers cannot use up the daemon's file
/// descriptors (runtimes' connections come first).
pub async fn serve(listener: TcpListener, shared: Arc<ServerState>, mut shutdown: Shutdown) {
    let budget = Arc::new(tokio::sync::Semaphore::new(
        shared.config.max_metrics_connections.max(1),
    ));
    loop {
        tokio::select! {
            () = shutdown.recv() => return,
            a = listener.accept() => match a {
                Ok((s, _)) => {
                    let Ok(permit) = budget.clone().try_acquire_owned() else {
                        tracing::debug!("metrics connection refused: budget full");
                        drop(s);
                        continue;
                    };
                    let shared = shared.clone();
                    tokio::spawn(async move {
                        let _permit = permit;
                        respond(s, shared).await;
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "metrics accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
}

/// Reads one request head and answers it.
async fn respond(mut s: TcpStream, shared: Arc<ServerState>) {
    let mut head = Vec::with_capacity(1024);
    let read = tokio::time::timeout(HEAD_TIMEOUT, async {
        let mut chunk = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < MAX_HEAD {
            let n = s.read(&mut chunk).await?;
            if n == 0 {
                break;
            }
            head.extend_from_slice(&chunk[..n]);
        }
        std::io::Result::Ok(())
    })
    .await;
    if !matches!(read, Ok(Ok(()))) {
        return;
    }
    let (status, ctype, body) = route(&head, &shared);
    let msg = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(HEAD_TIMEOUT, async {
        let _ = s.write_all(msg.as_bytes()).await;
        let _ = s.shutdown().await;
    })
    .await;
}

/// Status line, content type and body for a request head.
fn route(head: &[u8], shared: &ServerState) -> (&'static str, &'static str, String) {
    const TEXT: &str = "text/plain; charset=utf-8";
    let line = head.split(|&b| b == b'\r').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = path.split('?').next().unwrap_or("");
    match (method, path) {
        ("GET", "/metrics") => (
            "200 OK",
            "text/plain; version=0.0.4; charset=utf-8",
            shared.metrics.render(&shared.registry),
        ),
        ("GET", "/healthz") => ("200 OK", TEXT, "ok\n".into()),
        ("GET", _) => (
            "404 Not Found",
            TEXT,
            "not found: try /metrics or /healthz\n".into(),
        ),
        _ => ("405 Method Not Allowed", TEXT, "only GET\n".into()),
    }
}
