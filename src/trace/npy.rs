//! A reader of NumPy `.npy` arrays of unsigned or signed integers (what vLLM returns routed
//! experts as: `vllm/utils/serial_utils.py`, `numpy2base64`, which is `np.save(..,
//! allow_pickle=False)`).
//!
//! Layout (numpy/lib/format.py): magic `\x93NUMPY`, version `1.0`/`2.0`/`3.0`, a header length
//! (u16 for 1.0, u32 after), a Python-literal dict `{'descr': '<u2', 'fortran_order': False,
//! 'shape': (3, 27, 8), }` padded with spaces and a newline, then the raw elements.

/// A decoded integer array, C order.
#[derive(Debug, Clone, PartialEq)]
pub struct NpyInts {
    /// `descr` as written (`|u1`, `<u2`, `<i4`, ...).
    pub descr: String,
    /// Size of each dimension.
    pub shape: Vec<usize>,
    /// Elements, widened.
    pub data: Vec<i64>,
}

/// Parses an `.npy` byte string of integers.
pub fn read_npy_ints(bytes: &[u8]) -> Result<NpyInts, String> {
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err("not a .npy array (no \\x93NUMPY magic)".into());
    }
    let (hlen, start): (usize, usize) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes(bytes[8..12].try_into().unwrap()) as usize,
            12,
        ),
        v => return Err(format!(".npy version {v} is not supported")),
    };
    let end = start
        .checked_add(hlen)
        .filter(|&e| e <= bytes.len())
        .ok_or("truncated .npy header")?;
    let header = std::str::from_utf8(&bytes[start..end]).map_err(|_| "header is not text")?;
    let descr = dict_value(header, "descr").ok_or("header has no 'descr'")?;
    let descr = descr.trim_matches(|c| c == '\'' || c == '"').to_string();
    if dict_value(header, "fortran_order").as_deref() != Some("False") {
        return Err("fortran_order arrays are not supported".into());
    }
    let shape_text = dict_value(header, "shape").ok_or("header has no 'shape'")?;
    let shape = shape_text
        .trim_matches(|c| c == '(' || c == ')')
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<usize>()
                .map_err(|_| format!("bad shape {shape_text}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let (size, signed, big) = match descr.as_bytes() {
        [o, k @ (b'u' | b'i'), n @ b'1'..=b'8'] if matches!(o, b'<' | b'|' | b'=' | b'>') => {
            ((n - b'0') as usize, *k == b'i', *o == b'>')
        }
        _ => return Err(format!("dtype {descr:?} is not an integer type")),
    };
    if !matches!(size, 1 | 2 | 4 | 8) || big && size > 1 {
        return Err(format!("dtype {descr:?} is not supported"));
    }
    let numel = shape
        .iter()
        .try_fold(1usize, |a, &n| a.checked_mul(n))
        .ok_or("shape overflows")?;
    let body = &bytes[end..];
    if numel.checked_mul(size) != Some(body.len()) {
        return Err(format!(
            "{} data bytes for shape {shape:?} of {descr} ({} expected)",
            body.len(),
            numel.saturating_mul(size)
        ));
    }
    let data = body
        .chunks_exact(size)
        .map(|c| {
            let mut b = [0u8; 8];
            b[..size].copy_from_slice(c);
            let u = u64::from_le_bytes(b);
            if signed {
                let shift = 64 - 8 * size as u32;
                ((u << shift) as i64) >> shift
            } else {
                u as i64
            }
        })
        .collect();
    Ok(NpyInts { descr, shape, data })
}

/// The text of `'key': value` in a Python dict literal (value up to the next top-level comma).
fn dict_value(header: &str, key: &str) -> Option<String> {
    let at = header
        .find(&format!("'{key}'"))
        .or_else(|| header.find(&format!("\"{key}\"")))?;
    let rest = &header[at + key.len() + 2..];
    let rest = rest.trim_start().strip_prefix(':')?.trim_start();
    let mut depth = 0;
    for (i, c) in rest.char_indices() {
        match c {
            '(' | '[' => depth += 1,
            ')' | ']' => depth -= 1,
            ',' | '}' if depth == 0 => return Some(rest[..i].trim().to_string()),
            _ => {}
        }
    }
    None
}

/// Writes an `.npy` (version 1.0) of unsigned integers, as `np.save` does (for fixtures and tests).
pub fn write_npy_u(shape: &[usize], data: &[u16], wide: bool) -> Vec<u8> {
    let descr = if wide { "<u2" } else { "|u1" };
    let dims: Vec<String> = shape.iter().map(|n| n.to_string()).collect();
    let shape_s = if dims.len() == 1 {
        format!("({},)", dims[0])
    } else {
        format!("({})", dims.join(", "))
    };
    let mut h = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape_s}, }}");
    while (10 + h.len() + 1) % 64 != 0 {
        h.push(' ');
    }
    h.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend((h.len() as u16).to_le_bytes());
    out.extend(h.as_bytes());
    for &v in data {
        if wide {
            out.extend(v.to_le_bytes());
        } else {
            out.push(v as u8);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_it_writes_in_both_widths() {
        for wide in [false, true] {
            let b = write_npy_u(&[2, 1, 3], &[1, 2, 3, 4, 5, 255], wide);
            let a = read_npy_ints(&b).unwrap();
            assert_eq!(a.shape, vec![2, 1, 3]);
            assert_eq!(a.data, vec![1, 2, 3, 4, 5, 255]);
        }
    }

    /// `b` with the first `from` replaced by `to` (same length).
    fn swap(mut b: Vec<u8>, from: &[u8], to: &[u8]) -> Vec<u8> {
        let i = b.windows(from.len()).position(|w| w == from).unwrap();
        b[i..i + to.len()].copy_from_slice(to);
        b
    }

    #[test]
    fn refuses_floats_short_bodies_and_bad_magic() {
        let mut b = write_npy_u(&[4], &[1, 2, 3, 4], false);
        assert!(
            read_npy_ints(&b[..b.len() - 1])
                .unwrap_err()
                .contains("data bytes")
        );
        let f = swap(b.clone(), b"|u1", b"<f4");
        assert!(read_npy_ints(&f).unwrap_err().contains("not an integer"));
        b[0] = 0;
        assert!(read_npy_ints(&b).is_err());
    }

    #[test]
    fn signed_values_are_sign_extended() {
        let mut b = swap(write_npy_u(&[1], &[0], true), b"<u2", b"<i2");
        let n = b.len();
        b[n - 2..].copy_from_slice(&(-1i16).to_le_bytes());
        assert_eq!(read_npy_ints(&b).unwrap().data, vec![-1]);
    }
}
