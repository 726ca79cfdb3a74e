//! Splits a byte stream into chunks of whole records, so chunks can be parsed
//! in parallel and in any order while ids and offsets stay exact.
//!
//! One splitter per record shape: lines (JSONL, text per line), blank-line
//! blocks, a JSON array or stream of values, or the whole file.

mod json;

use json::JsonScan;
use std::io::{ErrorKind, Read};

/// One record inside a chunk.
#[derive(Debug, Clone, Copy)]
pub struct Rec {
    /// Start in the chunk's data.
    pub start: usize,
    /// End (exclusive) in the chunk's data.
    pub end: usize,
    /// 1-based line of the record's first byte.
    pub line: u64,
    /// Byte offset of the record's first byte in the decompressed stream.
    pub offset: u64,
    /// For JSON values: the 0-based index of the value in the file (ids of
    /// array elements, which may share a line); 0 for other shapes.
    pub ordinal: u64,
}

/// Whole records, ready to parse.
#[derive(Debug, Default)]
pub struct Chunk {
    /// The bytes.
    pub data: Vec<u8>,
    /// Record spans within `data`.
    pub recs: Vec<Rec>,
    /// Records that could not be cut out (too large, truncated stream).
    pub broken: Vec<Broken>,
    /// Input bytes this chunk covers (for progress).
    pub bytes: u64,
}

/// A record the splitter had to give up on.
#[derive(Debug)]
pub struct Broken {
    /// 1-based line where it starts.
    pub line: u64,
    /// Byte offset where it starts.
    pub offset: u64,
    /// Why.
    pub reason: String,
    /// As much of it as was kept (at most [`KEEP_PREFIX`] bytes for oversize records).
    pub raw: Vec<u8>,
}

/// How much of an oversize record is kept in the rejected output.
pub const KEEP_PREFIX: usize = 1 << 20;

/// Record shapes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// One record per non-blank line.
    Lines,
    /// Records separated by blank lines.
    Blocks,
    /// A JSON array of values, or JSON values one after another.
    JsonValues,
    /// The whole stream is one record.
    Whole,
}

/// Cuts a reader into chunks of about `target` bytes.
pub struct Chunker<R: Read> {
    reader: R,
    shape: Shape,
    target: usize,
    max_record: usize,
    buf: Vec<u8>,
    /// Stream offset and line of `buf[0]`.
    offset: u64,
    line: u64,
    eof: bool,
    /// The stream's error, reported once after its last whole record.
    error: Option<String>,
    json: JsonScan,
    /// An oversize JSON value being skipped (its start and kept prefix).
    skip: Option<Broken>,
    done: bool,
}

impl<R: Read> Chunker<R> {
    /// A chunker; `max_record` bounds the bytes buffered for one record.
    pub fn new(reader: R, shape: Shape, target: usize, max_record: usize) -> Self {
        Chunker {
            reader,
            shape,
            target: target.max(1),
            max_record,
            buf: Vec::new(),
            offset: 0,
            line: 1,
            eof: false,
            error: None,
            json: JsonScan::default(),
            skip: None,
            done: false,
        }
    }

