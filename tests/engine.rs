//! The executor end to end: caching, partial re-runs, selection flags,
//! crash safety under SIGKILL, and sharding.

mod common;
use common::{kiln_in, manifest, pipeline, rows};
use serde_json::Value;
use std::path::Path;

/// Node → outcome from a `--log-format json` run's summary line.
fn outcomes(run: &common::Run) -> Vec<(String, String)> {
    let summary = run
        .stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["event"] == "summary")
        .unwrap_or_else(|| panic!("no summary in:\n{}\n{}", run.stdout, run.stderr));
    summary["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n["node"].as_str().unwrap().to_string(), n["outcome"].as_str().unwrap().to_string()))
        .collect()
}

fn ran(run: &common::Run) -> Vec<String> {
    outcomes(run).into_iter().filter(|(_, o)| o == "ran").map(|(n, _)| n).collect()
}

fn write_docs(path: &Path, n: usize, words: usize) {
    use std::io::Write;
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    for i in 0..n {
        let text: String = (0..words).map(|w| format!("word{} ", (i * 31 + w * 7) % 1000)).collect();
        writeln!(f, "{{\"id\": \"d{i}\", \"text\": \"{text}\", \"n\": {i}}}").unwrap();
    }
}

const DAG: &str = "name: cache
workdir: runs
nodes:
  a:
    op: read
    path: a.jsonl
  b:
    op: read
    path: b.jsonl
  head:
    op: sample
    input: a
    n: 5
  out:
    op: write
    input: head
    path: out/head.jsonl
";

#[test]
fn second_run_runs_nothing_and_a_param_change_reruns_exactly_its_descendants() {
    let d = tempfile::tempdir().unwrap();
    write_docs(&d.path().join("a.jsonl"), 50, 5);
    write_docs(&d.path().join("b.jsonl"), 20, 5);
    let f = pipeline(d.path(), DAG);
    let f = f.to_str().unwrap();
    let first = kiln_in(d.path(), &["run", f, "--log-format", "json"]);
    first.ok();
    assert_eq!(ran(&first), ["a", "b", "head", "out"]);
    assert_eq!(std::fs::read_to_string(d.path().join("out/head.jsonl")).unwrap().lines().count(), 5);

    let second = kiln_in(d.path(), &["run", f, "--log-format", "json"]);
    second.ok();
    assert!(ran(&second).is_empty(), "{:?}", outcomes(&second));

    let status = kiln_in(d.path(), &["status", f, "--set", "nodes.head.n=7"]);
    status.ok();
    let head_line = status.stdout.lines().find(|l| l.starts_with("head ")).unwrap();
    assert!(head_line.contains("stale") && head_line.contains("param `n`: 5 → 7"), "{head_line}");
    let out_line = status.stdout.lines().find(|l| l.starts_with("out ")).unwrap();
    assert!(out_line.contains("input `input` (node `head`) changed"), "{out_line}");
    assert!(status.stdout.lines().find(|l| l.starts_with("a ")).unwrap().contains("done"));

    let third = kiln_in(d.path(), &["run", f, "--log-format", "json", "--set", "nodes.head.n=7"]);
    third.ok();
    assert_eq!(ran(&third), ["head", "out"]);
    assert_eq!(std::fs::read_to_string(d.path().join("out/head.jsonl")).unwrap().lines().count(), 7);

    // Touching an input file makes its read node (and only its subtree) stale.
    write_docs(&d.path().join("b.jsonl"), 21, 5);
    let fourth = kiln_in(d.path(), &["run", f, "--log-format", "json", "--set", "nodes.head.n=7"]);
    assert_eq!(ran(&fourth), ["b"]);

    // A deleted export is noticed.
    std::fs::remove_file(d.path().join("out/head.jsonl")).unwrap();
    let fifth = kiln_in(d.path(), &["run", f, "--log-format", "json", "--set", "nodes.head.n=7"]);
    assert_eq!(ran(&fifth), ["out"]);
}

