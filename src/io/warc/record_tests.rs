use super::*;

fn rec(kind: &str, body: &str) -> String {
    format!(
        "WARC/1.0\r\nWARC-Type: {kind}\r\nWARC-Record-ID: <urn:uuid:{kind}>\r\nContent-Length: {}\r\n\r\n{body}\r\n\r\n",
        body.len()
    )
}

fn frame_all(data: &[u8], max: usize) -> Vec<Framed> {
    let mut f = Framer::new(data, max);
    std::iter::from_fn(|| f.next_item()).collect()
}

fn reasons(items: &[Framed]) -> Vec<String> {
    items
        .iter()
        .map(|i| match i {
            Framed::Record(r) => format!("ok {} {}", r.header.get("WARC-Type").unwrap_or("?"), r.block.len()),
            Framed::Broken(b) => format!("broken@{} {}", b.offset, b.reason),
        })
        .collect()
}

#[test]
fn headers_parse_with_continuations_and_any_case() {
    let h = parse_header(b"WARC/1.1\r\nWARC-Type: response\r\ncontent-length: 12\r\nX-Long: a\r\n  b\r\n\r\n").unwrap(); // ok: test module
    assert_eq!(h.version, "WARC/1.1");
    assert_eq!(h.get("Content-Length"), Some("12"));
    assert_eq!(h.get("x-long"), Some("a b"));
    assert!(
        parse_header(b"WARC/1.0\r\nno colon here\r\n\r\n")
            .unwrap_err()
            .contains("line 2 has no `:`")
    );
    assert!(
        parse_header(b"WARC/1.0\r\n cont\r\n\r\n")
            .unwrap_err()
            .contains("continues a field")
    );
}

#[test]
fn records_frame_by_content_length() {
    let data = format!(
        "{}{}{}",
        rec("warcinfo", "a: b"),
        rec("response", "HTTP/1.1 200 OK\r\n\r\nhi"),
        rec("request", "")
    );
    let items = frame_all(data.as_bytes(), 1 << 20);
    assert_eq!(reasons(&items), ["ok warcinfo 4", "ok response 21", "ok request 0"]);
    let Framed::Record(r) = &items[1] else { unreachable!() };
    assert_eq!(r.offset as usize, rec("warcinfo", "a: b").len());
    assert_eq!(r.block, b"HTTP/1.1 200 OK\r\n\r\nhi");
}

#[test]
fn a_block_containing_warc_lines_is_not_split() {
    let inner = rec("response", "x");
    let data = format!("{}{}", rec("resource", &inner), rec("request", "y"));
    let items = frame_all(data.as_bytes(), 1 << 20);
    assert_eq!(
        reasons(&items),
        [format!("ok resource {}", inner.len()), "ok request 1".to_string()]
    );
}

#[test]
fn a_wrong_length_is_rejected_and_the_next_record_found() {
    let bad = "WARC/1.0\r\nWARC-Type: response\r\nContent-Length: 3\r\n\r\nabcdef\r\n\r\n";
    let data = format!("{bad}{}", rec("request", "y"));
    let items = frame_all(data.as_bytes(), 1 << 20);
    let r = reasons(&items);
    assert_eq!(r.len(), 2, "{r:?}");
    assert!(r[0].starts_with("broken@0 record_end: Content-Length 3"), "{r:?}");
    assert_eq!(r[1], "ok request 1");
}

#[test]
fn garbage_before_a_record_is_one_reject() {
    let data = format!("junk line\r\nmore junk\r\n{}", rec("request", "y"));
    let items = frame_all(data.as_bytes(), 1 << 20);
    let r = reasons(&items);
    assert_eq!(r.len(), 2, "{r:?}");
    assert!(
        r[0].starts_with("broken@0 warc_header: expected a `WARC/<version>` line, found \"junk line\\r\""),
        "{r:?}"
    );
    assert!(r[0].ends_with("skipped 22 bytes"), "{r:?}");
    assert_eq!(r[1], "ok request 1");
}

#[test]
fn missing_or_bad_content_length_is_a_header_error() {
    let data = format!("WARC/1.0\r\nWARC-Type: response\r\n\r\nbody\r\n\r\n{}", rec("request", "y"));
    let r = reasons(&frame_all(data.as_bytes(), 1 << 20));
    assert_eq!(r[0], "broken@0 warc_header: no Content-Length field");
    assert_eq!(r[1], "ok request 1");
    let data = "WARC/1.0\r\nContent-Length: 1x\r\n\r\n";
    let r = reasons(&frame_all(data.as_bytes(), 1 << 20));
    assert_eq!(r, ["broken@0 warc_header: Content-Length \"1x\" is not a number"]);
}

