//! The HTTP message inside a WARC `response` block: status line, headers,
//! and the body with its transfer and content codings undone.
//!
//! Archives store the bytes as received, so a body may still be chunked
//! (RFC 9112 §7.1) or gzip/deflate-compressed (RFC 9110 §8.4). Following
//! warcio's `ChunkedDataReader`, a body labelled chunked whose first line is
//! not a chunk size is taken as already decoded (some archivers dechunk but
//! keep the header); a body that starts chunked and then breaks is an error.

use std::io::Read;

/// A parsed HTTP response.
#[derive(Debug)]
pub struct Response<'a> {
    /// The status code (`200`).
    pub status: u16,
    /// Header fields in order, values trimmed (bytes read as Latin-1/UTF-8 lossy).
    pub headers: Vec<(String, String)>,
    /// The body as stored (before any decoding).
    pub body: &'a [u8],
}

impl Response<'_> {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Parses the status line and headers of an HTTP response block.
pub fn parse_response(block: &[u8]) -> Result<Response<'_>, String> {
    let (head, body) = split_head(block);
    let text = String::from_utf8_lossy(head);
    let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let status_line = lines.next().unwrap_or_default();
    let status = parse_status(status_line)?;
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in lines {
        if line.is_empty() {
            break;
        }
        if line.starts_with([' ', '\t']) {
            // Obsolete line folding (RFC 9112 §5.2): part of the previous value.
            if let Some((_, v)) = headers.last_mut() {
                v.push(' ');
                v.push_str(line.trim());
            }
            continue;
        }
        // Real servers send junk lines; like browsers, ignore those without a colon.
        if let Some((k, v)) = line.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    Ok(Response { status, headers, body })
}

/// Splits at the first blank line (CRLF CRLF, or LF LF from sloppy servers).
fn split_head(block: &[u8]) -> (&[u8], &[u8]) {
    let crlf = memchr::memmem::find(block, b"\r\n\r\n").map(|i| (i, i + 4));
    let lf = memchr::memmem::find(block, b"\n\n").map(|i| (i, i + 2));
    let cut = match (crlf, lf) {
        (Some(c), Some(l)) => Some(if l.0 < c.0 { l } else { c }),
        (c, l) => c.or(l),
    };
    match cut {
        Some((h, b)) => (&block[..h], &block[b..]),
        // Headers only (a response without a body, e.g. a 304).
        None => (block, &[]),
    }
}

fn parse_status(line: &str) -> Result<u16, String> {
    let shown = || line.chars().take(60).collect::<String>();
    if !line.starts_with("HTTP/") {
        return Err(format!(
            "http_header: expected an `HTTP/<version> <code>` status line, found {:?}",
            shown()
        ));
    }
    let code = line.split_whitespace().nth(1).unwrap_or_default();
    match code.parse::<u16>() {
        Ok(c) if (100..=999).contains(&c) && code.len() == 3 => Ok(c),
        _ => Err(format!("http_header: no 3-digit status code in {:?}", shown())),
    }
}

/// Why a chunked body could not be decoded.
#[derive(Debug, PartialEq, Eq)]
pub enum Chunked {
    /// The body does not start with a chunk-size line: use it as it is.
    NotChunked,
    /// It started chunked and then broke (`"<class>: <detail>"`).
    Broken(String),
}

/// Decodes a chunked body (RFC 9112 §7.1); output capped at `max` bytes.
pub fn dechunk(body: &[u8], max: usize) -> Result<Vec<u8>, Chunked> {
    let mut out = Vec::with_capacity(body.len());
    let mut pos = 0;
    let mut n_chunk = 0;
    loop {
        let Some(eol) = memchr::memchr(b'\n', &body[pos..]) else {
            if n_chunk == 0 {
                return Err(Chunked::NotChunked);
            }
            // A missing last-chunk: the body was cut after a whole chunk, which
            // is how many crawlers store a connection closed early; keep it.
            if body[pos..].iter().all(u8::is_ascii_whitespace) {
                return Ok(out);
            }
            return Err(Chunked::Broken(format!("chunked: chunk {n_chunk} has no size line")));
        };
        let line = &body[pos..pos + eol];
        let size_text = line.split(|&b| b == b';').next().unwrap_or_default().trim_ascii();
        let size = std::str::from_utf8(size_text)
            .ok()
            .filter(|s| !s.is_empty() && s.len() <= 15)
            .and_then(|s| usize::from_str_radix(s, 16).ok());
        let Some(size) = size else {
            if n_chunk == 0 {
                return Err(Chunked::NotChunked);
            }
            let shown = String::from_utf8_lossy(&line[..line.len().min(20)]).into_owned();
            return Err(Chunked::Broken(format!("chunked: chunk {n_chunk} has a bad size line {shown:?}")));
        };
        pos += eol + 1;
        if size == 0 {
            return Ok(out); // trailers, if any, are not needed
        }
        let rest = body.len() - pos;
        if size > rest {
            return Err(Chunked::Broken(format!(
                "chunked: chunk {n_chunk} declares {size} bytes, only {rest} remain"
            )));
        }
        if out.len() + size > max {
            return Err(Chunked::Broken(format!(
                "record_too_large: dechunked body over max_record_bytes {max}"
            )));
        }
        out.extend_from_slice(&body[pos..pos + size]);
        pos += size;
        // The CRLF after the data; a bare LF is accepted.
        if body[pos..].starts_with(b"\r\n") {
            pos += 2;
        } else if body[pos..].starts_with(b"\n") {
            pos += 1;
        } else if pos < body.len() {
            return Err(Chunked::Broken(format!("chunked: chunk {n_chunk} is not followed by a line end")));
        }
        n_chunk += 1;
        if pos >= body.len() {
            return Ok(out);
        }
    }
}

