// ok: test module
//! The out-of-process executors: the clean-crawl recipe on the real crawl
//! excerpts in four shards, through local worker processes and through a real
//! Slurm, must equal the single-process run; a lost shard is rebuilt alone.
//! The Slurm tests need a running cluster (`.ci/slurm-up` starts a one-node
//! one) and skip, saying why, without it:
//!   .ci/slurm-up && cargo test --test executors

mod common;
use common::{kiln_in, manifest, pipeline, shared_data};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const NODES: [&str; 3] = ["clean", "dedup", "final"];

/// A temp dir with the recipe, its `--set` for the crawl, and the content
/// hashes of a single-process run of it.
struct Recipe {
    dir: tempfile::TempDir,
    file: PathBuf,
    crawl: String,
    want: Vec<(String, Value, Value)>,
}

fn recipe(data: &Path) -> Recipe {
    let dir = tempfile::tempdir().unwrap();
    let yaml = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines/clean-crawl.yaml")).unwrap();
    let file = dir.path().join("clean-crawl.yaml");
    std::fs::write(&file, yaml).unwrap();
    let crawl = format!("vars.crawl={}", data.join("crawl").display());
    kiln_in(
        dir.path(),
        &["run", file.to_str().unwrap(), "--quiet", "--set", &crawl, "--set", "workdir=inline"],
    )
    .ok();
    let want = hashes(&dir.path().join("inline"));
    Recipe { dir, file, crawl, want }
}

/// Per node: content hash and rows, the output a run must reproduce.
fn hashes(workdir: &Path) -> Vec<(String, Value, Value)> {
    NODES
        .iter()
        .map(|n| {
            let m = manifest(workdir, n);
            (n.to_string(), m["content_hash"].clone(), m["rows"].clone())
        })
        .collect()
}

impl Recipe {
    /// `kiln run` with the recipe, the crawl, `workdir` and more arguments.
    fn run(&self, workdir: &str, more: &[&str]) -> common::Run {
        let wd = format!("workdir={workdir}");
        let mut args = vec!["run", self.file.to_str().unwrap(), "--set", &self.crawl, "--set", &wd];
        args.extend_from_slice(more);
        kiln_in(self.dir.path(), &args)
    }

    fn assert_same(&self, workdir: &str) {
        let w = self.dir.path().join(workdir);
        assert_eq!(hashes(&w), self.want, "{workdir} differs from the single-process run");
        for n in NODES {
            assert_eq!(manifest(&w, n)["parts"], 4, "{n} was not built from 4 shards");
        }
        // Merged parts leave no part directories behind.
        assert!(!w.join(".parts/clean").read_dir().is_ok_and(|mut r| r.next().is_some()));
    }
}

#[test]
fn local_workers_in_four_shards_equal_the_single_process_run() {
    let Some(data) = shared_data() else { return };
    let r = recipe(&data);
    let out = r.run("local", &["--executor", "local", "--workers", "2", "--set", "executor.tasks=4"]);
    out.ok();
    r.assert_same("local");
    for unit in [
        "clean-0",
        "clean-3",
        "clean-merge",
        "dedup-1",
        "dedup-b-3",
        "dedup-cluster",
        "dedup-r2-2",
        "dedup-merge",
        "final-merge",
    ] {
        assert!(r.dir.path().join(format!("local/.local/{unit}.log")).exists(), "no log for {unit}");
    }
    assert!(out.stderr.contains("✓ clean shard 3"), "{}", out.stderr);
    assert!(out.stdout.contains("final") && out.stdout.contains("ran"), "{}", out.stdout);
    // A second run finds everything built and starts no process.
    let again = r.run("local", &["--executor", "local", "--set", "executor.tasks=4"]);
    again.ok();
    assert!(!again.stderr.contains('✓'), "{}", again.stderr);
}

#[test]
fn local_workers_resume_a_node_with_only_its_missing_shards() {
    let Some(data) = shared_data() else { return };
    let r = recipe(&data);
    // An earlier run built shards 1 and 3 of `clean`, then stopped.
    for s in ["1/4", "3/4"] {
        r.run("resume", &["--quiet", "--node", "clean", "--shard", s]).ok();
    }
    let st = kiln_in(
        r.dir.path(),
        &["status", r.file.to_str().unwrap(), "--set", &r.crawl, "--set", "workdir=resume"],
    );
    st.ok();
    assert!(st.stdout.contains("2/4 shards done"), "{}", st.stdout);
    // No `tasks`: the executor keeps the 4-shard set it finds.
    let out = r.run("resume", &["--executor", "local", "--workers", "2"]);
    out.ok();
    let logs = r.dir.path().join("resume/.local");
    assert!(logs.join("clean-0.log").exists() && logs.join("clean-2.log").exists());
    assert!(
        !logs.join("clean-1.log").exists() && !logs.join("clean-3.log").exists(),
        "finished shards ran again"
    );
    let w = r.dir.path().join("resume");
    assert_eq!(hashes(&w), r.want);
    assert_eq!(manifest(&w, "clean")["parts"], 4);
}

