use super::*;
use arrow::array::{Array, AsArray};

fn origin(format: Format) -> Origin<'static> {
    Origin {
        rel: "f.warc",
        source: "src",
        format,
        max_record: 1 << 20,
        keep_metadata: true,
    }
}

fn record(kind: &str, extra: &str, block: &[u8]) -> Framed {
    let head = format!(
        "WARC/1.0\r\nWARC-Type: {kind}\r\nWARC-Record-ID: <urn:uuid:1>\r\nWARC-Target-URI: <http://a.example/p>\r\n\
         WARC-Date: 2024-05-18T00:00:00Z\r\n{extra}Content-Length: {}\r\n\r\n",
        block.len()
    );
    Framed::Record(Record {
        offset: 7,
        header: record::parse_header(head.as_bytes()).unwrap(), // ok: test module
        block: block.to_vec(),
        by_lines: false,
    })
}

fn response(http_head: &str, body: &[u8]) -> Framed {
    let mut block = http_head.replace('\n', "\r\n").into_bytes();
    block.extend_from_slice(b"\r\n");
    block.extend_from_slice(body);
    record("response", "Content-Type: application/http; msgtype=response\r\n", &block)
}

/// `(id, text, url, metadata)` per document.
type Row = (String, String, String, String);

fn run(items: &[Framed], format: Format) -> (Vec<Row>, Vec<String>, Skips) {
    let (p, skips) = build(items, 0, &origin(format));
    let mut docs = Vec::new();
    if let Some(b) = &p.docs {
        let s = |i: usize, r: usize| {
            let c = b.column(i).as_string::<i32>();
            if c.is_null(r) { String::new() } else { c.value(r).to_string() }
        };
        for r in 0..b.num_rows() {
            docs.push((s(0, r), s(1, r), s(2, r), s(4, r)));
        }
    }
    (docs, p.rejects.iter().map(|r| r.reason.clone()).collect(), skips)
}

#[test]
fn an_html_response_becomes_a_document() {
    let item = response(
        "HTTP/1.1 200 OK\nContent-Type: text/html; charset=utf-8\n",
        "<p>héllo</p>".as_bytes(),
    );
    let (docs, rejects, skips) = run(&[item], Format::Warc);
    assert!(rejects.is_empty() && skips.is_empty(), "{rejects:?} {skips:?}");
    assert_eq!(
        docs,
        [(
            "urn:uuid:1".to_string(),
            "<p>héllo</p>".to_string(),
            "http://a.example/p".to_string(),
            r#"{"date":"2024-05-18T00:00:00Z","charset":"UTF-8"}"#.to_string()
        )]
    );
}

