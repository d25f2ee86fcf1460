//! ESFT layout (deepseek-ai/ESFT `results/expert_scores/<task>/`): one `expert_weights_L.txt` per
//! MoE layer L = 1..N; line i of every file is sequence i: `k*n` tab-separated expert ids, an
//! empty field, then `k*n` gate weights aligned with the ids (token-major).

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use super::{
    Defect, MAX_MOE_LAYERS, ModelShape, Trace, TraceBuilder, TraceError, TraceFormat,
    dequantize_weight,
};

/// The ESFT directory format.
pub struct Esft;

/// The shape ESFT traces have unless told otherwise: DeepSeek-V2-Lite (64 experts, top-6, layer 0
/// dense). The number of MoE layers is the number of layer files.
pub fn default_shape(moe_layers: usize) -> ModelShape {
    ModelShape {
        moe_layers,
        experts: 64,
        top_k: 6,
        first_moe_layer: 1,
    }
}

/// MoE layers of DeepSeek-V2-Lite, whose traces ESFT publishes.
pub const DEFAULT_MOE_LAYERS: usize = 26;

fn layer_file(dir: &Path, l: usize) -> PathBuf {
    dir.join(format!("expert_weights_{l}.txt"))
}

/// Counts the `expert_weights_L.txt` files and checks they are numbered 1..=N without gaps.
fn count_layers(dir: &Path) -> Result<usize, TraceError> {
    let mut found = std::collections::BTreeSet::new();
    for entry in std::fs::read_dir(dir).map_err(|e| TraceError::io(dir, e))? {
        let entry = entry.map_err(|e| TraceError::io(dir, e))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if let Some(num) = name
            .strip_prefix("expert_weights_")
            .and_then(|s| s.strip_suffix(".txt"))
        {
            let l: usize = num.parse().map_err(|_| {
                TraceError::file(
                    entry.path(),
                    Defect::Parse {
                        text: num.to_string(),
                        what: "layer number",
                    },
                )
            })?;
            if l == 0 || l > MAX_MOE_LAYERS {
                return Err(TraceError::file(
                    entry.path(),
                    Defect::Other(format!(
                        "unexpected layer file: MoE layers are numbered 1..={MAX_MOE_LAYERS}"
                    )),
                ));
            }
            found.insert(l);
        }
    }
    let Some(&max) = found.last() else {
        return Err(TraceError::file(
            dir,
            Defect::Empty("no expert_weights_L.txt files".into()),
        ));
    };
    if let Some(missing) = (1..=max).find(|l| !found.contains(l)) {
        return Err(TraceError::file(
            layer_file(dir, missing),
            Defect::Other(format!(
                "layer file missing ({} files, numbered up to {max})",
                found.len()
            )),
        ));
    }
    Ok(max)
}

/// Splits a line (without its newline) into its id and weight halves at the empty field.
fn split_halves(line: &[u8]) -> Option<(&[u8], &[u8])> {
    let at = memchr::memmem::find(line, b"\t\t")?;
    Some((&line[..at], &line[at + 2..]))
}

fn parse_int(field: &[u8]) -> Option<i64> {
    if field.is_empty() || field.len() > 18 {
        return None;
    }
    let (neg, digits) = match field[0] {
        b'-' => (true, &field[1..]),
        _ => (false, field),
    };
    if digits.is_empty() {
        return None;
    }
    let mut v: i64 = 0;
    for &c in digits {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + (c - b'0') as i64;
    }
    Some(if neg { -v } else { v })
}

/// Parses a weight: fast path for plain decimals (`0.0411`), std parser otherwise (`1e-4`, `nan`).
fn parse_weight(field: &[u8]) -> Option<f64> {
    let mut int: u64 = 0;
    let mut frac: u64 = 0;
    let mut scale: u64 = 1;
    let mut seen_dot = false;
    let mut digits = 0;
    let mut ok = !field.is_empty() && field.len() <= 17;
    if ok {
        for &c in field {
            match c {
                b'0'..=b'9' if seen_dot => {
                    frac = frac * 10 + (c - b'0') as u64;
                    scale *= 10;
                    digits += 1;
                }
                b'0'..=b'9' => {
                    int = int * 10 + (c - b'0') as u64;
                    digits += 1;
                }
                b'.' if !seen_dot => seen_dot = true,
                _ => {
                    ok = false;
                    break;
                }
            }
        }
    }
    if ok && digits > 0 {
        return Some(int as f64 + frac as f64 / scale as f64);
    }
    std::str::from_utf8(field).ok()?.trim().parse::<f64>().ok()
}

