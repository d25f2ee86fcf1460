//! Reading and writing `torch.save` files without torch and without executing anything.
//!
//! Layout (torch/serialization.py, `_save` and `_load`): a zip archive whose entries share one
//! top-level folder (`archive/` by default): `data.pkl` (the pickled object, tensors replaced by
//! persistent ids naming storages), `data/<key>` (the raw little-endian bytes of each storage),
//! `byteorder` (`little`; absent in older files, meaning little) and `version`.
//! Tensors are `torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)` calls; this
//! reader takes their arguments as a description and reads the storage bytes itself.
//!
//! No crate read these files at the time of writing: candle-core 0.11's `pickle` module has no
//! `IntStorage` and reads only flat dicts of tensors; serde-pickle has no persistent ids.

mod pickle;
mod write;

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

pub use pickle::{Class, Id, Node, Pickle, TensorRef};
pub use write::{TorchValue, write_torch};

/// Element types of the storages read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DType {
    /// `torch.int32` (`IntStorage`).
    I32,
    /// `torch.int64` (`LongStorage`).
    I64,
    /// `torch.float32` (`FloatStorage`).
    F32,
    /// `torch.bfloat16` (`BFloat16Storage`).
    BF16,
}

impl DType {
    fn from_storage(name: &str) -> Option<DType> {
        Some(match name {
            "IntStorage" => DType::I32,
            "LongStorage" => DType::I64,
            "FloatStorage" => DType::F32,
            "BFloat16Storage" => DType::BF16,
            _ => return None,
        })
    }

    /// The storage class name torch pickles (`IntStorage`).
    pub fn storage_name(self) -> &'static str {
        match self {
            DType::I32 => "IntStorage",
            DType::I64 => "LongStorage",
            DType::F32 => "FloatStorage",
            DType::BF16 => "BFloat16Storage",
        }
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            DType::I32 | DType::F32 => 4,
            DType::I64 => 8,
            DType::BF16 => 2,
        }
    }

    /// torch's name (`torch.int32`).
    pub fn torch_name(self) -> &'static str {
        match self {
            DType::I32 => "torch.int32",
            DType::I64 => "torch.int64",
            DType::F32 => "torch.float32",
            DType::BF16 => "torch.bfloat16",
        }
    }
}

/// What is wrong with a torch file.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TorchError {
    #[error("not a torch.save zip archive: {0}")]
    Archive(String),
    #[error("data.pkl at byte {offset}: {message}")]
    Pickle { offset: usize, message: String },
    #[error("tensor in storage {key:?}: {message}")]
    Tensor { key: String, message: String },
}

/// Largest archive read (a bound for hostile input; SGLang's per-token dumps are ~1 KiB a token).
pub const MAX_FILE_BYTES: u64 = 8 << 30;

/// A loaded torch file: its unpickled object and the storages it refers to.
#[derive(Debug, Clone)]
pub struct TorchFile {
    /// The unpickled values.
    pub pickle: Pickle,
    /// Storage key -> raw bytes.
    storages: HashMap<String, Vec<u8>>,
}

/// A tensor's elements, contiguous in row-major order.
#[derive(Debug, Clone, PartialEq)]
pub enum TensorData {
    I32(Vec<i32>),
    I64(Vec<i64>),
    F32(Vec<f32>),
}

/// A materialised tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    /// Element type of the storage it came from.
    pub dtype: DType,
    /// Size of each dimension.
    pub shape: Vec<usize>,
    /// Elements (bf16 is widened to f32).
    pub data: TensorData,
}

impl Tensor {
    /// Integer elements, or `None` for a float tensor.
    pub fn ints(&self) -> Option<Vec<i64>> {
        match &self.data {
            TensorData::I32(v) => Some(v.iter().map(|&x| x as i64).collect()),
            TensorData::I64(v) => Some(v.clone()),
            TensorData::F32(_) => None,
        }
    }
}

impl TorchFile {
    /// Reads the file at `path`.
    pub fn open(path: &Path) -> Result<TorchFile, std::io::Error> {
        let meta = std::fs::metadata(path)?;
        if meta.len() > MAX_FILE_BYTES {
            return Err(std::io::Error::other(format!(
                "{} bytes is more than the {MAX_FILE_BYTES} read",
                meta.len()
            )));
        }
        let bytes = std::fs::read(path)?;
        TorchFile::from_bytes(&bytes).map_err(std::io::Error::other)
    }

    /// Reads a torch file held in memory.
    pub fn from_bytes(bytes: &[u8]) -> Result<TorchFile, TorchError> {
        let arch = |e: String| TorchError::Archive(e);
        let mut zip =
            zip::ZipArchive::new(std::io::Cursor::new(bytes)).map_err(|e| arch(e.to_string()))?;
        let first = zip
            .name_for_index(0)
            .ok_or_else(|| arch("empty archive".into()))?
            .map_err(|e| arch(e.to_string()))?
            .to_string();
        let prefix = match first.find('/') {
            Some(i) => first[..=i].to_string(),
            None => return Err(arch(format!("entry {first:?} is not inside a folder"))),
        };
        let mut pkl = None;
        let mut storages = HashMap::new();
        for i in 0..zip.len() {
            let mut f = zip.by_index(i).map_err(|e| arch(e.to_string()))?;
            let full = f.name().map_err(|e| arch(e.to_string()))?.to_string();
            let Some(name) = full.strip_prefix(&prefix).map(str::to_string) else {
                continue;
            };
            let want = name == "data.pkl" || name == "byteorder" || name.starts_with("data/");
            if !want {
                continue;
            }
            if f.size() > MAX_FILE_BYTES {
                return Err(arch(format!("entry {name:?} claims {} bytes", f.size())));
            }
            let mut buf = Vec::with_capacity(f.size().min(bytes.len() as u64) as usize);
            f.read_to_end(&mut buf)
                .map_err(|e| arch(format!("entry {name:?}: {e}")))?;
            if name == "data.pkl" {
                pkl = Some(buf);
            } else if name == "byteorder" {
                if buf != b"little" {
                    return Err(arch(format!(
                        "byteorder {:?}: only little-endian files are read",
                        String::from_utf8_lossy(&buf)
                    )));
                }
            } else {
                storages.insert(name["data/".len()..].to_string(), buf);
            }
        }
        let pkl = pkl.ok_or_else(|| arch(format!("no {prefix}data.pkl entry")))?;
        let pickle = pickle::read(&pkl)?;
        Ok(TorchFile { pickle, storages })
    }

