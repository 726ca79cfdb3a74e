//! The `clean` op end to end: steps fused over documents, rejects with
//! step and reason, the funnel in the manifest, bad step parameters.

mod common;
use common::{kiln_in, manifest, pipeline, rejected, rows};
use serde_json::Value;
use std::path::Path;

fn write_jsonl(path: &Path, docs: &[(&str, &str)]) {
    let lines: Vec<String> = docs
        .iter()
        .map(|(id, text)| serde_json::json!({"id": id, "text": text}).to_string())
        .collect();
    std::fs::write(path, lines.join("\n") + "\n").unwrap();
}

fn jsonl(lines: &[String]) -> Vec<Value> {
    lines.iter().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[test]
fn expr_steps_filter_and_the_funnel_adds_up() {
    let dir = tempfile::tempdir().unwrap();
    write_jsonl(
        &dir.path().join("docs.jsonl"),
        &[
            ("a", "short"),
            ("b", "a long enough document"),
            ("c", "another long document here"),
            ("d", "tiny"),
        ],
    );
    let p = pipeline(
        dir.path(),
        "name: t
workdir: runs
nodes:
  raw: {op: read, path: docs.jsonl}
  clean:
    op: clean
    input: raw
    steps:
      - expr: \"length(text) > 5\"
      - expr: {sql: \"id <> 'c'\"}
",
    );
    kiln_in(dir.path(), &["run", p.to_str().unwrap()]).ok();
    let w = dir.path().join("runs");
    let kept = jsonl(&rows(&w, "clean"));
    assert_eq!(kept.iter().map(|r| r["id"].as_str().unwrap()).collect::<Vec<_>>(), ["b"]);
    let rej = jsonl(&rejected(&w, "clean"));
    let mut why: Vec<(String, String)> = rej
        .iter()
        .map(|r| (r["id"].as_str().unwrap().to_string(), r["reason"].as_str().unwrap().to_string()))
        .collect();
    why.sort();
    assert_eq!(why[0], ("a".into(), "expr_false: length(text) > 5".into()));
    assert_eq!(why[2], ("d".into(), "expr_false: length(text) > 5".into()));
    assert_eq!(why[1].0, "c");
    assert!(
        rej.iter()
            .all(|r| r["step"] == "expr" && r["file"].as_str().unwrap().starts_with("data/"))
    );
    let m = manifest(&w, "clean");
    let c = &m["stats"]["clean"];
    assert_eq!(
        (c["docs_in"].as_u64(), c["kept"].as_u64(), c["dropped"].as_u64()),
        (Some(4), Some(1), Some(3))
    );
    assert_eq!(c["steps"]["expr"]["docs_in"], 4);
    assert_eq!(c["steps"]["expr"]["dropped"], 2);
    assert_eq!(c["steps"]["expr#2"]["docs_in"], 2);
    assert_eq!(c["steps"]["expr#2"]["reasons"]["expr_false"], 1);
    assert_eq!(m["rejected_rows"], 3);
}

#[test]
fn invalid_steps_fail_validation_naming_the_node() {
    let dir = tempfile::tempdir().unwrap();
    write_jsonl(&dir.path().join("docs.jsonl"), &[("a", "text")]);
    let p = pipeline(
        dir.path(),
        "name: t
nodes:
  raw: {op: read, path: docs.jsonl}
  clean:
    op: clean
    input: raw
    steps:
      - expr: \"length(text) >\"
      - exprr
",
    );
    let r = kiln_in(dir.path(), &["validate", p.to_str().unwrap()]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("clean"), "{}", r.stderr);
    assert!(r.stderr.contains("unknown step `exprr`"), "{}", r.stderr);
    assert!(r.stderr.contains("pipeline.yaml:9:9"), "{}", r.stderr);
    // The steps parse: the bad SQL is found by the range check, at its line.
    let p = pipeline(
        dir.path(),
        "name: t
nodes:
  raw: {op: read, path: docs.jsonl}
  clean:
    op: clean
    input: raw
    steps:
      - expr: \"length(text) >\"
",
    );
    let r = kiln_in(dir.path(), &["validate", p.to_str().unwrap()]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("steps[0].expr.sql") && r.stderr.contains("invalid SQL expression"),
        "{}",
        r.stderr
    );
}

#[test]
fn an_expression_over_a_missing_column_fails_the_node_clearly() {
    let dir = tempfile::tempdir().unwrap();
    write_jsonl(&dir.path().join("docs.jsonl"), &[("a", "text")]);
    let p = pipeline(
        dir.path(),
        "name: t
workdir: runs
nodes:
  raw: {op: read, path: docs.jsonl}
  clean: {op: clean, input: raw, steps: [{expr: \"stars > 3\"}]}
",
    );
    let r = kiln_in(dir.path(), &["run", p.to_str().unwrap()]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("`stars`"), "{}", r.stderr);
    assert!(!dir.path().join("runs/clean/manifest.json").exists());
}
