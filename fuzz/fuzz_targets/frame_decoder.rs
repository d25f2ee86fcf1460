//! Fuzzes the daemon's decoder: any byte stream, cut into frames and decoded as requests exactly
//! as a connection does, must never panic, and a frame that decodes must re-encode.
#![no_main]

use libfuzzer_sys::fuzz_target;
use moeplan::daemon::frame;
use moeplan::daemon::protocol::decode_request;

fuzz_target!(|data: &[u8]| {
    let mut rest = data;
    while let Ok(Some(len)) = frame::check(rest, 1 << 16) {
        if let Ok(req) = decode_request(frame::body(rest, len)) {
            let mut out = Vec::new();
            frame::encode(&req, usize::MAX, &mut out).expect("a decoded request re-encodes");
        }
        rest = &rest[frame::HEADER_LEN + len..];
    }
});