#[test]
fn a_clustered_dedup_resumes_with_only_its_missing_round_2_shards() {
    let Some(data) = shared_data() else { return };
    let r = recipe(&data);
    // An earlier run got `dedup` through its first round and clustering,
    // and filtered round-2 shard 1 of 4, then stopped.
    r.run("resume2", &["--quiet", "--until", "clean"]).ok();
    for s in ["0/4", "1/4", "2/4", "3/4"] {
        r.run("resume2", &["--quiet", "--node", "dedup", "--shard", s]).ok();
    }
    r.run("resume2", &["--quiet", "--node", "dedup", "--cluster"]).ok();
    r.run("resume2", &["--quiet", "--node", "dedup", "--shard", "1/4"]).ok();
    let out = r.run("resume2", &["--executor", "local", "--workers", "2"]);
    out.ok();
    let logs = r.dir.path().join("resume2/.local");
    for unit in ["dedup-r2-0", "dedup-r2-2", "dedup-r2-3", "dedup-merge"] {
        assert!(logs.join(format!("{unit}.log")).exists(), "{unit} did not run");
    }
    for unit in ["dedup-0", "dedup-cluster", "dedup-r2-1"] {
        assert!(!logs.join(format!("{unit}.log")).exists(), "{unit} ran again");
    }
    assert_eq!(hashes(&r.dir.path().join("resume2")), r.want);
}

#[test]
fn a_failing_unit_stops_the_run_and_names_its_log() {
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir(d.path().join("in")).unwrap();
    std::fs::write(d.path().join("in/a.jsonl"), "{\"text\": \"one\"}\n").unwrap();
    std::fs::write(d.path().join("in/b.mystery"), "?").unwrap();
    let f = pipeline(
        d.path(),
        "name: bad\nexecutor: {kind: local, tasks: 2}\nnodes:\n  docs:\n    op: read\n    path: in\n  pick:\n    op: sample\n    input: docs\n    fraction: 0.5\n",
    );
    let out = kiln_in(d.path(), &["run", f.to_str().unwrap()]);
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("cannot tell the format"), "{}", out.stdout);
    assert!(
        out.stdout.contains("log: ") && out.stdout.contains(".local/docs-"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("skipped"),
        "the node after a failure must not start: {}",
        out.stdout
    );
    assert!(!d.path().join("runs/bad/docs/manifest.json").exists());
}

#[test]
fn executor_settings_are_validated() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("a.jsonl"), "{\"text\": \"one\"}\n").unwrap();
    let body = "nodes:\n  docs:\n    op: read\n    path: a.jsonl\n  dd:\n    op: dedup\n    input: docs\n    method: exact\n  out:\n    op: write\n    input: dd\n    path: out.jsonl\n";
    for (exec, want) in [
        ("executor: kubernetes\n", "unknown variant `kubernetes`"),
        ("executor: {kind: slurm, cpus: 4}\n", "unknown field `cpus`"),
        ("executor: {kind: slurm, tasks: {out: 4}}\n", "node `out` cannot be sharded"),
        ("executor: {kind: slurm, tasks: {nope: 4}}\n", "no node `nope`"),
        ("executor: {kind: slurm, tasks: 5000}\n", "must be 1 to max_array_size (1000)"),
        ("executor: {kind: local, workers: 0}\n", "must be at least 1"),
        ("executor: {kind: slurm, nodes: {lm: {cpus_per_task: 8}}}\n", "no node `lm`"),
        ("executor: {kind: slurm, nodes: {dd: {gpus: 1}}}\n", "unknown field `gpus`"),
    ] {
        let f = pipeline(d.path(), &format!("name: v\n{exec}{body}"));
        let out = kiln_in(d.path(), &["validate", f.to_str().unwrap()]);
        assert_eq!(out.code, 2, "{exec}");
        assert!(out.stderr.contains(want), "{exec}: {}", out.stderr);
        assert!(out.stderr.contains("executor"), "{exec}: the error names the field: {}", out.stderr);
    }
}

