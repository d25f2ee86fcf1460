//! The predictor file: safetensors with a JSON header (kind, shape, look-ahead, version) stored
//! under the `moeplan` metadata key. Loading checks the header and every tensor's shape.

use std::collections::HashMap;
use std::path::Path;

use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use serde::{Deserialize, Serialize};

use super::{Kind, MixWeights, PredictError};
use crate::trace::ModelShape;

/// Value of [`FileHeader::format`].
pub const FILE_FORMAT: &str = "moeplan-predictor";
/// Current file version; files of another version are refused (2: one output head per target
/// layer and more input slots in the learned model).
pub const FILE_VERSION: u32 = 2;
/// Metadata key holding the JSON header.
const HEADER_KEY: &str = "moeplan";

/// The JSON header of a predictor file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileHeader {
    /// Always [`FILE_FORMAT`].
    pub format: String,
    /// [`FILE_VERSION`] when written.
    pub version: u32,
    /// The main predictor of the file (the baselines it was built with are always included).
    pub kind: Kind,
    /// Routing shape the predictor was trained for.
    pub shape: ModelShape,
    /// Largest look-ahead h.
    pub lookahead: usize,
    /// Mix weights per look-ahead (kinds `mix` and `learned`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mix: Option<Vec<MixWeights>>,
    /// Hidden width of the learned model (kind `learned`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hidden: Option<usize>,
    /// Tokens of training data.
    pub trained_tokens: usize,
    /// Online options cross-validated on the training traces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub online: Option<super::OnlineOptions>,
}

/// Named f32 tensors: name -> (shape, values).
pub(super) type Tensors = HashMap<String, (Vec<usize>, Vec<f32>)>;

fn bad(path: &Path, reason: impl Into<String>) -> PredictError {
    PredictError::BadFile {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Writes `tensors` (f32, row-major) and the header to `path`.
pub(super) fn write(
    path: &Path,
    header: &FileHeader,
    tensors: &[(String, Vec<usize>, &[f32])],
) -> Result<(), PredictError> {
    let bytes: Vec<Vec<u8>> = tensors
        .iter()
        .map(|(_, _, v)| v.iter().flat_map(|x| x.to_le_bytes()).collect())
        .collect();
    let views = tensors
        .iter()
        .zip(&bytes)
        .map(|((name, shape, _), b)| {
            TensorView::new(Dtype::F32, shape.clone(), b)
                .map(|v| (name.clone(), v))
                .map_err(|e| bad(path, format!("tensor {name}: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let json = serde_json::to_string(header).expect("header serialises");
    let meta = HashMap::from([(HEADER_KEY.to_string(), json)]);
    let data = safetensors::serialize(views, Some(meta)).map_err(|e| bad(path, e.to_string()))?;
    crate::util::atomic_write_bytes(path, &data).map_err(|error| PredictError::Write {
        path: path.to_path_buf(),
        error,
    })
}

/// Reads and checks a predictor file: header format and version, f32 tensors.
pub(super) fn read(path: &Path) -> Result<(FileHeader, Tensors), PredictError> {
    let data = std::fs::read(path).map_err(|error| PredictError::Io {
        path: path.to_path_buf(),
        error,
    })?;
    let (_, meta) = SafeTensors::read_metadata(&data).map_err(|e| bad(path, e.to_string()))?;
    let json = meta
        .metadata()
        .as_ref()
        .and_then(|m| m.get(HEADER_KEY))
        .ok_or_else(|| bad(path, format!("no `{HEADER_KEY}` header in the metadata")))?;
    let header: FileHeader =
        serde_json::from_str(json).map_err(|e| bad(path, format!("header: {e}")))?;
    if header.format != FILE_FORMAT {
        return Err(bad(
            path,
            format!("format is {:?}, not {FILE_FORMAT:?}", header.format),
        ));
    }
    if header.version != FILE_VERSION {
        return Err(bad(
            path,
            format!(
                "version {} (this build reads {FILE_VERSION})",
                header.version
            ),
        ));
    }
    header
        .shape
        .check()
        .map_err(|m| bad(path, format!("shape: {m}")))?;
    let st = SafeTensors::deserialize(&data).map_err(|e| bad(path, e.to_string()))?;
    let mut tensors = Tensors::new();
    for (name, view) in st.iter() {
        if view.dtype() != Dtype::F32 {
            return Err(bad(
                path,
                format!("tensor {name} is {:?}, not F32", view.dtype()),
            ));
        }
        let values = view
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        tensors.insert(name.to_string(), (view.shape().to_vec(), values));
    }
    Ok((header, tensors))
}

/// Takes tensor `name` out of `tensors`, checking its shape.
pub(super) fn take(
    path: &Path,
    tensors: &mut Tensors,
    name: &str,
    shape: &[usize],
) -> Result<Vec<f32>, PredictError> {
    let (s, v) = tensors
        .remove(name)
        .ok_or_else(|| bad(path, format!("missing tensor {name}")))?;
    if s != shape {
        return Err(bad(
            path,
            format!("tensor {name} has shape {s:?}, expected {shape:?}"),
        ));
    }
    if v.iter().any(|x| !x.is_finite()) {
        return Err(bad(path, format!("tensor {name} holds a non-finite value")));
    }
    Ok(v)
}
