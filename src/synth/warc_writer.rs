//! Writes pages as a WARC/1.0 file, one gzip member per record (as Common
//! Crawl does, so readers can seek to any record): a `warcinfo` record, then
//! one `response` record per page with its HTTP status line and headers.
//! The gzip headers carry mtime 0 and the record ids derive from the seed,
//! so the same pages give the same bytes.

use super::crawl::Page;
use flate2::{Compression, GzBuilder};
use std::io::Write;

/// A record id, `<urn:uuid:...>`, from the seed and the record's number.
fn record_id(seed: u64, n: usize) -> String {
    let h = blake3::hash(format!("kiln-synth-warc {seed} {n}").as_bytes());
    let b = h.as_bytes();
    let hex = |r: std::ops::Range<usize>| b[r].iter().map(|x| format!("{x:02x}")).collect::<String>();
    format!(
        "<urn:uuid:{}-{}-{}-{}-{}>",
        hex(0..4),
        hex(4..6),
        hex(6..8),
        hex(8..10),
        hex(10..16)
    )
}

/// One WARC record: headers, a blank line, the block, and the two CRLFs that end a record.
fn record(headers: &[(&str, String)], block: &[u8]) -> Vec<u8> {
    let mut out = b"WARC/1.0\r\n".to_vec();
    for (k, v) in headers {
        out.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
    }
    out.extend_from_slice(format!("Content-Length: {}\r\n\r\n", block.len()).as_bytes());
    out.extend_from_slice(block);
    out.extend_from_slice(b"\r\n\r\n");
    out
}

/// Gzips one record as its own member, with a fixed header.
fn gzip(bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut gz = GzBuilder::new()
        .mtime(0)
        .write(Vec::with_capacity(bytes.len() / 3), Compression::best());
    gz.write_all(bytes)?;
    gz.finish()
}

/// The whole `.warc.gz` for `pages`.
pub fn warc_gz(pages: &[Page], seed: u64) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let info = format!(
        "software: kiln synth {}\r\nformat: WARC File Format 1.0\r\nconformsTo: https://iipc.github.io/warc-specifications/specifications/warc-format/warc-1.0/\r\n\
         description: A generated crawl of an invented world (kiln synth --seed {seed})\r\nrobots: classic\r\n",
        env!("CARGO_PKG_VERSION")
    );
    out.extend(gzip(&record(
        &[
            ("WARC-Type", "warcinfo".into()),
            ("WARC-Date", "2025-02-01T00:00:00Z".into()),
            ("WARC-Filename", "crawl.warc.gz".into()),
            ("WARC-Record-ID", record_id(seed, 0)),
            ("Content-Type", "application/warc-fields".into()),
        ],
        info.as_bytes(),
    ))?);
    for (i, p) in pages.iter().enumerate() {
        let mut block = format!(
            "HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            p.html.len()
        )
        .into_bytes();
        block.extend_from_slice(p.html.as_bytes());
        out.extend(gzip(&record(
            &[
                ("WARC-Type", "response".into()),
                ("WARC-Date", p.fetched.clone()),
                ("WARC-Record-ID", record_id(seed, i + 1)),
                ("WARC-Target-URI", p.url.clone()),
                ("Content-Type", "application/http; msgtype=response".into()),
                ("WARC-Identified-Payload-Type", "text/html".into()),
            ],
            &block,
        ))?);
    }
    Ok(out)
}
