//! Fuzzes the JSONL and Parquet trace readers, headers and shape metadata included: any bytes,
//! read as a `.jsonl` and as a `.parquet` file, must give a trace or an error, never a panic or
//! an abort (a header that lies about the shape must not size an allocation).
#![no_main]

use libfuzzer_sys::fuzz_target;
use moeplan::trace::{Format, read_trace};

fuzz_target!(|data: &[u8]| {
    let dir = std::env::temp_dir().join(format!("moeplan-fuzz-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    for (name, format) in [("t.jsonl", Format::Jsonl), ("t.parquet", Format::Parquet)] {
        let path = dir.join(name);
        std::fs::write(&path, data).unwrap();
        if let Ok(t) = read_trace(&path, Some(format), None) {
            assert!(t.num_tokens() > 0, "a trace read has tokens");
            assert!(t.shape().check().is_ok(), "a trace read has a valid shape");
        }
    }
});