    /// The root value.
    pub fn root(&self) -> Id {
        self.pickle.root
    }

    /// The value `id`.
    pub fn node(&self, id: Id) -> &Node {
        &self.pickle.nodes[id]
    }

    /// Value of string key `key` in dict `id` (the last pair with that key), if any.
    pub fn get(&self, id: Id, key: &str) -> Option<Id> {
        match self.node(id) {
            Node::Dict(pairs) => pairs
                .iter()
                .rev()
                .find(|(k, _)| matches!(self.node(*k), Node::Str(s) if s == key))
                .map(|p| p.1),
            _ => None,
        }
    }

    /// Short description of a value's type, for errors.
    pub fn kind(&self, id: Id) -> String {
        match self.node(id) {
            Node::None => "None".into(),
            Node::Bool(_) => "a bool".into(),
            Node::Int(_) => "an int".into(),
            Node::Float(_) => "a float".into(),
            Node::Str(_) => "a string".into(),
            Node::Bytes(_) => "bytes".into(),
            Node::List(_) => "a list".into(),
            Node::Tuple(_) => "a tuple".into(),
            Node::Dict(_) => "a dict".into(),
            Node::Class(c) => format!("the class {c:?}"),
            Node::Storage { .. } => "a storage".into(),
            Node::Tensor(t) => format!("a {} tensor of shape {:?}", t.dtype.torch_name(), t.shape),
        }
    }

    /// Reads the elements of tensor value `t`, checking it lies inside its storage.
    pub fn tensor(&self, t: &TensorRef) -> Result<Tensor, TorchError> {
        let bad = |m: String| TorchError::Tensor {
            key: t.key.clone(),
            message: m,
        };
        let bytes = self
            .storages
            .get(&t.key)
            .ok_or_else(|| bad("no such storage record in the archive".into()))?;
        let es = t.dtype.size();
        let have = (bytes.len() / es) as u64;
        if bytes.len() % es != 0 || have < t.storage_numel {
            return Err(bad(format!(
                "storage holds {} bytes, pickle says {} elements of {}",
                bytes.len(),
                t.storage_numel,
                t.dtype.torch_name()
            )));
        }
        let mut numel: u64 = 1;
        let mut last: u64 = t.offset;
        for (&n, &s) in t.shape.iter().zip(&t.stride) {
            numel = numel
                .checked_mul(n)
                .ok_or_else(|| bad("size overflows".into()))?;
            if n > 0 {
                last = s
                    .checked_mul(n - 1)
                    .and_then(|x| x.checked_add(last))
                    .ok_or_else(|| bad("stride overflows".into()))?;
            }
        }
        if numel > 0 && last >= t.storage_numel {
            return Err(bad(format!(
                "shape {:?} stride {:?} offset {} reaches element {last}, storage has {}",
                t.shape, t.stride, t.offset, t.storage_numel
            )));
        }
        let shape: Vec<usize> = t.shape.iter().map(|&n| n as usize).collect();
        let idx = element_indices(t, numel as usize);
        let at = |i: u64| &bytes[i as usize * es..(i as usize + 1) * es];
        let data = match t.dtype {
            DType::I32 => TensorData::I32(
                idx.map(|i| i32::from_le_bytes(at(i).try_into().unwrap()))
                    .collect(),
            ),
            DType::I64 => TensorData::I64(
                idx.map(|i| i64::from_le_bytes(at(i).try_into().unwrap()))
                    .collect(),
            ),
            DType::F32 => TensorData::F32(
                idx.map(|i| f32::from_le_bytes(at(i).try_into().unwrap()))
                    .collect(),
            ),
            DType::BF16 => TensorData::F32(
                idx.map(|i| {
                    let h = u16::from_le_bytes(at(i).try_into().unwrap());
                    f32::from_bits((h as u32) << 16)
                })
                .collect(),
            ),
        };
        Ok(Tensor {
            dtype: t.dtype,
            shape,
            data,
        })
    }
}

/// Storage indices of a tensor's elements in row-major order (bounds checked by the caller).
fn element_indices(t: &TensorRef, numel: usize) -> impl Iterator<Item = u64> + '_ {
    let dims = t.shape.len();
    let mut counter = vec![0u64; dims];
    let mut done = numel == 0;
    std::iter::from_fn(move || {
        if done {
            return None;
        }
        let i = t.offset
            + counter
                .iter()
                .zip(&t.stride)
                .map(|(c, s)| c * s)
                .sum::<u64>();
        // Advance the odometer.
        done = true;
        for d in (0..dims).rev() {
            counter[d] += 1;
            if counter[d] < t.shape[d] {
                done = false;
                break;
            }
            counter[d] = 0;
        }
        Some(i)
    })
}

#[cfg(test)]
mod tests;
