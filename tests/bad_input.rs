//! `read` on broken and misleading input: truncated gzip, invalid UTF-8,
//! huge records, empty files, missing paths, files that are not what their
//! names say. Each case checks the exit code, the message and the counts;
//! none may panic (`kiln_in` asserts exit code != 101).

mod common;

use arrow::array::AsArray;
use common::{Run, kiln_in, manifest, pipeline, rejected, shared_data};
use serde_json::Value;
use std::io::{Read, Write};
use std::path::Path;

/// Runs a pipeline with one `read` node `n` (extra YAML `params` indented
/// under it) on `path`, from `dir`, with the workdir `dir/runs`.
fn read_node(dir: &Path, path: &str, params: &str) -> Run {
    let mut yaml = format!("name: t\nworkdir: runs\nnodes:\n  n:\n    op: read\n    path: {path}\n");
    for l in params.lines() {
        yaml.push_str(&format!("    {l}\n"));
    }
    pipeline(dir, &yaml);
    kiln_in(dir, &["run", "pipeline.yaml"])
}

fn rejects(workdir: &Path) -> Vec<Value> {
    rejected(workdir, "n").iter().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// (id, text) of every row, straight from the Parquet files (the JSON
/// export path would be slow on a 50 MB text in a debug build).
fn ids_and_texts(workdir: &Path) -> Vec<(String, String)> {
    let m = manifest(workdir, "n");
    let mut out = Vec::new();
    for f in m["files"].as_array().unwrap() {
        let path = workdir.join("n").join(f["name"].as_str().unwrap());
        for b in kiln::io::table::parquet_batches(&path).unwrap() {
            let b = b.unwrap();
            let ids = b.column_by_name("id").unwrap().as_string::<i32>().clone();
            let texts = b.column_by_name("text").unwrap().as_string::<i32>().clone();
            for i in 0..b.num_rows() {
                out.push((ids.value(i).to_string(), texts.value(i).to_string()));
            }
        }
    }
    out
}

/// The node failed: exit 1, `✗ n: ...` on stderr, `failed` in the summary table.
fn assert_node_failed(r: &Run, needle: &str) {
    assert_eq!(r.code, 1, "stdout:\n{}\nstderr:\n{}", r.stdout, r.stderr);
    let line = r
        .stderr
        .lines()
        .find(|l| l.starts_with("✗ n: "))
        .unwrap_or_else(|| panic!("no `✗ n:` line in stderr:\n{}", r.stderr));
    assert!(line.contains(needle), "expected `{needle}` in `{line}`");
    assert!(r.stdout.contains("failed"), "summary: {}", r.stdout);
    assert!(r.stdout.contains(needle), "the summary table should carry the error:\n{}", r.stdout);
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

#[test]
fn truncated_gzip_keeps_whole_records_and_counts_the_cut() {
    let Some(data) = shared_data() else { return };
    let d = tempfile::tempdir().unwrap();
    let full = std::fs::read(data.join("preference/hh-rlhf/harmless-base/test.jsonl.gz")).unwrap();
    let half = &full[..full.len() / 2];
    std::fs::write(d.path().join("half.jsonl.gz"), half).unwrap();

    // What survives the cut, decoded independently: whole lines are records,
    // the partial last line is not.
    let mut plain = Vec::new();
    let err = flate2::read::MultiGzDecoder::new(half).read_to_end(&mut plain);
    assert!(err.is_err(), "half a gzip stream must not decode cleanly");
    let whole_lines = plain.iter().filter(|b| **b == b'\n').count() as u64;
    let partial = !plain.ends_with(b"\n") && !plain.is_empty();
    assert!(whole_lines > 100, "the first half holds many records");

    let r = read_node(d.path(), "half.jsonl.gz", "text_field: chosen");
    r.ok();
    let wd = d.path().join("runs");
    let m = manifest(&wd, "n");
    assert_eq!(m["rows"], whole_lines);
    let rj = rejects(&wd);
    assert_eq!(m["rejected_rows"], rj.len() as u64);
    assert_eq!(rj.len(), 1 + partial as usize, "{rj:?}");
    let trunc = rj.last().unwrap();
    assert!(trunc["reason"].as_str().unwrap().starts_with("truncated stream"), "{trunc}");
    assert_eq!(trunc["file"], "half.jsonl.gz");
    assert_eq!(trunc["byte_offset"], plain.len() as u64, "the cut is reported where the data stops");
    if partial {
        let cut = &rj[0];
        assert!(cut["reason"].as_str().unwrap().starts_with("invalid JSON"), "{cut}");
        assert_eq!(cut["line"], whole_lines + 1);
    }
    let reasons = &m["stats"]["read"]["reasons"];
    assert_eq!(reasons["read: truncated stream"], 1, "{reasons}");

    // Cut inside the gzip header: nothing to read, a clear failure.
    std::fs::write(d.path().join("stub.jsonl.gz"), &full[..12]).unwrap();
    let r = read_node(d.path(), "stub.jsonl.gz", "text_field: chosen");
    assert_node_failed(&r, "no document could be read from `stub.jsonl.gz`");
    assert!(r.stderr.contains("truncated stream ×1"), "{}", r.stderr);
}

#[test]
fn invalid_utf8_inside_jsonl_rejects_only_that_line() {
    let d = tempfile::tempdir().unwrap();
    let mut data = b"{\"text\": \"one\"}\n{\"text\": \"two\"}\n{\"text\": \"bad \xff\xfe here\"}\n".to_vec();
    data.extend_from_slice(b"{\"text\": \"caf\xc3\xa9\"}\n{\"te\xc0xt\": \"bad key\"}\n{\"text\": \"last\"}\n");
    std::fs::write(d.path().join("mixed.jsonl"), &data).unwrap();
    let r = read_node(d.path(), "mixed.jsonl", "");
    r.ok();
    let wd = d.path().join("runs");
    let m = manifest(&wd, "n");
    assert_eq!((m["rows"].as_u64(), m["rejected_rows"].as_u64()), (Some(4), Some(2)));
    let got = ids_and_texts(&wd);
    let want = [
        ("mixed.jsonl:1", "one"),
        ("mixed.jsonl:2", "two"),
        ("mixed.jsonl:4", "café"),
        ("mixed.jsonl:6", "last"),
    ];
    assert_eq!(got, want.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect::<Vec<_>>());
    let rj = rejects(&wd);
    let lines: Vec<u64> = rj.iter().map(|r| r["line"].as_u64().unwrap()).collect();
    assert_eq!(lines, [3, 5]);
    let line3_offset = data.split(|b| *b == b'\n').take(2).map(|l| l.len() as u64 + 1).sum::<u64>();
    assert_eq!(rj[0]["byte_offset"], line3_offset);
    for r in &rj {
        assert!(r["reason"].as_str().unwrap().starts_with("invalid JSON"), "{r}");
        assert!(
            r["text"].as_str().unwrap().contains('\u{FFFD}'),
            "the raw record is kept (lossily): {r}"
        );
        assert_eq!(r["step"], "read");
    }

    // The same in plain text, one document per line.
    std::fs::write(d.path().join("mixed.txt"), b"good line\nbad \xe9 line\n\nalso good\n").unwrap();
    let r = read_node(d.path(), "mixed.txt", "text_mode: line");
    r.ok();
    let m = manifest(&wd, "n");
    assert_eq!((m["rows"].as_u64(), m["rejected_rows"].as_u64()), (Some(2), Some(1)));
    let rj = rejects(&wd);
    assert_eq!(rj[0]["line"], 2);
    assert_eq!(rj[0]["reason"], "invalid UTF-8 at byte 4 of the record");
}

/// `before`, a record of `big` bytes, `after`: as JSON Lines or a JSON array.
fn big_record_file(dir: &Path, name: &str, big: usize, array: bool) -> Vec<u8> {
    let filler = "x".repeat(big);
    let recs = [
        "{\"text\": \"before\"}".to_string(),
        format!("{{\"id\": \"huge\", \"text\": \"{filler}\"}}"),
        "{\"text\": \"after\"}".to_string(),
    ];
    let data = if array {
        format!("[\n{}\n]\n", recs.join(",\n"))
    } else {
        format!("{}\n", recs.join("\n"))
    };
    std::fs::write(dir.join(name), &data).unwrap();
    data.into_bytes()
}

#[test]
fn a_50mb_record_is_read_by_default_and_rejected_over_max_record_bytes() {
    const BIG: usize = 50 << 20;
    let d = tempfile::tempdir().unwrap();
    let wd = d.path().join("runs");
    for (name, array) in [("big.jsonl", false), ("big.json", true)] {
        let data = big_record_file(d.path(), name, BIG, array);
        let first = if array { 2 } else { 1 };
        // Lines number JSONL records; JSON array elements are numbered by index.
        let id_of = |line: usize, index: usize| {
            if array {
                format!("{name}#{index}")
            } else {
                format!("{name}:{line}")
            }
        };

        // Default max_record_bytes (256 MiB): all three records are read.
        let r = read_node(d.path(), name, "id_field: id");
        r.ok();
        let got = ids_and_texts(&wd);
        assert_eq!(got.len(), 3, "{name}");
        assert_eq!(got[0], (id_of(first, 0), "before".to_string()));
        assert_eq!(got[1].0, "huge");
        assert_eq!(got[1].1.len(), BIG);
        assert!(got[1].1.bytes().all(|b| b == b'x'));
        assert_eq!(got[2], (id_of(first + 2, 2), "after".to_string()));
        assert_eq!(manifest(&wd, "n")["rejected_rows"], 0);

        // With a 1 MiB limit the big record is rejected and counted; the
        // records around it are still read, with their own line numbers.
        let r = read_node(d.path(), name, "id_field: id\nmax_record_bytes: 1048576");
        r.ok();
        let m = manifest(&wd, "n");
        assert_eq!((m["rows"].as_u64(), m["rejected_rows"].as_u64()), (Some(2), Some(1)), "{name}");
        let got = ids_and_texts(&wd);
        assert_eq!(
            got,
            [(id_of(first, 0), "before".to_string()), (id_of(first + 2, 2), "after".to_string())],
            "{name}"
        );
        let rj = rejects(&wd);
        assert_eq!(rj[0]["line"], first + 1, "{name}");
        let start = data.windows(7).position(|w| w == b"{\"id\": ").unwrap() as u64;
        assert_eq!(rj[0]["byte_offset"], start, "{name}");
        let reason = rj[0]["reason"].as_str().unwrap();
        assert!(reason.contains("exceeds max_record_bytes (1048576)"), "{reason}");
        assert_eq!(rj[0]["text"].as_str().unwrap().len(), 1 << 20, "a 1 MiB prefix is kept");
        let reasons = m["stats"]["read"]["reasons"].as_object().unwrap();
        assert_eq!(reasons.values().map(|v| v.as_u64().unwrap()).sum::<u64>(), 1, "{reasons:?}");
        assert!(reasons.keys().all(|k| k.contains("exceeds max_record_bytes")), "{reasons:?}");
    }
}

#[test]
fn max_record_bytes_holds_for_records_smaller_than_a_batch() {
    // 2 MiB records fit in one 4 MiB batch; the 1 MiB limit must still apply.
    let d = tempfile::tempdir().unwrap();
    let wd = d.path().join("runs");
    for (name, array) in [("mid.jsonl", false), ("mid.json", true)] {
        big_record_file(d.path(), name, 2 << 20, array);
        let r = read_node(d.path(), name, "max_record_bytes: 1048576");
        r.ok();
        let m = manifest(&wd, "n");
        assert_eq!((m["rows"].as_u64(), m["rejected_rows"].as_u64()), (Some(2), Some(1)), "{name}");
        let rj = rejects(&wd);
        assert!(rj[0]["reason"].as_str().unwrap().contains("exceeds max_record_bytes (1048576)"));
    }
}

#[test]
fn an_oversize_text_block_is_one_reject() {
    // A 2 MB paragraph of 20,000 short lines between two small ones.
    let d = tempfile::tempdir().unwrap();
    let wd = d.path().join("runs");
    let head = "first block\n\n\n\n";
    let big: String = (0..20_000).map(|i| format!("line {i:06} {}\n", "z".repeat(88))).collect();
    let text = format!("{head}{big}\n\nlast block\n");
    std::fs::write(d.path().join("paras.txt"), &text).unwrap();
    let r = read_node(
        d.path(),
        "paras.txt",
        "text_mode: block\nmax_record_bytes: 1048576\nbatch_bytes: 65536",
    );
    r.ok();
    let m = manifest(&wd, "n");
    assert_eq!((m["rows"].as_u64(), m["rejected_rows"].as_u64()), (Some(2), Some(1)));
    let last_line = 4 + 20_000 + 2 + 1; // head, the block, two blank lines
    assert_eq!(
        ids_and_texts(&wd),
        [
            ("paras.txt:1".to_string(), "first block".to_string()),
            (format!("paras.txt:{last_line}"), "last block".to_string())
        ]
    );
    let rj = rejects(&wd);
    assert_eq!(rj[0]["line"], 5);
    assert_eq!(rj[0]["byte_offset"], head.len() as u64);
    assert!(rj[0]["reason"].as_str().unwrap().contains("exceeds max_record_bytes (1048576)"));
}

#[test]
fn empty_files_fail_with_a_clear_message() {
    let d = tempfile::tempdir().unwrap();
    let cases: [(&str, Vec<u8>); 6] = [
        ("empty.jsonl", vec![]),
        ("empty.txt", vec![]),
        ("empty.json", vec![]),
        ("empty.jsonl.gz", vec![]),
        ("blank.jsonl", b"\n  \n\r\n".to_vec()),
        ("empty-content.jsonl.gz", gzip(b"")),
    ];
    for (name, bytes) in &cases {
        std::fs::write(d.path().join(name), bytes).unwrap();
        let r = read_node(d.path(), name, "");
        assert_node_failed(&r, &format!("`{name}` holds no records (the input is empty)"));
        assert!(!d.path().join("runs/n/manifest.json").exists(), "a failed node leaves no artifact");
    }
    // An empty file among others is no error: the others are read.
    std::fs::create_dir(d.path().join("dir")).unwrap();
    std::fs::write(d.path().join("dir/a.jsonl"), b"{\"text\": \"a\"}\n").unwrap();
    std::fs::write(d.path().join("dir/b.jsonl"), b"").unwrap();
    let r = read_node(d.path(), "dir", "");
    r.ok();
    let m = manifest(&d.path().join("runs"), "n");
    assert_eq!((m["rows"].as_u64(), m["rejected_rows"].as_u64()), (Some(1), Some(0)));
}

#[test]
fn a_missing_path_is_a_validation_error_with_node_field_and_line() {
    let d = tempfile::tempdir().unwrap();
    let yaml = "name: t\nworkdir: runs\nnodes:\n  ok:\n    op: read\n    path: here.jsonl\n  docs:\n    op: read\n    text_field: question\n    path: not-here.jsonl\n";
    std::fs::write(d.path().join("here.jsonl"), b"{\"question\": \"q\"}\n").unwrap();
    pipeline(d.path(), yaml);
    for cmd in ["validate", "run"] {
        let r = kiln_in(d.path(), &[cmd, "pipeline.yaml"]);
        assert_eq!(r.code, 2, "{cmd}: {r:?}");
        assert!(
            r.stderr.contains("pipeline.yaml:10:11: node `docs`, field `path`"),
            "{cmd}: {}",
            r.stderr
        );
        assert!(r.stderr.contains("not-here.jsonl"), "{}", r.stderr);
        assert!(r.stderr.contains("No such file"), "{}", r.stderr);
        assert!(r.stderr.contains("nothing was run"), "{}", r.stderr);
        assert!(!d.path().join("runs/ok").exists(), "{cmd}: nothing may run on an invalid pipeline");
    }
}

#[test]
fn a_glob_matching_nothing_is_a_validation_error() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("a.jsonl"), b"{\"text\": \"a\"}\n").unwrap();
    pipeline(
        d.path(),
        "name: t\nworkdir: runs\nnodes:\n  docs:\n    op: read\n    path: data/*.jsonl.gz\n",
    );
    let r = kiln_in(d.path(), &["run", "pipeline.yaml"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("pipeline.yaml:6:11: node `docs`, field `path`"), "{}", r.stderr);
    assert!(r.stderr.contains("the glob `data/*.jsonl.gz` matches no files"), "{}", r.stderr);
    assert!(!d.path().join("runs/docs").exists());
}

#[test]
fn files_that_are_not_what_their_names_say() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    let wd = p.join("runs");
    // Not gzip, though named so: random bytes, and a PNG header.
    let mut noise = vec![0u8; 4096];
    let mut x: u32 = 0x1234_5678;
    for b in noise.iter_mut() {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        *b = (x >> 24) as u8;
    }
    noise[0] = 0x00; // never gzip's 1f 8b by chance
    std::fs::write(p.join("noise.jsonl.gz"), &noise).unwrap();
    let mut png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR".to_vec();
    png.extend_from_slice(&noise[..256]);
    std::fs::write(p.join("image.jsonl.gz"), &png).unwrap();
    for name in ["noise.jsonl.gz", "image.jsonl.gz"] {
        let r = read_node(p, name, "");
        assert_node_failed(&r, &format!("no document could be read from `{name}`"));
        assert!(
            r.stderr
                .contains("the name says gzip, but the file does not start with gzip's magic bytes ×1"),
            "{}",
            r.stderr
        );
    }

    // Among good files the bad one is a counted reject, with its first bytes.
    std::fs::create_dir(p.join("mix")).unwrap();
    std::fs::write(p.join("mix/a.jsonl.gz"), gzip(b"{\"text\": \"a\"}\n{\"text\": \"b\"}\n")).unwrap();
    std::fs::copy(p.join("image.jsonl.gz"), p.join("mix/b.jsonl.gz")).unwrap();
    read_node(p, "mix/*.jsonl.gz", "").ok();
    let m = manifest(&wd, "n");
    assert_eq!((m["rows"].as_u64(), m["rejected_rows"].as_u64()), (Some(2), Some(1)));
    let rj = rejects(&wd);
    assert_eq!(rj[0]["file"], "b.jsonl.gz");
    assert_eq!(
        rj[0]["reason"],
        "the name says gzip, but the file does not start with gzip's magic bytes: it starts with [89, 50, 4e, 47]"
    );

    // Plain text named .parquet.
    std::fs::write(p.join("notes.parquet"), b"just some text, not parquet\n").unwrap();
    let r = read_node(p, "notes.parquet", "");
    assert_node_failed(&r, "no document could be read from `notes.parquet`");
    assert!(r.stderr.contains("not a readable Parquet file ×1"), "{}", r.stderr);

    // Random bytes named .jsonl: every line is a rejected record.
    std::fs::write(p.join("noise.jsonl"), &noise).unwrap();
    let r = read_node(p, "noise.jsonl", "");
    assert_node_failed(&r, "no document could be read from `noise.jsonl`");
    assert!(r.stderr.contains("invalid JSON"), "{}", r.stderr);

    // Compressed files with a plain name are read: the content decides.
    let records: String = (0..50).map(|i| format!("{{\"text\": \"doc {i}\"}}\n")).collect();
    std::fs::write(p.join("packed.jsonl"), gzip(records.as_bytes())).unwrap();
    std::fs::write(p.join("packed-zstd.jsonl"), zstd::encode_all(records.as_bytes(), 3).unwrap()).unwrap();
    for name in ["packed.jsonl", "packed-zstd.jsonl"] {
        read_node(p, name, "").ok();
        let got = ids_and_texts(&wd);
        assert_eq!(got.len(), 50, "{name}");
        assert_eq!(got[49], (format!("{name}:50"), "doc 49".to_string()));
    }
    if let Some(data) = shared_data() {
        let dest = p.join("hh.jsonl");
        std::fs::copy(data.join("preference/hh-rlhf/harmless-base/test.jsonl.gz"), &dest).unwrap();
        read_node(p, "hh.jsonl", "text_field: chosen").ok();
        let m = manifest(&wd, "n");
        assert_eq!((m["rows"].as_u64(), m["rejected_rows"].as_u64()), (Some(2312), Some(0)));
    }
}

