//! The job plan both out-of-process executors run: each shardable node as
//! an array of shard units plus a merge that waits for them, every other
//! node as one whole job, each waiting for the jobs that build its inputs.
//! A two-round node (`dedup`) runs a first array, a clustering job, a
//! second array that filters with the clusters, then the merge; `minhash`
//! runs its bucket sorts as an array over groups of bands before clustering.
//! Finished parts are kept, so a second run submits only what is missing.

use crate::exec::node::{clusters, done_bucket_groups, done_parts, done_second_parts, existing_part_sets, remove_part_sets};
use crate::exec::plan::Planned;
use crate::exec::run::Selection;
use crate::spec::Pipeline;
use crate::spec::executor::ExecutorSpec;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

/// What one job does.
#[derive(Debug, Clone, PartialEq)]
pub enum JobKind {
    /// Shards `pending` of `n` (an array: one task per shard).
    Shards {
        /// Shards in the set.
        n: u32,
        /// The ones still to build.
        pending: Vec<u32>,
        /// The second round of a two-round node (after its clusters).
        second: bool,
    },
    /// Bucket groups `pending` of `groups` over the set of `n` (an array).
    Buckets {
        /// Shards in the first round's set.
        n: u32,
        /// Groups of bands.
        groups: u32,
        /// The groups still to build.
        pending: Vec<u32>,
    },
    /// Cluster the `n` finished first-round parts of a two-round node.
    Cluster {
        /// Shards in the set.
        n: u32,
    },
    /// Merge the `n` finished parts into the node's artifact.
    Merge {
        /// Shards in the set.
        n: u32,
    },
    /// Build the whole node in one process.
    Whole {
        /// Rebuild even if it is built (`--force`).
        force: bool,
    },
}

/// One submission: a node's shards, its merge, or the whole node.
#[derive(Debug, Clone)]
pub struct Job {
    /// The node.
    pub node: String,
    /// What the job does.
    pub kind: JobKind,
    /// Indices (into the plan) of the jobs that must succeed first.
    pub deps: Vec<usize>,
}

impl Job {
    /// The `kiln run` arguments that select this job's work; `shard` is the
    /// array index (a placeholder such as `$SLURM_ARRAY_TASK_ID` in scripts).
    pub fn args(&self, shard: &str) -> Vec<String> {
        let node = self.node.clone();
        match &self.kind {
            JobKind::Shards { n, .. } => vec!["--node".into(), node, "--shard".into(), format!("{shard}/{n}")],
            JobKind::Merge { .. } => vec!["--node".into(), node, "--merge".into()],
            JobKind::Cluster { .. } => vec!["--node".into(), node, "--cluster".into()],
            JobKind::Buckets { groups, .. } => vec!["--node".into(), node, "--bands".into(), format!("{shard}/{groups}")],
            JobKind::Whole { force: true } => vec!["--only".into(), node.clone(), "--force".into(), node],
            JobKind::Whole { force: false } => vec!["--only".into(), node],
        }
    }

    /// A short name: `raw shards 0-3 of 4`, `raw merge of 4`, `dd cluster
    /// of 4`, `dd round-2 shards 0-3 of 4`, `lm`.
    pub fn label(&self) -> String {
        match &self.kind {
            JobKind::Shards { n, pending, second } => {
                let round = if *second { "round-2 " } else { "" };
                format!("{} {round}shards {} of {n}", self.node, index_list(pending))
            }
            JobKind::Merge { n } => format!("{} merge of {n}", self.node),
            JobKind::Cluster { n } => format!("{} cluster of {n}", self.node),
            JobKind::Buckets { groups, pending, .. } => format!("{} bucket groups {} of {groups}", self.node, index_list(pending)),
            JobKind::Whole { .. } => self.node.clone(),
        }
    }