    /// Reads until `buf` holds `want` bytes or the stream ends.
    fn fill(&mut self, want: usize) {
        while !self.eof && self.buf.len() < want {
            // Straight into the buffer's spare capacity: no bounce copy.
            let need = (want - self.buf.len()).max(64 << 10) as u64;
            match (&mut self.reader).take(need).read_to_end(&mut self.buf) {
                Ok(0) => self.eof = true,
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    self.eof = true;
                    self.error = Some(match e.kind() {
                        ErrorKind::UnexpectedEof => "truncated stream: compressed data ends early".to_string(),
                        _ => format!("read error: {e}"),
                    });
                }
            }
        }
    }

    /// The next chunk, or `None` at the end.
    pub fn next_chunk(&mut self) -> Option<Chunk> {
        if self.done {
            return None;
        }
        let mut chunk = match self.shape {
            Shape::Lines | Shape::Blocks => self.next_lines(),
            Shape::JsonValues => self.next_json(),
            Shape::Whole => self.next_whole(),
        };
        if self.eof && self.buf.is_empty() && self.json.done.is_empty() {
            self.done = true;
            if let Some(reason) = self.error.take() {
                chunk.broken.push(Broken {
                    line: self.line,
                    offset: self.offset,
                    reason,
                    raw: Vec::new(),
                });
            }
        }
        Some(chunk)
    }

    /// A record that was cut out whole but is over `max_record`.
    fn too_big(&self, line: u64, offset: u64, rec: &[u8]) -> Broken {
        let raw = rec[..KEEP_PREFIX.min(rec.len())].to_vec();
        Broken {
            line,
            offset,
            reason: format!(
                "record of {} bytes exceeds max_record_bytes ({}); first {} bytes kept",
                rec.len(),
                self.max_record,
                raw.len()
            ),
            raw,
        }
    }

    fn take_prefix(&mut self, cut: usize) -> Vec<u8> {
        let rest = self.buf.split_off(cut);
        std::mem::replace(&mut self.buf, rest)
    }

    /// Splits at a line (or blank-line) boundary at or after `target` bytes.
    fn next_lines(&mut self) -> Chunk {
        let mut chunk = Chunk::default();
        // Bytes already searched for a boundary, so a long record costs one
        // scan in total rather than one per fill.
        let mut searched: usize = 0;
        let cut = loop {
            self.fill(self.target);
            if self.eof {
                break self.buf.len();
            }
            let boundary = if self.shape == Shape::Blocks {
                last_blank_line_end(&self.buf, searched.saturating_sub(1))
            } else {
                memchr::memrchr(b'\n', &self.buf[searched..]).map(|i| searched + i + 1)
            };
            if let Some(b) = boundary {
                break b;
            }
            searched = self.buf.len();
            // No boundary yet: one record is longer than the buffer.
            if self.buf.len() > self.max_record {
                chunk.broken.push(self.skip_oversize());
                return chunk;
            }
            let more = self.buf.len() + self.target;
            self.fill(more);
            if self.eof {
                break self.buf.len();
            }
        };
        let data = self.take_prefix(cut);
        chunk.bytes = data.len() as u64;
        let (mut line, mut offset) = (self.line, self.offset);
        let mut pos = 0;
        let mut block_start: Option<(usize, u64, u64)> = None;
        while pos < data.len() {
            let end = memchr::memchr(b'\n', &data[pos..]).map_or(data.len(), |i| pos + i);
            let mut content_end = end;
            if content_end > pos && data[content_end - 1] == b'\r' {
                content_end -= 1;
            }
            let blank = data[pos..content_end].iter().all(|b| b.is_ascii_whitespace());
            match self.shape {
                Shape::Lines if !blank && content_end - pos > self.max_record => {
                    chunk.broken.push(self.too_big(line, offset, &data[pos..content_end]));
                }
                Shape::Lines if !blank => chunk.recs.push(Rec {
                    start: pos,
                    end: content_end,
                    line,
                    offset,
                    ordinal: 0,
                }),
                Shape::Blocks if blank => {
                    if let Some((s, l, o)) = block_start.take() {
                        let e = pos.saturating_sub(1).max(s);
                        if e - s > self.max_record {
                            chunk.broken.push(self.too_big(l, o, &data[s..e]));
                        } else {
                            chunk.recs.push(Rec {
                                start: s,
                                end: e,
                                line: l,
                                offset: o,
                                ordinal: 0,
                            });
                        }
                    }
                }
                Shape::Blocks if block_start.is_none() => block_start = Some((pos, line, offset)),
                _ => {}
            }
            let next = (end + 1).min(data.len());
            offset += (next - pos) as u64;
            if end < data.len() {
                line += 1;
            }
            pos = if end < data.len() { end + 1 } else { data.len() };
        }
        if let Some((s, l, o)) = block_start {
            let mut e = data.len();
            while e > s && matches!(data[e - 1], b'\n' | b'\r') {
                e -= 1;
            }
            if e - s > self.max_record {
                chunk.broken.push(self.too_big(l, o, &data[s..e]));
            } else {
                chunk.recs.push(Rec {
                    start: s,
                    end: e,
                    line: l,
                    offset: o,
                    ordinal: 0,
                });
            }
        }
        self.line = line;
        self.offset = offset;
        chunk.data = data;
        chunk
    }

    /// Drops the record at the head of `buf` that exceeds `max_record`,
    /// reading on to its end (the end of its line, or for blocks the next
    /// blank line); keeps a prefix for the rejected output.
    fn skip_oversize(&mut self) -> Broken {
        let raw = self.buf[..KEEP_PREFIX.min(self.buf.len())].to_vec();
        // Where the record starts: after any blank lines at the head (blocks).
        let mut start: Option<(u64, u64)> = None;
        let (mut skipped, mut lines, mut line_start) = (0u64, 0u64, self.offset);
        let (mut pos, mut line_has_text) = (0usize, false);
        loop {
            let end = memchr::memchr(b'\n', &self.buf[pos..]).map(|i| pos + i);
            let part = &self.buf[pos..end.unwrap_or(self.buf.len())];
            line_has_text |= !part.iter().all(|b| b.is_ascii_whitespace());
            if line_has_text && start.is_none() {
                start = Some((self.line + lines, line_start));
            }
            let Some(i) = end else {
                skipped += (self.buf.len() - pos) as u64;
                self.buf.clear();
                pos = 0;
                if self.eof {
                    break;
                }
                self.fill(1 << 20);
                continue;
            };
            let blank = !line_has_text;
            line_has_text = false;
            skipped += (i + 1 - pos) as u64;
            lines += 1;
            line_start = self.offset + skipped;
            pos = i + 1;
            if self.shape != Shape::Blocks || (blank && start.is_some()) {
                break;
            }
        }
        self.buf.drain(..pos);
        let (line, offset) = start.unwrap_or((self.line, self.offset));
        self.offset += skipped;
        self.line += lines.max(1);
        Broken {
            line,
            offset,
            reason: format!(
                "record of {skipped} bytes exceeds max_record_bytes ({}); first {} bytes kept",
                self.max_record,
                raw.len()
            ),
            raw,
        }
    }

    fn next_whole(&mut self) -> Chunk {
        self.fill(self.max_record + 1);
        let mut chunk = Chunk::default();
        if self.buf.len() > self.max_record {
            let b = self.skip_all();
            chunk.broken.push(b);
            return chunk;
        }
        let data = std::mem::take(&mut self.buf);
        chunk.bytes = data.len() as u64;
        if !data.iter().all(|b| b.is_ascii_whitespace()) {
            chunk.recs.push(Rec {
                start: 0,
                end: data.len(),
                line: 1,
                offset: 0,
                ordinal: 0,
            });
        }
        self.offset = data.len() as u64;
        chunk.data = data;
        chunk
    }

    fn skip_all(&mut self) -> Broken {
        let raw = self.buf[..KEEP_PREFIX.min(self.buf.len())].to_vec();
        let mut total = self.buf.len() as u64;
        self.buf.clear();
        while !self.eof {
            self.fill(1 << 20);
            total += self.buf.len() as u64;
            self.buf.clear();
        }
        Broken {
            line: 1,
            offset: 0,
            reason: format!(
                "record of {total} bytes exceeds max_record_bytes ({}); first {} bytes kept",
                self.max_record,
                raw.len()
            ),
            raw,
        }
    }
}

