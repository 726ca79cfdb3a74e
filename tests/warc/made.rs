//! Hand-made WARCs: charsets, and bad input (empty, oversize, binary,
//! truncated gzip).

use super::common::{kiln_in, manifest, pipeline, rejected};
use super::{docs, rejects, stats};
use serde_json::Value;
use std::io::Write;
use std::path::Path;

/// One WARC record around an HTTP response with `http_head` and `body`.
fn response(n: usize, http_head: &str, body: &[u8]) -> Vec<u8> {
    let mut block = http_head.replace('\n', "\r\n").into_bytes();
    block.extend_from_slice(b"\r\n");
    block.extend_from_slice(body);
    let mut out = format!(
        "WARC/1.0\r\nWARC-Type: response\r\nWARC-Record-ID: <urn:uuid:{n}>\r\nWARC-Target-URI: http://site{n}.example.jp/\r\n\
         WARC-Date: 2024-01-0{}T00:00:00Z\r\nContent-Type: application/http; msgtype=response\r\nContent-Length: {}\r\n\r\n",
        n % 10,
        block.len()
    )
    .into_bytes();
    out.extend_from_slice(&block);
    out.extend_from_slice(b"\r\n\r\n");
    out
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

fn run_read(dir: &Path, path: &Path, extra: &str) -> super::common::Run {
    let yaml = format!(
        "name: m\nworkdir: runs\nnodes:\n  r:\n    op: read\n    path: '{}'\n{extra}",
        path.display()
    );
    pipeline(dir, &yaml);
    kiln_in(dir, &["run", "pipeline.yaml"])
}

#[test]
fn charsets_come_from_header_meta_or_detection() {
    let d = tempfile::tempdir().unwrap();
    let french = "<html><body><p>Ça coûte très cher, déjà payé à l'hôtel près de la forêt.</p></body></html>";
    let russian = "<html><head><meta http-equiv=\"Content-Type\" content=\"text/html; charset=windows-1251\"></head><body><p>Привет, мир! Это проверка кодировки.</p></body></html>";
    let japanese =
        "<html><body><p>日本語のテキストです。これは文字コードの検出のためのテスト文書です。東京は日本の首都です。</p></body></html>";
    let mut warc = Vec::new();
    // 1: declared in the HTTP header only.
    let latin = encoding_rs::WINDOWS_1252.encode(french).0;
    warc.extend(response(
        1,
        "HTTP/1.1 200 OK\nContent-Type: text/html; charset=windows-1252\n",
        &latin,
    ));
    // 2: declared in <meta> only.
    let cyr = encoding_rs::WINDOWS_1251.encode(russian).0;
    warc.extend(response(2, "HTTP/1.1 200 OK\nContent-Type: text/html\n", &cyr));
    // 3: undeclared Shift_JIS, detected.
    let sjis = encoding_rs::SHIFT_JIS.encode(japanese).0;
    warc.extend(response(3, "HTTP/1.1 200 OK\nContent-Type: text/html\n", &sjis));
    // 4: an invalid label in the header; the UTF-8 body is detected.
    warc.extend(response(
        4,
        "HTTP/1.1 200 OK\nContent-Type: text/html; charset=x-no-such-charset\n",
        french.as_bytes(),
    ));
    let path = d.path().join("charsets.warc");
    std::fs::write(&path, &warc).unwrap();
    run_read(d.path(), &path, "").ok();
    let got = docs(&d.path().join("runs"), "r");
    let summary: Vec<(&str, &str)> = got
        .iter()
        .map(|v| (v["text"].as_str().unwrap(), v["charset"].as_str().unwrap()))
        .collect();
    assert_eq!(
        summary,
        [
            (french, "windows-1252"),
            (russian, "windows-1251"),
            (japanese, "Shift_JIS"),
            (french, "UTF-8")
        ]
    );
}

#[test]
fn an_empty_warc_is_nothing_alone_and_harmless_beside_others() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("in");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("a-empty.warc"), b"").unwrap();
    std::fs::write(dir.join("b-empty.warc.gz"), gzip(b"")).unwrap();
    let r = run_read(d.path(), &dir.join("a-empty.warc"), "");
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("holds no records (the input is empty)"), "{}", r.stderr);
    std::fs::write(
        dir.join("c.warc"),
        response(1, "HTTP/1.1 200 OK\nContent-Type: text/html\n", b"<p>x</p>"),
    )
    .unwrap();
    run_read(d.path(), &dir, "").ok();
    let m = manifest(&d.path().join("runs"), "r");
    assert_eq!((m["rows"].as_u64(), m["rejected_rows"].as_u64()), (Some(1), Some(0)));
}

