//! Bad input and faults against a real daemon over a real socket: each answered with a clear
//! error, none crashes the daemon or disturbs another session.

mod support;

use std::io::{ErrorKind, Write};
use std::net::Shutdown;

use moeplan::daemon::client::ClientError;
use moeplan::daemon::server::FLUSH_AT;
use moeplan::daemon::wire::StepReply;
use moeplan::daemon::wire::{ErrorCode, ResponseBody};
use serde_json::json;
use support::{TestDaemon, error_code, hello, read_reply, small, write_frame, write_msg};

/// Runs a fixed sequence of steps on a fresh session of `d`; returns the replies.
fn reference_run(d: &TestDaemon) -> Vec<StepReply> {
    let mut c = d.client();
    let s = c.register(small(2)).unwrap().session;
    let mut out = Vec::new();
    for t in 0..20u16 {
        for layer in 0..4u16 {
            let e = [(t * 3 + layer) % 16, (t * 7 + 1) % 16];
            out.push(c.step(s, layer, &e).unwrap());
        }
    }
    c.close(s).unwrap();
    out
}

#[test]
fn malformed_frame_is_answered_and_the_connection_goes_on() {
    let d = TestDaemon::start();
    let mut s = d.raw();
    write_frame(&mut s, b"\xc1 not msgpack");
    let r = read_reply(&mut s).unwrap();
    assert_eq!((r.id, error_code(&r)), (0, ErrorCode::Malformed));
    write_msg(&mut s, &json!({"id": 5, "op": "explode", "args": {}}));
    let r = read_reply(&mut s).unwrap();
    assert_eq!((r.id, error_code(&r)), (5, ErrorCode::Malformed));
    hello(&mut s);
    assert_eq!(d.metric("moeplan_errors_total{code=\"malformed\"}"), 2.0);
}

#[test]
fn oversized_frame_is_refused_from_its_header_and_closes() {
    let d = TestDaemon::start();
    let mut other = d.client();
    let sid = other.register(small(2)).unwrap().session;
    let mut s = d.raw();
    s.write_all(&(u32::MAX).to_be_bytes()).unwrap();
    let r = read_reply(&mut s).unwrap();
    assert_eq!(error_code(&r), ErrorCode::FrameTooLarge);
    assert!(read_reply(&mut s).is_none(), "connection closed");
    other.step(sid, 0, &[1, 2]).unwrap();
}

#[test]
fn empty_frame_is_refused_and_closes() {
    let d = TestDaemon::start();
    let mut s = d.raw();
    s.write_all(&[0, 0, 0, 0]).unwrap();
    assert_eq!(
        error_code(&read_reply(&mut s).unwrap()),
        ErrorCode::EmptyFrame
    );
    assert!(read_reply(&mut s).is_none());
}

#[test]
fn truncated_frame_is_reported_when_the_client_stops_sending() {
    let d = TestDaemon::start();
    let mut s = d.raw();
    hello(&mut s);
    s.write_all(&100u32.to_be_bytes()).unwrap();
    s.write_all(&[0x80; 10]).unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    let r = read_reply(&mut s).unwrap();
    assert_eq!(error_code(&r), ErrorCode::Truncated);
    assert!(read_reply(&mut s).is_none());
    d.client().register(small(2)).unwrap();
}

#[test]
fn wrong_protocol_version_is_refused_and_closes() {
    let d = TestDaemon::start();
    let mut s = d.raw();
    write_msg(
        &mut s,
        &json!({"id": 9, "op": "hello", "args": {"version": 99}}),
    );
    let r = read_reply(&mut s).unwrap();
    assert_eq!((r.id, error_code(&r)), (9, ErrorCode::VersionMismatch));
    assert!(read_reply(&mut s).is_none());
}

#[test]
fn requests_before_hello_are_refused() {
    let d = TestDaemon::start();
    let mut s = d.raw();
    write_msg(&mut s, &json!({"id": 3, "op": "stats", "args": {}}));
    let r = read_reply(&mut s).unwrap();
    assert_eq!((r.id, error_code(&r)), (3, ErrorCode::HandshakeRequired));
    hello(&mut s);
}

#[test]
fn unknown_and_foreign_sessions_are_refused() {
    let d = TestDaemon::start();
    let mut a = d.client();
    let mut b = d.client();
    let sa = a.register(small(2)).unwrap().session;
    for (client, sid) in [(&mut b, sa), (&mut a, 12345)] {
        match client.step(sid, 0, &[1]) {
            Err(ClientError::Refused(e)) => assert_eq!(e.code, ErrorCode::UnknownSession),
            other => panic!("expected unknown_session, got {other:?}"),
        }
    }
    assert_eq!(
        a.stats(Some(sa)).unwrap()[0].steps,
        0,
        "b could not touch a's session"
    );
}

