//! Writes `torch.save`-compatible files that `torch.load(..., weights_only=True)` accepts.
//!
//! The pickle is protocol 2 with the same opcodes torch's `_save` emits (torch/serialization.py):
//! each tensor is `_rebuild_tensor_v2(persistent_id, 0, size, stride, False, OrderedDict())`
//! with `persistent_id = ('storage', torch.<Type>Storage, key, 'cpu', numel)`; every global used
//! is on `torch._weights_only_unpickler`'s allow list. Storages are stored uncompressed and
//! 64-byte aligned, as torch writes them.

use std::io::Write;
use std::path::Path;

use super::{DType, Tensor, TensorData};

/// A value to write.
#[derive(Debug, Clone, PartialEq)]
pub enum TorchValue {
    None,
    Int(i64),
    Float(f64),
    Str(String),
    List(Vec<TorchValue>),
    /// String-keyed dict, written in this order.
    Dict(Vec<(String, TorchValue)>),
    Tensor(Tensor),
}

struct Pickler {
    out: Vec<u8>,
    storages: Vec<Vec<u8>>,
}

impl Pickler {
    fn str(&mut self, s: &str) {
        self.out.push(b'X');
        self.out.extend((s.len() as u32).to_le_bytes());
        self.out.extend(s.as_bytes());
    }

    fn int(&mut self, v: i64) {
        if (0..256).contains(&v) {
            self.out.extend([b'K', v as u8]);
        } else if (0..65536).contains(&v) {
            self.out.push(b'M');
            self.out.extend((v as u16).to_le_bytes());
        } else if i32::try_from(v).is_ok() {
            self.out.push(b'J');
            self.out.extend((v as i32).to_le_bytes());
        } else {
            self.out.extend([0x8a, 8]);
            self.out.extend(v.to_le_bytes());
        }
    }

    fn tuple(&mut self, items: &[u64]) {
        self.out.push(b'(');
        for &i in items {
            self.int(i as i64);
        }
        self.out.push(b't');
    }

    fn value(&mut self, v: &TorchValue) {
        match v {
            TorchValue::None => self.out.push(b'N'),
            TorchValue::Int(i) => self.int(*i),
            TorchValue::Float(f) => {
                self.out.push(b'G');
                self.out.extend(f.to_be_bytes());
            }
            TorchValue::Str(s) => self.str(s),
            TorchValue::List(items) => {
                self.out.extend([b']', b'(']);
                for i in items {
                    self.value(i);
                }
                self.out.push(b'e');
            }
            TorchValue::Dict(pairs) => {
                self.out.extend([b'}', b'(']);
                for (k, v) in pairs {
                    self.str(k);
                    self.value(v);
                }
                self.out.push(b'u');
            }
            TorchValue::Tensor(t) => self.tensor(t),
        }
    }

    fn tensor(&mut self, t: &Tensor) {
        let (bytes, dtype): (Vec<u8>, DType) = match &t.data {
            TensorData::I32(v) => (v.iter().flat_map(|x| x.to_le_bytes()).collect(), DType::I32),
            TensorData::I64(v) => (v.iter().flat_map(|x| x.to_le_bytes()).collect(), DType::I64),
            TensorData::F32(v) => (v.iter().flat_map(|x| x.to_le_bytes()).collect(), DType::F32),
        };
        let numel = (bytes.len() / dtype.size()) as u64;
        let key = self.storages.len().to_string();
        self.storages.push(bytes);
        self.out.extend(b"ctorch._utils\n_rebuild_tensor_v2\n");
        self.out.push(b'(');
        // persistent id
        self.out.push(b'(');
        self.str("storage");
        self.out
            .extend(format!("ctorch\n{}\n", dtype.storage_name()).as_bytes());
        self.str(&key);
        self.str("cpu");
        self.int(numel as i64);
        self.out.extend([b't', b'Q']);
        self.int(0);
        let shape: Vec<u64> = t.shape.iter().map(|&n| n as u64).collect();
        let mut stride = vec![1u64; shape.len()];
        for d in (0..shape.len().saturating_sub(1)).rev() {
            stride[d] = stride[d + 1] * shape[d + 1].max(1);
        }
        self.tuple(&shape);
        self.tuple(&stride);
        self.out.push(0x89); // requires_grad = False
        self.out.extend(b"ccollections\nOrderedDict\n)R");
        self.out.extend([b't', b'R']);
    }
}

/// Writes `value` to `path` as torch.save would (archive folder `archive/`), atomically.
pub fn write_torch(path: &Path, value: &TorchValue) -> std::io::Result<()> {
    let mut p = Pickler {
        out: vec![0x80, 2],
        storages: Vec::new(),
    };
    p.value(value);
    p.out.push(b'.');
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Stored)
        .with_alignment(64);
    let mut entry = |name: &str, data: &[u8]| -> std::io::Result<()> {
        zip.start_file(format!("archive/{name}"), opts)
            .map_err(std::io::Error::other)?;
        zip.write_all(data)
    };
    entry("data.pkl", &p.out)?;
    entry("byteorder", b"little")?;
    for (i, s) in p.storages.iter().enumerate() {
        entry(&format!("data/{i}"), s)?;
    }
    entry("version", b"3\n")?;
    let bytes = zip.finish().map_err(std::io::Error::other)?.into_inner();
    crate::util::atomic_write_bytes(path, &bytes)
}
