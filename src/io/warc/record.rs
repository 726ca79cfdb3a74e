//! Frames a decompressed WARC (or legacy ARC) byte stream into records.
//!
//! A WARC record is a version line (`WARC/1.0`, `WARC/1.1`, Heritrix's
//! `WARC/0.17`), named header fields, a blank line, `Content-Length` bytes
//! of block and a `CRLF CRLF` trailer (ISO 28500, WARC 1.1 §4). Framing is
//! by `Content-Length`; when a record's length does not land on a record
//! end, or its header is malformed, the record becomes a [`Broken`] and the
//! framer resynchronises on the next line that starts with `WARC/<digit>`,
//! scanning from the end of the bad header so that no record hidden behind a
//! wrong length is lost.
//!
//! Two leniencies, both for real files in ../shared/data/crawl:
//! * headers with bare `LF` line ends (cc_net's hand-edited WET sample, whose
//!   Content-Lengths are also wrong): when the length check fails, such a
//!   record is re-framed by lines, its block running to the next `WARC/` line
//!   (cc_net's own parser splits on `WARC/1.0` lines the same way);
//! * ARC files (Internet Archive ARC v1/v2, a one-line header
//!   `URL IP date content-type [...] length`), recognised by their first
//!   record `filedesc://...`; each record is turned into WARC-style fields
//!   (`WARC-Type: response` for http(s) URLs) so the rest of the reader
//!   handles both alike.

use super::super::chunker::KEEP_PREFIX;
use std::io::Read;

/// A record's named header fields, in order (names as written).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Header {
    /// `WARC/1.0` etc., or `ARC` for records converted from ARC.
    pub version: String,
    /// `(name, value)` pairs; continuation lines are folded into the value.
    pub fields: Vec<(String, String)>,
}

impl Header {
    /// The first value of field `name` (case-insensitive).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A framed record: its header and its whole block.
#[derive(Debug)]
pub struct Record {
    /// Byte offset of the version line in the decompressed stream.
    pub offset: u64,
    /// The header fields.
    pub header: Header,
    /// The block (`Content-Length` bytes).
    pub block: Vec<u8>,
    /// Whether the block was found by lines because its length was wrong.
    pub by_lines: bool,
}

/// Something the framer could not turn into a record.
#[derive(Debug)]
pub struct Broken {
    /// Byte offset where it starts in the decompressed stream.
    pub offset: u64,
    /// `"<class>: <detail>"`.
    pub reason: String,
    /// Its header fields, when they parsed (for the id and url of the reject).
    pub header: Option<Header>,
    /// As much of its bytes as was kept (at most [`KEEP_PREFIX`]).
    pub raw: Vec<u8>,
}

/// One step of the framer.
#[derive(Debug)]
pub enum Framed {
    /// A whole record.
    Record(Record),
    /// A malformed, truncated or oversize record, or skipped bytes.
    Broken(Broken),
}

impl Framed {
    /// Decompressed bytes this item stands for (for batching).
    pub fn size(&self) -> usize {
        match self {
            Framed::Record(r) => r.block.len() + 256,
            Framed::Broken(b) => b.raw.len() + 256,
        }
    }
}

/// The longest header accepted (real WARC headers are well under 4 KiB).
const MAX_HEADER: usize = 1 << 16;
/// How much is read from the source at a time.
const READ_SIZE: usize = 1 << 16;

/// Splits a byte stream into [`Framed`] items.
pub struct Framer<R: Read> {
    src: R,
    buf: Vec<u8>,
    /// Start of unconsumed data in `buf`.
    pos: usize,
    /// Stream offset of `buf[0]`.
    base: u64,
    eof: bool,
    /// Why the source failed (a truncated or corrupt gzip stream).
    failed: Option<String>,
    max_record: usize,
    /// `Some(true)` once the stream is known to be ARC.
    arc: Option<bool>,
    done: bool,
}

fn is_version_line(s: &[u8]) -> bool {
    s.len() > 5 && s.starts_with(b"WARC/") && s[5].is_ascii_digit()
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(hay, needle)
}

impl<R: Read> Framer<R> {
    /// A framer over `src` that rejects blocks over `max_record` bytes.
    pub fn new(src: R, max_record: usize) -> Self {
        Framer {
            src,
            buf: Vec::with_capacity(READ_SIZE * 2),
            pos: 0,
            base: 0,
            eof: false,
            failed: None,
            max_record,
            arc: None,
            done: false,
        }
    }

