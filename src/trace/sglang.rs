//! SGLang's expert-distribution recorder dumps (`--expert-distribution-recorder-mode per_token`
//! and `stat`), read with the torch-file reader of [`super::torch`].
//!
//! Checked against sglang 0.5.23, `sglang/srt/eplb/expert_distribution.py`:
//! - `_DetailAccumulator.dump` writes, per rank, `expert_distribution_recorder_{time}_{rank}.pt`
//!   = `{"records": [...], "last_physical_to_logical_map": int64 [num_hidden_layers, physical]}`;
//! - each record (`_DetailAccumulator.append` of `_DetailSinglePassGatherer.collect`) has
//!   `forward_pass_id`, `rank`, `gatherer_key`, `input_ids`, `positions`, `extend_seq_lens`
//!   (None for decode passes), `forward_mode`, `misc_objects`, `global_physical_count` and
//!   `topk_ids_of_layer`: int32 `[num_hidden_layers, tokens, 8]` of *physical* expert ids
//!   (`_post_process_topk_ids` in `layers/moe/topk.py` maps logical to physical before the
//!   recorder sees them), -1 where unused (dense layers, columns past top-k);
//! - `_StatAccumulator.dump` writes (rank 0 only) `{"rank", "logical_count": int32
//!   [buffer, num_hidden_layers, logical experts], "average_utilization_rate_over_window"}`.
//!
//! Records carry no request ids, so sequences are rebuilt from positions: a pass's tokens split
//! into requests by `extend_seq_lens` (one token per request in decode passes); a request whose
//! first position continues an open sequence (next position equal, earliest-opened first, one
//! request per sequence per pass; SGLang keeps running requests in batch order) extends it,
//! otherwise it opens a new sequence. A decode token may continue any open sequence, an extend
//! chunk only one whose last chunk was an extend (chunked prefill): so a new request whose
//! cached prefix is as long as a decoding sequence is not taken for it. Ranks' files are merged: files whose records hold the same
//! tokens (tensor-parallel ranks) must agree on every id and count once; files holding other
//! tokens (data-parallel attention) add their sequences.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};

use super::torch::{Id, Node, TorchFile};
use super::{Defect, ModelShape, Trace, TraceBuilder, TraceError};

/// One record's tokens as read.
struct Pass {
    /// Record index within its file.
    record: usize,
    positions: Vec<i64>,
    input_ids: Vec<i64>,
    /// Tokens per request (a decode pass: all ones).
    segments: Vec<usize>,
    /// `[num_hidden_layers][tokens][width]` physical ids.
    topk: Vec<i64>,
    tokens: usize,
    width: usize,
    /// `forward_mode` (`ForwardMode` in model_executor/forward_batch_info.py).
    mode: i64,
}

/// `ForwardMode.DECODE` and `ForwardMode.MIXED` (sglang 0.5.23, `IntEnum` from `auto()`).
const DECODE: i64 = 2;
const MIXED: i64 = 3;

/// One rank's file.
struct Dump {
    path: PathBuf,
    /// `[num_hidden_layers][physical]`.
    map: Vec<i64>,
    layers: usize,
    physical: usize,
    passes: Vec<Pass>,
}

fn inv(path: &Path, rec: usize, field: impl Into<String>, p: Defect) -> TraceError {
    TraceError::invalid(path, rec as u64 + 1, field, p)
}

fn other(s: impl Into<String>) -> Defect {
    Defect::Other(s.into())
}

/// Whether `path` looks like a recorder dump (a zip archive, i.e. a torch.save file).
pub fn is_torch_file(path: &Path) -> bool {
    let mut magic = [0u8; 4];
    std::fs::File::open(path)
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut magic))
        .is_ok()
        && &magic == b"PK\x03\x04"
}

/// The recorder files of a directory (`expert_distribution_recorder_*.pt`), sorted.
pub fn dump_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                n.starts_with("expert_distribution_recorder_") && n.ends_with(".pt")
            })
        })
        .collect();
    v.sort();
    Ok(v)
}

fn open(path: &Path) -> Result<TorchFile, TraceError> {
    let bytes = std::fs::read(path).map_err(|e| TraceError::io(path, e))?;
    TorchFile::from_bytes(&bytes).map_err(|e| TraceError::file(path, other(e.to_string())))
}

