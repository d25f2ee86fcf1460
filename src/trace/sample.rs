//! The demo's sample trace (`traces/sample.parquet`), embedded in the binary so that
//! `moeplan demo` runs wherever the binary is copied.

use std::path::Path;

use super::{Trace, TraceError, parquet::read_parquet};

/// The path the sample is shipped at in the source tree; also the name it is given on the
/// command line (a file there, if any, is read instead).
pub const SAMPLE_TRACE: &str = "traces/sample.parquet";

/// The sample's bytes, as shipped.
pub const SAMPLE_PARQUET: &[u8] = include_bytes!("../../traces/sample.parquet");

/// Reads the embedded sample trace.
pub fn sample() -> Result<Trace, TraceError> {
    read_parquet(
        bytes::Bytes::from_static(SAMPLE_PARQUET),
        Path::new("built-in traces/sample.parquet"),
        None,
    )
}

/// Whether [`read_or_sample`] reads the embedded sample for `path`.
pub fn uses_embedded(path: &Path) -> bool {
    path == Path::new(SAMPLE_TRACE) && !path.exists()
}

/// Reads `path`, or the embedded sample when `path` is the sample's shipped path and no file
/// is there (a binary run outside the source tree).
pub fn read_or_sample(path: &Path) -> Result<Trace, TraceError> {
    if uses_embedded(path) {
        return sample();
    }
    super::read_trace(path, None, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_sample_reads_like_the_file() {
        let embedded = sample().unwrap();
        // `cargo test` runs unit tests in the package root, where the file is shipped.
        let file = super::super::read_trace(Path::new(SAMPLE_TRACE), None, None).unwrap();
        assert_eq!(embedded.num_tokens(), file.num_tokens());
        assert_eq!(embedded.num_sequences(), file.num_sequences());
        assert_eq!(embedded.token_experts(7), file.token_experts(7));
    }
}