    /// The name of the log of the unit for `shard` (an index, or Slurm's
    /// `%a` in an `--output` pattern): `raw-3.log`, `raw-merge.log`,
    /// `dd-cluster.log`, `dd-r2-3.log`, `lm.log`.
    pub fn log_name(&self, shard: &str) -> String {
        match &self.kind {
            JobKind::Shards { second: false, .. } => format!("{}-{shard}.log", self.node),
            JobKind::Shards { second: true, .. } => format!("{}-r2-{shard}.log", self.node),
            JobKind::Merge { .. } => format!("{}-merge.log", self.node),
            JobKind::Cluster { .. } => format!("{}-cluster.log", self.node),
            JobKind::Buckets { .. } => format!("{}-b-{shard}.log", self.node),
            JobKind::Whole { .. } => format!("{}.log", self.node),
        }
    }

    /// The units this job runs: one per pending shard or bucket group,
    /// else one.
    pub fn units(&self) -> Vec<Option<u32>> {
        match &self.kind {
            JobKind::Shards { pending, .. } | JobKind::Buckets { pending, .. } => pending.iter().map(|&i| Some(i)).collect(),
            _ => vec![None],
        }
    }
}

/// Indices as Slurm writes an array: `0-3,5,7-8`.
pub fn index_list(ix: &[u32]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < ix.len() {
        let mut j = i;
        while j + 1 < ix.len() && ix[j + 1] == ix[j] + 1 {
            j += 1;
        }
        out.push(if j > i { format!("{}-{}", ix[i], ix[j]) } else { ix[i].to_string() });
        i = j + 1;
    }
    out.join(",")
}

/// The jobs for the selection, in dependency order. Forced shardable
/// nodes lose their old parts; other nodes keep theirs and resubmit only
/// the missing shards.
pub fn plan_jobs(p: &Pipeline, spec: &ExecutorSpec, plans: &[Planned], sel: &Selection) -> Vec<Job> {
    let by_id: HashMap<&str, &Planned> = plans.iter().map(|q| (q.id.as_str(), q)).collect();
    let mut jobs: Vec<Job> = Vec::new();
    // The job after which a node's artifact exists.
    let mut last: BTreeMap<String, usize> = BTreeMap::new();
    for id in &sel.to_run {
        let (Some(node), Some(pl)) = (p.node(id), by_id.get(id.as_str())) else {
            continue;
        };
        let deps: Vec<usize> = p.deps(id).iter().filter_map(|d| last.get(d).copied()).collect();
        let forced = sel.forced.contains(id);
        if !node.op.shardable() {
            last.insert(id.clone(), jobs.len());
            jobs.push(Job {
                node: id.clone(),
                kind: JobKind::Whole { force: forced },
                deps,
            });
            continue;
        }
        if forced {
            remove_part_sets(&p.workdir, id, &pl.fingerprint);
        }
        let two_rounds = node.op.merge_computes();
        // A two-round node whose clusters are committed has only its second round left.
        let clustered = existing_part_sets(&p.workdir, id, &pl.fingerprint)
            .into_iter()
            .rev()
            .find(|&n| two_rounds && clusters(&p.workdir, id, &pl.fingerprint, n).is_some());
        if let Some(n) = clustered {
            let done = done_second_parts(&p.workdir, id, &pl.fingerprint, n);
            let pending: Vec<u32> = (0..n).filter(|i| !done.contains(i)).collect();
            let merge_deps = if pending.is_empty() {
                deps
            } else {
                jobs.push(Job {
                    node: id.clone(),
                    kind: JobKind::Shards { n, pending, second: true },
                    deps,
                });
                vec![jobs.len() - 1]
            };
            last.insert(id.clone(), jobs.len());
            jobs.push(Job {
                node: id.clone(),
                kind: JobKind::Merge { n },
                deps: merge_deps,
            });
            continue;
        }
        // Resume the set with the most finished parts (the larger on a tie).
        let resumed = existing_part_sets(&p.workdir, id, &pl.fingerprint)
            .into_iter()
            .map(|n| (done_parts(&p.workdir, id, &pl.fingerprint, n), n))
            .filter(|(done, _)| !done.is_empty())
            .max_by_key(|(done, n)| (done.len(), *n));
        let (n, pending) = match resumed {
            Some((done, n)) => (n, (0..n).filter(|i| !done.contains(i)).collect()),
            None => {
                let n = task_count(p, spec, plans, id);
                (n, (0..n).collect::<Vec<u32>>())
            }
        };
        let merge_deps = if pending.is_empty() {
            deps
        } else {
            jobs.push(Job {
                node: id.clone(),
                kind: JobKind::Shards { n, pending, second: false },
                deps,
            });
            vec![jobs.len() - 1]
        };
        let merge_deps = if two_rounds {
            // `minhash`: one bucket job per group of bands, at most one group per band.
            let cluster_deps = match node.op.bucket_bands() {
                Some(bands) => {
                    let groups = n.min(bands).max(1);
                    let done = done_bucket_groups(&p.workdir, id, &pl.fingerprint, n, groups);
                    let pending: Vec<u32> = (0..groups).filter(|g| !done.contains(g)).collect();
                    if pending.is_empty() {
                        merge_deps
                    } else {
                        jobs.push(Job {
                            node: id.clone(),
                            kind: JobKind::Buckets { n, groups, pending },
                            deps: merge_deps,
                        });
                        vec![jobs.len() - 1]
                    }
                }
                None => merge_deps,
            };
            jobs.push(Job {
                node: id.clone(),
                kind: JobKind::Cluster { n },
                deps: cluster_deps,
            });
            jobs.push(Job {
                node: id.clone(),
                kind: JobKind::Shards {
                    n,
                    pending: (0..n).collect(),
                    second: true,
                },
                deps: vec![jobs.len() - 1],
            });
            vec![jobs.len() - 1]
        } else {
            merge_deps
        };
        last.insert(id.clone(), jobs.len());
        jobs.push(Job {
            node: id.clone(),
            kind: JobKind::Merge { n },
            deps: merge_deps,
        });
    }
    jobs
}

