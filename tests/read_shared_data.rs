//! `read` on every JSONL, JSONL.gz, JSON-array and text file of the shared
//! real data (text/, sft/, preference/, crawl/dolma/*.jsonl.gz), plus Parquet
//! made from it with `write`. Row counts must match the data README and
//! MANIFEST.tsv (or, for text split into lines or blocks, counts computed here
//! from the file itself), and texts and ids must be the records' own.

mod common;

use arrow::array::AsArray;
use common::{kiln_in, manifest, pipeline, rejected, rows, shared_data};
use serde_json::Value;
use std::collections::{BTreeSet, HashMap};
use std::io::Read;
use std::path::Path;

/// `records` per file from MANIFEST.tsv.
fn manifest_tsv(data: &Path) -> HashMap<String, u64> {
    let text = std::fs::read_to_string(data.join("MANIFEST.tsv")).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split('\t').collect();
    let (pi, ri) = (
        header.iter().position(|h| *h == "path").unwrap(),
        header.iter().position(|h| *h == "records").unwrap(),
    );
    // Files without a record count (HTML pages, tokenizer JSON) have none.
    lines
        .filter_map(|l| {
            let c: Vec<&str> = l.split('\t').collect();
            Some((c[pi].to_string(), c[ri].parse().ok()?))
        })
        .collect()
}

/// A string column of a node's artifact, in order.
fn column(workdir: &Path, node: &str, name: &str) -> Vec<String> {
    let m = manifest(workdir, node);
    let mut out = Vec::new();
    for f in m["files"].as_array().unwrap() {
        for b in kiln::io::table::parquet_batches(&workdir.join(node).join(f["name"].as_str().unwrap())).unwrap() {
            let b = b.unwrap();
            let c = b.column_by_name(name).unwrap().as_string::<i32>().clone();
            out.extend(c.iter().map(|v| v.unwrap().to_string()));
        }
    }
    out
}

fn counts(workdir: &Path, node: &str) -> (u64, u64) {
    let m = manifest(workdir, node);
    (m["rows"].as_u64().unwrap(), m["rejected_rows"].as_u64().unwrap())
}

fn file_bytes(path: &Path) -> Vec<u8> {
    let raw = std::fs::read(path).unwrap();
    if path.extension().is_some_and(|e| e == "gz") {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(&raw[..]).read_to_end(&mut out).unwrap();
        out
    } else {
        raw
    }
}

/// Follows a dotted path (`chosen.value`, `messages.0.content`) with serde_json.
fn at<'a>(v: &'a Value, path: &str) -> &'a Value {
    path.split('.').fold(v, |v, seg| match v {
        Value::Array(a) => &a[seg.parse::<usize>().unwrap()],
        _ => &v[seg],
    })
}

/// The records of a JSONL or JSON-array file with their 1-based line.
fn json_records(path: &Path) -> Vec<(u64, Value)> {
    let bytes = file_bytes(path);
    if path.to_string_lossy().contains(".jsonl") {
        bytes
            .split(|b| *b == b'\n')
            .enumerate()
            .filter(|(_, l)| !l.trim_ascii().is_empty())
            .map(|(i, l)| (i as u64 + 1, serde_json::from_slice(l).unwrap()))
            .collect()
    } else {
        let v: Vec<Value> = serde_json::from_slice(&bytes).unwrap();
        v.into_iter().map(|v| (0, v)).collect()
    }
}

