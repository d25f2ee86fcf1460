//! Fuzzes the torch.save reader: any bytes, as a whole archive and as the `data.pkl` of a valid
//! archive, must give a value or an error, never a panic, and reading every tensor it describes
//! must stay inside its storage.
#![no_main]

use std::io::Write;

use libfuzzer_sys::fuzz_target;
use moeplan::trace::torch::{Node, TorchFile};

fn read_all(f: &TorchFile) {
    for n in &f.pickle.nodes {
        if let Node::Tensor(t) = n {
            let _ = f.tensor(t);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(f) = TorchFile::from_bytes(data) {
        read_all(&f);
    }
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let o = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Stored);
    zip.start_file("a/data.pkl", o).unwrap();
    zip.write_all(data).unwrap();
    zip.start_file("a/data/0", o).unwrap();
    zip.write_all(&[7u8; 256]).unwrap();
    let bytes = zip.finish().unwrap().into_inner();
    if let Ok(f) = TorchFile::from_bytes(&bytes) {
        read_all(&f);
    }
});
