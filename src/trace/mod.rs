//! Routing traces: the in-memory model, validation, and the importers/exporters of each format.

mod builder;
mod error;
pub mod esft;
mod format;
pub mod jsonl;
mod model;
pub mod npy;
pub mod parquet;
pub mod routed;
pub mod sample;
pub mod sglang;
mod shape;
pub mod torch;

pub use builder::TraceBuilder;
pub use error::{Defect, TraceError};
pub use format::{Format, TraceFormat, read_trace, write_trace};
pub use model::{Trace, dequantize_weight, quantize_weight};
pub use shape::{
    MAX_EXPERTS, MAX_LAYER_EXPERTS, MAX_MOE_LAYERS, MAX_PAIR_ENTRIES, MAX_TOP_K, ModelShape,
};