#[test]
fn non_documents_are_counted_by_reason() {
    let items = [
        record("warcinfo", "", b"software: x"),
        record("request", "", b"GET / HTTP/1.1\r\n\r\n"),
        response("HTTP/1.1 404 Not Found\nContent-Type: text/html\n", b"<p>gone"),
        response("HTTP/1.1 200 OK\nContent-Type: image/png\n", b"\x89PNG"),
        response("HTTP/1.1 200 OK\nContent-Type: text/html\n", b"  \r\n"),
        record("revisit", "", b""),
    ];
    let (docs, rejects, skips) = run(&items, Format::Warc);
    assert!(docs.is_empty() && rejects.is_empty(), "{docs:?} {rejects:?}");
    let want: Skips = [
        ("warcinfo", 1),
        ("request", 1),
        ("http_status: 404", 1),
        ("non_html: image/png", 1),
        ("empty_payload", 1),
        ("revisit", 1),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    assert_eq!(skips, want);
}

#[test]
fn the_identified_payload_type_wins_over_the_label() {
    let head = "WARC-Identified-Payload-Type: application/pdf\r\nContent-Type: application/http; msgtype=response\r\n";
    let block = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n%PDF-1.4";
    let (docs, _, skips) = run(&[record("response", head, block)], Format::Warc);
    assert!(docs.is_empty());
    assert_eq!(skips.get("non_html: application/pdf"), Some(&1));
}

#[test]
fn resource_records_and_unlabelled_html_are_read() {
    let res = record("resource", "Content-Type: text/html\r\n", b"<html><p>wget page</p></html>");
    let unlabelled = response("HTTP/1.1 200 OK\n", b"<!DOCTYPE html><html><p>x</p></html>");
    let (docs, rejects, _) = run(&[res, unlabelled], Format::Warc);
    assert!(rejects.is_empty(), "{rejects:?}");
    assert_eq!(docs.len(), 2);
    assert_eq!(docs[0].1, "<html><p>wget page</p></html>");
}

#[test]
fn chunked_and_gzip_bodies_are_decoded() {
    use std::io::Write;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(b"<p>zipped</p>").unwrap(); // ok: test module
    let gz = gz.finish().unwrap(); // ok: test module
    let mut chunked = format!("{:x}\r\n", gz.len()).into_bytes();
    chunked.extend_from_slice(&gz);
    chunked.extend_from_slice(b"\r\n0\r\n\r\n");
    let head = "HTTP/1.1 200 OK\nContent-Type: text/html\nTransfer-Encoding: chunked\nContent-Encoding: gzip\n";
    let (docs, rejects, _) = run(&[response(head, &chunked)], Format::Warc);
    assert!(rejects.is_empty(), "{rejects:?}");
    assert_eq!(docs[0].1, "<p>zipped</p>");
}

#[test]
fn broken_payloads_are_rejected_with_reasons() {
    let items = [
        response(
            "HTTP/1.1 200 OK\nContent-Type: text/html\nTransfer-Encoding: chunked\n",
            b"10\r\nshort",
        ),
        response("HTTP/1.1 200 OK\nContent-Type: text/html\n", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"),
        record(
            "response",
            "Content-Type: application/http; msgtype=response\r\n",
            b"garbage, not http",
        ),
        response("HTTP/1.1 200 OK\nContent-Type: text/html\nContent-Encoding: br\n", b"\x1b\x00"),
    ];
    let (docs, rejects, _) = run(&items, Format::Warc);
    assert!(docs.is_empty());
    assert_eq!(rejects.len(), 4);
    assert_eq!(rejects[0], "chunked: chunk 0 declares 16 bytes, only 5 remain");
    assert!(rejects[1].starts_with("binary_payload: NUL byte"), "{rejects:?}");
    assert!(rejects[2].starts_with("http_header:"), "{rejects:?}");
    assert_eq!(rejects[3], "content_encoding: br is not supported");
}

#[test]
fn wet_reads_conversions_and_skips_the_rest() {
    let items = [
        record("warcinfo", "", b"x: y"),
        record("conversion", "Content-Type: text/plain\r\n", "Плоский текст".as_bytes()),
        response("HTTP/1.1 200 OK\nContent-Type: text/html\n", b"<p>x"),
    ];
    let (docs, rejects, skips) = run(&items, Format::Wet);
    assert!(rejects.is_empty());
    assert_eq!(docs.len(), 1);
    assert_eq!(docs[0].1, "Плоский текст");
    assert_eq!(skips.get("warcinfo"), Some(&1));
    assert_eq!(skips.get("response"), Some(&1));
}

#[test]
fn oversize_records_of_skipped_kinds_are_skips() {
    let header = record::parse_header(b"WARC/1.0\r\nWARC-Type: request\r\nContent-Length: 9999999\r\n\r\n").unwrap(); // ok: test module
    let br = |h: Header| {
        Framed::Broken(Broken {
            offset: 0,
            reason: "record_too_large: Content-Length 9999999 over max_record_bytes 1024".into(),
            header: Some(h),
            raw: Vec::new(),
        })
    };
    let mut resp = header.clone();
    resp.fields[0].1 = "response".into();
    let (_, rejects, skips) = run(&[br(header), br(resp)], Format::Warc);
    assert_eq!(skips.get("request"), Some(&1));
    assert_eq!(rejects.len(), 1);
    assert!(rejects[0].starts_with("record_too_large"));
}

#[test]
fn records_without_ids_get_file_and_offset_and_without_uri_are_rejected() {
    let head = "WARC/1.0\r\nWARC-Type: resource\r\nWARC-Target-URI: http://x/\r\nContent-Type: text/html\r\nContent-Length: 8\r\n\r\n";
    let item = |head: &str| {
        Framed::Record(Record {
            offset: 42,
            header: record::parse_header(head.as_bytes()).unwrap(), // ok: test module
            block: b"<p>x</p>".to_vec(),
            by_lines: false,
        })
    };
    let no_uri = head.replace("WARC-Target-URI: http://x/\r\n", "");
    let (docs, rejects, _) = run(&[item(head), item(&no_uri)], Format::Warc);
    assert_eq!(docs[0].0, "f.warc@42");
    assert_eq!(docs[0].2, "http://x/");
    assert_eq!(rejects, ["warc_header: a resource record without WARC-Target-URI"]);
}
