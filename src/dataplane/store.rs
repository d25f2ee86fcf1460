//! [`ExpertStore`]: the routed experts' weights, memory-mapped from one safetensors file, with
//! the byte ranges of each expert's projections (DeepSeek's tensor names).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use memmap2::Mmap;
use safetensors::SafeTensors;
use safetensors::tensor::Dtype;

use super::DataPlaneError;

/// The projections of one SwiGLU expert, in slot order: `gate_proj` and `up_proj` are
/// `[ffn, hidden]`, `down_proj` is `[hidden, ffn]`.
pub const PROJECTIONS: [&str; 3] = ["gate_proj", "up_proj", "down_proj"];

/// The tensor name of projection `proj` of routed expert `expert` in decoder layer
/// `model_layer` (DeepSeek-V2's naming).
pub fn expert_tensor_name(model_layer: usize, expert: usize, proj: &str) -> String {
    format!("model.layers.{model_layer}.mlp.experts.{expert}.{proj}.weight")
}

/// Routed experts memory-mapped from a safetensors file (f32, one tensor per projection).
#[derive(Debug, Clone)]
pub struct ExpertStore {
    /// The file.
    path: PathBuf,
    /// The mapping (shared with the copy thread).
    map: Arc<Mmap>,
    /// MoE layers.
    layers: usize,
    /// Experts per layer.
    experts: usize,
    /// Per expert (`layer * experts + expert`), the file offset of each projection.
    offsets: Vec<[usize; 3]>,
    /// Bytes of each projection (the same for every expert).
    sizes: [usize; 3],
}

impl ExpertStore {
    /// Maps `path` and indexes the `layers` x `experts` routed experts of decoder layers
    /// `first_layer..first_layer + layers`. Every projection must be f32 and shaped as the
    /// first expert's.
    pub fn open(
        path: &Path,
        first_layer: usize,
        layers: usize,
        experts: usize,
    ) -> Result<ExpertStore, DataPlaneError> {
        let io = |source| DataPlaneError::Io {
            path: path.into(),
            source,
        };
        let bad = |message: String| DataPlaneError::Store {
            path: path.into(),
            message,
        };
        let file = std::fs::File::open(path).map_err(io)?;
        // SAFETY: the file is opened read-only and not modified while mapped (the model
        // directory is written once by `moeplan model init`).
        let map = unsafe { Mmap::map(&file) }.map_err(io)?;
        let st =
            SafeTensors::deserialize(&map).map_err(|e| bad(format!("not safetensors: {e}")))?;
        let base = map.as_ptr() as usize;
        let mut offsets = Vec::with_capacity(layers * experts);
        let mut sizes = [0usize; 3];
        let mut shapes: [Vec<usize>; 3] = Default::default();
        for l in 0..layers {
            for e in 0..experts {
                let mut off = [0usize; 3];
                for (i, proj) in PROJECTIONS.iter().enumerate() {
                    let name = expert_tensor_name(first_layer + l, e, proj);
                    let v = st
                        .tensor(&name)
                        .map_err(|_| bad(format!("tensor {name} missing")))?;
                    if v.dtype() != Dtype::F32 {
                        return Err(bad(format!(
                            "tensor {name}: dtype {:?}, expected F32",
                            v.dtype()
                        )));
                    }
                    if l == 0 && e == 0 {
                        shapes[i] = v.shape().to_vec();
                        sizes[i] = v.data().len();
                    } else if v.shape() != shapes[i].as_slice() {
                        return Err(bad(format!(
                            "tensor {name}: shape {:?}, expected {:?} (as expert 0 of the first layer)",
                            v.shape(),
                            shapes[i]
                        )));
                    }
                    off[i] = v.data().as_ptr() as usize - base;
                }
                offsets.push(off);
            }
        }
        if sizes.contains(&0) {
            return Err(bad("experts have empty projections".into()));
        }
        Ok(ExpertStore {
            path: path.into(),
            map: Arc::new(map),
            layers,
            experts,
            offsets,
            sizes,
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// MoE layers.
    pub fn layers(&self) -> usize {
        self.layers
    }

    /// Experts per layer.
    pub fn experts(&self) -> usize {
        self.experts
    }

    /// Bytes of one expert (its three projections, back to back in a slot).
    pub fn expert_bytes(&self) -> usize {
        self.sizes.iter().sum()
    }

    /// Bytes of each projection, in [`PROJECTIONS`] order.
    pub fn projection_bytes(&self) -> [usize; 3] {
        self.sizes
    }

    /// Checks (layer, expert) and returns its index.
    pub(super) fn index(&self, layer: u16, expert: u16) -> Result<usize, DataPlaneError> {
        if layer as usize >= self.layers || expert as usize >= self.experts {
            return Err(DataPlaneError::Expert {
                layer,
                expert,
                layers: self.layers,
                experts: self.experts,
            });
        }
        Ok(layer as usize * self.experts + expert as usize)
    }

    /// Copies expert `index`'s projections back to back into `dst` (`expert_bytes` long).
    pub(super) fn copy_into(&self, index: usize, dst: &mut [u8]) {
        let mut at = 0;
        for (off, &n) in self.offsets[index].iter().zip(&self.sizes) {
            dst[at..at + n].copy_from_slice(&self.map[*off..*off + n]);
            at += n;
        }
    }

    /// The whole expert `index`, as the three projection slices.
    pub fn projections(&self, index: usize) -> [&[u8]; 3] {
        let o = &self.offsets[index];
        let s = &self.sizes;
        [
            &self.map[o[0]..o[0] + s[0]],
            &self.map[o[1]..o[1] + s[1]],
            &self.map[o[2]..o[2] + s[2]],
        ]
    }
}
