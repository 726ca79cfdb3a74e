//! `executor:` — where `kiln run` does the work: in this process (the
//! default), as separate local processes, or as Slurm jobs. None of it
//! enters a fingerprint: the same pipeline built any of these ways yields the
//! same artifacts.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Which executor runs the nodes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ExecutorKind {
    /// Everything in the `kiln run` process, nodes side by side under one thread budget.
    #[default]
    Inline,
    /// Shard units, merges and whole nodes as separate `kiln` processes on this machine.
    Local,
    /// Shard units as Slurm job arrays, merges and whole nodes as dependent jobs.
    Slurm,
}

impl ExecutorKind {
    /// `inline`, `local` or `slurm`.
    pub fn name(self) -> &'static str {
        match self {
            ExecutorKind::Inline => "inline",
            ExecutorKind::Local => "local",
            ExecutorKind::Slurm => "slurm",
        }
    }
}

/// Shard counts: one for every shardable node, or per node id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Tasks {
    /// The same count for every shardable node.
    All(u32),
    /// A count per node id; nodes not named get theirs from their input size.
    PerNode(BTreeMap<String, u32>),
}

/// `executor:` in the pipeline file (or the string `inline` / `local` /
/// `slurm` for the defaults of that kind).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecutorSpec {
    /// `inline` (one process), `local` (worker processes) or `slurm` (job arrays).
    #[serde(default)]
    pub kind: ExecutorKind,
    /// `local`: processes at once (default: the number of cores).
    #[serde(default)]
    pub workers: Option<u32>,
    /// `slurm`: the partition (`sbatch --partition`); default: the cluster's default partition.
    #[serde(default)]
    pub partition: Option<String>,
    /// `slurm`: CPUs per task (`--cpus-per-task`); each task runs kiln with this many threads.
    #[serde(default = "one")]
    pub cpus_per_task: u32,
    /// `slurm`: memory per task (`--mem`, e.g. `8G`); default: the partition's default.
    #[serde(default)]
    pub mem: Option<String>,
    /// `slurm`: time limit per task (`--time`, e.g. `4:00:00`); default: the partition's.
    #[serde(default)]
    pub time: Option<String>,
    /// Most shards per node: Slurm refuses array indices at or above the cluster's MaxArraySize (1001 by default).
    #[serde(default = "max_array_default")]
    pub max_array_size: u32,
    /// Shards per shardable node: a number for all, or `{node: count}`; default: input bytes / `task_bytes`.
    #[serde(default)]
    pub tasks: Option<Tasks>,
    /// Input bytes one shard should take when `tasks` does not say (default 256 MiB).
    #[serde(default = "task_bytes_default")]
    pub task_bytes: u64,
    /// `slurm`: more `sbatch` arguments for every job, e.g. `["--account=ml", "--qos=low"]`.
    #[serde(default)]
    pub sbatch_args: Vec<String>,
    /// `slurm`: seconds before the time limit at which a task is told (SIGUSR1) to stop and requeue itself.
    #[serde(default = "signal_default")]
    pub requeue_signal_s: u32,
    /// `slurm`: one node's own settings, e.g. `{pretrain: {cpus_per_task: 32, time: "2-00:00:00", sbatch_args: ["--gres=gpu:1"]}}`.
    #[serde(default)]
    pub nodes: BTreeMap<String, NodeResources>,
}

/// What one node's Slurm jobs ask for, over the executor's settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NodeResources {
    /// The partition for this node's jobs.
    #[serde(default)]
    pub partition: Option<String>,
    /// CPUs per task (and kiln threads) for this node's jobs.
    #[serde(default)]
    pub cpus_per_task: Option<u32>,
    /// Memory per task for this node's jobs.
    #[serde(default)]
    pub mem: Option<String>,
    /// Time limit per task for this node's jobs.
    #[serde(default)]
    pub time: Option<String>,
    /// `sbatch` arguments added after the executor's, e.g. `["--gres=gpu:1"]`.
    #[serde(default)]
    pub sbatch_args: Vec<String>,
}

