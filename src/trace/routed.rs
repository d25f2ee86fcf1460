//! Routed experts returned with responses by SGLang and vLLM (`--enable-return-routed-experts`),
//! saved as a JSONL of responses or as `.npy` arrays: each response is one sequence.
//!
//! Checked against the released source:
//! - sglang 0.5.23: `RoutedExpertsCapturer` (`srt/state_capturer/routed_experts.py`) captures
//!   logical ids into an int32 `[tokens, num_hidden_layers, num_experts_per_tok]` host buffer
//!   zeroed at start (`BaseHostCache` in `state_capturer/base.py`, so unrouted dense rows are 0);
//!   `BaseTopkCapturer.get_topk` returns rows `0..seqlen-1` (prompt included, last token
//!   excluded); `DetokenizerManager._b64_encode_per_request` sends `base64(tensor.numpy()
//!   .tobytes())` (raw little-endian int32, no shape) as `meta_info.routed_experts` on
//!   `/generate`, and the OpenAI server as `choices[].sglext.routed_experts`.
//! - vllm 0.33.0: `RoutedExpertsCapturer` (`model_executor/layers/fused_moe/
//!   routed_experts_capturer.py`) stores uint8 when experts <= 256 else uint16, `[tokens - 1,
//!   num_hidden_layers, top_k]`; the OpenAI servers send `choices[].routed_experts` =
//!   `numpy2base64` (`utils/serial_utils.py`: base64 of `np.save` bytes); offline,
//!   `CompletionOutput.routed_experts` is the array (save it with `np.save`).
//!
//! Neither carries the number of experts, and SGLang's raw int32 carries no shape: the model
//! (`--model`) supplies them, and every array is checked against it.

use std::io::BufRead;
use std::path::Path;

use base64::Engine;

use super::npy::read_npy_ints;
use super::{Defect, ModelShape, Trace, TraceBuilder, TraceError};

fn other(s: impl Into<String>) -> Defect {
    Defect::Other(s.into())
}

fn need_shape<'a>(path: &Path, hint: Option<&'a ModelShape>) -> Result<&'a ModelShape, TraceError> {
    hint.ok_or_else(|| {
        TraceError::file(
            path,
            other(
                "routed experts returned by an engine carry no expert count (and SGLang's no \
                   shape): pass --model",
            ),
        )
    })
}

/// Appends one sequence from a `[rows, decoder_layers, top_k]` array of logical ids.
fn push_sequence(
    b: &mut TraceBuilder,
    seq: u32,
    dims: &[usize],
    data: &[i64],
    bad: &dyn Fn(String, Defect) -> TraceError,
) -> Result<(), TraceError> {
    let shape = *b.shape();
    let decoder = shape.first_moe_layer + shape.moe_layers;
    if dims.len() != 3 || dims[1] != decoder || dims[2] != shape.top_k {
        return Err(bad(
            " shape".into(),
            other(format!(
                "array of shape {dims:?}, the model needs [tokens, {decoder} decoder layers, top-{}]",
                shape.top_k
            )),
        ));
    }
    let k = shape.top_k;
    let mut tok = Vec::with_capacity(shape.entries_per_token());
    let mut ids = Vec::with_capacity(k);
    for t in 0..dims[0] {
        tok.clear();
        for dl in 0..decoder {
            let row = &data[(t * decoder + dl) * k..(t * decoder + dl + 1) * k];
            if dl < shape.first_moe_layer {
                if let Some(j) = row.iter().position(|&x| x != 0) {
                    return Err(bad(
                        format!("[{t}][{dl}][{j}]"),
                        other(format!(
                            "dense layer {dl} holds expert {} (expected 0)",
                            row[j]
                        )),
                    ));
                }
                continue;
            }
            ids.clear();
            ids.extend_from_slice(row);
            TraceBuilder::check_ids(&shape, &ids)
                .map_err(|(j, p)| bad(format!("[{t}][{dl}][{j}]"), p))?;
            tok.extend(ids.iter().map(|&e| e as u16));
        }
        b.push_token_unweighted(seq, t as u32, &tok);
    }
    Ok(())
}

