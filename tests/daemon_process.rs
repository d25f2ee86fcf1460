//! The `moeplan serve` process: SIGTERM during load (every request read is answered, stats are
//! flushed, exit 0), restart after a crash (stale socket replaced, runtimes re-register), and a
//! second daemon on a live socket refused.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use moeplan::daemon::client::{Client, ClientError};
use moeplan::daemon::wire::ErrorCode;
use moeplan::daemon::wire::Register;
use moeplan::daemon::wire::SessionStats;
use moeplan::trace::ModelShape;

fn serve(socket: &Path, extra: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_moeplan"))
        .arg("serve")
        .arg("--socket")
        .arg(socket)
        .args(extra)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn connect(socket: &Path) -> Client {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match Client::connect_unix(socket) {
            Ok(c) => return c,
            Err(e) => {
                assert!(Instant::now() < deadline, "daemon not up: {e}");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

fn wait(child: &mut Child) -> ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        assert!(Instant::now() < deadline, "daemon did not exit");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
}

fn reg(name: &str) -> Register {
    let shape = ModelShape {
        moe_layers: 4,
        experts: 16,
        top_k: 2,
        first_moe_layer: 0,
    };
    Register::new(name, &shape, 4)
}

#[test]
fn sigterm_during_load_answers_what_it_read_and_flushes_stats() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("d.sock");
    let stats: PathBuf = dir.path().join("stats.json");
    let mut child = serve(&socket, &["--stats-out", stats.to_str().unwrap()]);
    drop(connect(&socket));
    let workers: Vec<_> = (0..4)
        .map(|i| {
            let socket = socket.clone();
            std::thread::spawn(move || {
                let mut c = connect(&socket);
                let sid = c.register(reg(&format!("load{i}"))).unwrap().session;
                let deadline = Instant::now() + Duration::from_secs(20);
                let mut ok = 0u64;
                let err = loop {
                    let t = ok as u16;
                    match c.step(sid, t % 4, &[t % 16, (t / 4) % 16]) {
                        Ok(_) => ok += 1,
                        Err(e) => break Some(e),
                    }
                    if Instant::now() > deadline {
                        break None;
                    }
                };
                (sid, ok, err)
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(400));
    signal(&child, "-TERM");
    let status = wait(&mut child);
    assert!(status.success(), "exit status {status:?}");
    assert!(!socket.exists(), "socket file removed at exit");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&stats).unwrap()).unwrap();
    let sessions: Vec<SessionStats> = serde_json::from_value(report["sessions"].clone()).unwrap();
    for w in workers {
        let (sid, ok, err) = w.join().unwrap();
        match err {
            Some(ClientError::Closed) | Some(ClientError::Io(_)) => {}
            other => panic!("client ended with {other:?}"),
        }
        assert!(ok > 0);
        let s = sessions
            .iter()
            .find(|s| s.session == sid)
            .expect("session in stats");
        assert_eq!(s.steps, ok, "every step the daemon handled was answered");
        assert_eq!(s.pinned, 0);
    }
}

#[test]
fn restart_after_a_crash_replaces_the_stale_socket_and_runtimes_reregister() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("d.sock");
    let mut first = serve(&socket, &[]);
    let mut c = connect(&socket);
    let old = c.register(reg("gpu0")).unwrap().session;
    c.step(old, 0, &[1, 2]).unwrap();
    signal(&first, "-KILL");
    wait(&mut first);
    assert!(socket.exists(), "a crash leaves the socket file behind");
    assert!(c.step(old, 1, &[1]).is_err());

    let mut second = serve(&socket, &[]);
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut c = loop {
        if let Ok(c) = Client::connect_unix(&socket) {
            break c;
        }
        assert!(Instant::now() < deadline, "restarted daemon not up");
        std::thread::sleep(Duration::from_millis(20));
    };
    match c.step(old, 0, &[1]) {
        Err(ClientError::Refused(e)) => assert_eq!(e.code, ErrorCode::UnknownSession),
        other => panic!("expected unknown_session after restart, got {other:?}"),
    }
    let new = c.register(reg("gpu0")).unwrap().session;
    c.step(new, 0, &[1, 2]).unwrap();
    drop(c);
    signal(&second, "-TERM");
    assert!(wait(&mut second).success());
}

#[test]
fn a_second_daemon_on_a_live_socket_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("d.sock");
    let mut first = serve(&socket, &[]);
    drop(connect(&socket));
    let second = serve(&socket, &[]).wait_with_output().unwrap();
    assert!(!second.status.success());
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(err.contains("already listens"), "{err}");
    let mut c = connect(&socket);
    c.register(reg("still-there")).unwrap();
    drop(c);
    signal(&first, "-TERM");
    assert!(wait(&mut first).success());
}

#[test]
fn serve_refuses_unsafe_tcp_settings() {
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_moeplan"))
            .arg("serve")
            .args(args)
            .output()
            .unwrap()
    };
    let no_token = run(&["--tcp", "127.0.0.1:0"]);
    assert_eq!(no_token.status.code(), Some(3));
    let remote = run(&["--tcp", "0.0.0.0:0", "--token", "t"]);
    assert_eq!(remote.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&remote.stderr).contains("allow-remote"));
}

#[test]
fn busy_poll_daemon_answers_and_still_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("d.sock");
    let stats = dir.path().join("stats.json");
    let mut child = serve(
        &socket,
        &["--busy-poll", "--stats-out", stats.to_str().unwrap()],
    );
    let mut c = connect(&socket);
    let sid = c.register(reg("gpu0")).unwrap().session;
    for t in 0..40u16 {
        let r = c.step(sid, t % 4, &[t % 16, (t + 5) % 16]).unwrap();
        assert_eq!(r.placements.len(), 2);
    }
    signal(&child, "-TERM");
    let status = wait(&mut child);
    assert!(status.success(), "exit status {status:?}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&stats).unwrap()).unwrap();
    assert_eq!(report["sessions"][0]["steps"], 40, "{report}");
}
