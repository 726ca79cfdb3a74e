//! `--executor slurm`: the job plan as `sbatch` submissions. A node's
//! shards are one job array, its merge a job that waits for the array
//! (`afterok`), and every later job waits for the jobs that build its inputs.
//! kiln keeps no state of its own beyond the list of job ids: progress and
//! the end of the run are read from the part and artifact directories, which
//! is why the workdir must be on a filesystem every node shares.

use super::jobs::{Invocation, Job, JobKind, index_list};
use super::log_tail;
use crate::exec::node::{done_bucket_groups, done_parts, done_second_parts};
use crate::exec::plan::{State, plan};
use crate::exec::report::Reporter;
use crate::exec::run::{Outcome, UsageError};
use crate::spec::Pipeline;
use crate::spec::executor::{ExecutorSpec, NodeResources};
use serde_json::{Value, json};
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// What was submitted: one Slurm job id per job of the plan.
#[derive(Debug, Clone)]
pub struct Submission {
    /// The submission's scripts, logs and token.
    pub dir: PathBuf,
    /// Job ids, in the plan's order.
    pub job_ids: Vec<String>,
}

/// `'...'` for a POSIX shell.
fn sh_quote(s: &str) -> String {
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c)) {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn jobs_file(workdir: &Path) -> PathBuf {
    workdir.join(".slurm").join("jobs.json")
}

/// Job ids (array job ids for arrays) that Slurm still lists as queued or running.
fn active_jobs() -> Result<Vec<(String, String)>, String> {
    let out = Command::new("squeue")
        .args(["-h", "-r", "-o", "%i|%T"])
        .output()
        .map_err(|e| format!("cannot run squeue: {e}"))?;
    if !out.status.success() {
        return Err(format!("squeue failed: {}", String::from_utf8_lossy(&out.stderr).trim()));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once('|'))
        .map(|(id, st)| (id.trim().to_string(), st.trim().to_string()))
        .collect())
}

/// The array (or plain) job id of a squeue id such as `123_4` or `123_[5-7]`.
fn base_id(id: &str) -> &str {
    id.split('_').next().unwrap_or(id)
}