fn ints(
    f: &TorchFile,
    id: Id,
    path: &Path,
    rec: usize,
    field: &str,
) -> Result<Vec<i64>, TraceError> {
    match f.node(id) {
        Node::List(v) | Node::Tuple(v) => v
            .iter()
            .enumerate()
            .map(|(i, &x)| match f.node(x) {
                Node::Int(n) => Ok(*n),
                _ => Err(inv(
                    path,
                    rec,
                    format!("{field}[{i}]"),
                    other(format!("expected an int, found {}", f.kind(x))),
                )),
            })
            .collect(),
        Node::Tensor(t) => f
            .tensor(t)
            .ok()
            .and_then(|t| t.ints())
            .ok_or_else(|| inv(path, rec, field, other("expected an integer tensor"))),
        _ => Err(inv(
            path,
            rec,
            field,
            other(format!("expected a list of ints, found {}", f.kind(id))),
        )),
    }
}

fn int_tensor(
    f: &TorchFile,
    id: Id,
    path: &Path,
    rec: usize,
    field: &str,
    dims: usize,
) -> Result<(Vec<usize>, Vec<i64>), TraceError> {
    let Node::Tensor(t) = f.node(id) else {
        return Err(inv(
            path,
            rec,
            field,
            other(format!("expected a tensor, found {}", f.kind(id))),
        ));
    };
    let t = f
        .tensor(t)
        .map_err(|e| inv(path, rec, field, other(e.to_string())))?;
    if t.shape.len() != dims {
        return Err(inv(
            path,
            rec,
            field,
            other(format!(
                "expected {dims} dimensions, found shape {:?}",
                t.shape
            )),
        ));
    }
    let v = t.ints().ok_or_else(|| {
        inv(
            path,
            rec,
            field,
            other(format!(
                "expected an integer tensor, found {}",
                t.dtype.torch_name()
            )),
        )
    })?;
    Ok((t.shape, v))
}

fn read_dump(path: &Path) -> Result<Dump, TraceError> {
    let f = open(path)?;
    let root = f.root();
    let need = |k: &str| {
        f.get(root, k).ok_or_else(|| {
            TraceError::file(
                path,
                other(format!(
                    "no `{k}` key: not an SGLang per_token recorder dump (found {})",
                    f.kind(root)
                )),
            )
        })
    };
    if f.get(root, "logical_count").is_some() {
        return Err(TraceError::file(
            path,
            other("this is an SGLang `stat` dump (load counts, not a trace): use `place --counts`"),
        ));
    }
    let map_id = need("last_physical_to_logical_map")?;
    let (mshape, map) = int_tensor(&f, map_id, path, 0, "last_physical_to_logical_map", 2)
        .map_err(|e| retag_file(e, path))?;
    let (layers, physical) = (mshape[0], mshape[1]);
    let recs_id = need("records")?;
    let Node::List(recs) = f.node(recs_id) else {
        return Err(TraceError::file(path, other("`records` is not a list")));
    };
    let mut passes = Vec::with_capacity(recs.len());
    for (i, &r) in recs.iter().enumerate() {
        let get = |k: &str| {
            f.get(r, k)
                .ok_or_else(|| inv(path, i, format!("records[{i}].{k}"), other("missing")))
        };
        let fld = |k: &str| format!("records[{i}].{k}");
        let positions = ints(&f, get("positions")?, path, i, &fld("positions"))?;
        let input_ids = ints(&f, get("input_ids")?, path, i, &fld("input_ids"))?;
        let tokens = input_ids.len();
        if positions.len() != tokens {
            return Err(inv(
                path,
                i,
                fld("positions"),
                Defect::TokenCountMismatch {
                    expected: tokens,
                    found: positions.len(),
                    reference: fld("input_ids"),
                },
            ));
        }
        let mode = match f.node(get("forward_mode")?) {
            Node::Int(m) => *m,
            _ => return Err(inv(path, i, fld("forward_mode"), other("expected an int"))),
        };
        let esl = get("extend_seq_lens")?;
        let segments = match f.node(esl) {
            Node::None => vec![1; tokens],
            _ => ints(&f, esl, path, i, &fld("extend_seq_lens"))?
                .into_iter()
                .map(|n| {
                    usize::try_from(n).map_err(|_| {
                        inv(
                            path,
                            i,
                            fld("extend_seq_lens"),
                            other(format!("negative length {n}")),
                        )
                    })
                })
                .collect::<Result<Vec<_>, _>>()?,
        };
        if segments.iter().sum::<usize>() != tokens {
            return Err(inv(
                path,
                i,
                fld("extend_seq_lens"),
                other(format!(
                    "lengths add up to {}, the record has {tokens} tokens",
                    segments.iter().sum::<usize>()
                )),
            ));
        }
        let (tshape, topk) = int_tensor(
            &f,
            get("topk_ids_of_layer")?,
            path,
            i,
            &fld("topk_ids_of_layer"),
            3,
        )?;
        if tshape[0] != layers || tshape[1] != tokens {
            return Err(inv(
                path,
                i,
                fld("topk_ids_of_layer"),
                other(format!(
                    "shape {tshape:?}, expected [{layers}, {tokens}, width] (layers of the map, tokens of input_ids)"
                )),
            ));
        }
        passes.push(Pass {
            record: i,
            positions,
            input_ids,
            segments,
            topk,
            tokens,
            width: tshape[2],
            mode,
        });
    }
    Ok(Dump {
        path: path.into(),
        map,
        layers,
        physical,
        passes,
    })
}

