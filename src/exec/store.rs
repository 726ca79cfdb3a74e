//! The artifact store: `<workdir>/<node>/` with `manifest.json`, written in
//! a temporary directory and renamed into place only when complete, so a
//! crash at any moment leaves either the old artifact or the new one.

use crate::io::writer::FileInfo;
use crate::spec::Kind;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Bumped when the on-disk layout of any artifact changes; part of every
/// fingerprint, so old artifacts are rebuilt rather than misread.
pub const FORMAT_VERSION: u32 = 1;

/// One column of an artifact's table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Column {
    /// Name.
    pub name: String,
    /// Arrow type, as Arrow prints it.
    pub r#type: String,
    /// Whether nulls may appear.
    pub nullable: bool,
}

/// `manifest.json`: what an artifact is, how it was made, what it holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    /// [`FORMAT_VERSION`] when written.
    pub format_version: u32,
    /// Artifact kind.
    pub kind: Kind,
    /// Node id.
    pub node: String,
    /// Op name.
    pub op: String,
    /// Hash of op, params, inputs' fingerprints, seed and format version.
    pub fingerprint: String,
    /// Canonical params (defaults filled in).
    pub params: serde_json::Value,
    /// Input field → `{node, fingerprint}`.
    pub inputs: BTreeMap<String, InputInfo>,
    /// The pipeline seed, when the op uses it.
    pub seed: Option<u64>,
    /// Other fingerprinted facts (e.g. the input files' sizes and times).
    pub sources: serde_json::Value,
    /// Table schema (empty for non-table kinds).
    pub schema: Vec<Column>,
    /// Rows in `files`.
    pub rows: u64,
    /// Rows in `rejected_files`.
    pub rejected_rows: u64,
    /// Bytes on disk of all files.
    pub bytes: u64,
    /// Data files, in row order.
    pub files: Vec<FileInfo>,
    /// Rejected-record files.
    pub rejected_files: Vec<FileInfo>,
    /// Hash of the rows, independent of how they are split into files.
    pub content_hash: Option<String>,
    /// The state behind `content_hash`, kept so shard parts merge exactly.
    pub rows_hash: crate::io::hash::RowsHash,
    /// Seconds the node took.
    pub wall_time_s: f64,
    /// Peak resident memory of the process when the node finished.
    pub peak_rss_bytes: Option<u64>,
    /// Per-step counts (rows in/out, rejects by reason, ...).
    pub stats: serde_json::Value,
    /// Op-specific results (e.g. the export path of `write`).
    pub extra: serde_json::Value,
    /// `[index, count]` for one shard's part; `None` for a whole artifact.
    pub shard: Option<[u32; 2]>,
    /// How many shard parts were merged into it (1 when unsharded).
    pub parts: u32,
    /// Unix time it was completed.
    pub completed_unix: u64,
    /// kiln version that wrote it.
    pub kiln_version: String,
}

/// Which node and fingerprint an input came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputInfo {
    /// Node id.
    pub node: String,
    /// Its fingerprint when this artifact was made.
    pub fingerprint: String,
}

/// A finished artifact on disk.
#[derive(Debug, Clone)]
pub struct Artifact {
    /// Its directory.
    pub dir: PathBuf,
    /// Its manifest.
    pub manifest: Manifest,
}

impl Artifact {
    /// Absolute paths of its data files, in order.
    pub fn data_paths(&self) -> Vec<PathBuf> {
        self.manifest.files.iter().map(|f| self.dir.join(&f.name)).collect()
    }
}

/// Reads a finished artifact, if `dir` holds one.
pub fn load(dir: &Path) -> Option<Artifact> {
    let text = std::fs::read_to_string(dir.join("manifest.json")).ok()?;
    let manifest: Manifest = serde_json::from_str(&text).ok()?;
    Some(Artifact {
        dir: dir.to_path_buf(),
        manifest,
    })
}

/// A unique name for scratch directories: `<node>.<host>.<pid>.<nanos>`.
pub fn scratch_name(node: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{node}.{}.{}.{nanos}", hostname(), std::process::id())
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "host".into())
        .replace('.', "_")
}

/// Creates a fresh scratch directory under `<workdir>/.tmp/`.
pub fn scratch_dir(workdir: &Path, node: &str) -> Result<PathBuf, String> {
    let d = workdir.join(".tmp").join(scratch_name(node));
    std::fs::create_dir_all(&d).map_err(|e| format!("cannot create {}: {e}", d.display()))?;
    Ok(d)
}

/// Writes `manifest` into `tmp`, then moves `tmp` to `dest` atomically
/// (replacing any older artifact).
pub fn commit(tmp: &Path, dest: &Path, manifest: &Manifest) -> Result<(), String> {
    let text = serde_json::to_string_pretty(manifest).map_err(|e| e.to_string())?;
    let mpath = tmp.join("manifest.json");
    write_synced(&mpath, text.as_bytes())?;
    sync_dir(tmp);
    let parent = dest.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    if dest.exists() {
        let trash = tmp.parent().unwrap_or(parent).join(format!("{}.old", scratch_name("replaced")));
        std::fs::rename(dest, &trash).map_err(|e| format!("cannot move old {} aside: {e}", dest.display()))?;
        std::fs::rename(tmp, dest).map_err(|e| format!("cannot move {} into place: {e}", dest.display()))?;
        let _ = std::fs::remove_dir_all(&trash);
    } else {
        std::fs::rename(tmp, dest).map_err(|e| format!("cannot move {} into place: {e}", dest.display()))?;
    }
    sync_dir(parent);
    Ok(())
}

/// Writes a file and flushes it to disk.
pub fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), String> {
    use std::io::Write;
    let mut f = std::fs::File::create(path).map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    f.write_all(bytes).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    f.sync_all().map_err(|e| format!("cannot sync {}: {e}", path.display()))
}

fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Removes scratch directories left by kiln processes on this host that are
/// no longer running (a killed run's half-written output).
pub fn clean_stale_scratch(workdir: &Path) {
    let Ok(rd) = std::fs::read_dir(workdir.join(".tmp")) else { return };
    let host = hostname();
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let name = name.trim_end_matches(".old");
        let parts: Vec<&str> = name.rsplitn(4, '.').collect();
        if parts.len() == 4 && parts[2] == host {
            let alive = parts[1].parse::<u32>().is_ok_and(|pid| Path::new(&format!("/proc/{pid}")).exists());
            if !alive || parts[1] == std::process::id().to_string() {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
}

/// Peak resident set size of this process, from `/proc/self/status`.
pub fn peak_rss_bytes() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// The manifest's description of an Arrow schema.
pub fn columns_of(schema: &arrow::datatypes::Schema) -> Vec<Column> {
    schema
        .fields()
        .iter()
        .map(|f| Column {
            name: f.name().clone(),
            r#type: f.data_type().to_string(),
            nullable: f.is_nullable(),
        })
        .collect()
}

/// Seconds since the Unix epoch (0 if the clock is before it).
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
