//! The wire unit: a 4-byte big-endian body length, then that many bytes of msgpack.
//!
//! [`check`] is the whole decoder: it is pure (no I/O), never panics on any input, and is what
//! the fuzz target (`fuzz/fuzz_targets/frame_decoder.rs`) drives. A length of zero or above the
//! maximum is an error the connection cannot recover from (the stream is out of step), so the
//! server answers it and closes; a body that is not a valid request is answered and skipped.

use serde::Serialize;

/// Bytes of the length prefix.
pub const HEADER_LEN: usize = 4;

/// Default largest body accepted, in bytes (1 MiB: a step of 256 experts is under 2 KiB).
pub const DEFAULT_MAX_FRAME: usize = 1 << 20;

/// A frame header that cannot be honoured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The header announces a body larger than the maximum.
    #[error("frame of {len} bytes exceeds the maximum of {max} bytes")]
    TooLarge {
        /// Announced body length in bytes.
        len: usize,
        /// Largest body accepted.
        max: usize,
    },
    /// The header announces an empty body (no valid message is empty).
    #[error("empty frame (length 0)")]
    Empty,
}

/// Looks for one complete frame at the start of `buf`.
///
/// Returns `Ok(None)` when more bytes are needed, `Ok(Some(len))` when the body is
/// `buf[HEADER_LEN..HEADER_LEN + len]` (the frame takes `HEADER_LEN + len` bytes), and an error
/// as soon as the header alone shows the frame is invalid (before its body arrives).
pub fn check(buf: &[u8], max: usize) -> Result<Option<usize>, FrameError> {
    let Some(header) = buf.get(..HEADER_LEN) else {
        return Ok(None);
    };
    let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
    if len == 0 {
        return Err(FrameError::Empty);
    }
    if len > max {
        return Err(FrameError::TooLarge { len, max });
    }
    Ok((buf.len() - HEADER_LEN >= len).then_some(len))
}

/// The body of the frame `check` found, for convenience.
pub fn body(buf: &[u8], len: usize) -> &[u8] {
    &buf[HEADER_LEN..HEADER_LEN + len]
}

/// An error turning a message into a frame.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    /// The message could not be serialised.
    #[error("cannot encode message: {0}")]
    Msgpack(#[from] rmp_serde::encode::Error),
    /// The encoded body is larger than the maximum.
    #[error(transparent)]
    Frame(#[from] FrameError),
}

/// Appends `msg` as one frame (header + msgpack body, maps with field names) to `out`.
///
/// On error `out` is left as it was.
pub fn encode<T: Serialize>(msg: &T, max: usize, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    let start = out.len();
    out.extend_from_slice(&[0; HEADER_LEN]);
    let res = rmp_serde::encode::write_named(out, msg);
    let len = out.len() - start - HEADER_LEN;
    let res = res.map_err(EncodeError::from).and_then(|()| {
        if len > max {
            Err(FrameError::TooLarge { len, max }.into())
        } else {
            Ok(())
        }
    });
    match res {
        Ok(()) => {
            out[start..start + HEADER_LEN].copy_from_slice(&(len as u32).to_be_bytes());
            Ok(())
        }
        Err(e) => {
            out.truncate(start);
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn needs_header_then_body() {
        assert_eq!(check(&[], 10), Ok(None));
        assert_eq!(check(&[0, 0, 0], 10), Ok(None));
        assert_eq!(check(&[0, 0, 0, 2, 7], 10), Ok(None));
        assert_eq!(check(&[0, 0, 0, 2, 7, 8, 9], 10), Ok(Some(2)));
        assert_eq!(body(&[0, 0, 0, 2, 7, 8, 9], 2), &[7, 8]);
    }

    #[test]
    fn rejects_empty_and_oversized_from_header_alone() {
        assert_eq!(check(&[0, 0, 0, 0], 10), Err(FrameError::Empty));
        assert_eq!(
            check(&[0xff, 0xff, 0xff, 0xff], 10),
            Err(FrameError::TooLarge {
                len: u32::MAX as usize,
                max: 10
            })
        );
    }

    #[test]
    fn encode_round_trips_and_refuses_oversized() {
        let mut out = vec![1];
        encode(&vec![1u8, 2, 3], 100, &mut out).unwrap();
        let len = check(&out[1..], 100).unwrap().unwrap();
        let back: Vec<u8> = rmp_serde::from_slice(body(&out[1..], len)).unwrap();
        assert_eq!(back, vec![1, 2, 3]);
        let before = out.clone();
        assert!(encode(&vec![0u8; 200], 100, &mut out).is_err());
        assert_eq!(out, before);
    }
}