/// Decodes one `routed_experts` string: base64 of `.npy` bytes (vLLM) or of raw int32 (SGLang).
fn decode(text: &str, shape: &ModelShape) -> Result<(Vec<usize>, Vec<i64>), String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|e| format!("not base64: {e}"))?;
    if bytes.starts_with(b"\x93NUMPY") {
        let a = read_npy_ints(&bytes)?;
        return Ok((a.shape, a.data));
    }
    let row = (shape.first_moe_layer + shape.moe_layers) * shape.top_k * 4;
    if bytes.len() % row != 0 {
        return Err(format!(
            "{} bytes of raw int32 is not a whole number of tokens of {} decoder layers x top-{}",
            bytes.len(),
            shape.first_moe_layer + shape.moe_layers,
            shape.top_k
        ));
    }
    let data = bytes
        .chunks_exact(4)
        .map(|c| i32::from_le_bytes(c.try_into().unwrap()) as i64)
        .collect();
    Ok((
        vec![
            bytes.len() / row,
            shape.first_moe_layer + shape.moe_layers,
            shape.top_k,
        ],
        data,
    ))
}

/// The `routed_experts` strings of one saved response, with the JSON path of each.
fn routed_fields(v: &serde_json::Value) -> Vec<(String, &str)> {
    let mut out = Vec::new();
    let items: Vec<(String, &serde_json::Value)> = match v {
        serde_json::Value::Array(a) => a
            .iter()
            .enumerate()
            .map(|(i, x)| (format!("[{i}]."), x))
            .collect(),
        x => vec![(String::new(), x)],
    };
    for (pre, x) in items {
        if let Some(s) = x
            .pointer("/meta_info/routed_experts")
            .and_then(|s| s.as_str())
        {
            out.push((format!("{pre}meta_info.routed_experts"), s));
        }
        if let Some(s) = x.get("routed_experts").and_then(|s| s.as_str()) {
            out.push((format!("{pre}routed_experts"), s));
        }
        if let Some(ch) = x.get("choices").and_then(|c| c.as_array()) {
            for (i, c) in ch.iter().enumerate() {
                if let Some(s) = c.pointer("/sglext/routed_experts").and_then(|s| s.as_str()) {
                    out.push((format!("{pre}choices[{i}].sglext.routed_experts"), s));
                } else if let Some(s) = c.get("routed_experts").and_then(|s| s.as_str()) {
                    out.push((format!("{pre}choices[{i}].routed_experts"), s));
                }
            }
        }
    }
    out
}

/// Whether the first line of a JSONL file is a saved engine response (not a moeplan trace).
pub fn looks_like_responses(first_line: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(first_line)
        .is_ok_and(|v| !routed_fields(&v).is_empty())
}

/// Reads a JSONL of saved responses: every `routed_experts` field is one sequence.
pub fn read_responses(path: &Path, hint: Option<&ModelShape>) -> Result<Trace, TraceError> {
    let shape = need_shape(path, hint)?;
    let f = std::fs::File::open(path).map_err(|e| TraceError::io(path, e))?;
    let mut b = TraceBuilder::new(*shape, 0);
    let mut seq = 0u32;
    for (i, line) in std::io::BufReader::new(f).lines().enumerate() {
        let ln = i as u64 + 1;
        let line = line.map_err(|e| TraceError::io(path, e))?;
        if line.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value = serde_json::from_str(&line)
            .map_err(|e| TraceError::invalid(path, ln, "response", other(e.to_string())))?;
        let fields = routed_fields(&v);
        if fields.is_empty() {
            return Err(TraceError::invalid(
                path,
                ln,
                "routed_experts",
                other(
                    "missing: start the engine with --enable-return-routed-experts \
                       (SGLang: meta_info.routed_experts or choices[].sglext.routed_experts; \
                       vLLM: choices[].routed_experts)",
                ),
            ));
        }
        for (name, text) in fields {
            let (dims, data) = decode(text, shape)
                .map_err(|m| TraceError::invalid(path, ln, name.clone(), other(m)))?;
            let bad = |f: String, p: Defect| TraceError::invalid(path, ln, format!("{name}{f}"), p);
            push_sequence(&mut b, seq, &dims, &data, &bad)?;
            seq += 1;
        }
    }
    if b.is_empty() {
        return Err(TraceError::file(
            path,
            Defect::Empty("no routed tokens".into()),
        ));
    }
    Ok(b.finish())
}