    /// Bytes consumed so far (decompressed).
    pub fn consumed(&self) -> u64 {
        self.base + self.pos as u64
    }

    fn avail(&self) -> &[u8] {
        &self.buf[self.pos..]
    }

    /// Reads until `n` bytes are available or the stream ends; returns what is available.
    fn fill(&mut self, n: usize) -> usize {
        if self.avail().len() < n && self.pos > 0 && self.pos >= self.buf.len() / 2 {
            self.buf.drain(..self.pos);
            self.base += self.pos as u64;
            self.pos = 0;
        }
        if self.avail().len() < n && !self.eof {
            // read_to_end grows the buffer without zero-filling it and keeps
            // what it read before an error.
            let want = (n - self.avail().len()).max(READ_SIZE);
            match (&mut self.src).take(want as u64).read_to_end(&mut self.buf) {
                Ok(k) if k < want => self.eof = true,
                Ok(_) => {}
                Err(e) => {
                    self.eof = true;
                    self.failed = Some(e.to_string());
                }
            }
        }
        self.avail().len()
    }

    fn consume(&mut self, n: usize) {
        self.pos = (self.pos + n).min(self.buf.len());
    }

    /// The reason for an unexpected end: a failed source, or a plain end.
    fn end_reason(&self, what: String) -> String {
        match &self.failed {
            Some(e) => format!("stream_error: {e} ({what})"),
            None => format!("truncated_record: {what}"),
        }
    }

    /// Skips blank lines between records; false at the end of the stream.
    fn skip_newlines(&mut self) -> bool {
        loop {
            if self.fill(1) == 0 {
                return false;
            }
            let k = self.avail().iter().take_while(|b| matches!(b, b'\r' | b'\n')).count();
            if k == 0 {
                return true;
            }
            self.consume(k);
        }
    }

    /// Moves to the next line that starts a record, from `from` bytes past the
    /// current position; returns how many bytes were skipped.
    fn resync(&mut self, from: usize) -> u64 {
        let start = self.consumed();
        self.consume(from);
        let marker: &[u8] = if self.arc == Some(true) { b"\nhttp" } else { b"\nWARC/" };
        loop {
            let n = self.fill(READ_SIZE);
            if let Some(i) = memchr::memmem::find_iter(self.avail(), marker)
                .find(|&i| self.arc == Some(true) || self.avail().get(i + 6).is_some_and(u8::is_ascii_digit))
            {
                self.consume(i + 1);
                return self.consumed() - start;
            }
            if self.eof {
                self.consume(n);
                return self.consumed() - start;
            }
            // Keep a marker's length of tail: it may continue in the next read.
            self.consume(n.saturating_sub(marker.len() + 1));
        }
    }

    /// The next item, or `None` at the end of the stream.
    pub fn next_item(&mut self) -> Option<Framed> {
        if self.done {
            return None;
        }
        if !self.skip_newlines() {
            self.done = true;
            return self.failed.take().map(|e| {
                Framed::Broken(Broken {
                    offset: self.consumed(),
                    reason: format!("stream_error: {e} (between records; the rest of the file is unreadable)"),
                    header: None,
                    raw: Vec::new(),
                })
            });
        }
        if self.arc.is_none() {
            self.fill(16);
            self.arc = Some(self.avail().starts_with(b"filedesc://"));
        }
        let item = if self.arc == Some(true) {
            self.next_arc()
        } else {
            self.next_warc()
        };
        if self.failed.is_some() && matches!(item, Framed::Broken(_)) {
            // A failed source yields nothing more after its error is reported.
            self.done = true;
        }
        Some(item)
    }

