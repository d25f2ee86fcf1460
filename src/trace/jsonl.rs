//! JSON Lines traces, for humans and small fixtures. Line 1 is a header
//! `{"moeplan_trace": 1, "shape": {...}}`; then one object per token:
//! `{"seq": 0, "pos": 0, "experts": [[e, ...] x layers], "weights": [[w, ...] x layers]}`.
//! A trace without gate weights has `"weights": false` in its header and no `weights` in its
//! token lines.

use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{Defect, ModelShape, Trace, TraceBuilder, TraceError, TraceFormat, dequantize_weight};

/// Version written in (and required of) the header line.
pub const JSONL_VERSION: u32 = 1;

/// The JSONL format.
pub struct Jsonl;

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    moeplan_trace: u32,
    shape: ModelShape,
    /// Whether token lines carry gate weights (absent: they do).
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    weights: bool,
}

fn yes() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenRecord {
    seq: u32,
    pos: u32,
    experts: Vec<Vec<i64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    weights: Option<Vec<Vec<f32>>>,
}

impl TraceFormat for Jsonl {
    fn name(&self) -> &'static str {
        "jsonl"
    }

    fn read(&self, path: &Path, shape_hint: Option<&ModelShape>) -> Result<Trace, TraceError> {
        let f = std::fs::File::open(path).map_err(|e| TraceError::io(path, e))?;
        let mut lines = BufReader::new(f).lines();
        let header_line = match lines.next() {
            None => {
                return Err(TraceError::file(
                    path,
                    Defect::Empty("no header line".into()),
                ));
            }
            Some(l) => l.map_err(|e| TraceError::io(path, e))?,
        };
        let header: Header = serde_json::from_str(&header_line).map_err(|e| {
            TraceError::invalid(
                path,
                1,
                "header",
                Defect::Other(format!(
                    "{e} (expected {{\"moeplan_trace\": 1, \"shape\": {{...}}}})"
                )),
            )
        })?;
        if header.moeplan_trace != JSONL_VERSION {
            return Err(TraceError::invalid(
                path,
                1,
                "moeplan_trace",
                Defect::Other(format!(
                    "version {} unsupported (this build reads {JSONL_VERSION})",
                    header.moeplan_trace
                )),
            ));
        }
        let shape = header.shape;
        shape
            .check()
            .map_err(|m| TraceError::invalid(path, 1, "shape", Defect::Other(m)))?;
        if let Some(h) = shape_hint
            && *h != shape
        {
            return Err(TraceError::invalid(
                path,
                1,
                "shape",
                Defect::Other(format!(
                    "trace shape {shape:?} differs from the model's {h:?}"
                )),
            ));
        }
        let (layers, k) = (shape.moe_layers, shape.top_k);
        let mut builder = TraceBuilder::new(shape, 0);
        let mut e16 = Vec::with_capacity(layers * k);
        let mut w32 = Vec::with_capacity(layers * k);
        let mut w64 = Vec::with_capacity(k);
        for (i, line) in lines.enumerate() {
            let ln = i as u64 + 2;
            let line = line.map_err(|e| TraceError::io(path, e))?;
            if line.trim().is_empty() {
                return Err(TraceError::invalid(
                    path,
                    ln,
                    "line",
                    Defect::Empty("blank line".into()),
                ));
            }
            let rec: TokenRecord = serde_json::from_str(&line).map_err(|e| {
                TraceError::invalid(path, ln, "token", Defect::Other(e.to_string()))
            })?;
            let weights = match (rec.weights, header.weights) {
                (Some(w), true) => w,
                (None, false) => {
                    e16.clear();
                    for (l, es) in rec.experts.iter().enumerate() {
                        TraceBuilder::check_ids(&shape, es).map_err(|(j, p)| {
                            TraceError::invalid(path, ln, format!("experts[{l}][{j}]"), p)
                        })?;
                        e16.extend(es.iter().map(|&e| e as u16));
                    }
                    if rec.experts.len() != layers {
                        return Err(TraceError::invalid(
                            path,
                            ln,
                            "experts",
                            Defect::Truncated {
                                expected: format!("{layers} layers"),
                                found: rec.experts.len().to_string(),
                            },
                        ));
                    }
                    builder
                        .check_order(rec.seq, rec.pos)
                        .map_err(|p| TraceError::invalid(path, ln, "seq", p))?;
                    builder.push_token_unweighted(rec.seq, rec.pos, &e16);
                    continue;
                }
                (w, _) => {
                    let m = if w.is_some() {
                        "present, but the header says the trace has no weights"
                    } else {
                        "missing (the header says the trace has weights)"
                    };
                    return Err(TraceError::invalid(
                        path,
                        ln,
                        "weights",
                        Defect::Other(m.into()),
                    ));
                }
            };
            for (field, n) in [("experts", rec.experts.len()), ("weights", weights.len())] {
                if n != layers {
                    return Err(TraceError::invalid(
                        path,
                        ln,
                        field,
                        Defect::Truncated {
                            expected: format!("{layers} layers"),
                            found: n.to_string(),
                        },
                    ));
                }
            }
            e16.clear();
            w32.clear();
            for (l, (es, ws)) in rec.experts.iter().zip(&weights).enumerate() {
                w64.clear();
                w64.extend(ws.iter().map(|&w| w as f64));
                TraceBuilder::check_topk(&shape, es, &w64).map_err(|(j, p)| {
                    let field = match p {
                        Defect::NonFiniteWeight { .. } | Defect::WeightOutOfRange { .. } => {
                            "weights"
                        }
                        Defect::Truncated { ref expected, .. } if expected.ends_with("weights") => {
                            "weights"
                        }
                        _ => "experts",
                    };
                    TraceError::invalid(path, ln, format!("{field}[{l}][{j}]"), p)
                })?;
                e16.extend(es.iter().map(|&e| e as u16));
                w32.extend_from_slice(ws);
            }
            builder
                .check_order(rec.seq, rec.pos)
                .map_err(|p| TraceError::invalid(path, ln, "seq", p))?;
            builder.push_token(rec.seq, rec.pos, &e16, &w32);
        }
        if builder.is_empty() {
            return Err(TraceError::file(
                path,
                Defect::Empty("header but no tokens".into()),
            ));
        }
        Ok(builder.finish())
    }

    fn write(&self, trace: &Trace, path: &Path) -> Result<(), TraceError> {
        crate::util::atomic_write(path, |f| write_jsonl(trace, f))
            .map_err(|e| TraceError::write(path, e))
    }
}

fn write_jsonl(trace: &Trace, f: &mut std::fs::File) -> std::io::Result<()> {
    let mut w = BufWriter::new(f);
    let header = Header {
        moeplan_trace: JSONL_VERSION,
        shape: *trace.shape(),
        weights: trace.has_weights(),
    };
    serde_json::to_writer(&mut w, &header)?;
    w.write_all(b"\n")?;
    let layers = trace.shape().moe_layers;
    for t in 0..trace.num_tokens() {
        let rec = TokenRecord {
            seq: trace.seq_id(t),
            pos: trace.position(t),
            experts: (0..layers)
                .map(|l| trace.experts(t, l).iter().map(|&e| e as i64).collect())
                .collect(),
            weights: header.weights.then(|| {
                (0..layers)
                    .map(|l| {
                        trace
                            .weights_q(t, l)
                            .iter()
                            .map(|&q| dequantize_weight(q))
                            .collect()
                    })
                    .collect()
            }),
        };
        serde_json::to_writer(&mut w, &rec)?;
        w.write_all(b"\n")?;
    }
    w.flush()
}
