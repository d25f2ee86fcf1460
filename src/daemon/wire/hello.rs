//! `hello`: the handshake; checks the protocol version (and the token on TCP).

use serde::{Deserialize, Serialize};

/// Opens a connection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hello {
    /// The protocol version the client speaks; must equal [`super::PROTOCOL_VERSION`].
    pub version: u32,
    /// Client name and version, for logs.
    #[serde(default)]
    pub client: String,
    /// Shared token; required on TCP connections, ignored on the Unix socket.
    #[serde(default)]
    pub token: Option<String>,
}

/// The server's side of the handshake.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HelloReply {
    /// The protocol version spoken.
    pub version: u32,
    /// Server name and version.
    pub server: String,
    /// Largest frame body, bytes, either way.
    pub max_frame: u64,
}
