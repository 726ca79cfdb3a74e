//! One test per validation error class: each message names the node, the
//! field and the YAML line:column, and every problem is reported at once.

mod common;
use common::{kiln_in, pipeline};

fn validate(yaml: &str) -> common::Run {
    let d = tempfile::tempdir().unwrap();
    let f = pipeline(d.path(), yaml);
    kiln_in(d.path(), &["validate", f.to_str().unwrap()])
}

fn data_file(d: &std::path::Path) -> String {
    let p = d.join("docs.jsonl");
    std::fs::write(&p, "{\"text\": \"hello\"}\n").unwrap();
    p.display().to_string()
}

/// Asserts the error output has a headline for this line:col, node and field.
fn assert_problem(run: &common::Run, line_col: &str, node: &str, field: &str, words: &str) {
    assert_eq!(run.code, 2, "expected a validation failure:\n{}", run.stderr);
    let head = run
        .stderr
        .lines()
        .find(|l| l.contains(&format!("pipeline.yaml:{line_col}:")))
        .unwrap_or_else(|| panic!("no problem at {line_col}:\n{}", run.stderr));
    assert!(head.contains(&format!("node `{node}`")), "{head}");
    assert!(head.contains(&format!("field `{field}`")), "{head}");
    assert!(head.contains(words), "wanted `{words}` in: {head}");
}

#[test]
fn yaml_syntax_error_names_the_line() {
    let r = validate("name: x\nnodes:\n  a: {op: read, path: [unclosed\n");
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("YAML syntax error"), "{}", r.stderr);
    assert!(r.stderr.contains("pipeline.yaml:"), "{}", r.stderr);
}

#[test]
fn unknown_op_suggests_the_closest() {
    let r = validate("name: x\nnodes:\n  a:\n    op: raed\n    path: x\n");
    assert_problem(&r, "4:9", "a", "op", "unknown op `raed`");
    assert!(r.stderr.contains("did you mean `read`?"), "{}", r.stderr);
}

#[test]
fn unknown_field_suggests_the_closest() {
    let d = tempfile::tempdir().unwrap();
    let yaml = format!(
        "name: x\nnodes:\n  a:\n    op: read\n    path: {}\n    text_feild: body\n",
        data_file(d.path())
    );
    let f = pipeline(d.path(), &yaml);
    let r = kiln_in(d.path(), &["validate", f.to_str().unwrap()]);
    assert_problem(&r, "6:5", "a", "text_feild", "unknown field `text_feild`");
    assert!(r.stderr.contains("did you mean `text_field`?"), "{}", r.stderr);
}

#[test]
fn wrong_type_points_at_the_value() {
    let d = tempfile::tempdir().unwrap();
    let yaml = format!(
        "name: x\nnodes:\n  a:\n    op: read\n    path: {}\n  s:\n    op: sample\n    input: a\n    n: lots\n",
        data_file(d.path())
    );
    let f = pipeline(d.path(), &yaml);
    let r = kiln_in(d.path(), &["validate", f.to_str().unwrap()]);
    assert_problem(&r, "9:8", "s", "n", "invalid type: string \"lots\"");
}

#[test]
fn missing_required_field_is_named() {
    let r = validate("name: x\nnodes:\n  a:\n    op: read\n    text_field: body\n");
    assert_problem(&r, "3:3", "a", "path", "missing field `path`");
}

#[test]
fn undefined_node_reference_suggests_a_node() {
    let d = tempfile::tempdir().unwrap();
    let yaml = format!(
        "name: x\nnodes:\n  docs:\n    op: read\n    path: {}\n  s:\n    op: sample\n    input: doc\n    n: 3\n",
        data_file(d.path())
    );
    let f = pipeline(d.path(), &yaml);
    let r = kiln_in(d.path(), &["validate", f.to_str().unwrap()]);
    assert_problem(&r, "8:12", "s", "input", "undefined node `doc`");
    assert!(r.stderr.contains("did you mean `docs`?"), "{}", r.stderr);
}

#[test]
fn cycles_name_every_node_on_them() {
    let r = validate(
        "name: x\nnodes:\n  a:\n    op: sample\n    input: c\n    n: 1\n  b:\n    op: sample\n    input: a\n    n: 1\n  c:\n    op: sample\n    input: b\n    n: 1\n",
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
    let line = r
        .stderr
        .lines()
        .find(|l| l.contains("cycle:"))
        .unwrap_or_else(|| panic!("{}", r.stderr));
    for n in ["a", "b", "c"] {
        assert!(line.contains(n), "{line}");
    }
    assert!(line.contains("field `input`"), "{line}");
    assert!(line.contains("pipeline.yaml:"), "{line}");
}

#[test]
fn artifact_kind_mismatch_is_explained() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("out.jsonl");
    let yaml = format!(
        "name: x\nnodes:\n  a:\n    op: read\n    path: {}\n  w:\n    op: write\n    input: a\n    path: {}\n  s:\n    op: sample\n    input: w\n    n: 2\n",
        data_file(d.path()),
        out.display()
    );
    let f = pipeline(d.path(), &yaml);
    let r = kiln_in(d.path(), &["validate", f.to_str().unwrap()]);
    assert_problem(
        &r,
        "12:12",
        "s",
        "input",
        "`w` makes a `report` artifact, but op `sample` takes documents",
    );
}