fn retag_file(e: TraceError, path: &Path) -> TraceError {
    match e {
        TraceError::Invalid { field, problem, .. } => {
            TraceError::file(path, other(format!("`{field}`: {problem}")))
        }
        e => e,
    }
}

/// The routing shape the dumps imply, checked against `--model`'s if given.
fn infer_shape(dumps: &[Dump], hint: Option<&ModelShape>) -> Result<ModelShape, TraceError> {
    let d0 = &dumps[0];
    let experts = d0.map.iter().copied().max().unwrap_or(-1) + 1;
    if let Some(bad) = d0.map.iter().find(|&&x| x < 0) {
        return Err(TraceError::file(
            &d0.path,
            other(format!("`last_physical_to_logical_map` holds {bad}")),
        ));
    }
    // A MoE layer is one any token was routed at.
    let mut moe = vec![false; d0.layers];
    let mut top_k = None;
    for d in dumps {
        for p in &d.passes {
            for (l, m) in moe.iter_mut().enumerate() {
                let rows = &p.topk[l * p.tokens * p.width..(l + 1) * p.tokens * p.width];
                if let Some(row) = rows
                    .chunks_exact(p.width)
                    .find(|r| r.iter().any(|&x| x >= 0))
                {
                    *m = true;
                    top_k.get_or_insert(row.iter().take_while(|&&x| x >= 0).count());
                }
            }
        }
    }
    let first = moe.iter().position(|&m| m);
    let shape = match (hint, first) {
        (Some(h), _) => {
            let decoder = h.first_moe_layer + h.moe_layers;
            if decoder != d0.layers {
                return Err(TraceError::file(
                    &d0.path,
                    other(format!(
                        "`last_physical_to_logical_map` has {} layers, the model has {decoder} decoder layers",
                        d0.layers
                    )),
                ));
            }
            if experts as usize != h.experts {
                return Err(TraceError::file(
                    &d0.path,
                    other(format!(
                        "`last_physical_to_logical_map` names {experts} logical experts, the model has {}",
                        h.experts
                    )),
                ));
            }
            *h
        }
        (None, None) => {
            return Err(TraceError::file(
                &d0.path,
                Defect::Empty("no token was routed at any layer".into()),
            ));
        }
        (None, Some(first)) => ModelShape {
            moe_layers: d0.layers - first,
            experts: experts as usize,
            top_k: top_k.unwrap_or(0),
            first_moe_layer: first,
        },
    };
    shape
        .check()
        .map_err(|m| TraceError::file(&d0.path, other(m)))?;
    for d in dumps {
        if d.map != d0.map || d.layers != d0.layers {
            return Err(TraceError::file(
                &d.path,
                other(format!(
                    "`last_physical_to_logical_map` differs from the one in {} (ranks of one dump share it)",
                    d0.path.display()
                )),
            ));
        }
        for p in &d.passes {
            if p.width < shape.top_k {
                return Err(inv(
                    &d.path,
                    p.record,
                    format!("records[{}].topk_ids_of_layer", p.record),
                    other(format!("{} columns, top-k is {}", p.width, shape.top_k)),
                ));
            }
        }
    }
    Ok(shape)
}

