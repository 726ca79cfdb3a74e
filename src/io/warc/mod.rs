//! WARC / WET (and legacy ARC) files → `documents`.
//!
//! `format: warc`: one row per `response` or `resource` record whose payload
//! is HTML (`WARC-Identified-Payload-Type` when present, else the HTTP
//! `Content-Type`; `text/html` or `application/xhtml+xml`), `text` being the
//! HTML decoded to UTF-8 — the `clean` op's `extract` step makes text of it,
//! as datatrove's `WarcReader` hands HTML to its extractor. `format: wet`:
//! one row per `conversion` record, `text` its plain text. `id` is the
//! `WARC-Record-ID` without `<>`, `url` the `WARC-Target-URI` (wget's `<>`
//! stripped), and `metadata` a JSON object with `date` (`WARC-Date`),
//! `charset` (the encoding used) and, for records cut by the crawler,
//! `warc_truncated`. These live in `metadata` rather than columns of their
//! own so that a `read` over a folder mixing WARC and JSONL (as
//! crawl/dolma does) writes one schema.
//!
//! Records that are not documents (`warcinfo`, `request`, `metadata`,
//! non-HTML payloads, HTTP statuses other than 2xx, empty payloads) are
//! counted by reason in [`Skips`], not rejected. Records that should have
//! been documents but cannot be read become [`Reject`]s with their byte
//! offset (see `record` for framing errors, `http` for HTTP ones, `charset`
//! for the binary rule). A stream that fails (a truncated gzip) ends its file
//! with one reject; the records before it are kept.

pub mod charset;
pub mod http;
pub mod record;

use super::docs::{DocBuilder, Reject};
use super::files::InputFile;
use super::parse::Parsed;
use super::reader::{ReadConfig, ReadError, file_reject};
use crate::spec::ops::Format;
use rayon::prelude::*;
use record::{Broken, Framed, Framer, Header, Record};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};

/// Records that are not documents, by reason (`"request"`, `"non_html: image/png"`).
pub type Skips = BTreeMap<String, u64>;

/// Where the records come from, for ids and rejects.
struct Origin<'a> {
    rel: &'a str,
    source: &'a str,
    format: Format,
    max_record: usize,
    keep_metadata: bool,
}

