//! Reading untrusted Parquet: the footer's column-chunk layout is checked against the file
//! before any page is read, and a panic inside the decoder on corrupt bytes becomes an error.

use std::panic::{AssertUnwindSafe, catch_unwind};

use arrow_array::RecordBatch;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use parquet::file::metadata::ParquetMetaData;
use parquet::file::reader::ChunkReader;

/// Opens a Parquet file's footer and checks that every column chunk it describes lies inside
/// the file. The error says what is wrong, without the file's name (the caller adds it).
pub(crate) fn open_checked<R: ChunkReader + 'static>(
    reader: R,
) -> Result<ParquetRecordBatchReaderBuilder<R>, String> {
    let file_len = reader.len();
    let builder =
        caught(|| ParquetRecordBatchReaderBuilder::try_new(reader))?.map_err(|e| e.to_string())?;
    check_layout(builder.metadata(), file_len)?;
    Ok(builder)
}

/// Every row group has a non-negative row count and every column chunk a start and a length
/// that are non-negative and end inside the file's `file_len` bytes.
pub(crate) fn check_layout(meta: &ParquetMetaData, file_len: u64) -> Result<(), String> {
    for (g, rg) in meta.row_groups().iter().enumerate() {
        if rg.num_rows() < 0 {
            return Err(format!(
                "row group {}: negative row count {}",
                g + 1,
                rg.num_rows()
            ));
        }
        for c in rg.columns() {
            let start = c.dictionary_page_offset().unwrap_or(c.data_page_offset());
            let len = c.compressed_size();
            let end = (start >= 0 && len >= 0)
                .then(|| (start as u64).checked_add(len as u64))
                .flatten();
            if !matches!(end, Some(end) if end <= file_len) {
                return Err(format!(
                    "row group {}, column `{}`: chunk of {len} bytes at offset {start} lies \
                     outside the file ({file_len} bytes)",
                    g + 1,
                    c.column_path()
                ));
            }
        }
    }
    Ok(())
}

/// The record batches of `builder`; a decoder panic ends the stream with an error.
pub(crate) fn batches<R: ChunkReader + 'static>(
    builder: ParquetRecordBatchReaderBuilder<R>,
) -> Result<Batches, String> {
    let reader = caught(|| builder.build())?.map_err(|e| e.to_string())?;
    Ok(Batches {
        reader,
        failed: false,
    })
}

/// Record batches whose decoding errors and panics are both errors (the stream ends after one).
pub(crate) struct Batches {
    reader: ParquetRecordBatchReader,
    failed: bool,
}

impl Iterator for Batches {
    type Item = Result<RecordBatch, String>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let next = match caught(|| self.reader.next()) {
            Ok(next) => next.map(|r| r.map_err(|e| e.to_string())),
            Err(m) => Some(Err(m)),
        };
        self.failed = matches!(next, Some(Err(_)));
        next
    }
}

/// Runs `f`, turning a panic into an error message.
fn caught<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|p| {
        let what = p
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "no message".into());
        format!("corrupt Parquet data (the decoder gave up: {what})")
    })
}
