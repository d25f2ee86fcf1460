//! The envelope's hot-path codec: requests and replies as `{"id", "op", "args"|"result"}` maps,
//! encoded and decoded without serde's `flatten` (which buffers every field of the map into an
//! intermediate tree and writes maps of unknown length, allocating on every frame).
//!
//! Encoding writes a 3-entry map directly. Decoding is one pass when `op` comes before the
//! payload (as every client here and the Python client write it): the payload is read straight
//! into the type `op` names. A client that writes the payload first costs a second pass, in
//! which `op` is known. The wire format is the one the derived (`flatten`) impls in
//! [`super::protocol`] read and write.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde::ser::SerializeStruct;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::protocol::{ErrorCode, ErrorReply, Request, RequestBody, Response, ResponseBody};

/// A payload the envelope carries under [`Payload::KEY`], of the type its `op` names.
trait Payload: Sized {
    /// `args` or `result`.
    const KEY: &'static str;
    /// Reads the payload of verb `op`.
    fn decode<'de, D: Deserializer<'de>>(op: &str, d: D) -> Result<Self, D::Error>;
}

impl Payload for RequestBody {
    const KEY: &'static str = "args";
    fn decode<'de, D: Deserializer<'de>>(op: &str, d: D) -> Result<Self, D::Error> {
        Ok(match op {
            "hello" => RequestBody::Hello(Deserialize::deserialize(d)?),
            "register" => RequestBody::Register(Deserialize::deserialize(d)?),
            "step" => RequestBody::Step(Deserialize::deserialize(d)?),
            "loaded" => RequestBody::Loaded(Deserialize::deserialize(d)?),
            "prefetch" => RequestBody::Prefetch(Deserialize::deserialize(d)?),
            "observe" => RequestBody::Observe(Deserialize::deserialize(d)?),
            "stats" => RequestBody::Stats(Deserialize::deserialize(d)?),
            "close" => RequestBody::Close(Deserialize::deserialize(d)?),
            "replan" => RequestBody::Replan(Deserialize::deserialize(d)?),
            other => {
                return Err(de::Error::custom(format!(
                    "unknown op {other:?} (expected one of {})",
                    RequestBody::OPS.join(", ")
                )));
            }
        })
    }
}

impl Payload for ResponseBody {
    const KEY: &'static str = "result";
    fn decode<'de, D: Deserializer<'de>>(op: &str, d: D) -> Result<Self, D::Error> {
        Ok(match op {
            "hello" => ResponseBody::Hello(Deserialize::deserialize(d)?),
            "register" => ResponseBody::Register(Deserialize::deserialize(d)?),
            "step" => ResponseBody::Step(Deserialize::deserialize(d)?),
            "loaded" => ResponseBody::Loaded(Deserialize::deserialize(d)?),
            "prefetch" => ResponseBody::Prefetch(Deserialize::deserialize(d)?),
            "stats" => ResponseBody::Stats(Deserialize::deserialize(d)?),
            "close" => ResponseBody::Close(Deserialize::deserialize(d)?),
            "replan" => ResponseBody::Replan(Deserialize::deserialize(d)?),
            "error" => ResponseBody::Error(Deserialize::deserialize(d)?),
            other => return Err(de::Error::custom(format!("unknown reply op {other:?}"))),
        })
    }
}

/// Reads a payload of verb `op`.
struct Seed<'a, P>(&'a str, PhantomData<P>);

impl<'de, P: Payload> DeserializeSeed<'de> for Seed<'_, P> {
    type Value = P;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<P, D::Error> {
        P::decode(self.0, d)
    }
}

/// What one pass over an envelope found: the id, the verb, and the payload unless it came
/// before the verb (then `body` is `None` and a second pass, knowing `op`, reads it).
struct Pass<'de, P> {
    id: u64,
    op: &'de str,
    body: Option<P>,
}

/// Visits the envelope map; `op` is known in advance on the second pass.
struct Envelope<'de, P> {
    /// The verb, if already read by a first pass.
    op: Option<&'de str>,
    _payload: PhantomData<P>,
}

