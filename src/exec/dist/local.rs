//! `--executor local`: the job plan's units as `kiln` processes on this
//! machine, `workers` at a time. A unit starts when every job it depends on
//! has finished; the first failure stops new starts, and Ctrl-C sends
//! SIGTERM to the running units (each stops without committing anything).

use super::jobs::{Invocation, Job, JobKind};
use super::log_tail;
use crate::exec::report::Reporter;
use crate::exec::run::{Outcome, UsageError};
use crate::spec::Pipeline;
use serde_json::json;
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

struct Running {
    child: Child,
    job: usize,
    shard: Option<u32>,
    log: PathBuf,
    start: Instant,
}

/// Runs the jobs; returns how the nodes that did not finish ended.
pub fn run(
    p: &Pipeline,
    jobs: &[Job],
    inv: &Invocation,
    workers: usize,
    rep: &Reporter,
    cancel: &AtomicBool,
) -> Result<HashMap<String, Outcome>, UsageError> {
    let logs = std::path::absolute(p.workdir.join(".local")).map_err(|e| UsageError(format!("workdir {}: {e}", p.workdir.display())))?;
    std::fs::create_dir_all(&logs).map_err(|e| UsageError(format!("cannot create {}: {e}", logs.display())))?;
    let mut queue: Vec<(usize, Option<u32>)> = jobs
        .iter()
        .enumerate()
        .flat_map(|(j, job)| job.units().into_iter().map(move |u| (j, u)))
        .collect();
    let mut left: Vec<usize> = jobs.iter().map(|j| j.units().len()).collect();
    let mut ended: HashMap<String, Outcome> = HashMap::new();
    let mut running: Vec<Running> = Vec::new();
    let mut stop = false;
    let mut signalled = false;
    loop {
        if cancel.load(Ordering::Relaxed) {
            stop = true;
            if !signalled {
                signalled = true;
                for r in &running {
                    // SIGTERM, not SIGKILL: the unit removes its scratch and exits 130.
                    unsafe { libc::kill(r.child.id() as libc::pid_t, libc::SIGTERM) };
                }
            }
        }
        while !stop && running.len() < workers {
            let Some(pos) = queue.iter().position(|(j, _)| jobs[*j].deps.iter().all(|&d| left[d] == 0)) else {
                break;
            };
            let (j, shard) = queue.remove(pos);
            let job = &jobs[j];
            let index = shard.map(|i| i.to_string()).unwrap_or_default();
            let log = logs.join(job.log_name(&index));
            let argv = inv.argv(job, &index);
            let child = std::fs::File::create(&log).and_then(|f| {
                let f2 = f.try_clone()?;
                Command::new(&argv[0])
                    .args(&argv[1..])
                    .stdin(Stdio::null())
                    .stdout(f)
                    .stderr(f2)
                    .spawn()
            });
            match child {
                Ok(child) => running.push(Running {
                    child,
                    job: j,
                    shard,
                    log,
                    start: Instant::now(),
                }),
                Err(e) => {
                    ended.insert(job.node.clone(), Outcome::Failed(format!("cannot start {}: {e}", argv[0])));
                    stop = true;
                }
            }
        }
        if running.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
        let mut i = 0;
        while i < running.len() {
            let status = match running[i].child.try_wait() {
                Ok(Some(s)) => Some(s),
                Ok(None) => None,
                Err(_) => running[i].child.wait().ok(),
            };
            let Some(status) = status else {
                i += 1;
                continue;
            };
            let r = running.swap_remove(i);
            let job = &jobs[r.job];
            let what = match (r.shard, &job.kind) {
                (Some(s), JobKind::Shards { second: true, .. }) => format!("{} round-2 shard {s}", job.node),
                (Some(s), JobKind::Buckets { .. }) => format!("{} bucket group {s}", job.node),
                (Some(s), _) => format!("{} shard {s}", job.node),
                (None, _) => job.label(),
            };
            let secs = r.start.elapsed().as_secs_f64();
            if status.success() {
                left[r.job] -= 1;
                rep.info(
                    "unit_done",
                    json!({ "node": job.node, "shard": r.shard, "secs": secs }),
                    format!("  ✓ {what} ({secs:.1}s)"),
                );
            } else {
                stop = true;
                let outcome = if status.code() == Some(130) || cancel.load(Ordering::Relaxed) {
                    Outcome::Cancelled
                } else {
                    Outcome::Failed(format!("{what} failed ({status}): {} (log: {})", log_tail(&r.log), r.log.display()))
                };
                ended.entry(job.node.clone()).or_insert(outcome);
            }
        }
    }
    Ok(ended)
}