    fn broken(&self, offset: u64, reason: String, header: Option<Header>, raw: &[u8]) -> Framed {
        Framed::Broken(Broken {
            offset,
            reason,
            header,
            raw: raw[..raw.len().min(KEEP_PREFIX)].to_vec(),
        })
    }

    fn next_warc(&mut self) -> Framed {
        let offset = self.consumed();
        // Find the end of the header: the first blank line.
        let mut head_end = None;
        let mut scanned = 0;
        while head_end.is_none() {
            let n = self.fill(scanned + READ_SIZE);
            let upto = n.min(MAX_HEADER);
            head_end = header_end(&self.avail()[..upto]);
            if head_end.is_some() || self.eof || upto >= MAX_HEADER {
                break;
            }
            scanned = upto;
        }
        let first_line = self.avail().split(|&b| b == b'\n').next().unwrap_or_default();
        if !is_version_line(first_line) {
            let shown: String = String::from_utf8_lossy(&first_line[..first_line.len().min(40)]).into_owned();
            let raw_end = self.avail().len().min(KEEP_PREFIX);
            let raw = self.avail()[..raw_end].to_vec();
            let skipped = self.resync(1);
            let raw = raw[..raw.len().min(skipped as usize)].to_vec();
            let reason = format!("warc_header: expected a `WARC/<version>` line, found {shown:?}; skipped {skipped} bytes");
            return Framed::Broken(Broken {
                offset,
                reason,
                header: None,
                raw,
            });
        }
        let Some((hlen, lf_only)) = head_end else {
            let n = self.avail().len();
            if self.eof {
                let raw = self.avail().to_vec();
                self.consume(n);
                let reason = self.end_reason(format!("the stream ends inside the record header, after {n} bytes"));
                return self.broken(offset, reason, None, &raw);
            }
            let raw = self.avail()[..MAX_HEADER.min(n)].to_vec();
            self.resync(1);
            return self.broken(offset, format!("warc_header: no blank line within {MAX_HEADER} bytes"), None, &raw);
        };
        let header = match parse_header(&self.avail()[..hlen]) {
            Ok(h) => h,
            Err(e) => {
                let raw = self.avail()[..hlen].to_vec();
                self.resync(hlen);
                return self.broken(offset, format!("warc_header: {e}"), None, &raw);
            }
        };
        let len = match header.get("Content-Length").map(|v| v.trim().parse::<u64>()) {
            Some(Ok(n)) => n,
            bad => {
                let what = match bad {
                    None => "no Content-Length field".to_string(),
                    Some(_) => format!(
                        "Content-Length {:?} is not a number",
                        header.get("Content-Length").unwrap_or_default()
                    ),
                };
                let raw = self.avail()[..hlen].to_vec();
                self.resync(hlen);
                return self.broken(offset, format!("warc_header: {what}"), Some(header), &raw);
            }
        };
        if len > self.max_record as u64 {
            return self.skip_oversize(offset, header, hlen, len);
        }
        let total = hlen + len as usize;
        let n = self.fill(total + 8);
        if n < total && lf_only {
            return self.frame_by_lines(offset, header, hlen);
        }
        if n < total {
            let raw = self.avail().to_vec();
            self.consume(n);
            let reason = self.end_reason(format!(
                "Content-Length {len}, but the stream ends after {} bytes of block",
                n - hlen
            ));
            return self.broken(offset, reason, Some(header), &raw);
        }
        if record_ends(&self.avail()[total..], self.eof) {
            let block = self.avail()[hlen..total].to_vec();
            self.consume(total);
            return Framed::Record(Record {
                offset,
                header,
                block,
                by_lines: false,
            });
        }
        if lf_only {
            return self.frame_by_lines(offset, header, hlen);
        }
        let raw = self.avail()[..total.min(KEEP_PREFIX)].to_vec();
        self.resync(hlen);
        let reason = format!("record_end: Content-Length {len} does not end at a record boundary");
        self.broken(offset, reason, Some(header), &raw)
    }

