//! The envelope's hot-path codec: requests and replies as `{"id", "op", "args"|"result"}` maps,
//! encoded and decoded without serde's `flatten` (which buffers every field of the map into an
//! intermediate tree and writes maps of unknown length, allocating on every frame).
//!
//! Encoding writes a 3-entry map directly. Decoding reads the body twice: once for `id` and `op`
//! (skipping `args` without building it), once for `args` as the type `op` names. Both passes
//! accept the keys in any order, so any msgpack client works. The wire format is the one the
//! derived (`flatten`) impls in [`super::protocol`] read and write.

use serde::de::DeserializeOwned;
use serde::ser::SerializeStruct;
use serde::{Deserialize, Serialize, Serializer};

use super::protocol::{ErrorCode, ErrorReply, Request, RequestBody, Response, ResponseBody};

/// `id` and `op` of an envelope; every other key is skipped.
#[derive(Deserialize)]
struct Head<'a> {
    /// Request id.
    id: u64,
    /// Verb, borrowed from the frame.
    #[serde(borrow)]
    op: &'a str,
}

/// The payload of a request; every other key is skipped.
#[derive(Deserialize)]
struct Args<T> {
    /// The request's arguments.
    args: T,
}

/// The payload of a reply.
#[derive(Deserialize)]
struct Result_<T> {
    /// The reply's result.
    result: T,
}

fn malformed(e: impl std::fmt::Display) -> ErrorReply {
    ErrorReply::new(ErrorCode::Malformed, format!("cannot decode request: {e}"))
}

/// Decodes a frame body as a request; on failure the id to answer (the request's when one could
/// be read, else 0) and the `malformed` error.
pub fn decode_request(body: &[u8]) -> Result<Request, (u64, ErrorReply)> {
    let head: Head<'_> = match rmp_serde::from_slice(body) {
        Ok(h) => h,
        Err(e) => {
            #[derive(Deserialize)]
            struct IdOnly {
                id: u64,
            }
            let id = rmp_serde::from_slice::<IdOnly>(body).map_or(0, |x| x.id);
            return Err((id, malformed(e)));
        }
    };
    fn args<T: DeserializeOwned>(body: &[u8]) -> Result<T, rmp_serde::decode::Error> {
        rmp_serde::from_slice::<Args<T>>(body).map(|a| a.args)
    }
    let parsed = match head.op {
        "hello" => args(body).map(RequestBody::Hello),
        "register" => args(body).map(RequestBody::Register),
        "step" => args(body).map(RequestBody::Step),
        "loaded" => args(body).map(RequestBody::Loaded),
        "prefetch" => args(body).map(RequestBody::Prefetch),
        "observe" => args(body).map(RequestBody::Observe),
        "stats" => args(body).map(RequestBody::Stats),
        "close" => args(body).map(RequestBody::Close),
        other => {
            return Err((
                head.id,
                malformed(format!(
                    "unknown op {other:?} (expected one of {})",
                    RequestBody::OPS.join(", ")
                )),
            ));
        }
    };
    parsed
        .map(|body| Request { id: head.id, body })
        .map_err(|e| (head.id, malformed(format!("op {:?}: {e}", head.op))))
}

/// Decodes a frame body as a reply.
pub fn decode_response(body: &[u8]) -> Result<Response, rmp_serde::decode::Error> {
    let head: Head<'_> = rmp_serde::from_slice(body)?;
    fn result<T: DeserializeOwned>(body: &[u8]) -> Result<T, rmp_serde::decode::Error> {
        rmp_serde::from_slice::<Result_<T>>(body).map(|a| a.result)
    }
    let body = match head.op {
        "hello" => ResponseBody::Hello(result(body)?),
        "register" => ResponseBody::Register(result(body)?),
        "step" => ResponseBody::Step(result(body)?),
        "loaded" => ResponseBody::Loaded(result(body)?),
        "prefetch" => ResponseBody::Prefetch(result(body)?),
        "stats" => ResponseBody::Stats(result(body)?),
        "close" => ResponseBody::Close(result(body)?),
        "error" => ResponseBody::Error(result(body)?),
        other => {
            return Err(serde::de::Error::custom(format!("unknown reply op {other:?}")));
        }
    };
    Ok(Response { id: head.id, body })
}

impl Serialize for Request {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_struct("Request", 3)?;
        m.serialize_field("id", &self.id)?;
        m.serialize_field("op", self.body.op())?;
        match &self.body {
            RequestBody::Hello(a) => m.serialize_field("args", a)?,
            RequestBody::Register(a) => m.serialize_field("args", a)?,
            RequestBody::Step(a) => m.serialize_field("args", a)?,
            RequestBody::Loaded(a) => m.serialize_field("args", a)?,
            RequestBody::Prefetch(a) => m.serialize_field("args", a)?,
            RequestBody::Observe(a) => m.serialize_field("args", a)?,
            RequestBody::Stats(a) => m.serialize_field("args", a)?,
            RequestBody::Close(a) => m.serialize_field("args", a)?,
        }
        m.end()
    }
}

impl Serialize for Response {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_struct("Response", 3)?;
        m.serialize_field("id", &self.id)?;
        m.serialize_field("op", self.body.op())?;
        match &self.body {
            ResponseBody::Hello(r) => m.serialize_field("result", r)?,
            ResponseBody::Register(r) => m.serialize_field("result", r)?,
            ResponseBody::Step(r) => m.serialize_field("result", r)?,
            ResponseBody::Loaded(r) => m.serialize_field("result", r)?,
            ResponseBody::Prefetch(r) => m.serialize_field("result", r)?,
            ResponseBody::Stats(r) => m.serialize_field("result", r)?,
            ResponseBody::Close(r) => m.serialize_field("result", r)?,
            ResponseBody::Error(r) => m.serialize_field("result", r)?,
        }
        m.end()
    }
}