impl<'de, P: Payload> Visitor<'de> for Envelope<'de, P> {
    type Value = Pass<'de, P>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a map with `id`, `op` and `{}`", P::KEY)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let (mut id, mut op, mut body, mut seen) = (None, self.op, None, false);
        let first_pass = self.op.is_none();
        while let Some(key) = map.next_key::<&'de str>()? {
            match key {
                "id" => id = Some(map.next_value()?),
                "op" if first_pass => op = Some(map.next_value()?),
                k if k == P::KEY => {
                    seen = true;
                    match op {
                        Some(op) => body = Some(map.next_value_seed(Seed(op, PhantomData))?),
                        None => drop(map.next_value::<IgnoredAny>()?),
                    }
                }
                _ => drop(map.next_value::<IgnoredAny>()?),
            }
        }
        let id = id.ok_or_else(|| de::Error::missing_field("id"))?;
        let op = op.ok_or_else(|| de::Error::missing_field("op"))?;
        if !seen {
            return Err(de::Error::missing_field(P::KEY));
        }
        Ok(Pass { id, op, body })
    }
}

/// Decodes an envelope: one pass, or two when the payload precedes `op`.
fn decode<P: Payload>(body: &[u8]) -> Result<(u64, P), rmp_serde::decode::Error> {
    let pass = |op| {
        let mut de = rmp_serde::Deserializer::from_read_ref(body);
        de.deserialize_map(Envelope::<P> {
            op,
            _payload: PhantomData,
        })
    };
    let first = pass(None)?;
    match first.body {
        Some(b) => Ok((first.id, b)),
        None => {
            let second = pass(Some(first.op))?;
            let b = second.body.expect("the second pass knows op");
            Ok((second.id, b))
        }
    }
}

/// Decodes a frame body as a request; on failure the id to answer (the request's when one could
/// be read, else 0) and the `malformed` error.
pub fn decode_request(body: &[u8]) -> Result<Request, (u64, ErrorReply)> {
    decode::<RequestBody>(body)
        .map(|(id, body)| Request { id, body })
        .map_err(|e| {
            #[derive(Deserialize)]
            struct IdOnly {
                id: u64,
            }
            let id = rmp_serde::from_slice::<IdOnly>(body).map_or(0, |x| x.id);
            let msg = format!("cannot decode request: {e}");
            (id, ErrorReply::new(ErrorCode::Malformed, msg))
        })
}

/// Decodes a frame body as a reply.
pub fn decode_response(body: &[u8]) -> Result<Response, rmp_serde::decode::Error> {
    decode::<ResponseBody>(body).map(|(id, body)| Response { id, body })
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
            RequestBody::Replan(a) => m.serialize_field("args", a)?,
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
            ResponseBody::Replan(r) => m.serialize_field("result", r)?,
            ResponseBody::Error(r) => m.serialize_field("result", r)?,
        }
        m.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::wire::{Close, Step};

    fn pack<T: Serialize>(v: &T) -> Vec<u8> {
        rmp_serde::to_vec_named(v).unwrap()
    }

    #[test]
    fn requests_round_trip_in_one_pass_and_in_any_key_order() {
        let req = Request {
            id: 9,
            body: RequestBody::Step(Step::new(4, 2, vec![1, 5])),
        };
        assert_eq!(decode_request(&pack(&req)).unwrap(), req);
        // Payload first (a BTreeMap writes its keys sorted: args, id, op).
        let m: std::collections::BTreeMap<&str, serde_json::Value> = [
            ("op", serde_json::json!("close")),
            ("id", serde_json::json!(77)),
            ("args", serde_json::json!({"session": 3})),
        ]
        .into_iter()
        .collect();
        let reordered = pack(&m);
        let back = decode_request(&reordered).unwrap();
        assert_eq!(back.id, 77);
        assert_eq!(back.body, RequestBody::Close(Close { session: 3 }));
    }

    #[test]
    fn bad_envelopes_name_what_is_wrong_and_keep_the_id() {
        let (id, e) = decode_request(&pack(
            &serde_json::json!({"id": 5, "op": "fly", "args": {}}),
        ))
        .unwrap_err();
        assert_eq!((id, e.code), (5, ErrorCode::Malformed));
        assert!(e.message.contains("unknown op \"fly\""), "{}", e.message);
        let (id, e) =
            decode_request(&pack(&serde_json::json!({"id": 6, "op": "close"}))).unwrap_err();
        assert_eq!(id, 6);
        assert!(e.message.contains("args"), "{}", e.message);
        let (_, e) = decode_request(&pack(
            &serde_json::json!({"op": "close", "args": {"session": 1}}),
        ))
        .unwrap_err();
        assert!(e.message.contains("id"), "{}", e.message);
        assert!(decode_request(&[0xc1]).is_err());
    }

    #[test]
    fn replies_round_trip() {
        let r = Response::error(3, ErrorCode::OutOfRange, "layer 9");
        assert_eq!(decode_response(&pack(&r)).unwrap(), r);
    }
}
