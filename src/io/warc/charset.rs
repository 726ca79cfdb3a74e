//! Decodes an HTML (or plain-text) payload to UTF-8.
//!
//! Order, as browsers do it (WHATWG HTML §13.2.3.1 "determining the
//! character encoding"): a byte-order mark; the HTTP `charset` parameter;
//! a `<meta charset>` / `<meta http-equiv=content-type>` in the first
//! [`PRESCAN_BYTES`]; else detection with chardetng (Firefox's detector,
//! with the URL's top-level domain as its hint). A label that names no
//! encoding is ignored and the next source is tried. Unlike a browser, a
//! declared encoding that turns more than [`REDETECT_SHARE`] of the text
//! into U+FFFD is second-guessed by the detector, because mislabelled pages
//! are common in crawls and a model should not learn replacement characters.
//!
//! The binary rule ([`binary_reason`]): a payload labelled as text is taken
//! to be binary when a NUL byte appears in its first [`NUL_SCAN_BYTES`]
//! (outside UTF-16), or when over [`BAD_CHAR_SHARE`] of the first
//! [`BAD_SCAN_CHARS`] decoded characters are U+FFFD or C0 controls other
//! than tab, LF, FF and CR. Random binary data has a NUL in 8 KiB with
//! probability 1 − (255/256)^8192 ≈ 1 − 10⁻¹⁴; real text has none.

use encoding_rs::{Encoding, UTF_8, UTF_16BE, UTF_16LE, WINDOWS_1252};

/// How far `<meta>` is looked for. WHATWG's prescan stops at 1024 bytes;
/// real pages often put the tag later, behind scripts, so this looks further.
pub const PRESCAN_BYTES: usize = 4096;
/// Share of U+FFFD above which a declared encoding is second-guessed.
pub const REDETECT_SHARE: f64 = 0.01;
/// Bytes scanned for a NUL.
pub const NUL_SCAN_BYTES: usize = 8192;
/// Characters scanned for the bad-character share.
pub const BAD_SCAN_CHARS: usize = 65536;
/// Share of bad characters above which a payload is rejected.
pub const BAD_CHAR_SHARE: f64 = 0.05;

/// A payload decoded to UTF-8.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    /// The text.
    pub text: String,
    /// The encoding used (its WHATWG name, e.g. `windows-1252`).
    pub charset: &'static str,
    /// Where the encoding came from: `bom`, `header`, `meta` or `detected`.
    pub from: &'static str,
}

/// The `charset` parameter of a `Content-Type` value, unquoted.
pub fn charset_param(content_type: &str) -> Option<&str> {
    content_type.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("charset")
            .then(|| v.trim().trim_matches(['"', '\'']).trim())
    })
}

/// The encoding a label names, with WHATWG's overrides for labels found in
/// a document (a UTF-16 `<meta>` cannot be right if it was readable as ASCII).
fn for_label(label: &str, in_meta: bool) -> Option<&'static Encoding> {
    let enc = Encoding::for_label(label.trim().as_bytes())?;
    if in_meta && (enc == UTF_16LE || enc == UTF_16BE) {
        return Some(UTF_8);
    }
    if enc.name() == "x-user-defined" {
        return Some(WINDOWS_1252);
    }
    // "replacement" (labels like iso-2022-kr) decodes everything to U+FFFD.
    (enc.name() != "replacement").then_some(enc)
}

/// Decodes `body`: `header` is the HTTP charset label, `html` says whether
/// to look for `<meta>`, `tld` is the URL's top-level domain (detector hint).
pub fn decode(body: &[u8], header: Option<&str>, html: bool, tld: Option<&str>) -> Decoded {
    if let Some((enc, bom_len)) = Encoding::for_bom(body) {
        let (text, _) = enc.decode_without_bom_handling(&body[bom_len..]);
        return Decoded {
            text: text.into_owned(),
            charset: enc.name(),
            from: "bom",
        };
    }
    let declared = header
        .and_then(|l| for_label(l, false).map(|e| (e, "header")))
        .or_else(|| if html { meta_charset(body).map(|e| (e, "meta")) } else { None });
    if let Some((enc, from)) = declared {
        let (text, had_errors) = enc.decode_without_bom_handling(body);
        let text = text.into_owned();
        if !had_errors || replacement_share(&text) <= REDETECT_SHARE {
            return Decoded {
                text,
                charset: enc.name(),
                from,
            };
        }
        let det = detect(body, tld);
        if det != enc {
            let (alt, _) = det.decode_without_bom_handling(body);
            if replacement_share(&alt) < replacement_share(&text) {
                return Decoded {
                    text: alt.into_owned(),
                    charset: det.name(),
                    from: "detected",
                };
            }
        }
        return Decoded {
            text,
            charset: enc.name(),
            from,
        };
    }
    let enc = detect(body, tld);
    let (text, _) = enc.decode_without_bom_handling(body);
    Decoded {
        text: text.into_owned(),
        charset: enc.name(),
        from: "detected",
    }
}