fn one() -> u32 {
    1
}

fn max_array_default() -> u32 {
    1000
}

/// 256 MiB of input per task: a WARC shard of that size takes minutes, not
/// hours, to clean on one core, so a preempted task loses little, while a
/// 100 TB crawl still fits in arrays of a few hundred thousand tasks.
fn task_bytes_default() -> u64 {
    256 << 20
}

/// Two minutes is enough to finish writing nothing: a stopped task removes
/// its scratch directory and exits.
fn signal_default() -> u32 {
    120
}

impl Default for ExecutorSpec {
    fn default() -> Self {
        ExecutorSpec {
            kind: ExecutorKind::Inline,
            workers: None,
            partition: None,
            cpus_per_task: one(),
            mem: None,
            time: None,
            max_array_size: max_array_default(),
            tasks: None,
            task_bytes: task_bytes_default(),
            sbatch_args: vec![],
            requeue_signal_s: signal_default(),
            nodes: BTreeMap::new(),
        }
    }
}

impl ExecutorSpec {
    /// The explicit shard count for `node`, if `tasks` gives one.
    pub fn tasks_for(&self, node: &str) -> Option<u32> {
        match &self.tasks {
            Some(Tasks::All(n)) => Some(*n),
            Some(Tasks::PerNode(m)) => m.get(node).copied(),
            None => None,
        }
    }

    /// The settings for `node`'s jobs: its own where it has them, else the executor's.
    pub fn resources(&self, node: &str) -> NodeResources {
        let own = self.nodes.get(node).cloned().unwrap_or_default();
        NodeResources {
            partition: own.partition.or_else(|| self.partition.clone()),
            cpus_per_task: Some(own.cpus_per_task.unwrap_or(self.cpus_per_task)),
            mem: own.mem.or_else(|| self.mem.clone()),
            time: own.time.or_else(|| self.time.clone()),
            sbatch_args: self.sbatch_args.iter().chain(&own.sbatch_args).cloned().collect(),
        }
    }

    /// Range problems as (field, message); `shardable` says which node ids
    /// may be named in `tasks`.
    pub fn check(&self, shardable: &dyn Fn(&str) -> Option<bool>) -> Vec<(String, String)> {
        let mut p = Vec::new();
        if self.cpus_per_task == 0 {
            p.push(("cpus_per_task".into(), "must be at least 1".into()));
        }
        if self.workers == Some(0) {
            p.push(("workers".into(), "must be at least 1".into()));
        }
        if self.max_array_size == 0 {
            p.push(("max_array_size".into(), "must be at least 1".into()));
        }
        if self.task_bytes == 0 {
            p.push(("task_bytes".into(), "must be at least 1".into()));
        }
        let counts: Vec<(String, u32)> = match &self.tasks {
            Some(Tasks::All(n)) => vec![(String::new(), *n)],
            Some(Tasks::PerNode(m)) => m.iter().map(|(k, v)| (k.clone(), *v)).collect(),
            None => vec![],
        };
        for (node, r) in &self.nodes {
            if shardable(node).is_none() {
                p.push((format!("nodes.{node}"), format!("no node `{node}` in this pipeline")));
            }
            if r.cpus_per_task == Some(0) {
                p.push((format!("nodes.{node}.cpus_per_task"), "must be at least 1".into()));
            }
        }
        for (node, n) in counts {
            let field = if node.is_empty() {
                "tasks".to_string()
            } else {
                format!("tasks.{node}")
            };
            if n == 0 || n > self.max_array_size {
                p.push((
                    field.clone(),
                    format!("must be 1 to max_array_size ({}), found {n}", self.max_array_size),
                ));
            }
            if !node.is_empty() {
                match shardable(&node) {
                    None => p.push((field, format!("no node `{node}` in this pipeline"))),
                    Some(false) => p.push((field, format!("node `{node}` cannot be sharded; it always runs as one task"))),
                    Some(true) => {}
                }
            }
        }
        p
    }
}
