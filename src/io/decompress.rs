//! Opens a file for reading, decompressing gzip or zstd by its magic bytes.
//!
//! The content decides, not the name: a `.jsonl` that is really gzip is read
//! as gzip, and a `.gz` that is not gzip is an error that says so.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

const GZIP: [u8; 2] = [0x1f, 0x8b];
const ZSTD: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// Opens `path`, returning a reader of its decompressed bytes.
pub fn open(path: &Path) -> Result<Box<dyn Read + Send>, String> {
    let mut f = File::open(path).map_err(|e| format!("cannot open: {e}"))?;
    let mut magic = [0u8; 4];
    let mut n = 0;
    while n < 4 {
        match f.read(&mut magic[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("cannot read: {e}")),
        }
    }
    let head = magic[..n].to_vec();
    let chained = std::io::Cursor::new(head.clone()).chain(f);
    let name = path.to_string_lossy().to_ascii_lowercase();
    if head.starts_with(&GZIP) {
        Ok(Box::new(flate2::read::MultiGzDecoder::new(BufReader::with_capacity(
            1 << 20,
            chained,
        ))))
    } else if head.starts_with(&ZSTD) {
        let d = zstd::stream::read::Decoder::new(chained).map_err(|e| format!("cannot start zstd: {e}"))?;
        Ok(Box::new(d))
    } else if head.is_empty() {
        // An empty file is empty whatever its name says.
        Ok(Box::new(chained))
    } else if name.ends_with(".gz") {
        // The bytes go after a colon so that reject reasons group by the message.
        Err(format!(
            "the name says gzip, but the file does not start with gzip's magic bytes: it starts with {head:02x?}"
        ))
    } else if name.ends_with(".zst") || name.ends_with(".zstd") {
        Err(format!(
            "the name says zstd, but the file does not start with zstd's magic bytes: it starts with {head:02x?}"
        ))
    } else {
        Ok(Box::new(chained))
    }
}
