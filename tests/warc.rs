//! `read` on every WARC, WET and ARC file under ../shared/data/crawl, through
//! the real `kiln` binary: document counts, skipped counts and rejects per
//! file, as found by inspecting the files (zcat, grep and a record walk by
//! Content-Length; the broken fixtures as the data README lists them). Then
//! hand-made WARCs for charsets and bad input. A panic (exit 101) fails
//! every test through `common::kiln_in`.

mod common;

use common::{kiln_in, manifest, pipeline, rejected, rows, shared_data};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

fn q(p: &Path) -> String {
    format!("'{}'", p.display())
}

fn stats(workdir: &Path, node: &str) -> Value {
    manifest(workdir, node)["stats"]["read"].clone()
}

/// `(file, reason class, byte offset)` of each reject.
fn rejects(workdir: &Path, node: &str) -> Vec<(String, String, u64)> {
    rejected(workdir, node)
        .iter()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            let reason = v["reason"].as_str().unwrap();
            let class = reason.split(':').next().unwrap().to_string();
            (v["file"].as_str().unwrap().to_string(), class, v["byte_offset"].as_u64().unwrap())
        })
        .collect()
}

fn docs(workdir: &Path, node: &str) -> Vec<Value> {
    rows(workdir, node).iter().map(|l| serde_json::from_str(l).unwrap()).collect()
}

struct Case {
    node: &'static str,
    path: &'static str,
    format: Option<&'static str>,
    rows: u64,
    skipped: &'static [(&'static str, u64)],
    /// `(file, reason class)` of each reject, in order.
    rejects: &'static [(&'static str, &'static str)],
}

const CASES: &[Case] = &[
    // warcfile: 16 HTML responses; clipped: its one gzip member is cut inside the payload.
    Case {
        node: "resiliparse",
        path: "resiliparse/*.warc.gz",
        format: None,
        rows: 16,
        skipped: &[("metadata", 16), ("request", 17), ("warcinfo", 1)],
        rejects: &[("clipped.warc.gz", "stream_error")],
    },
    Case {
        node: "whirlwind",
        path: "cc-whirlwind/whirlwind.warc.gz",
        format: None,
        rows: 1,
        skipped: &[("metadata", 1), ("request", 1), ("warcinfo", 1)],
        rejects: &[],
    },
    Case {
        node: "whirlwind_wet",
        path: "cc-whirlwind/whirlwind.warc.wet.gz",
        format: None,
        rows: 1,
        skipped: &[("warcinfo", 1)],
        rejects: &[],
    },
    // 8 WET fragments: 66 whole conversion records, one of them without
    // its WARC-Target-URI, and 2 cut off (a truncated gzip, a short file). corrupt_warcinfo_1 only lacks WARC-Filename
    // and corrupt_two_warcinfo / corrupt_starts_with_conversion only move
    // warcinfo records about: well-formed WARC, no error here.
    Case {
        node: "wet_2016",
        path: "cc-wet-2016-50/*.wet.gz",
        format: None,
        rows: 65,
        skipped: &[("warcinfo", 9)],
        rejects: &[
            ("appended_zip_fragment_unexpected_eof.wet.gz", "stream_error"),
            ("corrupt_warcconversion_1.wet.gz", "warc_header"),
            ("fragment1_incomplete_last.wet.gz", "truncated_record"),
        ],
    },
    Case {
        node: "jwarc",
        path: "jwarc/*.warc.gz",
        format: None,
        rows: 1,
        skipped: &[("warcinfo", 1)],
        rejects: &[],
    },
    // wget WARCs: 22 + 15 HTML responses, 2 + 2 text/plain resource records.
    Case {
        node: "dolma",
        path: "dolma/*.warc.gz",
        format: None,
        rows: 37,
        skipped: &[("metadata", 2), ("non_html: text/plain", 4), ("request", 37), ("warcinfo", 2)],
        rejects: &[],
    },
    // The Heritrix ARC and WARC hold the same 7 captures (2 HTML).
    Case {
        node: "ukwa",
        path: "ukwa/**/*.*arc.gz",
        format: None,
        rows: 9,
        skipped: &[
            ("http_status: 301", 2),
            ("http_status: 302", 7),
            ("metadata", 7),
            ("non_html: image/gif", 21),
            ("non_html: image/jpeg", 15),
            ("non_html: image/png", 125),
            ("non_html: text/css", 6),
            ("non_html: text/dns", 2),
            ("non_html: text/javascript", 28),
            ("non_html: text/plain", 21),
            ("non_html: text/xml", 3),
            ("request", 248),
            ("warcinfo", 6),
        ],
        rejects: &[],
    },
    // example-trunc: the response's Content-Length runs past its block into
    // the next record; the request after it is still found.
    Case {
        node: "warcio",
        path: "warcio/*.*arc*",
        format: None,
        rows: 8,
        skipped: &[
            ("metadata", 1),
            ("non_html: application/json", 3),
            ("non_html: image/png", 1),
            ("non_html: text/plain", 2),
            ("request", 17),
            ("revisit", 3),
            ("warcinfo", 14),
        ],
        rejects: &[("example-trunc.warc", "record_end")],
    },
    Case {
        node: "cc_net",
        path: "cc_net/sample.warc.wet.txt",
        format: Some("wet"),
        rows: 3,
        skipped: &[("warcinfo", 1)],
        rejects: &[],
    },
];

