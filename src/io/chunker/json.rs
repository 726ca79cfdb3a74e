//! JSON arrays (or values one after another), cut between elements by a
//! scanner that tracks strings, escapes and nesting without parsing.

use super::{Broken, Chunk, Chunker, KEEP_PREFIX, Rec};
use std::io::Read;

/// Scanner state carried across reads.
#[derive(Debug, Default, Clone)]
pub(super) struct JsonScan {
    started: bool,
    array: bool,
    closed: bool,
    depth: u32,
    in_str: bool,
    esc: bool,
    elem_start: Option<usize>,
    pos: usize,
    /// Completed elements not yet emitted: (start, end).
    pub(super) done: Vec<(usize, usize)>,
    /// Values emitted so far (the next value's index).
    count: u64,
}

impl<R: Read> Chunker<R> {
    /// JSON array elements (or concatenated values), cut between elements.
    pub(super) fn next_json(&mut self) -> Chunk {
        let mut chunk = Chunk::default();
        if self.skip.is_some() {
            self.skip_json_value(&mut chunk);
        }
        // Start of a value that outgrew `max_record`: the chunk ends before it.
        let mut oversize = None;
        loop {
            let want = self.buf.len() + self.target;
            self.fill(want);
            self.scan_json();
            let done_bytes = self.json.done.last().map_or(0, |d| d.1);
            if done_bytes >= self.target || self.eof {
                break;
            }
            let pending = self.json.elem_start.map_or(0, |s| self.buf.len() - s);
            if pending > self.max_record {
                oversize = self.json.elem_start;
                break;
            }
        }
        if self.eof {
            if let Some(s) = self.json.elem_start.take() {
                let raw = self.buf[s..].to_vec();
                if !raw.iter().all(|b| b.is_ascii_whitespace()) {
                    chunk.broken.push(Broken {
                        line: self.line,
                        offset: self.offset + s as u64,
                        reason: "JSON ends in the middle of a value".into(),
                        raw,
                    });
                }
            } else if self.json.array && !self.json.closed && self.error.is_none() && self.json.started {
                chunk.broken.push(Broken {
                    line: self.line,
                    offset: self.offset + self.buf.len() as u64,
                    reason: "JSON array is not closed with `]`".into(),
                    raw: Vec::new(),
                });
            }
        }
        let cut = match oversize {
            Some(s) => s,
            None if self.eof => self.buf.len(),
            None => self.json.done.last().map_or(0, |d| d.1),
        };
        let (mut line, mut offset, mut last) = (self.line, self.offset, 0usize);
        let mut ordinal = self.json.count;
        for &(s, e) in &self.json.done {
            line += memchr::memchr_iter(b'\n', &self.buf[last..s]).count() as u64;
            offset += (s - last) as u64;
            if e - s > self.max_record {
                chunk.broken.push(self.too_big(line, offset, &self.buf[s..e]));
            } else {
                chunk.recs.push(Rec {
                    start: s,
                    end: e,
                    line,
                    offset,
                    ordinal,
                });
            }
            ordinal += 1;
            last = s;
        }
        self.json.count = ordinal;
        line += memchr::memchr_iter(b'\n', &self.buf[last..cut]).count() as u64;
        offset += (cut - last) as u64;
        self.json.done.clear();
        let data = self.take_prefix(cut);
        chunk.bytes += data.len() as u64;
        chunk.data = data;
        self.json.pos -= cut.min(self.json.pos);
        if let Some(s) = self.json.elem_start.as_mut() {
            *s -= cut;
        }
        self.line = line;
        self.offset = offset;
        if oversize.is_some() {
            // `buf` now starts with the oversize value: skip it on the next call.
            self.skip = Some(Broken {
                line,
                offset,
                reason: String::new(),
                raw: self.buf[..KEEP_PREFIX.min(self.buf.len())].to_vec(),
            });
        }
        chunk
    }