fn detect(body: &[u8], tld: Option<&str>) -> &'static Encoding {
    if std::str::from_utf8(body).is_ok() {
        return UTF_8; // ASCII and valid UTF-8: the detector would say the same, faster
    }
    // Not a browser running scripts: ISO-2022-JP is a fair guess here.
    let mut d = chardetng::EncodingDetector::new(chardetng::Iso2022JpDetection::Allow);
    // The first 64 KiB are plenty; detection cost grows with input.
    d.feed(&body[..body.len().min(1 << 16)], true);
    // chardetng asserts that the hint is lowercase ASCII without dots.
    let tld = tld
        .filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
        .map(str::to_ascii_lowercase);
    d.guess(tld.as_deref().map(str::as_bytes), chardetng::Utf8Detection::Allow)
}

fn replacement_share(text: &str) -> f64 {
    let mut n = 0usize;
    let mut bad = 0usize;
    for c in text.chars().take(BAD_SCAN_CHARS) {
        n += 1;
        bad += usize::from(c == '\u{FFFD}');
    }
    if n == 0 { 0.0 } else { bad as f64 / n as f64 }
}

/// Why a payload labelled as text is not text, if it is not.
pub fn binary_reason(raw: &[u8], d: &Decoded) -> Option<String> {
    let utf16 = d.charset.starts_with("UTF-16");
    if !utf16 && let Some(i) = memchr::memchr(0, &raw[..raw.len().min(NUL_SCAN_BYTES)]) {
        return Some(format!("binary_payload: NUL byte at offset {i} of a text body"));
    }
    let mut n = 0usize;
    let mut bad = 0usize;
    for c in d.text.chars().take(BAD_SCAN_CHARS) {
        n += 1;
        bad += usize::from(c == '\u{FFFD}' || (c < ' ' && !matches!(c, '\t' | '\n' | '\x0c' | '\r')));
    }
    let share = if n == 0 { 0.0 } else { bad as f64 / n as f64 };
    (share > BAD_CHAR_SHARE).then(|| {
        format!(
            "binary_payload: {:.1}% of the first {n} characters are U+FFFD or control characters when decoded as {}",
            share * 100.0,
            d.charset
        )
    })
}

/// The encoding a `<meta>` in the first [`PRESCAN_BYTES`] declares.
pub fn meta_charset(body: &[u8]) -> Option<&'static Encoding> {
    let head = &body[..body.len().min(PRESCAN_BYTES)];
    let mut pos = 0;
    while let Some(i) = memchr::memchr(b'<', &head[pos..]) {
        let at = pos + i;
        let rest = &head[at..];
        if rest.starts_with(b"<!--") {
            // Comments may hold stale meta tags; skip them whole.
            pos = match memchr::memmem::find(&rest[4..], b"-->") {
                Some(j) => at + 4 + j + 3,
                None => return None,
            };
            continue;
        }
        let is_meta = rest.len() > 5 && rest[1..5].eq_ignore_ascii_case(b"meta") && matches!(rest[5], b' ' | b'\t' | b'\n' | b'\r' | b'/');
        pos = at + 1;
        if !is_meta {
            continue;
        }
        let (attrs, end) = attributes(&rest[5..]);
        pos = at + 5 + end;
        let get = |name: &str| attrs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
        if let Some(label) = get("charset")
            && let Some(enc) = for_label(label, true)
        {
            return Some(enc);
        }
        let equiv = get("http-equiv").is_some_and(|v| v.eq_ignore_ascii_case("content-type"));
        if equiv
            && let Some(label) = get("content").and_then(charset_param)
            && let Some(enc) = for_label(label, true)
        {
            return Some(enc);
        }
    }
    None
}

/// The attributes of a tag body up to its `>` (names lowercased), and the
/// index just past the `>`.
fn attributes(s: &[u8]) -> (Vec<(String, String)>, usize) {
    let mut out = Vec::new();
    let mut i = 0;
    let ws = |b: u8| matches!(b, b' ' | b'\t' | b'\n' | b'\r' | b'\x0c' | b'/');
    loop {
        while i < s.len() && ws(s[i]) {
            i += 1;
        }
        if i >= s.len() || s[i] == b'>' {
            return (out, (i + 1).min(s.len()));
        }
        let start = i;
        while i < s.len() && !ws(s[i]) && !matches!(s[i], b'=' | b'>') {
            i += 1;
        }
        let name = String::from_utf8_lossy(&s[start..i]).to_ascii_lowercase();
        while i < s.len() && matches!(s[i], b' ' | b'\t' | b'\n' | b'\r') {
            i += 1;
        }
        let mut value = String::new();
        if i < s.len() && s[i] == b'=' {
            i += 1;
            while i < s.len() && matches!(s[i], b' ' | b'\t' | b'\n' | b'\r') {
                i += 1;
            }
            if i < s.len() && matches!(s[i], b'"' | b'\'') {
                let q = s[i];
                let vstart = i + 1;
                let vend = memchr::memchr(q, &s[vstart..]).map_or(s.len(), |j| vstart + j);
                value = String::from_utf8_lossy(&s[vstart..vend]).into_owned();
                i = (vend + 1).min(s.len());
            } else {
                let vstart = i;
                while i < s.len() && !matches!(s[i], b' ' | b'\t' | b'\n' | b'\r' | b'>') {
                    i += 1;
                }
                value = String::from_utf8_lossy(&s[vstart..i]).into_owned();
            }
        }
        out.push((name, value));
    }
}

#[cfg(test)]
#[path = "charset_tests.rs"]
mod tests;