    /// Skips an oversize block without buffering it.
    fn skip_oversize(&mut self, offset: u64, header: Header, hlen: usize, len: u64) -> Framed {
        let keep = self.fill(hlen + KEEP_PREFIX).min(hlen + KEEP_PREFIX);
        let raw = self.avail()[..keep].to_vec();
        let mut left = hlen as u64 + len;
        while left > 0 {
            let n = self.fill(READ_SIZE.min(left as usize));
            if n == 0 {
                break;
            }
            let k = n.min(left as usize);
            self.consume(k);
            left -= k as u64;
        }
        let reason = if left > 0 {
            self.end_reason(format!(
                "Content-Length {len} over max_record_bytes {}, and cut short",
                self.max_record
            ))
        } else {
            format!("record_too_large: Content-Length {len} over max_record_bytes {}", self.max_record)
        };
        self.broken(offset, reason, Some(header), &raw)
    }

    /// Frames a bare-LF record by lines: its block runs to the next line
    /// that starts with `WARC/<digit>`, or the end of the stream.
    fn frame_by_lines(&mut self, offset: u64, header: Header, hlen: usize) -> Framed {
        let mut from = hlen;
        loop {
            let n = self.fill(from + READ_SIZE);
            let hit = memchr::memmem::find_iter(&self.avail()[from.saturating_sub(1)..n], b"\nWARC/")
                .map(|i| i + from.saturating_sub(1) + 1)
                .find(|&i| is_version_line(&self.avail()[i..n]));
            let end = match hit {
                Some(i) => i,
                None if self.eof => n,
                None if n - hlen > self.max_record => {
                    let raw = self.avail()[..KEEP_PREFIX.min(n)].to_vec();
                    self.resync(hlen);
                    let reason = format!("record_too_large: a line-framed block over max_record_bytes {}", self.max_record);
                    return self.broken(offset, reason, Some(header), &raw);
                }
                None => {
                    // Back off so a marker cut by the read is seen whole.
                    from = n.saturating_sub(8).max(hlen);
                    continue;
                }
            };
            let mut block = self.avail()[hlen..end].to_vec();
            while block.last().is_some_and(|b| matches!(b, b'\r' | b'\n')) {
                block.pop();
            }
            self.consume(end);
            return Framed::Record(Record {
                offset,
                header,
                block,
                by_lines: true,
            });
        }
    }