#[test]
fn out_of_range_values_are_rejected() {
    let d = tempfile::tempdir().unwrap();
    let yaml = format!(
        "name: x\nnodes:\n  a:\n    op: read\n    path: {}\n  s:\n    op: sample\n    input: a\n    fraction: 1.5\n",
        data_file(d.path())
    );
    let f = pipeline(d.path(), &yaml);
    let r = kiln_in(d.path(), &["validate", f.to_str().unwrap()]);
    assert_problem(&r, "9:15", "s", "fraction", "1.5 is out of range (0, 1]");
}

#[test]
fn missing_input_path_is_a_validation_error() {
    let r = validate("name: x\nnodes:\n  a:\n    op: read\n    path: /no/such/file.jsonl\n");
    assert_problem(&r, "5:11", "a", "path", "cannot open `/no/such/file.jsonl`");
}

#[test]
fn clean_takes_a_node_or_files_but_not_both() {
    let d = tempfile::tempdir().unwrap();
    let docs = data_file(d.path());
    let check = |yaml: String| {
        let f = pipeline(d.path(), &yaml);
        kiln_in(d.path(), &["validate", f.to_str().unwrap()])
    };
    let neither = check("name: x\nnodes:\n  c:\n    op: clean\n    steps: [normalize]\n".into());
    assert_problem(&neither, "3:3", "c", "input", "is missing");
    let both = check(format!(
        "name: x\nnodes:\n  a:\n    op: read\n    path: {docs}\n  c:\n    op: clean\n    input: a\n    read:\n      path: {docs}\n    steps: [normalize]\n"
    ));
    assert_problem(&both, "10:7", "c", "read", "cannot be given with `input`");
    let chat = check(format!(
        "name: x\nnodes:\n  c:\n    op: clean\n    read:\n      path: {docs}\n      format: alpaca\n    steps: [normalize]\n"
    ));
    assert_problem(&chat, "7:15", "c", "read.format", "makes chat, not documents");
    let missing = check("name: x\nnodes:\n  c:\n    op: clean\n    read: {path: /no/such/crawl}\n    steps: [normalize]\n".into());
    assert_problem(&missing, "5:18", "c", "read.path", "cannot open `/no/such/crawl`");
    let range = check(format!(
        "name: x\nnodes:\n  c:\n    op: clean\n    read: {{path: {docs}, batch_bytes: 10}}\n    steps: [normalize]\n"
    ));
    assert_eq!(range.code, 2);
    assert!(range.stderr.contains("field `read.batch_bytes`"), "{}", range.stderr);
    let ok = check(format!(
        "name: x\nnodes:\n  c:\n    op: clean\n    read: {{path: {docs}}}\n    steps: [normalize]\n"
    ));
    assert_eq!(ok.code, 0, "{}", ok.stderr);
}

#[test]
fn every_problem_is_reported_at_once() {
    let r = validate(
        "name: x\nnodes:\n  a:\n    op: raed\n  b:\n    op: sample\n    input: nowhere\n    n: 0\n  c:\n    op: read\n    path: /nope\n    colour: red\n",
    );
    assert_eq!(r.code, 2);
    for want in ["4:9:", "7:12:", "8:8:", "11:11:", "12:5:"] {
        assert!(r.stderr.contains(&format!("pipeline.yaml:{want}")), "missing {want}:\n{}", r.stderr);
    }
    assert!(r.stderr.contains("problem(s) found"), "{}", r.stderr);
}

#[test]
fn vars_and_set_overrides_apply_before_validation() {
    let d = tempfile::tempdir().unwrap();
    let data = data_file(d.path());
    let yaml = "name: x\nvars:\n  n: 2\n  file: missing.jsonl\nnodes:\n  a:\n    op: read\n    path: ${file}\n  s:\n    op: sample\n    input: a\n    n: ${n}\n";
    let f = pipeline(d.path(), yaml);
    let bad = kiln_in(d.path(), &["validate", f.to_str().unwrap()]);
    assert_eq!(bad.code, 2, "{}", bad.stderr);
    assert!(bad.stderr.contains("missing.jsonl"), "{}", bad.stderr);
    let set = format!("vars.file={data}");
    kiln_in(d.path(), &["validate", f.to_str().unwrap(), "--set", &set]).ok();
    let r = kiln_in(d.path(), &["validate", f.to_str().unwrap(), "--set", &set, "--set", "nodes.s.n=0"]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("(from --set): node `s`, field `n`: must be at least 1"),
        "{}",
        r.stderr
    );
    let r = validate("name: x\nnodes:\n  a:\n    op: read\n    path: ${nope}\n");
    assert!(r.stderr.contains("undefined variable `${nope}`"), "{}", r.stderr);
}
