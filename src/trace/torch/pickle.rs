//! A pickle reader for the subset `torch.save` writes, that never executes anything.
//!
//! The opcodes are those of protocols 2-5 that build plain data (see CPython's
//! `Lib/pickletools.py`); values live in an arena and memo entries are indices into it, so a
//! shared object stays shared (as in Python) and no input can make the reader copy a value twice.
//! `GLOBAL`/`STACK_GLOBAL` are accepted only for the names in [`Class`]; `REDUCE` only for
//! `torch._utils._rebuild_tensor_v2` (read as a tensor description, not called) and
//! `collections.OrderedDict` (an empty dict). Any other global is an error naming it.

use super::{DType, TorchError};

/// Index of a value in [`Pickle::nodes`].
pub type Id = usize;

/// The globals a torch file may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// `torch._utils._rebuild_tensor_v2`.
    RebuildTensorV2,
    /// `collections.OrderedDict`.
    OrderedDict,
    /// `torch.<Type>Storage` of a supported element type.
    Storage(DType),
}

/// Where a tensor's elements are: storage `key` of the archive, element `offset`, `shape`, `stride`.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorRef {
    /// Element type of the storage.
    pub dtype: DType,
    /// Name of the storage record (`data/<key>` in the archive).
    pub key: String,
    /// Elements the storage holds, as the pickle states.
    pub storage_numel: u64,
    /// First element of the tensor within the storage.
    pub offset: u64,
    /// Size of each dimension.
    pub shape: Vec<u64>,
    /// Stride of each dimension, in elements.
    pub stride: Vec<u64>,
}

/// One unpickled value.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    List(Vec<Id>),
    Tuple(Vec<Id>),
    /// Key/value pairs in insertion order (a later equal key is kept as a second pair).
    Dict(Vec<(Id, Id)>),
    Class(Class),
    /// A persistent id `('storage', class, key, location, numel)`, any location.
    Storage {
        dtype: DType,
        key: String,
        numel: u64,
    },
    Tensor(TensorRef),
}

/// An unpickled file: the arena and its root value.
#[derive(Debug, Clone)]
pub struct Pickle {
    /// Every value built, referenced by index.
    pub nodes: Vec<Node>,
    /// The value `STOP` returned.
    pub root: Id,
}

/// Most values one pickle may create (a bound on memory for hostile input).
const MAX_NODES: usize = 1 << 26;

#[derive(Clone, Copy)]
enum Slot {
    Mark,
    Val(Id),
}

struct Vm<'a> {
    data: &'a [u8],
    pos: usize,
    /// Offset of the opcode being run (for errors).
    at: usize,
    nodes: Vec<Node>,
    stack: Vec<Slot>,
    memo: std::collections::HashMap<u32, Id>,
}

/// Unpickles `data` (a `data.pkl` record).
pub fn read(data: &[u8]) -> Result<Pickle, TorchError> {
    let mut vm = Vm {
        data,
        pos: 0,
        at: 0,
        nodes: Vec::new(),
        stack: Vec::new(),
        memo: Default::default(),
    };
    let root = vm.run()?;
    Ok(Pickle {
        nodes: vm.nodes,
        root,
    })
}