/// Shards for a node: `tasks` if the executor names a count, else its
/// input bytes (the files the `read` nodes upstream of it take in) over
/// `task_bytes`, within 1..=`max_array_size`; a `read` never gets more
/// shards than it has files (or row groups).
pub fn task_count(p: &Pipeline, spec: &ExecutorSpec, plans: &[Planned], id: &str) -> u32 {
    if let Some(n) = spec.tasks_for(id) {
        return n.clamp(1, spec.max_array_size);
    }
    let ancestors = p.ancestors(id);
    let bytes: u64 = plans
        .iter()
        .filter(|q| ancestors.contains(&q.id))
        .filter_map(|q| q.sources.as_array())
        .flatten()
        .filter_map(|f| f.get(1).and_then(serde_json::Value::as_u64))
        .sum();
    let mut n = bytes.div_ceil(spec.task_bytes).clamp(1, spec.max_array_size as u64) as u32;
    if let Some(node) = p.node(id)
        && node.op.read_source().is_some()
        && let Ok(units) = crate::exec::ops::units(p, node, &BTreeMap::new())
    {
        n = n.min(units.len().max(1) as u32);
    }
    n
}

/// How a worker process or a Slurm task invokes kiln for a job.
#[derive(Debug, Clone)]
pub struct Invocation {
    /// The kiln binary (absolute, so a job on another node finds it).
    pub exe: PathBuf,
    /// The pipeline file (absolute).
    pub file: PathBuf,
    /// `--set` overrides, passed on unchanged.
    pub sets: Vec<String>,
    /// `--threads` for each process.
    pub threads: u32,
}

impl Invocation {
    /// The whole command line (program first) for `job`'s unit `shard`.
    pub fn argv(&self, job: &Job, shard: &str) -> Vec<String> {
        let mut v = vec![self.exe.display().to_string(), "run".into(), self.file.display().to_string()];
        for s in &self.sets {
            v.push("--set".into());
            v.push(s.clone());
        }
        // `inline`: a job must not hand its work on again.
        v.extend(["--executor", "inline", "--quiet", "--threads"].map(String::from));
        v.push(self.threads.to_string());
        v.extend(job.args(shard));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_lists_are_written_as_slurm_ranges() {
        assert_eq!(index_list(&[0, 1, 2, 3]), "0-3");
        assert_eq!(index_list(&[0, 2, 3, 5]), "0,2-3,5");
        assert_eq!(index_list(&[7]), "7");
        assert_eq!(index_list(&[]), "");
    }
}