/// Reads one `.npy` array `[tokens, num_hidden_layers, top_k]` (vLLM's `routed_experts`) as one
/// sequence, or `[sequences, tokens, num_hidden_layers, top_k]` as several of equal length.
pub fn read_npy(path: &Path, hint: Option<&ModelShape>) -> Result<Trace, TraceError> {
    let shape = need_shape(path, hint)?;
    let bytes = std::fs::read(path).map_err(|e| TraceError::io(path, e))?;
    let a = read_npy_ints(&bytes).map_err(|m| TraceError::file(path, other(m)))?;
    let mut b = TraceBuilder::new(*shape, 0);
    let (seqs, dims) = match a.shape.len() {
        4 => (a.shape[0], &a.shape[1..]),
        _ => (1, &a.shape[..]),
    };
    let per = dims.iter().product::<usize>();
    for s in 0..seqs {
        let bad = |f: String, p: Defect| {
            let f = if seqs > 1 {
                format!("array[{s}]{f}")
            } else {
                format!("array{f}")
            };
            TraceError::invalid(path, s as u64 + 1, f, p)
        };
        push_sequence(
            &mut b,
            s as u32,
            dims,
            &a.data[s * per..(s + 1) * per],
            &bad,
        )?;
    }
    if b.is_empty() {
        return Err(TraceError::file(
            path,
            Defect::Empty("no routed tokens".into()),
        ));
    }
    Ok(b.finish())
}

/// The `responses` trace format: a JSONL of saved engine responses.
pub struct Responses;

/// The `npy` trace format: routed-expert arrays saved with `np.save`.
pub struct Npy;

impl super::TraceFormat for Responses {
    fn name(&self) -> &'static str {
        "responses"
    }
    fn read(&self, path: &Path, shape: Option<&ModelShape>) -> Result<Trace, TraceError> {
        read_responses(path, shape)
    }
    fn write(&self, _: &Trace, path: &Path) -> Result<(), TraceError> {
        Err(TraceError::file(
            path,
            other("engine responses are read, not written"),
        ))
    }
}

impl super::TraceFormat for Npy {
    fn name(&self) -> &'static str {
        "npy"
    }
    fn read(&self, path: &Path, shape: Option<&ModelShape>) -> Result<Trace, TraceError> {
        read_npy(path, shape)
    }
    fn write(&self, _: &Trace, path: &Path) -> Result<(), TraceError> {
        Err(TraceError::file(
            path,
            other("routed-expert arrays are read, not written"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape() -> ModelShape {
        ModelShape {
            moe_layers: 2,
            experts: 8,
            top_k: 2,
            first_moe_layer: 1,
        }
    }

    #[test]
    fn raw_int32_and_npy_decode_to_the_same_ids() {
        // 2 tokens x 3 decoder layers x top-2; layer 0 dense (zeros).
        let ids: [i32; 12] = [0, 0, 1, 2, 3, 4, 0, 0, 5, 6, 7, 0];
        let raw: Vec<u8> = ids.iter().flat_map(|x| x.to_le_bytes()).collect();
        let b64 = base64::engine::general_purpose::STANDARD.encode(&raw);
        let (d1, v1) = decode(&b64, &shape()).unwrap();
        let npy = super::super::npy::write_npy_u(&[2, 3, 2], &ids.map(|x| x as u16), false);
        let (d2, v2) = decode(
            &base64::engine::general_purpose::STANDARD.encode(npy),
            &shape(),
        )
        .unwrap();
        assert_eq!((d1, v1), (d2, v2));
    }

    #[test]
    fn finds_every_response_shape() {
        let v: serde_json::Value = serde_json::json!({"choices": [{"sglext": {"routed_experts": "AA=="}}, {"routed_experts": "AA=="}]});
        let f = routed_fields(&v);
        assert_eq!(f[0].0, "choices[0].sglext.routed_experts");
        assert_eq!(f[1].0, "choices[1].routed_experts");
        let v = serde_json::json!([{"meta_info": {"routed_experts": "AA=="}}]);
        assert_eq!(routed_fields(&v)[0].0, "[0].meta_info.routed_experts");
    }
}