/// Why the Slurm tests cannot run here, or `None` when a cluster answers.
fn no_slurm() -> Option<String> {
    let out = match Command::new("sinfo").args(["-h", "-o", "%T"]).output() {
        Ok(o) => o,
        Err(e) => return Some(format!("sinfo not found ({e}); install slurm-wlm and run .ci/slurm-up")),
    };
    let states = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Some(format!("sinfo failed: {}", String::from_utf8_lossy(&out.stderr).trim()));
    }
    if !states.lines().any(|s| ["idle", "mixed", "allocated"].contains(&s.trim())) {
        return Some(format!("no Slurm node is up (sinfo: {})", states.trim()));
    }
    None
}

fn slurm_ready() -> bool {
    match no_slurm() {
        None => true,
        Some(why) => {
            eprintln!("SKIP: {why}; start a one-node cluster with .ci/slurm-up");
            false
        }
    }
}

/// CPUs of the (first) Slurm node.
fn node_cpus() -> u32 {
    let out = Command::new("sinfo").args(["-h", "-o", "%c"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .and_then(|l| l.trim().trim_end_matches('+').parse().ok())
        .unwrap_or(1)
}

/// The ids and labels of the last submission's jobs.
fn submitted(workdir: &Path) -> Vec<(String, String)> {
    let v: Value = serde_json::from_str(&std::fs::read_to_string(workdir.join(".slurm/jobs.json")).unwrap()).unwrap();
    v["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| (j["job_id"].as_str().unwrap().to_string(), j["job"].as_str().unwrap().to_string()))
        .collect()
}

/// The id of the `clean` shards job, once it is submitted.
fn clean_shards_job(workdir: &Path) -> Option<String> {
    if !workdir.join(".slurm/jobs.json").exists() {
        return None;
    }
    submitted(workdir)
        .into_iter()
        .find(|(_, l)| l.starts_with("clean shards"))
        .map(|(id, _)| id)
}

/// Everything the Slurm tasks of clean shard `shard` wrote, over all submissions.
fn shard_log(workdir: &Path, shard: &str) -> String {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(workdir.join(".slurm"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .collect();
    dirs.sort();
    dirs.iter()
        .filter_map(|d| std::fs::read_to_string(d.join(format!("clean-{shard}.log"))).ok())
        .collect()
}

const SLURM: [&str; 6] = ["--executor", "slurm", "--wait", "--set", "executor.tasks=4", "--quiet"];

#[test]
fn slurm_job_arrays_in_four_shards_equal_the_single_process_run() {
    let Some(data) = shared_data() else { return };
    if !slurm_ready() {
        return;
    }
    let r = recipe(&data);
    let out = r.run("slurm", &SLURM);
    out.ok();
    r.assert_same("slurm");
    let jobs = submitted(&r.dir.path().join("slurm"));
    let labels: Vec<&str> = jobs.iter().map(|(_, l)| l.as_str()).collect();
    assert_eq!(
        labels,
        [
            "clean shards 0-3 of 4",
            "clean merge of 4",
            "dedup shards 0-3 of 4",
            "dedup bucket groups 0-3 of 4",
            "dedup cluster of 4",
            "dedup round-2 shards 0-3 of 4",
            "dedup merge of 4",
            "final shards 0-3 of 4",
            "final merge of 4"
        ]
    );
    // Nothing left to do: nothing is submitted.
    let again = r.run("slurm", &SLURM);
    again.ok();
    assert_eq!(submitted(&r.dir.path().join("slurm")), jobs);
}

#[test]
fn a_cancelled_slurm_task_is_resubmitted_alone_and_the_output_is_the_same() {
    let Some(data) = shared_data() else { return };
    if !slurm_ready() {
        return;
    }
    let r = recipe(&data);
    let wd = r.dir.path().join("cancel");
    // Every CPU of the node per task: the array's tasks run one after
    // another, so task 3 is still to run when task 0 has finished.
    let mut child = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args([
            "run",
            r.file.to_str().unwrap(),
            "--set",
            &r.crawl,
            "--set",
            "workdir=cancel",
            "--set",
            &format!("executor.cpus_per_task={}", node_cpus()),
        ])
        .args(SLURM)
        .env("KILN_SLURM_POLL_MS", "200")
        .current_dir(r.dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Mid-run: once `clean` has a finished shard, cancel its last task
    // (pending behind the others, or running).
    let t0 = Instant::now();
    let mut cancelled: Option<String> = None;
    while cancelled.is_none() && t0.elapsed() < Duration::from_secs(180) && child.try_wait().unwrap().is_none() {
        let clean_job = clean_shards_job(&wd);
        let started = std::fs::read_dir(wd.join(".parts/clean"))
            .into_iter()
            .flatten()
            .flatten()
            .any(|set| set.path().join("part-00000/manifest.json").exists());
        if let (Some(id), true) = (clean_job, started) {
            let task = format!("{id}_3");
            assert!(Command::new("scancel").arg(&task).status().unwrap().success());
            cancelled = Some(task);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let task = cancelled.expect("the clean shards never started");
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(
        out.status.code(),
        Some(1),
        "a run with a cancelled task must fail:\n{stdout}\n{stderr}"
    );
    let shard = task.rsplit('_').next().unwrap();
    assert!(stdout.contains(&format!("shard(s) {shard} of 4 did not finish")), "{stdout}");
    assert!(!wd.join("clean/manifest.json").exists(), "a node completed with a missing shard");
    assert!(!wd.join("final/manifest.json").exists());
    // The re-run resubmits that one shard, then everything after it.
    let again = r.run("cancel", &SLURM);
    again.ok();
    let labels: Vec<String> = submitted(&wd).into_iter().map(|(_, l)| l).collect();
    let clean_shards: Vec<&String> = labels.iter().filter(|l| l.starts_with("clean shards")).collect();
    assert!(
        clean_shards.is_empty() || clean_shards == [&format!("clean shards {shard} of 4")],
        "only the cancelled shard is resubmitted: {labels:?}"
    );
    r.assert_same("cancel");
}

#[test]
fn a_slurm_task_warned_before_its_time_limit_stops_and_requeues_itself() {
    if !slurm_ready() {
        return;
    }
    // Generated documents: enough that a debug build spends seconds per shard.
    // Four input files, so `docs` runs as two shards whose Parquet files
    // give each clean shard input of its own (one file would leave clean's
    // shard 0 empty: it ends at once, and the warning finds no task).
    let d = tempfile::tempdir().unwrap();
    let syllables = ["ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo", "we", "zu", "pe", "do"];
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        (seed >> 33) as usize
    };
    std::fs::create_dir(d.path().join("docs")).unwrap();
    for f in 0..4 {
        let mut text = String::new();
        for i in f * 15_000..(f + 1) * 15_000usize {
            let doc: Vec<String> = (0..40)
                .map(|_| (0..3).map(|_| syllables[next() % syllables.len()]).collect())
                .collect();
            text.push_str(&format!("{{\"id\": \"{i}\", \"text\": \"{}.\"}}\n", doc.join(" ")));
        }
        std::fs::write(d.path().join(format!("docs/{f}.jsonl")), text).unwrap();
    }
    let f = pipeline(
        d.path(),
        "name: requeue\nnodes:\n  docs:\n    op: read\n    path: docs\n    batch_bytes: 262144\n  clean:\n    op: clean\n    input: docs\n    steps: [gopher_repetition]\n",
    );
    let f = f.to_str().unwrap();
    kiln_in(d.path(), &["run", f, "--quiet", "--set", "workdir=inline"]).ok();
    let want = manifest(&d.path().join("inline"), "clean");
    let mut child = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(["run", f, "--set", "workdir=slurm"])
        .args(["--set", &format!("executor.cpus_per_task={}", node_cpus().min(2))])
        .args(SLURM.map(|a| a.replace("=4", "=2")))
        .env("KILN_SLURM_POLL_MS", "200")
        .current_dir(d.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let wd = d.path().join("slurm");
    // While a clean shard is writing, send the time-limit warning (USR1 to the batch shell).
    let t0 = Instant::now();
    let mut warned: Option<String> = None;
    while warned.is_none() && t0.elapsed() < Duration::from_secs(180) && child.try_wait().unwrap().is_none() {
        let writing = std::fs::read_dir(wd.join(".tmp"))
            .into_iter()
            .flatten()
            .flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with("clean."));
        let job = clean_shards_job(&wd);
        if let (true, Some(id)) = (writing, job) {
            let q = Command::new("squeue")
                .args(["-h", "-r", "-j", &id, "-o", "%i|%T"])
                .output()
                .unwrap();
            // A task whose kiln has printed its table is done though Slurm
            // may still list it: warning it would test nothing.
            let running = String::from_utf8_lossy(&q.stdout)
                .lines()
                .filter_map(|l| l.strip_suffix("|RUNNING").map(String::from))
                .find(|t| !shard_log(&wd, t.rsplit('_').next().unwrap()).contains(" part "));
            // The task may end, or its batch step not have started yet,
            // between squeue and scancel: then try again.
            if let Some(task) = running
                && Command::new("scancel")
                    .args(["--signal=USR1", "--batch", &task])
                    .status()
                    .unwrap()
                    .success()
            {
                warned = Some(task);
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let files = manifest(&wd, "docs")["files"].as_array().map_or(0, Vec::len);
    assert!(files >= 2, "docs must give each clean shard a file: {files}\n{stdout}\n{stderr}");
    let task = warned.expect("never saw a clean shard running");
    let shard = task.rsplit('_').next().unwrap();
    let log = shard_log(&wd, shard);
    assert_eq!(
        out.status.code(),
        Some(0),
        "the requeued task must finish the run:\n{stdout}\n{stderr}\n{log}"
    );
    assert!(log.contains(&format!("requeueing {task}")), "{log}");
    let got = manifest(&wd, "clean");
    for k in ["content_hash", "rows", "rejected_rows"] {
        assert_eq!(got[k], want[k], "{k}");
    }
    assert_eq!(got["parts"], 2);
}

#[test]
fn a_slurm_job_that_does_not_see_the_workdir_fails_saying_so() {
    if !slurm_ready() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("a.jsonl"), "{\"text\": \"one\"}\n{\"text\": \"two\"}\n").unwrap();
    // Held at submission, so the token can change before any job starts:
    // what a job on a node with a different filesystem would see.
    let f = pipeline(
        d.path(),
        "name: unshared\nexecutor: {kind: slurm, tasks: 2, sbatch_args: [--hold]}\nnodes:\n  docs:\n    op: read\n    path: a.jsonl\n",
    );
    let out = kiln_in(d.path(), &["run", f.to_str().unwrap()]);
    out.ok();
    assert!(
        out.stdout.contains("submitted") && out.stdout.contains("docs shards 0-1 of 2"),
        "{}",
        out.stdout
    );
    let wd = d.path().join("runs/unshared");
    let jobs = submitted(&wd);
    // A second submission while these are queued is refused.
    let again = kiln_in(d.path(), &["run", f.to_str().unwrap()]);
    assert_eq!(again.code, 2);
    assert!(again.stderr.contains("still queued or running"), "{}", again.stderr);
    let st = kiln_in(d.path(), &["status", f.to_str().unwrap()]);
    assert!(st.stdout.contains("still queued or running"), "{}", st.stdout);
    let sub = std::fs::read_dir(wd.join(".slurm"))
        .unwrap()
        .flatten()
        .find(|e| e.path().is_dir())
        .unwrap()
        .path();
    std::fs::write(sub.join("token"), "another filesystem").unwrap();
    let ids: Vec<&str> = jobs.iter().map(|(id, _)| id.as_str()).collect();
    assert!(
        Command::new("scontrol")
            .arg("release")
            .arg(ids.join(","))
            .status()
            .unwrap()
            .success()
    );
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(60) {
        let q = Command::new("squeue")
            .args(["-h", "-r", "-j", &ids.join(","), "-o", "%i"])
            .output()
            .unwrap();
        if String::from_utf8_lossy(&q.stdout).trim().is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let log = std::fs::read_to_string(sub.join("docs-0.log")).unwrap();
    assert!(log.contains("must be on a filesystem every node shares"), "{log}");
    assert!(!wd.join("docs/manifest.json").exists());
}

#[test]
fn without_slurm_the_slurm_executor_says_so_unless_there_is_nothing_to_submit() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("a.jsonl"), "{\"text\": \"one\"}\n").unwrap();
    let f = pipeline(d.path(), "name: nos\nnodes:\n  docs:\n    op: read\n    path: a.jsonl\n");
    let no_slurm = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_kiln"))
            .args(args)
            .current_dir(d.path())
            .env("PATH", d.path()) // no sbatch, no squeue
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, _, err) = no_slurm(&["run", f.to_str().unwrap(), "--executor", "slurm", "--wait"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("`sbatch` and `squeue` are not on PATH"), "{err}");
    assert!(
        !d.path().join("runs/nos/.slurm").exists(),
        "nothing is written for a refused submission"
    );
    kiln_in(d.path(), &["run", f.to_str().unwrap(), "--quiet"]).ok();
    let (code, out, err) = no_slurm(&["run", f.to_str().unwrap(), "--executor", "slurm", "--wait"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("cached"), "{out}");
}