    /// Reads past the oversize value at the head of `buf` without buffering
    /// it, reports it, and leaves `buf` at whatever follows it.
    fn skip_json_value(&mut self, chunk: &mut Chunk) {
        let Some(mut broken) = self.skip.take() else { return };
        let mut skipped = 0u64;
        loop {
            self.scan_json();
            if let Some(&(_, end)) = self.json.done.first() {
                // The value ends at `end`; keep what the scan found after it.
                self.json.done.remove(0);
                self.line += memchr::memchr_iter(b'\n', &self.buf[..end]).count() as u64;
                self.offset += end as u64;
                skipped += end as u64;
                self.buf.drain(..end);
                self.json.pos -= end;
                for d in &mut self.json.done {
                    d.0 -= end;
                    d.1 -= end;
                }
                if let Some(s) = self.json.elem_start.as_mut() {
                    *s -= end;
                }
                break;
            }
            // Still inside the value: drop what was scanned.
            self.line += memchr::memchr_iter(b'\n', &self.buf).count() as u64;
            self.offset += self.buf.len() as u64;
            skipped += self.buf.len() as u64;
            self.buf.clear();
            self.json.pos = 0;
            if self.eof {
                self.json.elem_start = None;
                break;
            }
            self.json.elem_start = Some(0);
            self.fill(1 << 20);
        }
        broken.reason = format!(
            "JSON value of {skipped} bytes exceeds max_record_bytes ({}); first {} bytes kept",
            self.max_record,
            broken.raw.len()
        );
        chunk.bytes += skipped;
        chunk.broken.push(broken);
        // The skipped value still takes its place in the numbering.
        self.json.count += 1;
    }

    fn scan_json(&mut self) {
        let j = &mut self.json;
        let buf = &self.buf;
        while j.pos < buf.len() {
            let b = buf[j.pos];
            if j.in_str {
                if j.esc {
                    j.esc = false;
                } else if b == b'\\' {
                    j.esc = true;
                } else if b == b'"' {
                    j.in_str = false;
                    if j.depth == 0
                        && let Some(s) = j.elem_start.take()
                    {
                        j.done.push((s, j.pos + 1));
                    }
                }
                j.pos += 1;
                continue;
            }
            if !j.started {
                if !b.is_ascii_whitespace() {
                    j.started = true;
                    if b == b'[' {
                        j.array = true;
                        j.pos += 1;
                        continue;
                    }
                } else {
                    j.pos += 1;
                    continue;
                }
            }
            match b {
                b'{' | b'[' => {
                    if j.depth == 0 && j.elem_start.is_none() {
                        j.elem_start = Some(j.pos);
                    }
                    j.depth += 1;
                }
                b'}' | b']' if j.depth > 0 => {
                    j.depth -= 1;
                    if j.depth == 0
                        && let Some(s) = j.elem_start.take()
                    {
                        j.done.push((s, j.pos + 1));
                    }
                }
                b']' if j.array && j.depth == 0 => {
                    if let Some(s) = j.elem_start.take() {
                        j.done.push((s, trim_end(buf, s, j.pos)));
                    }
                    j.closed = true;
                }
                b',' if j.depth == 0 => {
                    if let Some(s) = j.elem_start.take() {
                        j.done.push((s, trim_end(buf, s, j.pos)));
                    }
                }
                b'"' => {
                    if j.depth == 0 && j.elem_start.is_none() {
                        j.elem_start = Some(j.pos);
                    }
                    j.in_str = true;
                }
                c if c.is_ascii_whitespace() => {
                    if j.depth == 0
                        && !j.array
                        && let Some(s) = j.elem_start.take()
                    {
                        j.done.push((s, j.pos));
                    }
                }
                _ => {
                    if j.depth == 0 && j.elem_start.is_none() {
                        j.elem_start = Some(j.pos);
                    }
                }
            }
            j.pos += 1;
        }
    }
}

fn trim_end(buf: &[u8], s: usize, mut e: usize) -> usize {
    while e > s && buf[e - 1].is_ascii_whitespace() {
        e -= 1;
    }
    e
}
