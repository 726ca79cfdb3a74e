//! The README's YAML reference is the one the code generates.

#[test]
fn readme_reference_matches_the_code() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let start = readme.find("<!-- reference:start -->\n").expect("start marker") + "<!-- reference:start -->\n".len();
    let end = readme.find("<!-- reference:end -->").expect("end marker");
    let generated = kiln::spec::reference::markdown();
    assert!(
        readme[start..end] == generated,
        "README.md's YAML reference is out of date: replace the text between the markers with the output of `kiln reference`"
    );
    for op in kiln::spec::ops::OP_NAMES {
        assert!(generated.contains(&format!("### `{op}`")), "op {op} missing from the reference");
    }
}

#[test]
fn the_sample_pipeline_runs_and_then_is_cached() {
    let d = tempfile::tempdir().unwrap();
    let root = env!("CARGO_MANIFEST_DIR");
    let yaml = std::fs::read_to_string(format!("{root}/pipelines/sample.yaml")).unwrap();
    std::fs::write(d.path().join("q.yaml"), yaml).unwrap();
    let run = |extra: &[&str]| {
        let mut args = vec!["run", "q.yaml", "--quiet", "--set", &format!("vars.data={root}/data/sample")]
            .into_iter()
            .map(String::from)
            .collect::<Vec<_>>();
        args.extend(extra.iter().map(|s| s.to_string()));
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_kiln"))
            .args(&args)
            .current_dir(d.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let first = run(&[]);
    assert!(
        first
            .lines()
            .any(|l| l.starts_with("docs ") && l.contains(" ran ") && l.contains(" 11 ") && l.contains(" 1 ")),
        "{first}"
    );
    let export = std::fs::read_to_string(d.path().join("runs/sample/exports/dev.jsonl")).unwrap();
    assert!(export.lines().count() > 0 && export.contains("\"topic\":"), "{export}");
    let second = run(&[]);
    assert!(second.lines().skip(1).all(|l| l.contains("cached")), "{second}");
}
