//! Bytes of a page → text, for callers that hold raw HTML (the evaluation,
//! the benchmark, WARC payloads without a usable charset header).
//!
//! Order, as trafilatura's `decode_file` does it: a BOM wins; then UTF-8 when
//! the bytes are valid UTF-8 (mislabelled UTF-8 pages are common, the
//! reverse is rare); then the `<meta charset>` / `http-equiv` label in the
//! first 4 KiB; then chardetng's guess. Invalid sequences become U+FFFD.

use encoding_rs::Encoding;

/// Decodes an HTML payload to a `String` (see the module doc for the order of evidence).
pub fn decode_html(bytes: &[u8]) -> String {
    if let Some((enc, bom)) = Encoding::for_bom(bytes) {
        return enc.decode_without_bom_handling(&bytes[bom..]).0.into_owned();
    }
    if let Ok(s) = std::str::from_utf8(bytes) {
        return s.to_string();
    }
    let enc = meta_charset(&bytes[..bytes.len().min(4096)]).unwrap_or_else(|| {
        let mut det = chardetng::EncodingDetector::new(chardetng::Iso2022JpDetection::Deny);
        det.feed(&bytes[..bytes.len().min(64 << 10)], bytes.len() <= 64 << 10);
        det.guess(None, chardetng::Utf8Detection::Allow)
    });
    // A page labelled UTF-8 that is not valid UTF-8 still decodes (lossily) as UTF-8.
    enc.decode_without_bom_handling(bytes).0.into_owned()
}

/// The encoding named by `charset=` in the head, if any and if known.
fn meta_charset(head: &[u8]) -> Option<&'static Encoding> {
    let lower = head.to_ascii_lowercase();
    let mut from = 0;
    while let Some(pos) = memchr::memmem::find(&lower[from..], b"charset=") {
        let start = from + pos + b"charset=".len();
        let rest = &lower[start..];
        let rest = rest.strip_prefix(b"\"").or_else(|| rest.strip_prefix(b"'")).unwrap_or(rest);
        let end = rest
            .iter()
            .position(|c| matches!(c, b'"' | b'\'' | b';' | b'>' | b' ' | b'/'))
            .unwrap_or(rest.len());
        if let Some(enc) = Encoding::for_label(&rest[..end]) {
            // A UTF-16 label in an ASCII-compatible head is wrong by construction; the
            // HTML spec reads it as UTF-8, which `output_encoding` does.
            return Some(enc.output_encoding());
        }
        from = start;
    }
    None
}