/// Reads the per-token dumps `paths` (one per rank) into one trace.
pub fn read_dumps(paths: &[PathBuf], hint: Option<&ModelShape>) -> Result<Trace, TraceError> {
    let dumps = paths
        .iter()
        .map(|p| read_dump(p))
        .collect::<Result<Vec<_>, _>>()?;
    if dumps.is_empty() {
        return Err(TraceError::file(
            Path::new("."),
            Defect::Empty("no recorder files".into()),
        ));
    }
    let shape = infer_shape(&dumps, hint)?;
    // Tensor-parallel ranks record the same tokens: keep one, check the others agree.
    let mut kept: Vec<&Dump> = Vec::new();
    for d in &dumps {
        match kept.iter().find(|k| same_tokens(k, d)) {
            Some(k) => agree(k, d)?,
            None => kept.push(d),
        }
    }
    let mut seqs: Vec<(u32, Vec<u16>)> = Vec::new();
    for d in kept {
        rebuild(d, &shape, &mut seqs)?;
    }
    let tokens = seqs.iter().map(|s| s.1.len()).sum::<usize>() / shape.entries_per_token();
    let mut b = TraceBuilder::new(shape, tokens);
    let n = shape.entries_per_token();
    for (i, (start, ids)) in seqs.iter().enumerate() {
        for (j, tok) in ids.chunks_exact(n).enumerate() {
            b.push_token_unweighted(i as u32, start + j as u32, tok);
        }
    }
    if b.is_empty() {
        return Err(TraceError::file(
            &paths[0],
            Defect::Empty("no tokens".into()),
        ));
    }
    Ok(b.finish())
}

fn same_tokens(a: &Dump, b: &Dump) -> bool {
    a.passes.len() == b.passes.len()
        && a.passes
            .iter()
            .zip(&b.passes)
            .all(|(x, y)| x.input_ids == y.input_ids && x.positions == y.positions)
}

fn agree(a: &Dump, b: &Dump) -> Result<(), TraceError> {
    for (x, y) in a.passes.iter().zip(&b.passes) {
        if x.topk != y.topk || x.width != y.width {
            return Err(inv(
                &b.path,
                y.record,
                format!("records[{}].topk_ids_of_layer", y.record),
                other(format!(
                    "ranks disagree: same tokens as record {} of {}, other experts",
                    x.record,
                    a.path.display()
                )),
            ));
        }
    }
    Ok(())
}