#[test]
fn every_crawl_file_reads_with_expected_counts() {
    let Some(data) = shared_data() else { return };
    let crawl = data.join("crawl");
    let d = tempfile::tempdir().unwrap();
    let mut yaml = String::from("name: crawl\nworkdir: runs\nnodes:\n");
    for c in CASES {
        yaml.push_str(&format!("  {}:\n    op: read\n    path: {}\n", c.node, q(&crawl.join(c.path))));
        if let Some(f) = c.format {
            yaml.push_str(&format!("    format: {f}\n"));
        }
    }
    pipeline(d.path(), &yaml);
    kiln_in(d.path(), &["run", "pipeline.yaml"]).ok();
    let wd = d.path().join("runs");
    for c in CASES {
        let m = manifest(&wd, c.node);
        assert_eq!(m["rows"], c.rows, "{}: rows", c.node);
        let s = stats(&wd, c.node);
        let want: BTreeMap<&str, u64> = c.skipped.iter().copied().collect();
        assert_eq!(s["skipped"], json!(want), "{}: skipped", c.node);
        let got: Vec<(String, String)> = rejects(&wd, c.node).into_iter().map(|(f, r, _)| (f, r)).collect();
        let want: Vec<(String, String)> = c.rejects.iter().map(|(f, r)| (f.to_string(), r.to_string())).collect();
        assert_eq!(got, want, "{}: rejects", c.node);
        assert_eq!(m["rejected_rows"], c.rejects.len(), "{}", c.node);
        let n_skipped: u64 = c.skipped.iter().map(|(_, n)| n).sum();
        assert_eq!(
            s["records_in"],
            c.rows + c.rejects.len() as u64 + n_skipped,
            "{}: records_in",
            c.node
        );
        for doc in docs(&wd, c.node) {
            assert!(!doc["text"].as_str().unwrap().is_empty(), "{}: empty text in {doc}", c.node);
            assert!(doc["url"].as_str().is_some_and(|u| !u.starts_with('<')), "{}: url {doc}", c.node);
            assert!(doc["charset"].is_string() && doc["date"].is_string(), "{}: metadata {doc}", c.node);
        }
    }
    // cc_net's lengths are wrong; its records were framed by lines.
    let cc = docs(&wd, "cc_net");
    assert!(cc.iter().all(|d| d["framed_by_lines"] == true), "{cc:?}");
    assert_eq!(cc[0]["url"], "http://sample_english.com");
    assert!(cc[0]["text"].as_str().unwrap().ends_with("Truth isn't."), "{}", cc[0]["text"]);
    // wget's `<url>` quirk is undone.
    let dolma = docs(&wd, "dolma");
    assert!(dolma[0]["url"].as_str().unwrap().starts_with("http"), "{}", dolma[0]["url"]);
}

#[test]
fn files_without_documents_fail_with_their_counts() {
    let Some(data) = shared_data() else { return };
    let d = tempfile::tempdir().unwrap();
    let wat = data.join("crawl/cc-whirlwind/whirlwind.warc.wat.gz");
    pipeline(
        d.path(),
        &format!(
            "name: wat\nworkdir: runs\nnodes:\n  wat:\n    op: read\n    path: {}\n    format: warc\n",
            q(&wat)
        ),
    );
    let r = kiln_in(d.path(), &["run", "pipeline.yaml"]);
    assert_ne!(r.code, 0);
    assert!(
        r.stderr.contains("all 2 record(s) were skipped (metadata ×1, warcinfo ×1)"),
        "{}",
        r.stderr
    );
    let paths = data.join("crawl/cc-whirlwind/CC-MAIN-2024-22.warc.paths.gz");
    pipeline(
        d.path(),
        &format!(
            "name: p\nworkdir: runs\nnodes:\n  p:\n    op: read\n    path: {}\n    format: warc\n",
            q(&paths)
        ),
    );
    let r = kiln_in(d.path(), &["run", "pipeline.yaml"]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("1 record(s) rejected (read: warc_header ×1)"), "{}", r.stderr);
}