/// The end of the last blank line in `buf` (a boundary between blocks),
/// looking only at newlines at or after `from`.
fn last_blank_line_end(buf: &[u8], from: usize) -> Option<usize> {
    let mut end = buf.len();
    while let Some(nl) = memchr::memrchr(b'\n', &buf[..end]) {
        if nl < from {
            break;
        }
        let start = memchr::memrchr(b'\n', &buf[..nl]).map_or(0, |i| i + 1);
        if buf[start..nl].iter().all(|b| b.is_ascii_whitespace()) && start > 0 {
            return Some(nl + 1);
        }
        end = nl;
        if end == 0 {
            break;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(data: &str, shape: Shape, target: usize) -> Vec<(String, u64, u64)> {
        let mut c = Chunker::new(data.as_bytes(), shape, target, 1 << 20);
        let mut out = Vec::new();
        while let Some(ch) = c.next_chunk() {
            for r in ch.recs {
                out.push((String::from_utf8_lossy(&ch.data[r.start..r.end]).into_owned(), r.line, r.offset));
            }
        }
        out
    }

    #[test]
    fn lines_keep_line_numbers_and_offsets_across_chunks() {
        let data = "a\nbb\n\nccc\r\ndddd";
        for target in [1, 2, 3, 5, 100] {
            let got = all(data, Shape::Lines, target);
            assert_eq!(
                got,
                vec![
                    ("a".into(), 1, 0),
                    ("bb".into(), 2, 2),
                    ("ccc".into(), 4, 6),
                    ("dddd".into(), 5, 11)
                ],
                "target {target}"
            );
        }
    }

    #[test]
    fn blocks_split_on_blank_lines() {
        let data = "p1 l1\np1 l2\n\n\np2\n  \np3\n";
        for target in [1, 4, 100] {
            let got: Vec<_> = all(data, Shape::Blocks, target).into_iter().map(|(s, l, _)| (s, l)).collect();
            assert_eq!(
                got,
                vec![("p1 l1\np1 l2".into(), 1), ("p2".into(), 5), ("p3".into(), 7)],
                "target {target}"
            );
        }
    }

    #[test]
    fn json_arrays_split_into_elements() {
        let data = "[\n {\"a\": \"x,]}\"},\n {\"b\": [1, 2]} ,\n 3\n]\n";
        for target in [1, 10, 1000] {
            let got: Vec<_> = all(data, Shape::JsonValues, target).into_iter().map(|(s, l, _)| (s, l)).collect();
            assert_eq!(
                got,
                vec![("{\"a\": \"x,]}\"}".into(), 2), ("{\"b\": [1, 2]}".into(), 3), ("3".into(), 4)],
                "target {target}"
            );
        }
    }

    #[test]
    fn oversize_lines_are_reported_not_buffered() {
        let big = "x".repeat(5000);
        let data = format!("ok\n{big}\nafter\n");
        let mut c = Chunker::new(data.as_bytes(), Shape::Lines, 100, 1024);
        let (mut recs, mut broken) = (Vec::new(), Vec::new());
        while let Some(ch) = c.next_chunk() {
            for r in &ch.recs {
                recs.push((String::from_utf8_lossy(&ch.data[r.start..r.end]).into_owned(), r.line));
            }
            broken.extend(ch.broken);
        }
        assert_eq!(recs, vec![("ok".into(), 1), ("after".into(), 3)]);
        assert_eq!(broken.len(), 1);
        assert_eq!((broken[0].line, broken[0].offset), (2, 3));
        assert!(broken[0].reason.contains("exceeds max_record_bytes"));
    }
}
