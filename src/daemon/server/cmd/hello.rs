//! Applies `hello`: checks the protocol version (and the token on TCP), opens the connection.

use super::{Apply, Ctx};
use crate::daemon::wire::{ErrorCode, ErrorReply, Hello, HelloReply, PROTOCOL_VERSION};

impl Apply for Hello {
    type Reply = HelloReply;

    fn apply(self, ctx: &mut Ctx<'_>) -> Result<HelloReply, ErrorReply> {
        if ctx.conn.handshaken {
            return Err(ErrorReply::new(
                ErrorCode::HandshakeRequired,
                "`hello` was already received on this connection",
            ));
        }
        if self.version != PROTOCOL_VERSION {
            return Err(ErrorReply::new(
                ErrorCode::VersionMismatch,
                format!(
                    "client speaks protocol version {}, this daemon speaks {PROTOCOL_VERSION}",
                    self.version
                ),
            ));
        }
        if ctx.conn.needs_token {
            let expected = ctx.shared.config.token.as_deref().unwrap_or("");
            let given = self.token.as_deref().unwrap_or("");
            if expected.is_empty() || !constant_time_eq(expected.as_bytes(), given.as_bytes()) {
                return Err(ErrorReply::new(
                    ErrorCode::Unauthorized,
                    "missing or wrong token (TCP connections must present the daemon's token)",
                ));
            }
        }
        ctx.conn.handshaken = true;
        tracing::debug!(client = %self.client, "hello");
        Ok(HelloReply {
            version: PROTOCOL_VERSION,
            server: format!("moeplan {}", env!("CARGO_PKG_VERSION")),
            max_frame: ctx.shared.config.max_frame as u64,
        })
    }
}

/// Compares two byte strings in time that depends only on their lengths.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
