//! Running a pipeline as separate processes: the same job plan handed to
//! local worker processes (`--executor local`) or to Slurm (`--executor
//! slurm`). Each job is a plain `kiln run --node X --shard i/N` (or
//! `--merge`, or `--only X`), so what a job leaves behind is exactly what an
//! inline run would: the artifacts on disk are the only state, and the
//! summary is read back from them.

pub mod jobs;
pub mod local;
pub mod slurm;

use super::plan::{Planned, State, plan};
use super::report::Reporter;
use super::run::{NodeResult, Outcome, RunOptions, RunSummary, Selection, UsageError};
use super::store;
use crate::spec::Pipeline;
use crate::spec::executor::ExecutorKind;
use jobs::{Invocation, Job, plan_jobs};
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::AtomicBool;

/// Runs the selection with the executor `o` names.
pub fn run(
    p: &Pipeline,
    o: &RunOptions,
    plans: &[Planned],
    sel: &Selection,
    rep: &Reporter,
    cancel: &AtomicBool,
) -> Result<RunSummary, UsageError> {
    let jobs = plan_jobs(p, &o.executor, plans, sel);
    let exe = std::env::current_exe().map_err(|e| UsageError(format!("cannot find the kiln binary to start jobs with: {e}")))?;
    let file = std::path::absolute(&o.file).map_err(|e| UsageError(format!("pipeline file {}: {e}", o.file.display())))?;
    let spec = &o.executor;
    let ended: HashMap<String, Outcome> = match spec.kind {
        ExecutorKind::Slurm => {
            let inv = Invocation {
                exe,
                file,
                sets: o.sets.clone(),
                // Each job's own `cpus_per_task` replaces this in its script.
                threads: spec.cpus_per_task,
            };
            let sub = slurm::submit(p, &jobs, &inv, spec, rep)?;
            if !o.wait {
                return Ok(submitted(p, sel, &jobs, &sub));
            }
            slurm::follow(p, &jobs, &sub, rep, cancel)
        }
        _ => {
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as u32;
            let workers = spec.workers.unwrap_or(cores).max(1);
            let inv = Invocation {
                exe,
                file,
                sets: o.sets.clone(),
                threads: (cores / workers).max(1),
            };
            local::run(p, &jobs, &inv, workers as usize, rep, cancel)?
        }
    };
    Ok(summarize(p, sel, &ended))
}

/// The run's end as the artifacts show it: a node built now is `Ran`, one
/// that was already built `Cached`, one that is not built ends as the
/// executor saw it (failed, cancelled) or `Skipped`.
pub fn summarize(p: &Pipeline, sel: &Selection, ended: &HashMap<String, Outcome>) -> RunSummary {
    let now: HashMap<String, Planned> = plan(p).into_iter().map(|q| (q.id.clone(), q)).collect();
    let nodes = sel
        .targets
        .iter()
        .map(|id| {
            let done = now.get(id).filter(|q| q.state == State::Done);
            let m = done.and_then(|q| store::load(&q.dir)).map(|a| a.manifest);
            let outcome = match (&m, sel.to_run.contains(id)) {
                (Some(_), true) => Outcome::Ran,
                (Some(_), false) => Outcome::Cached,
                (None, _) => ended.get(id).cloned().unwrap_or(Outcome::Skipped),
            };
            NodeResult {
                id: id.clone(),
                outcome,
                rows: m.as_ref().map_or(0, |m| m.rows),
                rejected: m.as_ref().map_or(0, |m| m.rejected_rows),
                secs: m.as_ref().filter(|_| sel.to_run.contains(id)).map_or(0.0, |m| m.wall_time_s),
                peak_rss: m.and_then(|m| m.peak_rss_bytes),
            }
        })
        .collect();
    RunSummary { nodes }
}

/// The summary of a submission not followed: each node to build names its jobs.
fn submitted(p: &Pipeline, sel: &Selection, jobs: &[Job], sub: &slurm::Submission) -> RunSummary {
    let mut ended = HashMap::new();
    for id in &sel.to_run {
        let ids: Vec<String> = jobs
            .iter()
            .zip(&sub.job_ids)
            .filter(|(j, _)| &j.node == id)
            .map(|(j, jid)| format!("{jid} ({})", j.label()))
            .collect();
        ended.insert(id.clone(), Outcome::Submitted(ids.join(", ")));
    }
    summarize(p, sel, &ended)
}

/// The last lines of a job's log that say what went wrong.
pub fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let errors: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| l.contains("error") || l.contains("✗") || l.starts_with("kiln:"))
        .collect();
    let pick = if errors.is_empty() {
        &lines[lines.len().saturating_sub(2)..]
    } else {
        &errors[errors.len().saturating_sub(2)..]
    };
    pick.join(" | ")
}