/// The jobs of the last submission for this workdir that are still queued
/// or running (none when there was no submission).
pub fn still_active(workdir: &Path) -> Result<Vec<String>, String> {
    let Ok(text) = std::fs::read_to_string(jobs_file(workdir)) else {
        return Ok(vec![]);
    };
    let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    let ours: BTreeSet<String> = v["jobs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|j| j["job_id"].as_str().map(String::from))
        .collect();
    if ours.is_empty() {
        return Ok(vec![]);
    }
    let live: BTreeSet<String> = active_jobs()?
        .into_iter()
        .map(|(id, _)| base_id(&id).to_string())
        .filter(|id| ours.contains(id))
        .collect();
    Ok(live.into_iter().collect())
}

/// Writes the scripts and submits every job; refuses while the previous
/// submission for this workdir still has jobs in the queue.
pub fn submit(p: &Pipeline, jobs: &[Job], inv: &Invocation, spec: &ExecutorSpec, rep: &Reporter) -> Result<Submission, UsageError> {
    if jobs.is_empty() {
        // Everything is built: nothing to hand to Slurm, nor to check for.
        return Ok(Submission {
            dir: PathBuf::new(),
            job_ids: vec![],
        });
    }
    let which = |prog: &str| Command::new(prog).arg("--version").output().is_ok_and(|o| o.status.success());
    if !which("sbatch") || !which("squeue") {
        return Err(UsageError(
            "--executor slurm: `sbatch` and `squeue` are not on PATH; run kiln on a Slurm login node, or use --executor local".into(),
        ));
    }
    let workdir = std::path::absolute(&p.workdir).map_err(|e| UsageError(format!("workdir {}: {e}", p.workdir.display())))?;
    let live = still_active(&workdir).map_err(UsageError)?;
    if !live.is_empty() {
        return Err(UsageError(format!(
            "Slurm jobs {} from the last submission for {} are still queued or running; \
             let them end (`kiln status` shows their progress) or `scancel {}`, then run again",
            live.join(", "),
            workdir.display(),
            live.join(" ")
        )));
    }
    let stamp = format!("{}-{}", crate::exec::store::unix_now(), std::process::id());
    let dir = workdir.join(".slurm").join(&stamp);
    std::fs::create_dir_all(&dir).map_err(|e| UsageError(format!("cannot create {}: {e}", dir.display())))?;
    // A job that cannot read this token is not seeing our workdir.
    let token = blake3::hash(format!("{stamp}{:?}", std::time::SystemTime::now()).as_bytes()).to_hex()[..16].to_string();
    let token_path = dir.join("token");
    std::fs::write(&token_path, &token).map_err(|e| UsageError(format!("cannot write {}: {e}", token_path.display())))?;
    let cwd = std::env::current_dir().map_err(|e| UsageError(format!("current directory: {e}")))?;
    let mut ids: Vec<String> = Vec::new();
    let mut record = Vec::new();
    for (k, job) in jobs.iter().enumerate() {
        let stem = match &job.kind {
            JobKind::Shards { second: false, .. } => format!("{}-shards", job.node),
            JobKind::Shards { second: true, .. } => format!("{}-r2-shards", job.node),
            JobKind::Merge { .. } => format!("{}-merge", job.node),
            JobKind::Cluster { .. } => format!("{}-cluster", job.node),
            JobKind::Buckets { .. } => format!("{}-buckets", job.node),
            JobKind::Whole { .. } => job.node.clone(),
        };
        let script = dir.join(format!("{k:02}-{stem}.sh"));
        let inv = Invocation {
            threads: spec.resources(&job.node).cpus_per_task.unwrap_or(spec.cpus_per_task),
            ..inv.clone()
        };
        let text = script_text(p, job, &inv, &token_path, &token, &workdir);
        std::fs::write(&script, text).map_err(|e| UsageError(format!("cannot write {}: {e}", script.display())))?;
        let log = dir.join(job.log_name("%a"));
        let deps: Vec<&str> = job.deps.iter().map(|&d| ids[d].as_str()).collect();
        let name = format!("kiln-{}-{stem}", p.name);
        let mut args = sbatch_args(job, &spec.resources(&job.node), &name, &cwd, &log, &deps, spec.requeue_signal_s);
        args.push(script.display().to_string());
        let out = Command::new("sbatch")
            .args(&args)
            .output()
            .map_err(|e| UsageError(format!("cannot run sbatch: {e}")))?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let id = stdout.trim().split(';').next().unwrap_or("").to_string();
        if !out.status.success() || id.is_empty() || !id.chars().all(|c| c.is_ascii_digit()) {
            let submitted = if ids.is_empty() {
                String::new()
            } else {
                format!(" (submitted so far: {}; `scancel` them)", ids.join(" "))
            };
            return Err(UsageError(format!(
                "sbatch refused {}: {}{submitted}",
                job.label(),
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        rep.info(
            "submitted",
            json!({ "node": job.node, "job": job.label(), "job_id": id }),
            format!("⇢ {}: slurm job {id}", job.label()),
        );
        record.push(json!({ "node": job.node, "job": job.label(), "job_id": id, "script": script, "log": log }));
        ids.push(id);
        // Record as we go, so an interrupted submission still knows its jobs.
        let all = json!({ "dir": dir, "submitted_unix": crate::exec::store::unix_now(), "jobs": record });
        // Atomically: `kiln status` and other runs read it while we submit.
        let tmp = dir.join("jobs.json.tmp");
        let saved = std::fs::write(&tmp, serde_json::to_string_pretty(&all).unwrap_or_default())
            .and_then(|_| std::fs::rename(&tmp, jobs_file(&workdir)));
        if let Err(e) = saved {
            rep.warn(
                "jobs_file",
                json!({ "error": e.to_string() }),
                format!("cannot record the job ids: {e}"),
            );
        }
    }
    Ok(Submission { dir, job_ids: ids })
}

/// The `sbatch` options for one job (the script path comes last, after them).
fn sbatch_args(job: &Job, r: &NodeResources, name: &str, cwd: &Path, log: &Path, deps: &[&str], requeue_s: u32) -> Vec<String> {
    let mut args: Vec<String> = vec![
        "--parsable".into(),
        format!("--job-name={name}"),
        format!("--chdir={}", cwd.display()),
        format!("--output={}", log.display()),
        "--open-mode=append".into(),
        format!("--cpus-per-task={}", r.cpus_per_task.unwrap_or(1)),
        "--requeue".into(),
        format!("--signal=B:USR1@{requeue_s}"),
    ];
    for (flag, v) in [("partition", &r.partition), ("mem", &r.mem), ("time", &r.time)] {
        if let Some(v) = v {
            args.push(format!("--{flag}={v}"));
        }
    }
    if let JobKind::Shards { pending, .. } | JobKind::Buckets { pending, .. } = &job.kind {
        args.push(format!("--array={}", index_list(pending)));
    }
    if !deps.is_empty() {
        args.push(format!("--dependency=afterok:{}", deps.join(":")));
        // A job whose input failed is cancelled, not left pending forever.
        args.push("--kill-on-invalid-dep=yes".into());
    }
    args.extend(r.sbatch_args.iter().cloned());
    args
}

fn script_text(p: &Pipeline, job: &Job, inv: &Invocation, token_path: &Path, token: &str, workdir: &Path) -> String {
    let shard = if matches!(job.kind, JobKind::Shards { .. } | JobKind::Buckets { .. }) {
        "${SLURM_ARRAY_TASK_ID}"
    } else {
        ""
    };
    let argv: Vec<String> = inv
        .argv(job, "@SHARD@")
        .iter()
        .map(|a| sh_quote(a).replace("@SHARD@", &format!("\"{shard}\"")))
        .collect();
    format!(
        r#"#!/usr/bin/env bash
# kiln pipeline `{name}`: {label}. Written by `kiln run --executor slurm`.
set -u
if [ -n "${{SLURM_ARRAY_JOB_ID:-}}" ]; then me="${{SLURM_ARRAY_JOB_ID}}_${{SLURM_ARRAY_TASK_ID}}"; else me="${{SLURM_JOB_ID}}"; fi
# USR1 (--signal=B:USR1@N) warns this shell before the time limit: stop kiln,
# then put the task back in the queue to start again. Set first, so a warning
# that comes early cannot kill the shell instead. A warning after kiln has
# ended changes nothing: its result stands (a requeue would redo the work).
child=""
ended=""
trap 'if [ -n "$ended" ]; then exit $rc; fi; echo "kiln: time limit near, requeueing $me" >&2; if [ -n "$child" ]; then kill -TERM $child 2>/dev/null; wait $child; fi; scontrol requeue "$me"; exit 0' USR1
# The workdir must be shared: this job has to see the token its submitter wrote.
if [ "$(cat {token_path} 2>/dev/null)" != "{token}" ]; then
  echo "kiln: this node ($(hostname)) does not see {token_path}: the workdir {workdir} must be on a filesystem every node shares" >&2
  exit 3
fi
{cmd} &
child=$!
# scancel, preemption and the time limit signal every process of the job:
# kiln stops on its own SIGTERM, committing nothing, so the shell only waits.
# (Set after kiln starts: an ignored signal would be inherited.)
trap '' TERM
wait $child
rc=$?
while kill -0 $child 2>/dev/null; do wait $child; rc=$?; done
ended=1
exit $rc
"#,
        name = p.name,
        label = job.label(),
        token_path = sh_quote(&token_path.display().to_string()),
        workdir = workdir.display(),
        cmd = argv.join(" "),
    )
}

/// Follows the jobs until none is queued or running, printing each node's
/// progress as its parts and artifacts appear; returns how the nodes that did
/// not finish ended. Ctrl-C stops following, not the jobs.
pub fn follow(p: &Pipeline, jobs: &[Job], sub: &Submission, rep: &Reporter, cancel: &AtomicBool) -> HashMap<String, Outcome> {
    let ours: BTreeSet<&str> = sub.job_ids.iter().map(String::as_str).collect();
    if ours.is_empty() {
        return HashMap::new();
    }
    let poll = std::env::var("KILN_SLURM_POLL_MS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2000u64);
    // Fingerprints do not change while the jobs run: plan once (it reads
    // every input file's metadata), then look only at the artifacts.
    let fps: HashMap<String, (String, PathBuf)> = plan(p).into_iter().map(|q| (q.id, (q.fingerprint, q.dir))).collect();
    let built = |id: &str| {
        let (fp, dir) = &fps[id];
        crate::exec::store::load(dir).is_some_and(|a| &a.manifest.fingerprint == fp)
    };
    // The finished parts of a node's set of `n`, of its first or second round.
    let finished = |id: &str, n: u32, second: bool| match second {
        true => done_second_parts(&p.workdir, id, &fps[id].0, n),
        false => done_parts(&p.workdir, id, &fps[id].0, n),
    };
    let mut last_line: HashMap<usize, String> = HashMap::new();
    let mut ended = HashMap::new();
    loop {
        let active: Vec<(String, String)> = match active_jobs() {
            Ok(a) => a.into_iter().filter(|(id, _)| ours.contains(base_id(id))).collect(),
            Err(e) => {
                rep.warn("squeue_failed", json!({ "error": e }), format!("squeue: {e}; retrying"));
                std::thread::sleep(Duration::from_millis(poll));
                continue;
            }
        };
        for (k, job) in jobs.iter().enumerate() {
            let id = &sub.job_ids[k];
            let states: Vec<&str> = active.iter().filter(|(a, _)| base_id(a) == id).map(|(_, s)| s.as_str()).collect();
            let running = states.iter().filter(|s| **s == "RUNNING").count();
            let line = match &job.kind {
                _ if built(&job.node) => format!("{}: built", job.node),
                JobKind::Shards { n, second, .. } => {
                    let done = finished(&job.node, *n, *second).len();
                    format!(
                        "{}: {done}/{n} {}shards done, {running} running, {} queued",
                        job.node,
                        if *second { "round-2 " } else { "" },
                        states.len() - running
                    )
                }
                _ if states.is_empty() => continue,
                _ => format!("{}: {}", job.label(), states.join(",").to_lowercase()),
            };
            // Once per change; "raw: built" once for the shards and the merge.
            if !last_line.values().any(|l| l == &line) {
                rep.info("progress", json!({ "job_id": id, "status": line }), format!("  {line}"));
                last_line.insert(k, line);
            }
        }
        if active.is_empty() {
            break;
        }
        if cancel.load(Ordering::Relaxed) {
            let ids: Vec<&str> = ours.iter().copied().collect();
            rep.warn(
                "detached",
                json!({ "jobs": ids }),
                format!(
                    "stopped following; the jobs keep running (`kiln status` shows progress, `scancel {}` stops them)",
                    ids.join(" ")
                ),
            );
            for j in jobs {
                ended.insert(j.node.clone(), Outcome::Cancelled);
            }
            return ended;
        }
        std::thread::sleep(Duration::from_millis(poll));
    }
    // Every job has left the queue: what is not built failed, and its logs say why.
    let states: HashMap<String, State> = plan(p).into_iter().map(|q| (q.id, q.state)).collect();
    // Whether the nodes a job reads are built: if not, a job that never
    // started was cancelled for that reason, not on its own.
    let inputs_built = |job: &Job| job.deps.iter().all(|&d| states.get(&jobs[d].node) == Some(&State::Done));
    for (k, job) in jobs.iter().enumerate() {
        if states.get(&job.node) == Some(&State::Done) || ended.contains_key(&job.node) {
            continue;
        }
        let id = &sub.job_ids[k];
        let msg = match &job.kind {
            JobKind::Shards { pending, .. } | JobKind::Buckets { pending, .. } => {
                let (done, n, what) = match job.kind {
                    JobKind::Shards { n, second, .. } => (finished(&job.node, n, second), n, "shard(s)"),
                    JobKind::Buckets { n, groups, .. } => (
                        done_bucket_groups(&p.workdir, &job.node, &fps[&job.node].0, n, groups),
                        groups,
                        "bucket group(s)",
                    ),
                    _ => continue,
                };
                let missing: Vec<u32> = pending.iter().copied().filter(|i| !done.contains(i)).collect();
                if missing.is_empty() {
                    continue; // the shards are fine; the merge says what failed
                }
                let log = |i: u32| sub.dir.join(job.log_name(&i.to_string()));
                if !inputs_built(job) && missing.iter().all(|&i| !log(i).exists()) {
                    ended.insert(job.node.clone(), Outcome::Skipped); // its inputs failed: never started
                    continue;
                }
                let why: Vec<String> = missing
                    .iter()
                    .take(3)
                    .map(|&i| match log(i).exists() {
                        true => format!("{id}_{i}: {} (log: {})", log_tail(&log(i)), log(i).display()),
                        false => format!("{id}_{i}: cancelled before it started"),
                    })
                    .collect();
                format!(
                    "{what} {} of {n} did not finish ({}); `kiln run` again resubmits only those",
                    index_list(&missing),
                    why.join("; ")
                )
            }
            JobKind::Merge { n } | JobKind::Cluster { n } => {
                let log = sub.dir.join(job.log_name(""));
                let (what, second) = match job.kind {
                    JobKind::Cluster { .. } => ("cluster", false),
                    _ => ("merge", p.node(&job.node).is_some_and(|nd| nd.op.merge_computes())),
                };
                let all_parts = finished(&job.node, *n, second).len() == *n as usize;
                if !log.exists() && all_parts {
                    // Every part is there, yet the job never ran: a task was
                    // cancelled or failed after committing its part.
                    format!(
                        "all {n} shards finished but {what} job {id} never started (a shard task was cancelled or failed late); `kiln run` again finishes it"
                    )
                } else if !log.exists() {
                    continue; // never started: its shards failed, and say so
                } else {
                    format!("{what} job {id} failed: {} (log: {})", log_tail(&log), log.display())
                }
            }
            JobKind::Whole { .. } => {
                let log = sub.dir.join(job.log_name(""));
                if !log.exists() && !inputs_built(job) {
                    ended.insert(job.node.clone(), Outcome::Skipped);
                    continue;
                }
                if !log.exists() {
                    format!("job {id} was cancelled before it started; `kiln run` again resubmits it")
                } else {
                    format!("job {id} failed: {} (log: {})", log_tail(&log), log.display())
                }
            }
        };
        ended.insert(job.node.clone(), Outcome::Failed(msg));
    }
    ended
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_s_own_settings_override_the_executor_s_in_its_sbatch_line() {
        let spec: ExecutorSpec = serde_json::from_value(json!({
            "kind": "slurm", "partition": "cpu", "cpus_per_task": 4, "mem": "8G", "sbatch_args": ["--account=ml"],
            "nodes": { "lm": { "partition": "gpu", "cpus_per_task": 16, "time": "2-00:00:00", "sbatch_args": ["--gres=gpu:1"] } }
        }))
        .unwrap();
        let (cwd, log) = (Path::new("/w"), Path::new("/w/l.log"));
        let shards = Job {
            node: "raw".into(),
            kind: JobKind::Shards {
                n: 8,
                pending: vec![0, 1, 2, 5],
                second: false,
            },
            deps: vec![],
        };
        let a = sbatch_args(&shards, &spec.resources("raw"), "kiln-x-raw", cwd, log, &[], 120);
        for want in [
            "--partition=cpu",
            "--cpus-per-task=4",
            "--mem=8G",
            "--array=0-2,5",
            "--account=ml",
            "--signal=B:USR1@120",
        ] {
            assert!(a.contains(&want.to_string()), "{want} in {a:?}");
        }
        assert!(!a.iter().any(|x| x.starts_with("--dependency") || x.starts_with("--time")), "{a:?}");
        let lm = Job {
            node: "lm".into(),
            kind: JobKind::Whole { force: false },
            deps: vec![0, 1],
        };
        let a = sbatch_args(&lm, &spec.resources("lm"), "kiln-x-lm", cwd, log, &["11", "12"], 120);
        for want in [
            "--partition=gpu",
            "--cpus-per-task=16",
            "--mem=8G",
            "--time=2-00:00:00",
            "--dependency=afterok:11:12",
            "--kill-on-invalid-dep=yes",
            "--account=ml",
            "--gres=gpu:1",
        ] {
            assert!(a.contains(&want.to_string()), "{want} in {a:?}");
        }
        assert!(!a.iter().any(|x| x.starts_with("--array")), "{a:?}");
    }

    #[test]
    fn shell_quoting_keeps_plain_words_and_escapes_quotes() {
        assert_eq!(sh_quote("--set"), "--set");
        assert_eq!(sh_quote("vars.crawl=/data/x y"), "'vars.crawl=/data/x y'");
        assert_eq!(sh_quote("it's"), r"'it'\''s'");
        assert_eq!(base_id("123_4"), "123");
        assert_eq!(base_id("123_[5-7]"), "123");
        assert_eq!(base_id("99"), "99");
    }
}