/// Appends `d`'s sequences to `seqs` (start position, logical ids token-major).
fn rebuild(
    d: &Dump,
    shape: &ModelShape,
    seqs: &mut Vec<(u32, Vec<u16>)>,
) -> Result<(), TraceError> {
    let (k, first, layers) = (shape.top_k, shape.first_moe_layer, shape.moe_layers);
    let base = seqs.len();
    // Open sequences by the position they expect next, earliest opened first.
    let mut open: HashMap<i64, VecDeque<usize>> = HashMap::new();
    let mut used_in_pass: Vec<u64> = Vec::new();
    let mut last_extend: Vec<bool> = Vec::new();
    let mut ids = Vec::with_capacity(k);
    for (pass_no, p) in d.passes.iter().enumerate() {
        let stamp = pass_no as u64 + 1;
        let field = |l: usize, t: usize, j: usize| {
            format!("records[{}].topk_ids_of_layer[{l}][{t}][{j}]", p.record)
        };
        let mut t0 = 0;
        for &len in &p.segments {
            let seg = t0..t0 + len;
            t0 += len;
            if len == 0 {
                continue;
            }
            let start = p.positions[seg.start];
            if start < 0 || start > u32::MAX as i64 {
                return Err(inv(
                    &d.path,
                    p.record,
                    format!("records[{}].positions[{}]", p.record, seg.start),
                    other(format!("position {start}")),
                ));
            }
            for t in seg.clone().skip(1) {
                if p.positions[t] != p.positions[t - 1] + 1 {
                    return Err(inv(
                        &d.path,
                        p.record,
                        format!("records[{}].positions[{t}]", p.record),
                        other(format!(
                            "position {} does not follow {} within one request",
                            p.positions[t],
                            p.positions[t - 1]
                        )),
                    ));
                }
            }
            // Which sequence does this request continue? A decode token (or a one-token request
            // of a mixed pass) any open one; an extend chunk only one whose last chunk was an
            // extend too (chunked prefill): a decoding request never extends again.
            let decode = p.mode == DECODE || (len == 1 && p.mode == MIXED);
            let mut seq = None;
            if let Some(q) = open.get_mut(&start)
                && let Some(i) = q.iter().position(|&s| {
                    used_in_pass[s - base] != stamp && (decode || last_extend[s - base])
                })
            {
                seq = q.remove(i);
            }
            let s = match seq {
                Some(s) => s,
                None => {
                    seqs.push((start as u32, Vec::new()));
                    used_in_pass.push(0);
                    last_extend.push(false);
                    seqs.len() - 1
                }
            };
            used_in_pass[s - base] = stamp;
            last_extend[s - base] = !decode;
            for t in seg.clone() {
                for l in 0..layers {
                    let dl = first + l;
                    let row =
                        &p.topk[(dl * p.tokens + t) * p.width..(dl * p.tokens + t + 1) * p.width];
                    ids.clear();
                    for (j, &ph) in row[..k].iter().enumerate() {
                        if ph < 0 || ph as usize >= d.physical {
                            return Err(inv(
                                &d.path,
                                p.record,
                                field(dl, t, j),
                                other(format!(
                                    "physical expert {ph} outside the map's {} slots",
                                    d.physical
                                )),
                            ));
                        }
                        ids.push(d.map[dl * d.physical + ph as usize]);
                    }
                    if let Some(j) = row[k..].iter().position(|&x| x != -1) {
                        return Err(inv(
                            &d.path,
                            p.record,
                            field(dl, t, k + j),
                            other(format!("{} past the top-{k} (expected -1)", row[k + j])),
                        ));
                    }
                    TraceBuilder::check_ids(shape, &ids)
                        .map_err(|(j, pr)| inv(&d.path, p.record, field(dl, t, j), pr))?;
                    seqs[s].1.extend(ids.iter().map(|&e| e as u16));
                }
                // Dense layers must be unrouted.
                for dl in 0..first {
                    let row =
                        &p.topk[(dl * p.tokens + t) * p.width..(dl * p.tokens + t + 1) * p.width];
                    if let Some(j) = row.iter().position(|&x| x != -1) {
                        return Err(inv(
                            &d.path,
                            p.record,
                            field(dl, t, j),
                            other(format!(
                                "dense layer {dl} (before the first MoE layer {first}) holds expert {}",
                                row[j]
                            )),
                        ));
                    }
                }
            }
            let next = p.positions[seg.end - 1] + 1;
            open.entry(next).or_default().push_back(s);
        }
    }
    Ok(())
}

/// SGLang `stat` dump: `logical_count` summed over its buffer, `[num_hidden_layers][experts]`.
pub fn read_stat_counts(path: &Path) -> Result<Vec<Vec<u64>>, TraceError> {
    let f = open(path)?;
    let id = f.get(f.root(), "logical_count").ok_or_else(|| {
        TraceError::file(
            path,
            other(format!(
                "no `logical_count` key (found {}): not an SGLang stat dump nor a counts file",
                f.kind(f.root())
            )),
        )
    })?;
    let (shape, v) =
        int_tensor(&f, id, path, 0, "logical_count", 3).map_err(|e| retag_file(e, path))?;
    let (layers, experts) = (shape[1], shape[2]);
    let mut out = vec![vec![0u64; experts]; layers];
    for (i, &c) in v.iter().enumerate() {
        if c < 0 {
            return Err(TraceError::file(
                path,
                other(format!("`logical_count` holds {c}")),
            ));
        }
        out[(i / experts) % layers][i % experts] += c as u64;
    }
    Ok(out)
}

/// The `sglang-dump` trace format: one recorder file, or a directory of one per rank.
pub struct SglangDump;

impl super::TraceFormat for SglangDump {
    fn name(&self) -> &'static str {
        "sglang-dump"
    }

    fn read(&self, path: &Path, shape: Option<&ModelShape>) -> Result<Trace, TraceError> {
        let files = if path.is_dir() {
            let v = dump_files(path).map_err(|e| TraceError::io(path, e))?;
            if v.is_empty() {
                return Err(TraceError::file(
                    path,
                    Defect::Empty("no expert_distribution_recorder_*.pt files".into()),
                ));
            }
            v
        } else {
            vec![path.to_path_buf()]
        };
        read_dumps(&files, shape)
    }

    fn write(&self, _: &Trace, path: &Path) -> Result<(), TraceError> {
        Err(TraceError::file(
            path,
            other("SGLang recorder dumps are read, not written"),
        ))
    }
}