/// Lines as `text_mode: line` defines them: `\r\n` or `\n` ends a line, and
/// lines of only whitespace are no documents.
fn non_blank_lines(bytes: &[u8]) -> Vec<&[u8]> {
    bytes
        .split(|b| *b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .filter(|l| !l.trim_ascii().is_empty())
        .collect()
}

/// Runs of non-blank lines (`text_mode: block`).
fn blocks(bytes: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur: Vec<&str> = Vec::new();
    for l in std::str::from_utf8(bytes).unwrap().split('\n') {
        let l = l.strip_suffix('\r').unwrap_or(l);
        if l.trim_ascii().is_empty() {
            if !cur.is_empty() {
                out.push(cur.join("\n"));
                cur.clear();
            }
        } else {
            cur.push(l);
        }
    }
    if !cur.is_empty() {
        out.push(cur.join("\n"));
    }
    out
}

fn q(p: &Path) -> String {
    format!("'{}'", p.display())
}

struct JsonCase {
    node: &'static str,
    /// Relative to the shared data; a glob for dolma.
    path: &'static str,
    text_field: &'static str,
    id_field: Option<&'static str>,
    /// Records according to the data README.
    readme: u64,
}

const JSON_CASES: &[JsonCase] = &[
    JsonCase {
        node: "c4",
        path: "text/c4-demo/c4_demo.jsonl",
        text_field: "text",
        id_field: None,
        readme: 300,
    },
    JsonCase {
        node: "gsm8k_train",
        path: "sft/gsm8k/train.jsonl",
        text_field: "question",
        id_field: None,
        readme: 7473,
    },
    JsonCase {
        node: "gsm8k_test",
        path: "sft/gsm8k/test.jsonl",
        text_field: "question",
        id_field: None,
        readme: 1319,
    },
    JsonCase {
        node: "alpaca",
        path: "sft/llama-factory/alpaca_en_demo.json",
        text_field: "output",
        id_field: None,
        readme: 999,
    },
    JsonCase {
        node: "identity",
        path: "sft/llama-factory/identity.json",
        text_field: "instruction",
        id_field: None,
        readme: 91,
    },
    JsonCase {
        node: "self_instruct",
        path: "sft/self-instruct/user_oriented_instructions.jsonl",
        text_field: "instruction",
        id_field: Some("id"),
        readme: 252,
    },
    JsonCase {
        node: "seed_tasks",
        path: "sft/stanford_alpaca/seed_tasks.jsonl",
        text_field: "instruction",
        id_field: Some("id"),
        readme: 175,
    },
    JsonCase {
        node: "hh_rlhf",
        path: "preference/hh-rlhf/harmless-base/test.jsonl.gz",
        text_field: "chosen",
        id_field: None,
        readme: 2312,
    },
    JsonCase {
        node: "dpo",
        path: "preference/llama-factory/dpo_en_demo.json",
        text_field: "chosen.value",
        id_field: None,
        readme: 300,
    },
    JsonCase {
        node: "kto",
        path: "preference/llama-factory/kto_en_demo.json",
        text_field: "messages.0.content",
        id_field: None,
        readme: 300,
    },
    JsonCase {
        node: "dolma",
        path: "crawl/dolma/*.jsonl.gz",
        text_field: "text",
        id_field: Some("id"),
        readme: 20, // cc_en_head-*: 10 docs each
    },
];

/// The files a case reads, sorted as `read` sorts them.
fn case_files(data: &Path, path: &str) -> Vec<std::path::PathBuf> {
    match path.split_once('*') {
        Some((dir, suffix)) => {
            let mut v: Vec<_> = std::fs::read_dir(data.join(dir))
                .unwrap()
                .map(|e| e.unwrap().path())
                .filter(|p| p.to_string_lossy().ends_with(suffix))
                .collect();
            v.sort();
            v
        }
        None => vec![data.join(path)],
    }
}

#[test]
fn json_and_jsonl_inputs_match_the_readme_and_manifest() {
    let Some(data) = shared_data() else { return };
    let tsv = manifest_tsv(&data);
    let d = tempfile::tempdir().unwrap();
    let mut yaml = String::from("name: json\nworkdir: runs\nnodes:\n");
    for c in JSON_CASES {
        yaml.push_str(&format!(
            "  {}:\n    op: read\n    path: {}\n    text_field: {}\n",
            c.node,
            q(&data.join(c.path)),
            c.text_field
        ));
        if let Some(id) = c.id_field {
            yaml.push_str(&format!("    id_field: {id}\n"));
        }
    }
    pipeline(d.path(), &yaml);
    kiln_in(d.path(), &["run", "pipeline.yaml"]).ok();
    let wd = d.path().join("runs");

    for c in JSON_CASES {
        let files = case_files(&data, c.path);
        assert!(!files.is_empty(), "{}", c.path);
        // MANIFEST.tsv agrees with the README, and kiln with both.
        let listed: u64 = files.iter().map(|f| tsv[f.strip_prefix(&data).unwrap().to_str().unwrap()]).sum();
        assert_eq!(listed, c.readme, "{}: MANIFEST.tsv vs README", c.node);
        assert_eq!(counts(&wd, c.node), (c.readme, 0), "{}", c.node);
        let m = manifest(&wd, c.node);
        assert_eq!(m["stats"]["read"]["records_in"], c.readme, "{}", c.node);
        assert_eq!(m["stats"]["read"]["units"], files.len(), "{}", c.node);

        // Texts (and ids) are exactly the records' own, in file order.
        let mut want_texts = Vec::new();
        let mut want_ids = Vec::new();
        let mut want_sources = Vec::new();
        for f in &files {
            let name = f.file_name().unwrap().to_str().unwrap();
            for (line, rec) in json_records(f) {
                want_texts.push(at(&rec, c.text_field).as_str().unwrap().to_string());
                want_ids.push(match c.id_field {
                    Some(id) => rec[id].as_str().unwrap().to_string(),
                    None => format!("{name}:{line}"),
                });
                // A record's own string `source` wins over the file name.
                want_sources.push(rec["source"].as_str().unwrap_or(name).to_string());
            }
        }
        let texts = column(&wd, c.node, "text");
        assert_eq!(texts.len(), want_texts.len(), "{}", c.node);
        for (i, (got, want)) in texts.iter().zip(&want_texts).enumerate() {
            assert_eq!(got, want, "{}: text of record {i}", c.node);
        }
        let ids = column(&wd, c.node, "id");
        assert_eq!(ids.iter().collect::<BTreeSet<_>>().len(), ids.len(), "{}: ids are unique", c.node);
        if c.path.contains(".jsonl") || c.id_field.is_some() {
            assert_eq!(ids, want_ids, "{}", c.node);
        } else {
            // JSON arrays: `<file>#<index of the element>`.
            let name = files[0].file_name().unwrap().to_str().unwrap();
            let want: Vec<String> = (0..ids.len()).map(|i| format!("{name}#{i}")).collect();
            assert_eq!(ids, want, "{}", c.node);
        }
        assert_eq!(column(&wd, c.node, "source"), want_sources, "{}", c.node);
    }

    // Other fields are kept as metadata.
    let first: Value = serde_json::from_str(&rows(&wd, "gsm8k_test")[0]).unwrap();
    let (_, rec) = &json_records(&data.join("sft/gsm8k/test.jsonl"))[0];
    assert_eq!(first["answer"], rec["answer"]);
    assert_eq!(first["text"], rec["question"]);
}

#[test]
fn text_inputs_match_counts_computed_from_the_files() {
    let Some(data) = shared_data() else { return };
    let tsv = manifest_tsv(&data);
    let d = tempfile::tempdir().unwrap();
    let t = data.join("text");
    let shakes = t.join("tinyshakespeare/input.txt");
    let wiki = t.join("wiki-demo/wiki_demo.txt");
    let (valid, test) = (t.join("wikitext-2/valid.txt"), t.join("wikitext-2/test.txt"));
    let corpora = [
        ("gutenberg", "nltk-gutenberg", 13u64),
        ("inaugural", "nltk-inaugural", 55),
        ("state_union", "nltk-state_union", 65),
    ];
    let mut yaml = String::from("name: text\nworkdir: runs\nnodes:\n");
    let mut node = |name: &str, path: String, mode: &str| {
        yaml.push_str(&format!("  {name}:\n    op: read\n    path: {path}\n    text_mode: {mode}\n"));
    };
    node("wiki_demo", q(&wiki), "line");
    node("shakes_lines", q(&shakes), "line");
    node("shakes_blocks", q(&shakes), "block");
    node("shakes_file", q(&shakes), "file");
    node("wikitext_valid", q(&valid), "line");
    node("wikitext_test", q(&test), "line");
    for (name, dir, _) in corpora {
        node(name, q(&t.join(dir).join("*.txt")), "file");
    }
    node("gutenberg_lines", q(&t.join("nltk-gutenberg/*.txt")), "line");
    pipeline(d.path(), &yaml);
    kiln_in(d.path(), &["run", "pipeline.yaml"]).ok();
    let wd = d.path().join("runs");

    // One line per article: 30, as the README says, texts the lines themselves.
    let wiki_bytes = std::fs::read(&wiki).unwrap();
    assert_eq!(tsv["text/wiki-demo/wiki_demo.txt"], 30);
    assert_eq!(counts(&wd, "wiki_demo"), (30, 0));
    let want: Vec<String> = non_blank_lines(&wiki_bytes)
        .iter()
        .map(|l| String::from_utf8(l.to_vec()).unwrap())
        .collect();
    assert_eq!(column(&wd, "wiki_demo", "text"), want);
    assert_eq!(column(&wd, "wiki_demo", "id")[29], "wiki_demo.txt:30");

    // tinyshakespeare: 40,000 lines, blank ones skipped in line mode.
    let sb = std::fs::read(&shakes).unwrap();
    assert_eq!(sb.len(), 1_115_394);
    assert_eq!(
        sb.iter().filter(|b| **b == b'\n').count() as u64,
        tsv["text/tinyshakespeare/input.txt"]
    );
    let lines = non_blank_lines(&sb);
    assert!(lines.len() < 40_000);
    assert_eq!(counts(&wd, "shakes_lines"), (lines.len() as u64, 0));
    let texts = column(&wd, "shakes_lines", "text");
    assert_eq!(texts[0].as_bytes(), lines[0]);
    assert_eq!(texts.last().unwrap().as_bytes(), *lines.last().unwrap());
    let want_blocks = blocks(&sb);
    assert_eq!(counts(&wd, "shakes_blocks"), (want_blocks.len() as u64, 0));
    assert_eq!(column(&wd, "shakes_blocks", "text"), want_blocks);
    assert_eq!(counts(&wd, "shakes_file"), (1, 0));
    assert_eq!(column(&wd, "shakes_file", "text")[0].as_bytes(), &sb[..]);

    // WikiText-2 valid/test: MANIFEST line counts, non-blank lines read.
    for (node, path, rel) in [
        ("wikitext_valid", &valid, "text/wikitext-2/valid.txt"),
        ("wikitext_test", &test, "text/wikitext-2/test.txt"),
    ] {
        let b = std::fs::read(path).unwrap();
        assert_eq!(b.iter().filter(|b| **b == b'\n').count() as u64, tsv[rel], "{rel}");
        let nb = non_blank_lines(&b);
        assert_eq!(counts(&wd, node), (nb.len() as u64, 0), "{rel}");
        assert_eq!(column(&wd, node, "text")[0].as_bytes(), nb[0], "{rel}");
    }

    // NLTK corpora, one document per *.txt file (README excluded by the glob).
    // A file that is not valid UTF-8 is rejected whole, and counted.
    for (node, dir, readme) in corpora {
        let mut files: Vec<_> = std::fs::read_dir(t.join(dir))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "txt"))
            .collect();
        files.sort();
        assert_eq!(files.len() as u64, readme, "{dir}: files on disk vs README");
        let in_tsv = tsv
            .keys()
            .filter(|k| k.starts_with(&format!("text/{dir}/")) && k.ends_with(".txt"))
            .count();
        assert_eq!(in_tsv as u64, readme, "{dir}: MANIFEST.tsv vs README");
        let bad: BTreeSet<String> = files
            .iter()
            .filter(|f| std::str::from_utf8(&std::fs::read(f).unwrap()).is_err())
            .map(|f| f.file_name().unwrap().to_str().unwrap().to_string())
            .collect();
        let (rows_n, rej) = counts(&wd, node);
        assert_eq!(rows_n + rej, readme, "{dir}");
        assert_eq!(rej, bad.len() as u64, "{dir}");
        let rj: Vec<Value> = rejected(&wd, node).iter().map(|l| serde_json::from_str(l).unwrap()).collect();
        let rejected_files: BTreeSet<String> = rj.iter().map(|r| r["file"].as_str().unwrap().to_string()).collect();
        assert_eq!(rejected_files, bad, "{dir}");
        for r in &rj {
            assert!(r["reason"].as_str().unwrap().starts_with("invalid UTF-8 at byte"), "{r}");
        }
        let good_first = files
            .iter()
            .find(|f| !bad.contains(f.file_name().unwrap().to_str().unwrap()))
            .unwrap();
        assert_eq!(column(&wd, node, "text")[0], std::fs::read_to_string(good_first).unwrap(), "{dir}");
    }

    // Gutenberg line by line: only the lines that are not UTF-8 are rejected.
    let (mut total, mut bad) = (0u64, 0u64);
    let mut files: Vec<_> = std::fs::read_dir(t.join("nltk-gutenberg"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    files.sort();
    for f in &files {
        for l in non_blank_lines(&std::fs::read(f).unwrap()) {
            total += 1;
            bad += std::str::from_utf8(l).is_err() as u64;
        }
    }
    assert!(bad > 0, "the corpus has non-UTF-8 lines");
    assert_eq!(counts(&wd, "gutenberg_lines"), (total - bad, bad));
}

#[test]
fn parquet_written_by_kiln_reads_back_the_same_rows() {
    let Some(data) = shared_data() else { return };
    let d = tempfile::tempdir().unwrap();
    let export = d.path().join("export");
    let cases = [
        ("c4", "text/c4-demo/c4_demo.jsonl", "text", "c4_demo.jsonl", 300u64),
        ("gsm8k", "sft/gsm8k/train.jsonl", "question", "train.jsonl", 7473),
        ("dolma", "crawl/dolma/*.jsonl.gz", "text", "dolma", 20),
    ];
    let mut yaml = String::from("name: export\nworkdir: runs\nnodes:\n");
    for (node, path, field, source, _) in cases {
        yaml.push_str(&format!(
            "  {node}:\n    op: read\n    path: {}\n    text_field: {field}\n    source: {source}\n    id_field: id\n",
            q(&data.join(path))
        ));
        yaml.push_str(&format!(
            "  {node}_out:\n    op: write\n    input: {node}\n    path: {}\n",
            q(&export.join(format!("{node}.parquet")))
        ));
    }
    // The same file read as a file, its directory and a glob: the same rows.
    let c4 = data.join("text/c4-demo");
    yaml.push_str(&format!("  c4_dir:\n    op: read\n    path: {}\n", q(&c4)));
    yaml.push_str(&format!("  c4_glob:\n    op: read\n    path: {}\n", q(&c4.join("*.jsonl"))));
    yaml.push_str(&format!("  c4_file:\n    op: read\n    path: {}\n", q(&c4.join("c4_demo.jsonl"))));
    pipeline(d.path(), &yaml);
    kiln_in(d.path(), &["run", "pipeline.yaml"]).ok();
    let wd = d.path().join("runs");
    let hash = |wd: &Path, n: &str| manifest(wd, n)["content_hash"].as_str().unwrap().to_string();
    let c4_rows = rows(&wd, "c4_file");
    assert_eq!(c4_rows.len(), 300);
    for n in ["c4_dir", "c4_glob"] {
        assert_eq!(hash(&wd, n), hash(&wd, "c4_file"), "{n}");
        assert_eq!(rows(&wd, n), c4_rows, "{n}");
    }

    let back = d.path().join("back");
    std::fs::create_dir(&back).unwrap();
    let mut yaml = String::from("name: back\nworkdir: runs\nnodes:\n");
    for (node, _, _, source, n) in cases {
        let out = manifest(&wd, &format!("{node}_out"));
        assert_eq!(out["extra"]["export_rows"], n, "{node}");
        assert_eq!(out["extra"]["export_format"], "parquet", "{node}");
        yaml.push_str(&format!(
            "  {node}:\n    op: read\n    path: {}\n    source: {source}\n    id_field: id\n",
            q(&export.join(format!("{node}.parquet")))
        ));
    }
    pipeline(&back, &yaml);
    kiln_in(&back, &["run", "pipeline.yaml"]).ok();
    let bwd = back.join("runs");
    for (node, _, _, _, n) in cases {
        assert_eq!(counts(&bwd, node), (n, 0), "{node}");
        let (before, after) = (rows(&wd, node), rows(&bwd, node));
        assert_eq!(before.len(), after.len(), "{node}");
        for (i, (a, b)) in before.iter().zip(&after).enumerate() {
            assert_eq!(a, b, "{node}: row {i}");
        }
        let (m1, m2) = (manifest(&wd, node), manifest(&bwd, node));
        assert_eq!(m1["schema"], m2["schema"], "{node}");
        // The content hash depends on the rows only, not on how many files
        // they came from (dolma: two JSONL files, then one Parquet file).
        assert_eq!(hash(&wd, node), hash(&bwd, node), "{node}");
    }
}