#[test]
fn clean_reading_files_itself_fails_on_empty_input_and_counts_bad_records() {
    let d = tempfile::tempdir().unwrap();
    let clean = |path: &str| {
        pipeline(
            d.path(),
            &format!("name: t\nworkdir: runs\nnodes:\n  n:\n    op: clean\n    read: {{path: {path}}}\n    steps: [normalize]\n"),
        );
        kiln_in(d.path(), &["run", "pipeline.yaml"])
    };
    std::fs::write(d.path().join("empty.jsonl"), b"").unwrap();
    let r = clean("empty.jsonl");
    assert_node_failed(&r, "`empty.jsonl` holds no records (the input is empty)");
    assert!(!d.path().join("runs/n/manifest.json").exists(), "a failed node leaves no artifact");
    // A bad line is the reader's reject, in the node's own `rejected/` and
    // funnel; the good lines are cleaned.
    std::fs::write(d.path().join("mixed.jsonl"), b"{\"text\": \"a  b\"}\n{oops\n{\"text\": \"c\"}\n").unwrap();
    clean("mixed.jsonl").ok();
    let w = d.path().join("runs");
    let m = manifest(&w, "n");
    assert_eq!((m["rows"].as_u64(), m["rejected_rows"].as_u64()), (Some(2), Some(1)));
    assert_eq!(m["stats"]["read"]["rejected"], 1);
    assert_eq!(m["stats"]["clean"]["docs_in"], 2);
    let rj = rejects(&w);
    assert_eq!(rj.len(), 1);
    assert_eq!(rj[0]["step"], "read");
    assert_eq!(rj[0]["file"], "mixed.jsonl");
    assert_eq!(rj[0]["line"], 2);
    // The files it reads are in its fingerprint, as for `read`.
    let st = kiln_in(d.path(), &["status", "pipeline.yaml"]);
    assert!(st.stdout.contains("done"), "{}", st.stdout);
    std::fs::write(d.path().join("mixed.jsonl"), b"{\"text\": \"d\"}\n").unwrap();
    let st = kiln_in(d.path(), &["status", "pipeline.yaml"]);
    assert!(st.stdout.contains("input files changed"), "{}", st.stdout);
    clean("mixed.jsonl").ok();
    assert_eq!(manifest(&w, "n")["rows"].as_u64(), Some(1));
}