impl Vm<'_> {
    fn err(&self, msg: impl std::fmt::Display) -> TorchError {
        TorchError::Pickle {
            offset: self.at,
            message: msg.to_string(),
        }
    }

    fn take(&mut self, n: usize) -> Result<&[u8], TorchError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.data.len())
            .ok_or_else(|| self.err(format!("truncated: {n} more bytes expected")))?;
        let s = &self.data[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8, TorchError> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32, TorchError> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().unwrap()))
    }

    fn u64(&mut self) -> Result<u64, TorchError> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().unwrap()))
    }

    fn line(&mut self) -> Result<String, TorchError> {
        let rest = &self.data[self.pos..];
        let n = memchr::memchr(b'\n', rest).ok_or_else(|| self.err("unterminated line"))?;
        let s = std::str::from_utf8(&rest[..n])
            .map_err(|_| self.err("line is not UTF-8"))?
            .to_string();
        self.pos += n + 1;
        Ok(s)
    }

    fn utf8(&mut self, n: usize) -> Result<String, TorchError> {
        let b = self.take(n)?;
        match std::str::from_utf8(b) {
            Ok(s) => Ok(s.to_string()),
            Err(_) => Err(self.err("string is not UTF-8")),
        }
    }

    fn len64(&mut self) -> Result<usize, TorchError> {
        let n = self.u64()?;
        usize::try_from(n).map_err(|_| self.err(format!("length {n} too large")))
    }

    fn push(&mut self, n: Node) -> Result<(), TorchError> {
        if self.nodes.len() >= MAX_NODES {
            return Err(self.err(format!("more than {MAX_NODES} values")));
        }
        self.nodes.push(n);
        self.stack.push(Slot::Val(self.nodes.len() - 1));
        Ok(())
    }

    fn pop(&mut self) -> Result<Id, TorchError> {
        match self.stack.pop() {
            Some(Slot::Val(id)) => Ok(id),
            Some(Slot::Mark) => Err(self.err("unexpected mark on the stack")),
            None => Err(self.err("stack underflow")),
        }
    }

    fn top(&self) -> Result<Id, TorchError> {
        match self.stack.last() {
            Some(Slot::Val(id)) => Ok(*id),
            _ => Err(self.err("no value on the stack")),
        }
    }

    fn pop_mark(&mut self) -> Result<Vec<Id>, TorchError> {
        let m = self
            .stack
            .iter()
            .rposition(|s| matches!(s, Slot::Mark))
            .ok_or_else(|| self.err("no mark on the stack"))?;
        let items = self.stack[m + 1..]
            .iter()
            .map(|s| match s {
                Slot::Val(id) => *id,
                Slot::Mark => unreachable!(),
            })
            .collect();
        self.stack.truncate(m);
        Ok(items)
    }

    fn global(&mut self, module: &str, name: &str) -> Result<(), TorchError> {
        let class = match (module, name) {
            ("torch._utils", "_rebuild_tensor_v2") => Class::RebuildTensorV2,
            ("collections", "OrderedDict") => Class::OrderedDict,
            ("torch", storage) => match DType::from_storage(storage) {
                Some(d) => Class::Storage(d),
                None => {
                    return Err(self.err(format!(
                        "global torch.{storage} is not supported (storages: IntStorage, \
                         LongStorage, FloatStorage, BFloat16Storage)"
                    )));
                }
            },
            _ => return Err(self.err(format!("global {module}.{name} is not allowed"))),
        };
        self.push(Node::Class(class))
    }

    fn memo_get(&mut self, k: u32) -> Result<(), TorchError> {
        let id = *self
            .memo
            .get(&k)
            .ok_or_else(|| self.err(format!("memo key {k} not set")))?;
        self.stack.push(Slot::Val(id));
        Ok(())
    }

    fn memo_put(&mut self, k: u32) -> Result<(), TorchError> {
        let id = self.top()?;
        self.memo.insert(k, id);
        Ok(())
    }

    fn str_of(&self, id: Id, what: &str) -> Result<String, TorchError> {
        match &self.nodes[id] {
            Node::Str(s) => Ok(s.clone()),
            other => Err(self.err(format!("{what}: expected a string, found {other:?}"))),
        }
    }

    fn uint_of(&self, id: Id, what: &str) -> Result<u64, TorchError> {
        match self.nodes[id] {
            Node::Int(i) if i >= 0 => Ok(i as u64),
            ref other => Err(self.err(format!(
                "{what}: expected a non-negative int, found {other:?}"
            ))),
        }
    }

    fn uints_of(&self, id: Id, what: &str) -> Result<Vec<u64>, TorchError> {
        match &self.nodes[id] {
            Node::Tuple(v) | Node::List(v) => v.iter().map(|&i| self.uint_of(i, what)).collect(),
            other => Err(self.err(format!("{what}: expected a tuple, found {other:?}"))),
        }
    }

    /// `BINPERSID`: torch's `('storage', storage_type, key, location, numel)`.
    fn persistent(&mut self, pid: Id) -> Result<(), TorchError> {
        let Node::Tuple(t) = &self.nodes[pid] else {
            return Err(self.err("persistent id is not a tuple"));
        };
        let t = t.clone();
        if t.len() != 5 || self.str_of(t[0], "persistent id")? != "storage" {
            return Err(self.err("persistent id is not ('storage', type, key, location, numel)"));
        }
        let Node::Class(Class::Storage(dtype)) = self.nodes[t[1]] else {
            return Err(self.err("persistent id: storage type is not a torch storage class"));
        };
        let key = self.str_of(t[2], "storage key")?;
        // t[3] is the location ('cpu', 'cuda:0', ...): every location is read the same way.
        self.str_of(t[3], "storage location")?;
        let numel = self.uint_of(t[4], "storage size")?;
        self.push(Node::Storage { dtype, key, numel })
    }

    /// `REDUCE` of an allowed callable.
    fn reduce(&mut self, callable: Id, args: Id) -> Result<(), TorchError> {
        let Node::Tuple(a) = &self.nodes[args] else {
            return Err(self.err("REDUCE arguments are not a tuple"));
        };
        let a = a.clone();
        match self.nodes[callable] {
            Node::Class(Class::OrderedDict) if a.is_empty() => self.push(Node::Dict(Vec::new())),
            Node::Class(Class::RebuildTensorV2) => {
                // torch/_utils.py: _rebuild_tensor_v2(storage, storage_offset, size, stride,
                // requires_grad, backward_hooks, metadata=None)
                if !(6..=7).contains(&a.len()) {
                    return Err(self.err(format!(
                        "_rebuild_tensor_v2 takes 6 or 7 arguments, got {}",
                        a.len()
                    )));
                }
                let Node::Storage { dtype, key, numel } = self.nodes[a[0]].clone() else {
                    return Err(self.err("_rebuild_tensor_v2: first argument is not a storage"));
                };
                let offset = self.uint_of(a[1], "storage offset")?;
                let shape = self.uints_of(a[2], "size")?;
                let stride = self.uints_of(a[3], "stride")?;
                if shape.len() != stride.len() {
                    return Err(self.err("size and stride differ in length"));
                }
                self.push(Node::Tensor(TensorRef {
                    dtype,
                    key,
                    storage_numel: numel,
                    offset,
                    shape,
                    stride,
                }))
            }
            ref other => Err(self.err(format!("REDUCE of {other:?} is not allowed"))),
        }
    }

    fn run(&mut self) -> Result<Id, TorchError> {
        loop {
            self.at = self.pos;
            let op = self.u8()?;
            match op {
                0x80 => {
                    // PROTO
                    let v = self.u8()?;
                    if v > 5 {
                        return Err(self.err(format!("pickle protocol {v} is not supported")));
                    }
                }
                0x95 => {
                    // FRAME: a length prefix only.
                    self.u64()?;
                }
                b'.' => return self.pop(),
                b'(' => self.stack.push(Slot::Mark),
                b'N' => self.push(Node::None)?,
                0x88 => self.push(Node::Bool(true))?,
                0x89 => self.push(Node::Bool(false))?,
                b'J' => {
                    let v = i32::from_le_bytes(self.take(4)?.try_into().unwrap());
                    self.push(Node::Int(v as i64))?
                }
                b'K' => {
                    let v = self.u8()?;
                    self.push(Node::Int(v as i64))?
                }
                b'M' => {
                    let v = u16::from_le_bytes(self.take(2)?.try_into().unwrap());
                    self.push(Node::Int(v as i64))?
                }
                0x8a => {
                    // LONG1: little-endian two's complement of n bytes.
                    let n = self.u8()? as usize;
                    let b = self.take(n)?;
                    if n > 8 {
                        return Err(self.err(format!("integer of {n} bytes does not fit in i64")));
                    }
                    let mut buf = if b.last().is_some_and(|&x| x & 0x80 != 0) {
                        [0xffu8; 8]
                    } else {
                        [0u8; 8]
                    };
                    buf[..n].copy_from_slice(b);
                    self.push(Node::Int(i64::from_le_bytes(buf)))?
                }
                b'G' => {
                    let v = f64::from_be_bytes(self.take(8)?.try_into().unwrap());
                    self.push(Node::Float(v))?
                }
                b'X' => {
                    let n = self.u32()? as usize;
                    let s = self.utf8(n)?;
                    self.push(Node::Str(s))?
                }
                0x8c => {
                    let n = self.u8()? as usize;
                    let s = self.utf8(n)?;
                    self.push(Node::Str(s))?
                }
                0x8d => {
                    let n = self.len64()?;
                    let s = self.utf8(n)?;
                    self.push(Node::Str(s))?
                }
                b'U' => {
                    // SHORT_BINSTRING (protocol < 3 str): read as text.
                    let n = self.u8()? as usize;
                    let s = self.utf8(n)?;
                    self.push(Node::Str(s))?
                }
                b'T' => {
                    let n = self.u32()? as usize;
                    let s = self.utf8(n)?;
                    self.push(Node::Str(s))?
                }
                b'C' => {
                    let n = self.u8()? as usize;
                    let b = self.take(n)?.to_vec();
                    self.push(Node::Bytes(b))?
                }
                b'B' => {
                    let n = self.u32()? as usize;
                    let b = self.take(n)?.to_vec();
                    self.push(Node::Bytes(b))?
                }
                b'}' => self.push(Node::Dict(Vec::new()))?,
                b']' => self.push(Node::List(Vec::new()))?,
                b')' => self.push(Node::Tuple(Vec::new()))?,
                b't' => {
                    let items = self.pop_mark()?;
                    self.push(Node::Tuple(items))?
                }
                0x85..=0x87 => {
                    let n = (op - 0x84) as usize;
                    let mut items = Vec::with_capacity(n);
                    for _ in 0..n {
                        items.push(self.pop()?);
                    }
                    items.reverse();
                    self.push(Node::Tuple(items))?
                }
                b'l' => {
                    let items = self.pop_mark()?;
                    self.push(Node::List(items))?
                }
                b'd' => {
                    let items = self.pop_mark()?;
                    let pairs = self.pairs(items)?;
                    self.push(Node::Dict(pairs))?
                }
                b'a' => {
                    let v = self.pop()?;
                    let l = self.top()?;
                    self.extend_list(l, vec![v])?;
                }
                b'e' => {
                    let items = self.pop_mark()?;
                    let l = self.top()?;
                    self.extend_list(l, items)?;
                }
                b's' => {
                    let v = self.pop()?;
                    let k = self.pop()?;
                    let d = self.top()?;
                    self.extend_dict(d, vec![(k, v)])?;
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    let pairs = self.pairs(items)?;
                    let d = self.top()?;
                    self.extend_dict(d, pairs)?;
                }
                b'q' => {
                    let k = self.u8()? as u32;
                    self.memo_put(k)?
                }
                b'r' => {
                    let k = self.u32()?;
                    self.memo_put(k)?
                }
                0x94 => {
                    // MEMOIZE
                    let k = self.memo.len() as u32;
                    self.memo_put(k)?
                }
                b'h' => {
                    let k = self.u8()? as u32;
                    self.memo_get(k)?
                }
                b'j' => {
                    let k = self.u32()?;
                    self.memo_get(k)?
                }
                b'c' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    self.global(&module, &name)?
                }
                0x93 => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    let (m, n) = (self.str_of(module, "module")?, self.str_of(name, "name")?);
                    self.global(&m, &n)?
                }
                b'Q' => {
                    let pid = self.pop()?;
                    self.persistent(pid)?
                }
                b'R' => {
                    let args = self.pop()?;
                    let callable = self.pop()?;
                    self.reduce(callable, args)?
                }
                b'0' => {
                    self.pop()?;
                }
                other => {
                    return Err(self.err(format!("opcode 0x{other:02x} is not supported")));
                }
            }
        }
    }

    fn pairs(&self, items: Vec<Id>) -> Result<Vec<(Id, Id)>, TorchError> {
        if !items.len().is_multiple_of(2) {
            return Err(self.err("odd number of items for a dict"));
        }
        Ok(items.chunks_exact(2).map(|p| (p[0], p[1])).collect())
    }

    fn extend_list(&mut self, l: Id, items: Vec<Id>) -> Result<(), TorchError> {
        match &mut self.nodes[l] {
            Node::List(v) => {
                v.extend(items);
                Ok(())
            }
            _ => Err(self.err("APPEND to a value that is not a list")),
        }
    }

    fn extend_dict(&mut self, d: Id, pairs: Vec<(Id, Id)>) -> Result<(), TorchError> {
        match &mut self.nodes[d] {
            Node::Dict(v) => {
                v.extend(pairs);
                Ok(())
            }
            _ => Err(self.err("SETITEM on a value that is not a dict")),
        }
    }
}