/// Undoes a `Content-Encoding` (`gzip`, `x-gzip`, `deflate`; `identity` and
/// none pass through), capped at `max` bytes of output.
pub fn decode_content(body: Vec<u8>, coding: Option<&str>, max: usize) -> Result<Vec<u8>, String> {
    let coding = coding.map(|c| c.trim().to_ascii_lowercase()).unwrap_or_default();
    let mut out = Vec::new();
    let res = match coding.as_str() {
        "" | "identity" | "none" => return Ok(body),
        "gzip" | "x-gzip" => flate2::read::MultiGzDecoder::new(&body[..])
            .take(max as u64 + 1)
            .read_to_end(&mut out),
        // "deflate" is meant to be zlib, but some servers send raw deflate.
        "deflate" => match flate2::read::ZlibDecoder::new(&body[..]).take(max as u64 + 1).read_to_end(&mut out) {
            Ok(n) => Ok(n),
            Err(_) => {
                out.clear();
                flate2::read::DeflateDecoder::new(&body[..])
                    .take(max as u64 + 1)
                    .read_to_end(&mut out)
            }
        },
        other => return Err(format!("content_encoding: {other} is not supported")),
    };
    match res {
        Ok(n) if n > max => Err(format!("record_too_large: decompressed body over max_record_bytes {max}")),
        Ok(_) => Ok(out),
        // Some archives store the body already decoded but keep the header.
        Err(_) if !body.starts_with(&[0x1f, 0x8b]) && coding != "deflate" => Ok(body),
        Err(e) => Err(format!("content_encoding: cannot decode {coding} body: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_and_headers_parse() {
        let r = parse_response(b"HTTP/1.1 200 OK\r\nContent-Type: text/html;\r\n charset=utf-8\r\nX: y\r\n\r\n<p>hi").unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
        assert_eq!(r.body, b"<p>hi");
        let r = parse_response(b"HTTP/1.0 304 Not Modified\r\nETag: x\r\n").unwrap();
        assert_eq!((r.status, r.body.len()), (304, 0));
        assert!(parse_response(b"GET / HTTP/1.1\r\n\r\n").unwrap_err().starts_with("http_header:"));
        assert!(parse_response(b"HTTP/1.1 2000 OK\r\n\r\n").unwrap_err().contains("3-digit"));
    }

    #[test]
    fn chunked_bodies_decode() {
        let body = b"4\r\nWiki\r\n6;ext=1\r\npedia \r\nE\r\nin \r\n\r\nchunks.\r\n0\r\n\r\n";
        assert_eq!(dechunk(body, 1 << 20).unwrap(), b"Wikipedia in \r\n\r\nchunks.");
        // Bare LF line ends and a missing last-chunk are accepted.
        assert_eq!(dechunk(b"3\nabc\n2\nde\n", 100).unwrap(), b"abcde");
    }

    #[test]
    fn chunked_errors_and_fallback() {
        assert_eq!(dechunk(b"<html>not chunked", 100), Err(Chunked::NotChunked));
        assert_eq!(dechunk(b"", 100), Err(Chunked::NotChunked));
        match dechunk(b"5\r\nab", 100) {
            Err(Chunked::Broken(r)) => assert_eq!(r, "chunked: chunk 0 declares 5 bytes, only 2 remain"),
            other => panic!("{other:?}"),
        }
        match dechunk(b"2\r\nab\r\nzz\r\nxx", 100) {
            Err(Chunked::Broken(r)) => assert!(r.contains("bad size line"), "{r}"),
            other => panic!("{other:?}"),
        }
        match dechunk(b"2\r\nabXY\r\n", 100) {
            Err(Chunked::Broken(r)) => assert!(r.contains("not followed by a line end"), "{r}"),
            other => panic!("{other:?}"),
        }
        // Exactly at the cap is fine, one byte over is not.
        assert!(dechunk(b"4\r\nabcd\r\n0\r\n\r\n", 4).is_ok());
        assert!(matches!(dechunk(b"5\r\nabcde\r\n0\r\n\r\n", 4), Err(Chunked::Broken(r)) if r.starts_with("record_too_large")));
    }

    #[test]
    fn content_codings_decode() {
        use std::io::Write;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(b"<html>hello</html>").unwrap();
        let gz = gz.finish().unwrap();
        assert_eq!(decode_content(gz.clone(), Some("gzip"), 100).unwrap(), b"<html>hello</html>");
        assert!(decode_content(gz, Some("gzip"), 10).unwrap_err().starts_with("record_too_large"));
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
        z.write_all(b"abc").unwrap();
        assert_eq!(decode_content(z.finish().unwrap(), Some("deflate"), 100).unwrap(), b"abc");
        assert_eq!(decode_content(b"plain".to_vec(), Some("gzip"), 100).unwrap(), b"plain");
        assert!(
            decode_content(b"x".to_vec(), Some("br"), 100)
                .unwrap_err()
                .starts_with("content_encoding: br")
        );
    }
}