/// Parses one line into `ids`/`weights`; errors carry the field name.
fn parse_line(
    line: &[u8],
    ids: &mut Vec<i64>,
    weights: &mut Vec<f64>,
) -> Result<(), (String, Defect)> {
    ids.clear();
    weights.clear();
    if line.is_empty() {
        return Err(("line".into(), Defect::Empty("empty line".into())));
    }
    let (id_part, w_part) = split_halves(line).ok_or_else(|| {
        (
            "separator".to_string(),
            Defect::Truncated {
                expected: "ids, an empty field, then weights".into(),
                found: "no empty field".into(),
            },
        )
    })?;
    for (i, f) in id_part.split(|&c| c == b'\t').enumerate() {
        let v = parse_int(f).ok_or_else(|| {
            (
                format!("ids[{i}]"),
                Defect::Parse {
                    text: String::from_utf8_lossy(f).into_owned(),
                    what: "expert id",
                },
            )
        })?;
        ids.push(v);
    }
    if !w_part.is_empty() {
        for (i, f) in w_part.split(|&c| c == b'\t').enumerate() {
            let v = parse_weight(f).ok_or_else(|| {
                (
                    format!("weights[{i}]"),
                    Defect::Parse {
                        text: String::from_utf8_lossy(f).into_owned(),
                        what: "gate weight",
                    },
                )
            })?;
            weights.push(v);
        }
    }
    if weights.len() != ids.len() {
        return Err((
            format!("weights[{}]", weights.len().min(ids.len())),
            Defect::Truncated {
                expected: format!("{} weights", ids.len()),
                found: format!("{}", weights.len()),
            },
        ));
    }
    Ok(())
}

/// Reads line after line of a layer file into a reusable buffer (no per-line allocation).
struct Lines<R> {
    reader: R,
    buf: Vec<u8>,
    line_no: u64,
}

impl<R: BufRead> Lines<R> {
    fn next_line(&mut self) -> std::io::Result<Option<(u64, &[u8])>> {
        self.buf.clear();
        if self.reader.read_until(b'\n', &mut self.buf)? == 0 {
            return Ok(None);
        }
        self.line_no += 1;
        while matches!(self.buf.last(), Some(b'\n' | b'\r')) {
            self.buf.pop();
        }
        Ok(Some((self.line_no, &self.buf)))
    }
}

fn open_lines(path: &Path) -> Result<Lines<BufReader<std::fs::File>>, TraceError> {
    let f = std::fs::File::open(path).map_err(|e| TraceError::io(path, e))?;
    if f.metadata().map_err(|e| TraceError::io(path, e))?.len() == 0 {
        return Err(TraceError::file(
            path,
            Defect::Empty("file has no lines".into()),
        ));
    }
    Ok(Lines {
        reader: BufReader::with_capacity(1 << 20, f),
        buf: Vec::new(),
        line_no: 0,
    })
}

impl TraceFormat for Esft {
    fn name(&self) -> &'static str {
        "esft"
    }

    fn read(&self, dir: &Path, shape: Option<&ModelShape>) -> Result<Trace, TraceError> {
        if !dir.is_dir() {
            return Err(TraceError::file(
                dir,
                Defect::Other("an ESFT trace is a directory".into()),
            ));
        }
        let layers = count_layers(dir)?;
        let shape = match shape {
            Some(s) if s.moe_layers != layers => {
                return Err(TraceError::file(
                    dir,
                    Defect::Other(format!(
                        "{layers} layer files but the model has {} MoE layers",
                        s.moe_layers
                    )),
                ));
            }
            Some(s) => *s,
            None => {
                if layers != DEFAULT_MOE_LAYERS {
                    tracing::warn!(
                        "{}: {layers} layer files (expert_weights_1..{layers}.txt) taken as \
                         {layers} MoE layers; DeepSeek-V2-Lite, the default ESFT shape, has \
                         {DEFAULT_MOE_LAYERS}: pass --model to check the files against a model",
                        dir.display()
                    );
                }
                default_shape(layers)
            }
        };
        shape
            .check()
            .map_err(|m| TraceError::file(dir, Defect::Other(m)))?;
        let k = shape.top_k;
        let mut builder = TraceBuilder::new(shape, 0);
        // Layer 1 fixes the tokens per line; it is parsed into a side buffer, the trace is
        // sized from it, and every later layer is written in place.
        let first_path = layer_file(dir, 1);
        let (mut first_e, mut first_w) = (Vec::new(), Vec::new());
        let tokens_per_line = parse_layer_file(&first_path, &shape, None, |_, e, w| {
            first_e.extend_from_slice(e);
            first_w.extend_from_slice(w);
        })?;
        let total: usize = tokens_per_line.iter().sum();
        let mut seqv = Vec::with_capacity(total);
        let mut posv = Vec::with_capacity(total);
        for (s, &n) in tokens_per_line.iter().enumerate() {
            seqv.extend(std::iter::repeat_n(s as u32, n));
            posv.extend(0..n as u32);
        }
        builder.presize(seqv, posv);
        for t in 0..total {
            builder.set_entry(
                t,
                0,
                &first_e[t * k..(t + 1) * k],
                &first_w[t * k..(t + 1) * k],
            );
        }
        for l in 2..=layers {
            let path = layer_file(dir, l);
            let reference = (first_path.as_path(), tokens_per_line.as_slice());
            parse_layer_file(&path, &shape, Some(reference), |t, e, w| {
                builder.set_entry(t, l - 1, e, w)
            })?;
        }
        Ok(builder.finish())
    }

    fn write(&self, trace: &Trace, dir: &Path) -> Result<(), TraceError> {
        trace
            .require_weights("the ESFT format")
            .map_err(|m| TraceError::file(dir, Defect::Other(m)))?;
        std::fs::create_dir_all(dir).map_err(|e| TraceError::write(dir, e))?;
        for l in 0..trace.shape().moe_layers {
            let path = layer_file(dir, l + 1);
            crate::util::atomic_write(&path, |f| write_layer(trace, l, f))
                .map_err(|e| TraceError::write(&path, e))?;
        }
        Ok(())
    }
}