#[test]
fn force_only_until_and_dry_run_select_nodes() {
    let d = tempfile::tempdir().unwrap();
    write_docs(&d.path().join("a.jsonl"), 30, 5);
    write_docs(&d.path().join("b.jsonl"), 30, 5);
    let f = pipeline(d.path(), DAG);
    let f = f.to_str().unwrap();
    let dry = kiln_in(d.path(), &["run", f, "--dry-run"]);
    dry.ok();
    assert!(
        dry.stdout.contains("would run") && dry.stdout.contains("not built yet"),
        "{}",
        dry.stdout
    );
    assert!(!d.path().join("runs/a/manifest.json").exists(), "dry run built something");

    let until = kiln_in(d.path(), &["run", f, "--until", "head", "--log-format", "json"]);
    assert_eq!(ran(&until), ["a", "head"]);
    let only = kiln_in(d.path(), &["run", f, "--only", "b", "--log-format", "json"]);
    assert_eq!(ran(&only), ["b"]);
    let forced = kiln_in(d.path(), &["run", f, "--force", "head", "--log-format", "json"]);
    assert_eq!(ran(&forced), ["head", "out"]);
    let dry = kiln_in(d.path(), &["run", f, "--dry-run", "--force", "a"]);
    assert!(dry.stdout.contains("forced"), "{}", dry.stdout);

    // --only on a node whose input is not built is refused up front.
    let d2 = tempfile::tempdir().unwrap();
    write_docs(&d2.path().join("a.jsonl"), 3, 2);
    write_docs(&d2.path().join("b.jsonl"), 3, 2);
    let f2 = pipeline(d2.path(), DAG);
    let r = kiln_in(d2.path(), &["run", f2.to_str().unwrap(), "--only", "head"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("needs `a`, which is not built"), "{}", r.stderr);
}

#[test]
fn manifests_record_what_was_made() {
    let d = tempfile::tempdir().unwrap();
    write_docs(&d.path().join("a.jsonl"), 40, 5);
    write_docs(&d.path().join("b.jsonl"), 1, 1);
    let f = pipeline(d.path(), DAG);
    kiln_in(d.path(), &["run", f.to_str().unwrap(), "--quiet"]).ok();
    let m = manifest(&d.path().join("runs"), "a");
    assert_eq!(m["kind"], "documents");
    assert_eq!(m["rows"], 40);
    assert_eq!(m["params"]["text_field"], "text");
    assert!(m["wall_time_s"].as_f64().unwrap() >= 0.0);
    assert!(m["peak_rss_bytes"].as_u64().unwrap() > 0);
    assert_eq!(m["stats"]["read"]["records_in"], 40);
    let cols: Vec<&str> = m["schema"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(cols, ["id", "text", "url", "source", "metadata"]);
    assert!(d.path().join("runs/a/log.txt").exists());
    let first = &rows(&d.path().join("runs"), "a")[0];
    assert!(first.contains("\"id\":\"d0\"") && first.contains("\"n\":0"), "{first}");
    let inspect = kiln_in(d.path(), &["inspect", "runs/a", "--rows", "2"]);
    inspect.ok();
    assert!(
        inspect.stdout.contains("rows       40") && inspect.stdout.contains("| d1 "),
        "{}",
        inspect.stdout
    );
}

#[test]
fn sigkill_at_any_moment_leaves_no_complete_looking_artifact() {
    let d = tempfile::tempdir().unwrap();
    // Large enough that a debug build spends a while in the node.
    write_docs(&d.path().join("a.jsonl"), 120_000, 40);
    write_docs(&d.path().join("b.jsonl"), 10, 2);
    let yaml = DAG.replace(
        "    path: a.jsonl\n",
        "    path: a.jsonl\n    batch_bytes: 262144\n    shard_bytes: 4194304\n",
    );
    let f = pipeline(d.path(), &yaml);
    let f = f.to_str().unwrap();
    let clean = tempfile::tempdir().unwrap();
    std::fs::copy(d.path().join("a.jsonl"), clean.path().join("a.jsonl")).unwrap();
    std::fs::copy(d.path().join("b.jsonl"), clean.path().join("b.jsonl")).unwrap();
    let fc = pipeline(clean.path(), &yaml);
    kiln_in(clean.path(), &["run", fc.to_str().unwrap(), "--quiet"]).ok();
    let want = manifest(&clean.path().join("runs"), "a");

    let runs = d.path().join("runs");
    for delay_ms in [0u64, 40, 120, 250, 400] {
        let _ = std::fs::remove_dir_all(runs.join("a"));
        // The previous kill's scratch must not be mistaken for this run's.
        let _ = std::fs::remove_dir_all(runs.join(".tmp"));
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_kiln"))
            .args(["run", f, "--quiet", "--only", "a"])
            .current_dir(d.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // Wait until the node is writing (its scratch directory exists), then a bit more.
        let t0 = std::time::Instant::now();
        while t0.elapsed().as_secs() < 20 {
            let writing = std::fs::read_dir(runs.join(".tmp")).map(|r| r.count() > 0).unwrap_or(false);
            if writing || child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        child.kill().unwrap(); // SIGKILL
        let status = child.wait().unwrap();
        let finished = status.success();
        match std::fs::read_to_string(runs.join("a/manifest.json")) {
            Err(_) => assert!(!finished, "a finished run left no manifest"),
            Ok(text) => {
                // Anything that looks complete must be complete.
                let m: Value = serde_json::from_str(&text).unwrap();
                assert_eq!(m["content_hash"], want["content_hash"], "killed after {delay_ms} ms");
                assert_eq!(m["rows"], want["rows"]);
            }
        }
        assert!(
            !runs.join("a/data").exists() || runs.join("a/manifest.json").exists(),
            "half an artifact in place"
        );
    }
    // The next run finishes the job and cleans the killed runs' scratch.
    kiln_in(d.path(), &["run", f, "--quiet"]).ok();
    let got = manifest(&runs, "a");
    assert_eq!(got["content_hash"], want["content_hash"]);
    assert_eq!(got["rows"], want["rows"]);
    assert_eq!(rows(&runs, "a"), rows(&clean.path().join("runs"), "a"));
    let leftovers = std::fs::read_dir(runs.join(".tmp")).map(|r| r.count()).unwrap_or(0);
    assert_eq!(leftovers, 0, "scratch of killed runs was not cleaned");
}

fn shard_yaml(path: &str, extra: &str) -> String {
    format!(
        "name: shards\nworkdir: runs\nseed: 7\nnodes:\n  docs:\n    op: read\n    path: {path}\n{extra}  pick:\n    op: sample\n    input: docs\n    fraction: 0.5\n"
    )
}

fn sharded_equals_whole(dir: &Path, yaml: &str, node: &str) {
    let whole = tempfile::tempdir().unwrap();
    let fw = pipeline(whole.path(), yaml);
    kiln_in(whole.path(), &["run", fw.to_str().unwrap(), "--quiet", "--until", node]).ok();
    let want = manifest(&whole.path().join("runs"), node);

    let f = pipeline(dir, yaml);
    let f = f.to_str().unwrap();
    for i in 0..3 {
        let r = kiln_in(dir, &["run", f, "--quiet", "--node", node, "--shard", &format!("{i}/3")]);
        r.ok();
        assert!(
            !dir.join("runs").join(node).join("manifest.json").exists(),
            "a part must not complete the node"
        );
    }
    kiln_in(dir, &["run", f, "--quiet", "--node", node, "--merge"]).ok();
    let got = manifest(&dir.join("runs"), node);
    assert_eq!(got["parts"], 3);
    assert_eq!(got["rows"], want["rows"]);
    assert_eq!(got["fingerprint"], want["fingerprint"]);
    assert_eq!(got["content_hash"], want["content_hash"]);
    assert_eq!(rows(&dir.join("runs"), node), rows(&whole.path().join("runs"), node));
}

#[test]
fn three_shards_and_a_merge_equal_an_unsharded_run() {
    let Some(data) = common::shared_data() else { return };
    let d = tempfile::tempdir().unwrap();
    let inaugural = format!("{}/text/nltk-inaugural/*.txt", data.display());
    sharded_equals_whole(d.path(), &shard_yaml(&inaugural, ""), "docs");
    // The seeded sample shards by its input's files.
    let d = tempfile::tempdir().unwrap();
    let yaml = shard_yaml(&inaugural, "    shard_bytes: 65536\n");
    let f = pipeline(d.path(), &yaml);
    kiln_in(d.path(), &["run", f.to_str().unwrap(), "--quiet", "--until", "docs"]).ok();
    sharded_equals_whole(d.path(), &yaml, "pick");
}

#[test]
fn one_large_parquet_file_shards_by_row_group() {
    let d = tempfile::tempdir().unwrap();
    write_docs(&d.path().join("a.jsonl"), 150_000, 1);
    let export = "name: mk\nworkdir: runs\nnodes:\n  a:\n    op: read\n    path: a.jsonl\n  out:\n    op: write\n    input: a\n    path: big.parquet\n";
    let f = pipeline(d.path(), export);
    kiln_in(d.path(), &["run", f.to_str().unwrap(), "--quiet"]).ok();
    let sharded = tempfile::tempdir().unwrap();
    std::fs::copy(d.path().join("big.parquet"), sharded.path().join("big.parquet")).unwrap();
    let yaml = shard_yaml(
        &sharded.path().join("big.parquet").display().to_string(),
        "    text_field: text\n    id_field: id\n",
    );
    sharded_equals_whole(sharded.path(), &yaml, "docs");
    let m = manifest(&sharded.path().join("runs"), "docs");
    assert_eq!(m["rows"], 150_000);
}

#[test]
fn a_plain_run_finishes_a_partly_sharded_node() {
    let Some(data) = common::shared_data() else { return };
    let d = tempfile::tempdir().unwrap();
    let yaml = shard_yaml(&format!("{}/text/nltk-state_union/*.txt", data.display()), "");
    let f = pipeline(d.path(), &yaml);
    let f = f.to_str().unwrap();
    kiln_in(d.path(), &["run", f, "--quiet", "--node", "docs", "--shard", "1/3"]).ok();
    let merge = kiln_in(d.path(), &["run", f, "--quiet", "--node", "docs", "--merge"]);
    assert_eq!(merge.code, 1);
    assert!(
        merge.stderr.contains("shard part(s) 0, 2 of 3 are not finished"),
        "{}",
        merge.stderr
    );
    kiln_in(d.path(), &["run", f, "--quiet"]).ok();
    let m = manifest(&d.path().join("runs"), "docs");
    assert_eq!(m["parts"], 3);
    // 65 addresses; a few hold Latin-1 bytes and are rejected, not lost.
    assert_eq!(m["rows"].as_u64().unwrap() + m["rejected_rows"].as_u64().unwrap(), 65);
}

#[test]
fn a_plain_run_finishes_a_clustered_dedup_and_cluster_says_what_it_lacks() {
    let Some(data) = common::shared_data() else { return };
    let d = tempfile::tempdir().unwrap();
    let yaml = format!(
        "name: c\nworkdir: runs\nnodes:\n  docs:\n    op: read\n    path: {}/text/nltk-state_union/*.txt\n  dd:\n    op: dedup\n    input: docs\n    method: lines\n",
        data.display()
    );
    let f = pipeline(d.path(), &yaml);
    let f = f.to_str().unwrap();
    let at = |wd: &str, args: &[&str]| {
        let mut a = vec!["run", f, "--quiet", "--set", wd];
        a.extend_from_slice(args);
        kiln_in(d.path(), &a)
    };
    at("workdir=whole", &[]).ok();
    at("workdir=runs", &["--until", "docs"]).ok();
    let no_step = at("workdir=runs", &["--node", "docs", "--cluster"]);
    assert_eq!(no_step.code, 2, "{}", no_step.stderr);
    assert!(no_step.stderr.contains("no shard parts"), "{}", no_step.stderr);
    at("workdir=runs", &["--node", "dd", "--shard", "1/2"]).ok();
    let early = at("workdir=runs", &["--node", "dd", "--cluster"]);
    assert_eq!(early.code, 1);
    assert!(early.stderr.contains("shard part(s) 0 of 2 are not finished"), "{}", early.stderr);
    at("workdir=runs", &["--node", "dd", "--shard", "0/2"]).ok();
    at("workdir=runs", &["--node", "dd", "--cluster"]).ok();
    let st = kiln_in(d.path(), &["status", f, "--set", "workdir=runs"]);
    assert!(st.stdout.contains("clustered; 0/2 round-2 shards done"), "{}", st.stdout);
    // Round 2 has not started: a plain run filters both halves and joins them.
    at("workdir=runs", &[]).ok();
    let (got, want) = (manifest(&d.path().join("runs"), "dd"), manifest(&d.path().join("whole"), "dd"));
    assert_eq!(got["parts"], 2);
    assert_eq!(got["content_hash"], want["content_hash"]);
    assert_eq!(got["stats"]["dedup"]["lines_removed"], want["stats"]["dedup"]["lines_removed"]);
}

#[test]
fn ctrl_c_stops_cleanly_and_the_next_run_finishes() {
    stops_cleanly_on("-INT");
}

/// Slurm's scancel, preemption and time limit send SIGTERM: the same clean stop.
#[test]
fn sigterm_stops_cleanly_and_the_next_run_finishes() {
    stops_cleanly_on("-TERM");
}

fn stops_cleanly_on(signal: &str) {
    let d = tempfile::tempdir().unwrap();
    write_docs(&d.path().join("a.jsonl"), 120_000, 40);
    write_docs(&d.path().join("b.jsonl"), 10, 2);
    let yaml = DAG.replace("    path: a.jsonl\n", "    path: a.jsonl\n    batch_bytes: 262144\n");
    let f = pipeline(d.path(), &yaml);
    let f = f.to_str().unwrap();
    let runs = d.path().join("runs");
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(["run", f, "--only", "a", "--quiet"])
        .current_dir(d.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = std::time::Instant::now();
    while t0.elapsed().as_secs() < 20 && std::fs::read_dir(runs.join(".tmp")).map(|r| r.count() == 0).unwrap_or(true) {
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    let sent = std::process::Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let out = child.wait_with_output().unwrap();
    let code = out.status.code();
    if code == Some(0) {
        // The node finished before the signal landed: then it must be whole.
        assert!(runs.join("a/manifest.json").exists());
    } else {
        assert_eq!(code, Some(130), "{}", String::from_utf8_lossy(&out.stderr));
        assert!(!runs.join("a").exists(), "an interrupted node left an artifact");
        assert_eq!(
            std::fs::read_dir(runs.join(".tmp")).map(|r| r.count()).unwrap_or(0),
            0,
            "scratch left behind"
        );
        assert!(String::from_utf8_lossy(&out.stderr).contains("cancelled"));
    }
    kiln_in(d.path(), &["run", f, "--quiet"]).ok();
    assert_eq!(manifest(&runs, "a")["rows"], 120_000);
}

#[test]
fn graph_prints_text_dot_and_mermaid() {
    let d = tempfile::tempdir().unwrap();
    write_docs(&d.path().join("a.jsonl"), 1, 1);
    write_docs(&d.path().join("b.jsonl"), 1, 1);
    let f = pipeline(d.path(), DAG);
    let f = f.to_str().unwrap();
    let text = kiln_in(d.path(), &["graph", f]);
    text.ok();
    assert!(text.stdout.contains("├─ a (read → documents)"), "{}", text.stdout);
    assert!(text.stdout.contains("   └─ out (write → report)"), "{}", text.stdout);
    let dot = kiln_in(d.path(), &["graph", f, "--format", "dot"]);
    assert!(
        dot.stdout.starts_with("digraph \"cache\"") && dot.stdout.contains("\"head\" -> \"out\" [label=\"input\"]"),
        "{}",
        dot.stdout
    );
    let mermaid = kiln_in(d.path(), &["graph", f, "--format", "mermaid"]);
    assert!(
        mermaid.stdout.starts_with("graph LR") && mermaid.stdout.contains("a -->|input| head"),
        "{}",
        mermaid.stdout
    );
}

#[test]
fn exports_round_trip_through_jsonl_gz_zst_and_parquet() {
    let d = tempfile::tempdir().unwrap();
    write_docs(&d.path().join("a.jsonl"), 500, 8);
    let exts = ["jsonl.gz", "jsonl.zst", "parquet", "jsonl"];
    let mut export = String::from("name: ex\nworkdir: runs\nnodes:\n  a:\n    op: read\n    path: a.jsonl\n");
    let mut reread = String::from("name: re\nworkdir: runs\nnodes:\n");
    for (i, ext) in exts.iter().enumerate() {
        export.push_str(&format!("  w{i}:\n    op: write\n    input: a\n    path: out/a.{ext}\n"));
        reread.push_str(&format!("  r{i}:\n    op: read\n    path: out/a.{ext}\n"));
    }
    let f = pipeline(d.path(), &export);
    kiln_in(d.path(), &["run", f.to_str().unwrap(), "--quiet"]).ok();
    let f = pipeline(d.path(), &reread);
    kiln_in(d.path(), &["run", f.to_str().unwrap(), "--quiet"]).ok();
    let runs = d.path().join("runs");
    let want = manifest(&runs, "a")["content_hash"].clone();
    for (i, ext) in exts.iter().enumerate() {
        assert_eq!(manifest(&runs, &format!("r{i}"))["content_hash"], want, "{ext}");
    }
    assert_eq!(std::fs::read(d.path().join("out/a.jsonl.gz")).unwrap()[..2], [0x1f, 0x8b]);
    assert_eq!(
        std::fs::read(d.path().join("out/a.jsonl.zst")).unwrap()[..4],
        [0x28, 0xb5, 0x2f, 0xfd]
    );
}
