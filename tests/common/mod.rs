//! Helpers shared by the end-to-end tests: the `moeplan` binary run from the repository root,
//! and its JSON output checked.

#![allow(dead_code)]

use std::process::{Command, Output};

/// `moeplan place` on the shipped sample trace, DeepSeek-V2-Lite on 8 H100 (`[2..]`: the trace,
/// model and hardware flags alone, for other commands).
pub const PLACE_SAMPLE: [&str; 8] = [
    "place",
    "-q",
    "-t",
    "traces/sample.parquet",
    "--model",
    "deepseek-v2-lite",
    "--hardware",
    "h100-8x-nvlink",
];

/// The `moeplan` binary, run from the repository root (so shipped paths like
/// `traces/sample.parquet` resolve).
pub fn moeplan() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_moeplan"));
    c.current_dir(env!("CARGO_MANIFEST_DIR"));
    c
}

/// Runs `moeplan` with `args`; asserts it succeeded and returns its stdout.
pub fn moeplan_ok<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Vec<u8> {
    let out = moeplan().args(args).output().unwrap();
    assert!(
        out.status.success(),
        "moeplan failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Asserts the run succeeded (showing its stderr if not) and parses its stdout as JSON.
pub fn ok_json(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("stdout is JSON")
}

/// A client of the daemon on `socket`, retried for up to 20 s while the daemon starts.
pub fn connect_when_up(socket: &std::path::Path) -> moeplan::daemon::client::Client {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        match moeplan::daemon::client::Client::connect_unix(socket) {
            Ok(c) => return c,
            Err(e) => {
                assert!(std::time::Instant::now() < deadline, "daemon not up: {e}");
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        }
    }
}