/// The WARC header fields of the first record of `type_`.
fn warc_fields(bytes: &[u8], type_: &str) -> BTreeMap<String, String> {
    let text = String::from_utf8_lossy(bytes);
    let at = text.find(&format!("WARC-Type: {type_}\r\n")).unwrap();
    let start = text[..at].rfind("WARC/1.").unwrap();
    let end = start + text[start..].find("\r\n\r\n").unwrap();
    text[start..end]
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(": ").map(|(k, v)| (k.to_string(), v.to_string())))
        .collect()
}

fn gunzip(path: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(std::fs::File::open(path).unwrap())
        .read_to_end(&mut out)
        .unwrap();
    out
}

#[test]
fn whirlwind_ids_urls_dates_and_texts_are_the_records_own() {
    let Some(data) = shared_data() else { return };
    let dir = data.join("crawl/cc-whirlwind");
    let d = tempfile::tempdir().unwrap();
    let yaml = format!(
        "name: g\nworkdir: runs\nnodes:\n  warc:\n    op: read\n    path: {}\n  wet:\n    op: read\n    path: {}\n",
        q(&dir.join("whirlwind.warc.gz")),
        q(&dir.join("whirlwind.warc.wet.gz"))
    );
    pipeline(d.path(), &yaml);
    kiln_in(d.path(), &["run", "pipeline.yaml"]).ok();
    let wd = d.path().join("runs");
    let warc = gunzip(&dir.join("whirlwind.warc.gz"));
    let h = warc_fields(&warc, "response");
    let doc = &docs(&wd, "warc")[0];
    assert_eq!(doc["id"], h["WARC-Record-ID"].trim_matches(['<', '>']));
    assert_eq!(doc["url"], h["WARC-Target-URI"]);
    assert_eq!(doc["url"], "https://an.wikipedia.org/wiki/Escopete");
    assert_eq!(doc["date"], h["WARC-Date"]);
    assert_eq!(doc["charset"], "UTF-8");
    let html = doc["text"].as_str().unwrap();
    assert!(
        html.trim_start().starts_with("<!DOCTYPE html>") && html.contains("Escopete"),
        "{}",
        &html[..200]
    );
    // The WET text is the conversion block, byte for byte.
    let wet = gunzip(&dir.join("whirlwind.warc.wet.gz"));
    let hw = warc_fields(&wet, "conversion");
    let len: usize = hw["Content-Length"].parse().unwrap();
    let text = String::from_utf8_lossy(&wet).into_owned();
    let start = text.find(&hw["WARC-Record-ID"]).unwrap();
    let body_at = start + text[start..].find("\r\n\r\n").unwrap() + 4;
    let wdoc = &docs(&wd, "wet")[0];
    assert_eq!(wdoc["text"].as_str().unwrap().as_bytes(), &wet[body_at..body_at + len]);
    assert_eq!(wdoc["url"], hw["WARC-Target-URI"]);
}

#[test]
fn chunked_transfer_encoding_is_decoded() {
    let Some(data) = shared_data() else { return };
    let path = data.join("crawl/warcio/example-iana.org-chunked.warc");
    let raw = std::fs::read(&path).unwrap();
    let raw_text = String::from_utf8_lossy(&raw);
    // The stored body starts with a chunk-size line.
    let body_at = raw_text.find("Transfer-Encoding: chunked").unwrap();
    let body_at = body_at + raw_text[body_at..].find("\r\n\r\n").unwrap() + 4;
    let first_line = raw_text[body_at..].lines().next().unwrap();
    assert!(usize::from_str_radix(first_line.trim(), 16).is_ok(), "{first_line:?}");
    let d = tempfile::tempdir().unwrap();
    pipeline(
        d.path(),
        &format!("name: c\nworkdir: runs\nnodes:\n  c:\n    op: read\n    path: {}\n", q(&path)),
    );
    kiln_in(d.path(), &["run", "pipeline.yaml"]).ok();
    let doc = &docs(&d.path().join("runs"), "c")[0];
    let text = doc["text"].as_str().unwrap();
    assert!(text.starts_with("<!doctype html>"), "{:?}", &text[..40]);
    assert!(text.trim_end().ends_with("</html>"), "{:?}", &text[text.len() - 40..]);
    assert!(!text.contains(&format!("\r\n{first_line}\r\n")), "chunk sizes left in the text");
}

#[path = "warc/made.rs"]
mod made;