/// Writes layer `l` of `trace` as one ESFT layer file (one line per sequence).
fn write_layer(trace: &Trace, l: usize, f: &mut std::fs::File) -> std::io::Result<()> {
    let mut w = std::io::BufWriter::new(f);
    for r in trace.sequences() {
        let mut first = true;
        for t in r.clone() {
            for &e in trace.experts(t, l) {
                if !first {
                    w.write_all(b"\t")?;
                }
                first = false;
                write!(w, "{e}")?;
            }
        }
        w.write_all(b"\t")?;
        for t in r {
            for &q in trace.weights_q(t, l) {
                write!(w, "\t{}", dequantize_weight(q))?;
            }
        }
        w.write_all(b"\n")?;
    }
    w.flush()
}

/// Parses one layer file, validating every top-k, and hands each token's entry to `sink`
/// (global token index, ids, weights). With `reference`, every line must hold as many tokens as
/// the reference file's. Returns the tokens per line.
fn parse_layer_file(
    path: &Path,
    shape: &ModelShape,
    reference: Option<(&Path, &[usize])>,
    mut sink: impl FnMut(usize, &[u16], &[f32]),
) -> Result<Vec<usize>, TraceError> {
    let k = shape.top_k;
    let mut lines = open_lines(path)?;
    let (mut ids, mut ws) = (Vec::new(), Vec::new());
    let (mut e16, mut w32) = (Vec::with_capacity(k), Vec::with_capacity(k));
    let mut per_line = Vec::new();
    let mut token_base = 0;
    while let Some((ln, line)) = lines.next_line().map_err(|e| TraceError::io(path, e))? {
        parse_line(line, &mut ids, &mut ws)
            .map_err(|(f, p)| TraceError::invalid(path, ln, f, p))?;
        if ids.len() % k != 0 {
            return Err(TraceError::invalid(
                path,
                ln,
                format!("ids[{}]", ids.len()),
                Defect::Truncated {
                    expected: format!("a multiple of top_k = {k} ids"),
                    found: format!("{}", ids.len()),
                },
            ));
        }
        let n = ids.len() / k;
        if let Some((ref_path, ref_counts)) = reference {
            let expected = ref_counts.get(per_line.len()).copied();
            if expected != Some(n) {
                return Err(TraceError::invalid(
                    path,
                    ln,
                    "tokens",
                    Defect::TokenCountMismatch {
                        expected: expected.unwrap_or(0),
                        found: n,
                        reference: format!("{} line {ln}", ref_path.display()),
                    },
                ));
            }
        }
        for t in 0..n {
            let (ti, wi) = (&ids[t * k..(t + 1) * k], &ws[t * k..(t + 1) * k]);
            TraceBuilder::check_topk(shape, ti, wi).map_err(|(j, p)| {
                let field = match p {
                    Defect::NonFiniteWeight { .. } | Defect::WeightOutOfRange { .. } => "weights",
                    _ => "ids",
                };
                TraceError::invalid(path, ln, format!("{field}[{}] (token {t})", t * k + j), p)
            })?;
            e16.clear();
            e16.extend(ti.iter().map(|&e| e as u16));
            w32.clear();
            w32.extend(wi.iter().map(|&w| w as f32));
            sink(token_base + t, &e16, &w32);
        }
        per_line.push(n);
        token_base += n;
    }
    if let Some((ref_path, ref_counts)) = reference
        && per_line.len() != ref_counts.len()
    {
        return Err(TraceError::invalid(
            path,
            lines.line_no + 1,
            "line",
            Defect::Truncated {
                expected: format!("{} lines as in {}", ref_counts.len(), ref_path.display()),
                found: format!("{}", per_line.len()),
            },
        ));
    }
    Ok(per_line)
}
