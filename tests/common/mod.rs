//! Helpers shared by the integration tests: run the `kiln` binary, find
//! ../shared/data, read artifacts back.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The shared real data, or `None` (with a message) when it is absent.
pub fn shared_data() -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data");
    if p.is_dir() {
        Some(p.canonicalize().unwrap_or(p))
    } else {
        eprintln!("SKIP: ../shared/data is absent; this test needs the shared real data");
        None
    }
}

/// The result of one `kiln` invocation.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn ok(&self) -> &Self {
        assert_eq!(self.code, 0, "kiln failed:\nstdout:\n{}\nstderr:\n{}", self.stdout, self.stderr);
        self
    }
}

fn finish(out: Output) -> Run {
    let code = out.status.code().unwrap_or(-1);
    let run = Run {
        code,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    // A panic exits with 101: never acceptable, whatever the input.
    assert_ne!(code, 101, "kiln panicked:\n{}", run.stderr);
    run
}

/// Runs `kiln ARGS` in `cwd`, with colours off.
pub fn kiln_in(cwd: &Path, args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(args)
        .current_dir(cwd)
        .env("NO_COLOR", "1")
        .output()
        .expect("spawn kiln");
    finish(out)
}

/// Writes `pipeline.yaml` into `dir` and returns its path.
pub fn pipeline(dir: &Path, yaml: &str) -> PathBuf {
    let p = dir.join("pipeline.yaml");
    std::fs::write(&p, yaml).unwrap();
    p
}

/// The manifest of `<workdir>/<node>`.
pub fn manifest(workdir: &Path, node: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(workdir.join(node).join("manifest.json")).unwrap_or_else(|e| panic!("no manifest for {node}: {e}"));
    serde_json::from_str(&text).unwrap()
}

/// All rows of an artifact as JSON lines (via the write path's encoder).
pub fn rows(workdir: &Path, node: &str) -> Vec<String> {
    table_lines(workdir, node, "files")
}

/// Rejected rows of an artifact as JSON lines.
pub fn rejected(workdir: &Path, node: &str) -> Vec<String> {
    table_lines(workdir, node, "rejected_files")
}

/// The rows of the files the manifest lists under `key`, as JSON lines.
fn table_lines(workdir: &Path, node: &str, key: &str) -> Vec<String> {
    let m = manifest(workdir, node);
    let mut out = Vec::new();
    for f in m[key].as_array().unwrap() {
        let path = workdir.join(node).join(f["name"].as_str().unwrap());
        for b in kiln::io::table::parquet_batches(&path).unwrap() {
            let mut buf = Vec::new();
            kiln::io::table::write_jsonl(&b.unwrap(), &mut buf).unwrap();
            out.extend(String::from_utf8(buf).unwrap().lines().map(str::to_string));
        }
    }
    out
}
