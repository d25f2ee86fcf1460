//! `moeplan serve`'s settings, checked against each other in one place and turned into the
//! server's [`ServerConfig`].

use std::net::SocketAddr;

use super::state::ServerConfig;
use crate::BadInput;

/// What the daemon is asked to listen on and how (the flags of `moeplan serve`).
#[derive(Debug, Clone, Default)]
pub struct ServeSettings {
    /// TCP address instead of the Unix socket (needs `token`).
    pub tcp: Option<SocketAddr>,
    /// Shared token TCP clients must present.
    pub token: Option<String>,
    /// Allow a non-loopback `tcp` address.
    pub allow_remote: bool,
    /// Loopback address of `/metrics` and `/healthz`.
    pub metrics: Option<SocketAddr>,
    /// Largest frame body, bytes.
    pub max_frame: usize,
    /// Connections served at once.
    pub max_connections: usize,
    /// Worker threads.
    pub threads: usize,
    /// Never sleep between requests (one thread that busy-polls).
    pub busy_poll: bool,
}

impl ServeSettings {
    /// The server's configuration, or the first setting that is refused and why.
    pub fn config(&self) -> Result<ServerConfig, BadInput> {
        let bad = |m: String| Err(BadInput(m));
        if self.tcp.is_some() && self.token.as_deref().unwrap_or("").is_empty() {
            return bad("--tcp needs --token (or MOEPLAN_TOKEN)".into());
        }
        if let Some(a) = self
            .tcp
            .filter(|a| !a.ip().is_loopback() && !self.allow_remote)
        {
            return bad(format!("--tcp {a} is not loopback; add --allow-remote"));
        }
        if let Some(a) = self.metrics.filter(|a| !a.ip().is_loopback()) {
            return bad(format!("--metrics {a} must be a loopback address"));
        }
        if !(1024..=64 << 20).contains(&self.max_frame) {
            return bad("--max-frame must be in 1024..=67108864".into());
        }
        if self.threads == 0 || self.max_connections == 0 {
            return bad("--threads and --max-connections must be at least 1".into());
        }
        if self.busy_poll && self.threads > 1 {
            return bad("--busy-poll needs --threads 1 (one thread that never sleeps)".into());
        }
        Ok(ServerConfig {
            max_frame: self.max_frame,
            max_connections: self.max_connections,
            token: self.token.clone(),
            busy_poll: self.busy_poll,
            ..Default::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok() -> ServeSettings {
        ServeSettings {
            max_frame: 1 << 20,
            max_connections: 8,
            threads: 1,
            ..Default::default()
        }
    }

    #[test]
    fn each_refusal_names_its_flag() {
        let tcp = Some("127.0.0.1:0".parse().unwrap());
        let remote = Some("10.0.0.1:7000".parse().unwrap());
        let cases = [
            (ServeSettings { tcp, ..ok() }, "--token"),
            (
                ServeSettings {
                    tcp: remote,
                    token: Some("t".into()),
                    ..ok()
                },
                "--allow-remote",
            ),
            (
                ServeSettings {
                    metrics: remote,
                    ..ok()
                },
                "--metrics",
            ),
            (
                ServeSettings {
                    max_frame: 10,
                    ..ok()
                },
                "--max-frame",
            ),
            (ServeSettings { threads: 0, ..ok() }, "--threads"),
            (
                ServeSettings {
                    busy_poll: true,
                    threads: 2,
                    ..ok()
                },
                "--busy-poll",
            ),
        ];
        for (s, flag) in cases {
            let e = s.config().expect_err(flag);
            assert!(e.0.contains(flag), "{flag}: {}", e.0);
        }
        let c = ServeSettings {
            tcp,
            token: Some("t".into()),
            ..ok()
        }
        .config()
        .unwrap();
        assert_eq!((c.max_frame, c.max_connections), (1 << 20, 8));
        assert_eq!(c.token.as_deref(), Some("t"));
    }
}
