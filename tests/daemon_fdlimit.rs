//! `moeplan serve` started with a low soft open-files limit raises it to the hard limit, says
//! so, and with the metrics endpoint flooded a runtime still connects on the Unix socket.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use moeplan::daemon::wire::Register;
use moeplan::trace::ModelShape;
use nix::sys::resource::{Resource, getrlimit};

mod common;
use common::connect_when_up;

/// The soft limit the daemon is started with: below what 16 metrics connections, the
/// listeners and the runtime's own descriptors need together.
const LOW_SOFT: u64 = 20;

/// `moeplan serve` under a shell that lowered the soft limit first (the hard one stays).
fn serve_with_low_limit(socket: &Path, metrics: &str) -> Child {
    Command::new("sh")
        .arg("-c")
        .arg(format!("ulimit -Sn {LOW_SOFT} && exec \"$0\" \"$@\""))
        .arg(env!("CARGO_BIN_EXE_moeplan"))
        .args(["serve", "--socket"])
        .arg(socket)
        .args(["--metrics", metrics])
        .env("MOEPLAN_LOG", "moeplan=info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// The soft and hard "Max open files" of process `pid`.
fn open_files_of(pid: u32) -> (u64, u64) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let v: Vec<u64> = line
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    (v[0], v[1])
}

#[test]
fn serve_raises_a_low_soft_limit_and_runtimes_connect_past_a_metrics_flood() {
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    assert!(
        hard >= 4 * LOW_SOFT,
        "the hard open-files limit ({hard}) leaves nothing to raise to"
    );
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("d.sock");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let metrics = format!("127.0.0.1:{port}");
    let mut child = serve_with_low_limit(&socket, &metrics);
    drop(connect_when_up(&socket));
    assert_eq!(
        open_files_of(child.id()),
        (hard, hard),
        "soft limit raised to the hard one"
    );
    // More idle metrics connections than the soft limit it started with.
    let flood: Vec<TcpStream> = (0..2 * LOW_SOFT)
        .map(|_| TcpStream::connect(&metrics).unwrap())
        .collect();
    let shape = ModelShape {
        moe_layers: 2,
        experts: 8,
        top_k: 2,
        first_moe_layer: 0,
    };
    let mut c = connect_when_up(&socket);
    c.register(Register::new("after-flood", &shape, 4)).unwrap();
    drop(flood);
    // The flood's slots free as the daemon sees its connections close.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut h = TcpStream::connect(&metrics).unwrap();
        let mut reply = String::new();
        if h.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .is_ok()
        {
            let _ = h.read_to_string(&mut reply);
        }
        if reply.starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(Instant::now() < deadline, "no /healthz answer: {reply:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(c);
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let mut log = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    assert!(child.wait().unwrap().success(), "{log}");
    let log = strip_ansi(&log);
    let said = format!("limit={hard} was={LOW_SOFT}");
    assert!(
        log.contains("open files: soft limit raised to the hard limit") && log.contains(&said),
        "{log}"
    );
}

/// `s` without terminal colour sequences (`ESC [ ... m`).
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut it = s.chars();
    while let Some(c) = it.next() {
        if c == '\x1b' {
            for d in it.by_ref() {
                if d == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}