#[test]
fn out_of_range_layer_or_expert_is_refused_and_changes_nothing() {
    let d = TestDaemon::start();
    let mut c = d.client();
    let sid = c.register(small(2)).unwrap().session;
    for (layer, experts) in [(4u16, vec![0u16]), (0, vec![3, 16]), (u16::MAX, vec![0])] {
        match c.step(sid, layer, &experts) {
            Err(ClientError::Refused(e)) => assert_eq!(e.code, ErrorCode::OutOfRange, "{e}"),
            other => panic!("expected out_of_range, got {other:?}"),
        }
    }
    let st = &c.stats(Some(sid)).unwrap()[0];
    assert_eq!((st.steps, st.demands, st.rejected), (0, 0, 3));
    c.step(sid, 3, &[15]).unwrap();
}

#[test]
fn client_disconnecting_mid_step_releases_its_session_and_leaves_others_alone() {
    let d = TestDaemon::start();
    let expected = reference_run(&d);
    let mut b = d.client();
    let sb = b.register(small(2)).unwrap().session;
    let mut got = Vec::new();
    for t in 0..20u16 {
        if t == 10 {
            // A second runtime registers, sends a step and vanishes without reading the reply.
            let mut a = d.raw();
            hello(&mut a);
            write_msg(
                &mut a,
                &json!({"id": 2, "op": "register", "args": {
                "moe_layers": 4, "experts": 16, "top_k": 2, "capacity": 2}}),
            );
            let sa = match read_reply(&mut a).unwrap().body {
                ResponseBody::Register(r) => r.session,
                other => panic!("{other:?}"),
            };
            write_msg(
                &mut a,
                &json!({"id": 3, "op": "step", "args": {
                "session": sa, "layer": 0, "experts": [1, 2]}}),
            );
            drop(a);
        }
        for layer in 0..4u16 {
            let e = [(t * 3 + layer) % 16, (t * 7 + 1) % 16];
            got.push(b.step(sb, layer, &e).unwrap());
        }
    }
    assert_eq!(got, expected, "the other session's answers are unchanged");
    d.wait_until("the vanished session to close", |d| {
        d.metric("moeplan_sessions_active") == 1.0
    });
    drop(b);
    let report = d.stop();
    assert!(report.sessions.iter().all(|s| s.pinned == 0));
}

#[test]
fn slow_client_is_backpressured_not_buffered() {
    let d = TestDaemon::start();
    // A fresh raw connection that pipelines steps and never reads.
    let mut s = d.raw();
    hello(&mut s);
    write_msg(
        &mut s,
        &json!({"id": 2, "op": "register", "args": {
        "moe_layers": 4, "experts": 16, "top_k": 2, "capacity": 2}}),
    );
    let sid2 = match read_reply(&mut s).unwrap().body {
        ResponseBody::Register(r) => r.session,
        other => panic!("{other:?}"),
    };
    let frame = {
        let body = rmp_serde::to_vec_named(&json!({"id": 7, "op": "step", "args": {
            "session": sid2, "layer": 1, "experts": [1, 2, 3, 4]}}))
        .unwrap();
        let mut f = (body.len() as u32).to_be_bytes().to_vec();
        f.extend_from_slice(&body);
        f
    };
    s.set_nonblocking(true).unwrap();
    let (mut written, mut frames, mut blocked) = (0usize, 0usize, false);
    let mut pending: &[u8] = &[];
    while written < 256 << 20 {
        if pending.is_empty() {
            pending = &frame;
            frames += 1;
        }
        match s.write(pending) {
            Ok(n) => {
                written += n;
                pending = &pending[n..];
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                blocked = true;
                break;
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert!(
        blocked,
        "the daemon kept reading {written} bytes from a client that reads nothing"
    );
    // Meanwhile another runtime is served as usual.
    let mut other = d.client();
    let so = other.register(small(2)).unwrap().session;
    other.step(so, 0, &[1, 2]).unwrap();
    // The daemon's outgoing buffer stayed bounded.
    let hw = d.metric("moeplan_out_buffer_high_water_bytes");
    assert!(
        hw <= (FLUSH_AT + 4096) as f64,
        "out buffer reached {hw} bytes"
    );
    // Finish the partial frame, then read every reply.
    s.set_nonblocking(false).unwrap();
    let mut reader = s.try_clone().unwrap();
    let rest = pending.to_vec();
    let writer = std::thread::spawn(move || s.write_all(&rest).unwrap());
    for _ in 0..frames {
        let r = read_reply(&mut reader).unwrap();
        assert!(matches!(r.body, ResponseBody::Step(_)), "{r:?}");
    }
    writer.join().unwrap();
}