#[test]
fn a_short_stream_is_a_truncated_record() {
    let full = rec("response", "0123456789");
    let cut = &full.as_bytes()[..full.len() - 9];
    let r = reasons(&frame_all(cut, 1 << 20));
    assert_eq!(
        r,
        ["broken@0 truncated_record: Content-Length 10, but the stream ends after 5 bytes of block"]
    );
    // Cut inside the header.
    let r = reasons(&frame_all(&full.as_bytes()[..20], 1 << 20));
    assert_eq!(
        r,
        ["broken@0 truncated_record: the stream ends inside the record header, after 20 bytes"]
    );
}

#[test]
fn oversize_blocks_are_skipped_at_the_limit() {
    let body = "x".repeat(2000);
    let data = format!("{}{}", rec("response", &body), rec("request", "y"));
    let r = reasons(&frame_all(data.as_bytes(), 1999));
    assert_eq!(r[0], "broken@0 record_too_large: Content-Length 2000 over max_record_bytes 1999");
    assert_eq!(r[1], "ok request 1");
    // Exactly at the limit is kept.
    let r = reasons(&frame_all(data.as_bytes(), 2000));
    assert_eq!(r[0], "ok response 2000");
}

#[test]
fn lf_records_with_wrong_lengths_frame_by_lines() {
    // As in cc_net's sample: bare LF, lengths that do not match.
    let data = "WARC/1.0\nWARC-Type: conversion\nContent-Length: 999\n\nline one\nline two\n\nWARC/1.0\nWARC-Type: conversion\nContent-Length: 1\n\nlast\n";
    let items = frame_all(data.as_bytes(), 1 << 20);
    assert_eq!(reasons(&items), ["ok conversion 17", "ok conversion 4"]);
    let Framed::Record(r) = &items[0] else { unreachable!() };
    assert!(r.by_lines);
    assert_eq!(r.block, b"line one\nline two");
}

#[test]
fn heritrix_0_17_version_lines_are_records() {
    let data = rec("warcinfo", "x").replace("WARC/1.0", "WARC/0.17");
    assert_eq!(reasons(&frame_all(data.as_bytes(), 100)), ["ok warcinfo 1"]);
}

#[test]
fn arc_records_become_warc_fields() {
    let desc = "filedesc://x.arc 0.0.0.0 20080430204825 text/plain 5\nabcde\n";
    let page = "http://example.com/ 1.2.3.4 20080430204826 text/html 21\nHTTP/1.0 200 OK\r\n\r\nhi\n";
    let data = format!("{desc}{page}");
    let items = frame_all(data.as_bytes(), 1 << 20);
    assert_eq!(reasons(&items), ["ok warcinfo 5", "ok response 21"]);
    let Framed::Record(r) = &items[1] else { unreachable!() };
    assert_eq!(r.header.get("WARC-Target-URI"), Some("http://example.com/"));
    assert_eq!(r.header.get("WARC-Date"), Some("2008-04-30T20:48:26Z"));
    assert_eq!(r.header.get("Content-Type"), Some("application/http; msgtype=response"));
    let r = reasons(&frame_all(b"filedesc://x.arc 0 1 2 5\nabcde\nnot an arc header\n", 100));
    assert!(r[1].contains("arc_header: expected `URL IP date content-type length`"), "{r:?}");
}

#[test]
fn a_failing_source_ends_with_a_stream_error() {
    struct Failing<'a>(&'a [u8]);
    impl Read for Failing<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.0.is_empty() {
                return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "corrupt gzip"));
            }
            let n = buf.len().min(self.0.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }
    let one = rec("request", "y");
    let data = format!("{one}{}", rec("response", "abcdefgh"));
    let cut = &data.as_bytes()[..one.len() + 40];
    let mut f = Framer::new(Failing(cut), 1 << 20);
    let r = reasons(&std::iter::from_fn(|| f.next_item()).collect::<Vec<_>>());
    assert_eq!(r.len(), 2, "{r:?}");
    assert_eq!(r[0], "ok request 1");
    assert!(
        r[1].starts_with(&format!("broken@{} stream_error: corrupt gzip", one.len())),
        "{r:?}"
    );
    // Failing between records.
    let mut f = Framer::new(Failing(one.as_bytes()), 1 << 20);
    let r = reasons(&std::iter::from_fn(|| f.next_item()).collect::<Vec<_>>());
    assert_eq!(
        r,
        [
            "ok request 1".to_string(),
            format!(
                "broken@{} stream_error: corrupt gzip (between records; the rest of the file is unreadable)",
                one.len()
            )
        ]
    );
}