/// What one record becomes.
enum Outcome {
    Doc { text: String, charset: &'static str },
    Skip(String),
    Reject(String),
}

/// Reads one WARC, WET or ARC file, calling `sink` with each batch in order;
/// returns the counts of skipped records.
pub fn read_warc(
    file: &InputFile,
    cfg: &ReadConfig,
    cancel: &AtomicBool,
    sink: &mut dyn FnMut(Parsed) -> Result<(), String>,
) -> Result<Skips, ReadError> {
    let source = cfg.source.clone().unwrap_or_else(|| file.rel.clone());
    let mut skips = Skips::new();
    let reader = match super::decompress::open(&file.path) {
        Ok(r) => r,
        Err(reason) => {
            let parsed = Parsed {
                docs: None,
                rejects: vec![file_reject(file, &source, format!("open: {reason}"))],
                bytes: file.size,
                row_digests: None,
            };
            sink(parsed).map_err(ReadError::Sink)?;
            return Ok(skips);
        }
    };
    let origin = Origin {
        rel: &file.rel,
        source: &source,
        format: cfg.format,
        max_record: cfg.max_record_bytes,
        keep_metadata: cfg.fields.keep_metadata,
    };
    let window = rayon::current_num_threads().max(1) * 2;
    let (tx, rx) = crossbeam_channel::bounded::<(Vec<Framed>, u64)>(window);
    let (batch_bytes, max_record) = (cfg.batch_bytes, cfg.max_record_bytes);
    std::thread::scope(|s| {
        // Owned here so that returning early drops it and unblocks the framer.
        let rx = rx;
        s.spawn(move || {
            let mut framer = Framer::new(reader, max_record);
            let (mut batch, mut size, mut last) = (Vec::new(), 0usize, 0u64);
            while let Some(item) = framer.next_item() {
                size += item.size();
                batch.push(item);
                if size >= batch_bytes {
                    let now = framer.consumed();
                    if tx.send((std::mem::take(&mut batch), now - last)).is_err() {
                        return; // the consumer stopped (cancel or error)
                    }
                    (size, last) = (0, now);
                }
            }
            if !batch.is_empty() {
                let _ = tx.send((batch, framer.consumed() - last));
            }
        });
        let mut pending = Vec::with_capacity(window);
        loop {
            if cancel.load(Ordering::Relaxed) {
                return Err(ReadError::Cancelled);
            }
            pending.clear();
            match rx.recv() {
                Ok(b) => pending.push(b),
                Err(_) => return Ok(skips),
            }
            // Take what the framer has ready rather than wait for a full
            // window: while the framer inflates, the consumer's threads
            // would otherwise sit idle.
            while pending.len() < window {
                match rx.try_recv() {
                    Ok(b) => pending.push(b),
                    Err(_) => break,
                }
            }
            let done: Vec<(Parsed, Skips)> = pending.par_iter().map(|(items, bytes)| build(items, *bytes, &origin)).collect();
            for (parsed, sk) in done {
                for (k, v) in sk {
                    *skips.entry(k).or_default() += v;
                }
                sink(parsed).map_err(ReadError::Sink)?;
            }
        }
    })
}

/// Turns a batch of framed items into documents, rejects and skip counts.
fn build(items: &[Framed], bytes: u64, o: &Origin) -> (Parsed, Skips) {
    let mut b = DocBuilder::with_capacity(items.len(), items.iter().map(Framed::size).sum());
    let mut rejects = Vec::new();
    let mut skips = Skips::new();
    let mut meta = String::new();
    for item in items {
        match item {
            Framed::Broken(br) => match skipped_anyway(br, o) {
                Some(kind) => *skips.entry(kind).or_default() += 1,
                None => rejects.push(broken_reject(br, o)),
            },
            Framed::Record(rec) => match outcome(rec, o) {
                Outcome::Doc { text, charset } => {
                    let id = record_id(&rec.header, rec.offset, o);
                    meta.clear();
                    if o.keep_metadata {
                        metadata(&rec.header, charset, rec.by_lines, &mut meta);
                    }
                    b.push(
                        &id,
                        &text,
                        target_uri(&rec.header),
                        o.source,
                        (!meta.is_empty()).then_some(meta.as_str()),
                    );
                }
                Outcome::Skip(why) => *skips.entry(why).or_default() += 1,
                Outcome::Reject(reason) => rejects.push(record_reject(rec, o, reason)),
            },
        }
    }
    let docs = (!b.is_empty()).then(|| b.finish());
    let row_digests = docs.as_ref().map(super::hash::row_digests);
    let parsed = Parsed {
        docs,
        rejects,
        bytes,
        row_digests,
    };
    (parsed, skips)
}

/// `{"date": ..., "charset": ..., "warc_truncated": ...}` as JSON text.
fn metadata(h: &Header, charset: &str, by_lines: bool, out: &mut String) {
    let mut m = serde_json::Map::new();
    if let Some(d) = h.get("WARC-Date") {
        m.insert("date".into(), d.into());
    }
    m.insert("charset".into(), charset.into());
    if let Some(t) = h.get("WARC-Truncated") {
        m.insert("warc_truncated".into(), t.into());
    }
    if by_lines {
        // The record's Content-Length was wrong; say how it was framed.
        m.insert("framed_by_lines".into(), true.into());
    }
    out.push_str(&serde_json::Value::Object(m).to_string());
}

/// A field value without the `<...>` that WARC 1.0 puts around URIs.
fn unbracket(v: &str) -> &str {
    v.strip_prefix('<').and_then(|v| v.strip_suffix('>')).unwrap_or(v)
}

fn target_uri(h: &Header) -> Option<&str> {
    h.get("WARC-Target-URI").map(unbracket).filter(|u| !u.is_empty())
}

/// The record's `WARC-Record-ID`, else `<file>@<byte offset>`.
fn record_id(h: &Header, offset: u64, o: &Origin) -> String {
    match h.get("WARC-Record-ID").map(unbracket).filter(|v| !v.is_empty()) {
        Some(id) => id.to_string(),
        None => format!("{}@{offset}", o.rel),
    }
}

fn reject_at(o: &Origin, offset: u64, header: Option<&Header>, raw: &[u8], reason: String) -> Reject {
    Reject {
        id: header.map_or_else(|| format!("{}@{offset}", o.rel), |h| record_id(h, offset, o)),
        text: String::from_utf8_lossy(raw).into_owned(),
        url: header.and_then(target_uri).map(str::to_string),
        source: o.source.to_string(),
        file: o.rel.to_string(),
        line: None,
        byte_offset: Some(offset),
        step: "read".into(),
        reason,
    }
}

/// An oversize record of a kind that is skipped anyway (a huge `request` or
/// `metadata` record is not an error): its kind.
fn skipped_anyway(br: &Broken, o: &Origin) -> Option<String> {
    let kind = br.header.as_ref()?.get("WARC-Type")?.to_ascii_lowercase();
    let wanted = match o.format {
        Format::Wet => kind == "conversion",
        _ => kind == "response" || kind == "resource",
    };
    (br.reason.starts_with("record_too_large") && !wanted).then_some(kind)
}

fn broken_reject(br: &Broken, o: &Origin) -> Reject {
    reject_at(o, br.offset, br.header.as_ref(), &br.raw, br.reason.clone())
}

fn record_reject(rec: &Record, o: &Origin, reason: String) -> Reject {
    let keep = &rec.block[..rec.block.len().min(super::chunker::KEEP_PREFIX)];
    reject_at(o, rec.offset, Some(&rec.header), keep, reason)
}

/// The MIME type of a `Content-Type` value, lowercased, without parameters.
fn mime(ct: &str) -> String {
    ct.split(';').next().unwrap_or_default().trim().to_ascii_lowercase()
}

fn is_html(mime: &str) -> bool {
    matches!(mime, "text/html" | "application/xhtml+xml")
}

/// Whether an unlabelled payload looks like HTML.
fn sniff_html(body: &[u8]) -> bool {
    let head = String::from_utf8_lossy(&body[..body.len().min(1024)]).to_ascii_lowercase();
    let t = head.trim_start_matches(|c: char| c.is_whitespace() || c == '\u{feff}');
    t.starts_with('<') && (t.contains("<html") || t.contains("<!doctype html"))
}

/// The URL's top-level domain, as a hint for charset detection.
fn tld(h: &Header) -> Option<&str> {
    let url = target_uri(h)?;
    let host = url.split("://").nth(1)?.split(['/', '?', '#', ':']).next()?;
    host.rsplit('.').next()
}

/// Decides what a framed record becomes.
fn outcome(rec: &Record, o: &Origin) -> Outcome {
    let h = &rec.header;
    let kind = h.get("WARC-Type").unwrap_or_default().to_ascii_lowercase();
    if kind.is_empty() {
        return Outcome::Reject("warc_header: no WARC-Type field".into());
    }
    let wanted = matches!(
        (o.format, kind.as_str()),
        (Format::Wet, "conversion") | (Format::Warc, "response" | "resource")
    );
    if wanted && target_uri(h).is_none() {
        // Mandatory for these types (WARC 1.1 §5.4); without it a document has no origin.
        return Outcome::Reject(format!("warc_header: a {kind} record without WARC-Target-URI"));
    }
    match (o.format, kind.as_str()) {
        (Format::Wet, "conversion") => plain_text(rec),
        (Format::Warc, "response" | "resource") => html_payload(rec, o, &kind),
        _ => Outcome::Skip(kind),
    }
}

/// A WET conversion record: UTF-8 text (other encodings are detected).
fn plain_text(rec: &Record) -> Outcome {
    let ct = rec.header.get("Content-Type").unwrap_or_default();
    if rec.block.is_empty() {
        return Outcome::Skip("empty_payload".into());
    }
    let d = charset::decode(&rec.block, charset::charset_param(ct), false, tld(&rec.header));
    if let Some(why) = charset::binary_reason(&rec.block, &d) {
        return Outcome::Reject(why);
    }
    Outcome::Doc {
        text: d.text,
        charset: d.charset,
    }
}

/// A response or resource record: its payload if it is HTML.
fn html_payload(rec: &Record, o: &Origin, kind: &str) -> Outcome {
    let h = &rec.header;
    let block_type = mime(h.get("Content-Type").unwrap_or_default());
    let (payload_ct, body, status, transfer, coding) = if kind == "response" && block_type.starts_with("application/http") {
        let resp = match http::parse_response(&rec.block) {
            Ok(r) => r,
            Err(e) => return Outcome::Reject(e),
        };
        let ct = resp.header("Content-Type").map(str::to_string);
        let te = resp.header("Transfer-Encoding").map(str::to_ascii_lowercase);
        let ce = resp.header("Content-Encoding").map(str::to_string);
        (ct, resp.body, Some(resp.status), te, ce)
    } else {
        (h.get("Content-Type").map(str::to_string), &rec.block[..], None, None, None)
    };
    if let Some(s) = status
        && !(200..300).contains(&s)
    {
        return Outcome::Skip(format!("http_status: {s}"));
    }
    // The crawler's own sniffing beats the server's label.
    let identified = h.get("WARC-Identified-Payload-Type").map(mime).filter(|m| !m.is_empty());
    let labelled = payload_ct.as_deref().map(mime).filter(|m| !m.is_empty());
    let html = match identified.as_deref().or(labelled.as_deref()) {
        Some(m) if is_html(m) => true,
        Some(m) => return Outcome::Skip(format!("non_html: {m}")),
        None => sniff_html(body),
    };
    if !html {
        return Outcome::Skip("non_html: (none)".into());
    }
    let mut body = body.to_vec();
    if transfer.as_deref().is_some_and(|t| t.contains("chunked")) {
        match http::dechunk(&body, o.max_record) {
            Ok(b) => body = b,
            Err(http::Chunked::NotChunked) => {}
            Err(http::Chunked::Broken(why)) => return Outcome::Reject(why),
        }
    }
    let body = match http::decode_content(body, coding.as_deref(), o.max_record) {
        Ok(b) => b,
        Err(why) => return Outcome::Reject(why),
    };
    if body.iter().all(u8::is_ascii_whitespace) {
        return Outcome::Skip("empty_payload".into());
    }
    let d = charset::decode(&body, payload_ct.as_deref().and_then(charset::charset_param), true, tld(h));
    if let Some(why) = charset::binary_reason(&body, &d) {
        return Outcome::Reject(why);
    }
    Outcome::Doc {
        text: d.text,
        charset: d.charset,
    }
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