#[test]
fn a_200_mb_payload_over_max_record_bytes_is_rejected_without_buffering() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("big.warc");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    f.write_all(&response(1, "HTTP/1.1 200 OK\nContent-Type: text/html\n", b"<p>before</p>"))
        .unwrap();
    let size: usize = 200 << 20;
    let head = "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n";
    write!(
        f,
        "WARC/1.0\r\nWARC-Type: response\r\nWARC-Record-ID: <urn:uuid:big>\r\nWARC-Target-URI: http://big.example/\r\n\
         Content-Type: application/http; msgtype=response\r\nContent-Length: {}\r\n\r\n{head}<html><body>",
        head.len() + size
    )
    .unwrap();
    let line = [b"<p>filler filler filler filler filler filler filler filler filler</p>\n".as_slice(); 1].concat();
    let mut left = size - "<html><body>".len();
    while left > 0 {
        let k = left.min(line.len());
        f.write_all(&line[..k]).unwrap();
        left -= k;
    }
    f.write_all(b"\r\n\r\n").unwrap();
    f.write_all(&response(3, "HTTP/1.1 200 OK\nContent-Type: text/html\n", b"<p>after</p>"))
        .unwrap();
    drop(f);
    run_read(d.path(), &path, "    max_record_bytes: 1048576\n").ok();
    let wd = d.path().join("runs");
    let texts: Vec<String> = docs(&wd, "r").iter().map(|v| v["text"].as_str().unwrap().to_string()).collect();
    assert_eq!(texts, ["<p>before</p>", "<p>after</p>"]);
    let rj = rejects(&wd, "r");
    assert_eq!(rj.len(), 1);
    assert_eq!(
        (rj[0].1.as_str(), rj[0].2),
        (
            "record_too_large",
            response(1, "HTTP/1.1 200 OK\nContent-Type: text/html\n", b"<p>before</p>").len() as u64
        )
    );
    // The reject keeps a bounded prefix, not the payload.
    let row: Value = serde_json::from_str(&rejected(&wd, "r")[0]).unwrap();
    assert!(row["text"].as_str().unwrap().len() <= 2 << 20);
}

#[test]
fn binary_payloads_labelled_html_and_truncated_gzip_are_rejected() {
    let d = tempfile::tempdir().unwrap();
    let html = "HTTP/1.1 200 OK\nContent-Type: text/html\n";
    let mut png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR".to_vec();
    png.extend((0..4000u32).map(|i| (i.wrapping_mul(2654435761) >> 24) as u8));
    // gzip per record: two good records, a binary one, then a last member cut in half.
    let mut file = Vec::new();
    file.extend(gzip(&response(1, html, b"<p>one</p>")));
    file.extend(gzip(&response(2, html, &png)));
    file.extend(gzip(&response(3, html, b"<p>three</p>")));
    let last = gzip(&response(4, html, "<p>four</p>".repeat(500).as_bytes()));
    file.extend_from_slice(&last[..last.len() / 2]);
    let path = d.path().join("t.warc.gz");
    std::fs::write(&path, &file).unwrap();
    let r = run_read(d.path(), &path, "");
    assert_eq!(r.code, 0, "{}", r.stderr);
    let wd = d.path().join("runs");
    let texts: Vec<String> = docs(&wd, "r").iter().map(|v| v["text"].as_str().unwrap().to_string()).collect();
    assert_eq!(texts, ["<p>one</p>", "<p>three</p>"]);
    let classes: Vec<String> = rejects(&wd, "r").into_iter().map(|(_, c, _)| c).collect();
    assert_eq!(classes, ["binary_payload", "stream_error"]);
    let s = stats(&wd, "r");
    assert_eq!(s["reasons"]["read: binary_payload"], 1);
    assert_eq!(s["reasons"]["read: stream_error"], 1);
}