    fn next_arc(&mut self) -> Framed {
        let offset = self.consumed();
        let n = self.fill(4096);
        let Some(eol) = memchr::memchr(b'\n', &self.avail()[..n]) else {
            let raw = self.avail().to_vec();
            self.consume(n);
            let reason = self.end_reason(format!("the stream ends inside an ARC header line, after {n} bytes"));
            return self.broken(offset, reason, None, &raw);
        };
        let line = String::from_utf8_lossy(&self.avail()[..eol]).trim_end().to_string();
        let header = match arc_header(&line) {
            Ok(h) => h,
            Err(e) => {
                let raw = self.avail()[..eol].to_vec();
                self.resync(eol);
                return self.broken(offset, format!("arc_header: {e}"), None, &raw);
            }
        };
        // arc_header checked that the length parses.
        let len: u64 = header.get("Content-Length").and_then(|v| v.parse().ok()).unwrap_or(0);
        let hlen = eol + 1;
        if len > self.max_record as u64 {
            return self.skip_oversize(offset, header, hlen, len);
        }
        let total = hlen + len as usize;
        let n = self.fill(total + 1);
        if n < total {
            let raw = self.avail().to_vec();
            self.consume(n);
            let reason = self.end_reason(format!("ARC length {len}, but the stream ends after {} bytes", n - hlen));
            return self.broken(offset, reason, Some(header), &raw);
        }
        let block = self.avail()[hlen..total].to_vec();
        self.consume(total);
        Framed::Record(Record {
            offset,
            header,
            block,
            by_lines: false,
        })
    }
}

/// The length of the header including its blank line, and whether its
/// lines end in bare LF; `None` if no blank line is in `buf`.
fn header_end(buf: &[u8]) -> Option<(usize, bool)> {
    let crlf = find(buf, b"\r\n\r\n").map(|i| i + 4);
    let lf = find(buf, b"\n\n").map(|i| i + 2);
    match (crlf, lf) {
        (Some(c), Some(l)) if l < c => Some((l, true)),
        (Some(c), _) => Some((c, false)),
        (None, Some(l)) => Some((l, true)),
        (None, None) => None,
    }
}

/// Whether the bytes after a block are a record end: line breaks, then the
/// next version line or the end of the stream. `rest` holds at least 8
/// bytes unless the stream ended.
fn record_ends(rest: &[u8], eof: bool) -> bool {
    let k = rest.iter().take_while(|b| matches!(b, b'\r' | b'\n')).count();
    let after = &rest[k..];
    if after.is_empty() {
        return eof || k >= 2;
    }
    after.starts_with(&b"WARC/"[..after.len().min(5)])
}

/// Parses `WARC/1.0\r\nName: value\r\n...\r\n\r\n`.
pub fn parse_header(bytes: &[u8]) -> Result<Header, String> {
    // Header values are UTF-8 in WARC 1.1; older files may hold Latin-1.
    let text = String::from_utf8_lossy(bytes);
    let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let version = lines.next().unwrap_or_default().trim().to_string();
    let mut fields: Vec<(String, String)> = Vec::new();
    for (i, line) in lines.enumerate() {
        if line.is_empty() {
            break;
        }
        if line.starts_with([' ', '\t']) {
            match fields.last_mut() {
                Some((_, v)) => {
                    v.push(' ');
                    v.push_str(line.trim());
                }
                None => return Err(format!("line {} continues a field, but no field came before", i + 2)),
            }
            continue;
        }
        let Some((k, v)) = line.split_once(':') else {
            let shown: String = line.chars().take(40).collect();
            return Err(format!("line {} has no `:` ({shown:?})", i + 2));
        };
        if k.is_empty() || k.contains([' ', '\t']) {
            return Err(format!("line {} has a bad field name {:?}", i + 2, k));
        }
        fields.push((k.to_string(), v.trim().to_string()));
    }
    Ok(Header { version, fields })
}

/// Turns an ARC v1/v2 header line into WARC-style fields.
fn arc_header(line: &str) -> Result<Header, String> {
    let f: Vec<&str> = line.split(' ').filter(|s| !s.is_empty()).collect();
    if f.len() < 5 {
        let shown: String = line.chars().take(60).collect();
        return Err(format!("expected `URL IP date content-type length`, found {shown:?}"));
    }
    let len = f[f.len() - 1];
    len.parse::<u64>().map_err(|_| format!("length {len:?} is not a number"))?;
    let (url, date, ctype) = (f[0], f[2], f[3]);
    let kind = if url.starts_with("filedesc:") {
        "warcinfo"
    } else if url.starts_with("http:") || url.starts_with("https:") {
        "response"
    } else {
        "resource"
    };
    let ctype = if kind == "response" {
        "application/http; msgtype=response"
    } else {
        ctype
    };
    let fields = vec![
        ("WARC-Type".to_string(), kind.to_string()),
        ("WARC-Target-URI".to_string(), url.to_string()),
        ("WARC-Date".to_string(), arc_date(date)),
        ("Content-Type".to_string(), ctype.to_string()),
        ("Content-Length".to_string(), len.to_string()),
    ];
    Ok(Header {
        version: "ARC".into(),
        fields,
    })
}

/// ARC's `YYYYMMDDhhmmss` as WARC's ISO 8601 `YYYY-MM-DDThh:mm:ssZ`.
fn arc_date(d: &str) -> String {
    if d.len() == 14 && d.bytes().all(|b| b.is_ascii_digit()) {
        format!(
            "{}-{}-{}T{}:{}:{}Z",
            &d[0..4],
            &d[4..6],
            &d[6..8],
            &d[8..10],
            &d[10..12],
            &d[12..14]
        )
    } else {
        d.to_string()
    }
}

#[cfg(test)]
#[path = "record_tests.rs"]
mod tests;
