//! Fuzzes the daemon's decoder: any byte stream, cut into frames and decoded as requests exactly
//! as a connection does, must never panic; a frame that decodes must re-encode, and decoding the
//! re-encoded frame must give the same request (compared as bytes: NaN scores are not equal to
//! themselves). Reply frames go through the client's decoder too.
#![no_main]

use libfuzzer_sys::fuzz_target;
use moeplan::daemon::wire::frame;
use moeplan::daemon::wire::{decode_request, decode_response};

fuzz_target!(|data: &[u8]| {
    let mut rest = data;
    while let Ok(Some(len)) = frame::check(rest, 1 << 16) {
        let body = frame::body(rest, len);
        if let Ok(req) = decode_request(body) {
            let mut once = Vec::new();
            frame::encode(&req, usize::MAX, &mut once).expect("a decoded request re-encodes");
            let n = frame::check(&once, usize::MAX).unwrap().unwrap();
            let again = decode_request(frame::body(&once, n)).expect("a re-encoded request decodes");
            let mut twice = Vec::new();
            frame::encode(&again, usize::MAX, &mut twice).unwrap();
            assert_eq!(once, twice, "decode(encode(request)) changed the request");
        }
        let _ = decode_response(body);
        rest = &rest[frame::HEADER_LEN + len..];
    }
});
