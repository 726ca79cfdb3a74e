//! Deduplication over a whole corpus: `exact` (hash of the normalised
//! text), `minhash` (FineWeb's near-duplicate LSH) and `lines` (CCNet's
//! cross-document boilerplate line removal).
//!
//! Documents are numbered by their position in the input (file order, then
//! row order). Every method keeps the earliest document of a duplicate
//! group, so `exact` and `minhash` agree, and the result does not depend on
//! thread or shard counts.
//!
//! `minhash` runs as separate stages over on-disk intermediates, following
//! datatrove's `pipeline/dedup/minhash.py` (signature → buckets → cluster →
//! filter); the engine runs stage 1 and the filter in shards, stages 2
//! and 3 between them (`exec/ops/dedup_shards.rs`):
//! 1. [`stages::minhash_signatures`]: per input file, the band keys of each
//!    document (one file each);
//! 2. [`stages::band_pairs`]: per band, `(key, doc)` records through an
//!    external sort ([`spill`]); equal keys give candidate pairs (a file);
//! 3. [`stages::cluster`]: union-find over all pair files → each document's
//!    root (the earliest member of its component);
//! 4. the filter, per input file, in `exec` (it writes the artifact).
//!
//! `exact` and `lines` shard the same way: each shard sorts its records
//! into runs ([`stages::sorted_runs`]) and the merge merges them.
//!
//! Memory: the sort buffers take `memory_bytes` less a reserve (a quarter,
//! at most 64 MiB) for the batch in flight; `minhash` splits that between
//! its bands (all may sort at once), `lines` gives its sort half. Records
//! beyond a buffer spill to disk. Outside the budget, and growing with the
//! corpus: 5 bytes per document for clustering and the filter (parents and
//! a flag), the ids of kept documents that have duplicates, and for `lines`
//! 8 bytes per distinct frequent line.
//!
//! Nothing here knows about YAML or the engine.

pub mod components;
pub mod lines;
pub mod minhash;
pub mod simplify;
pub mod spill;
pub mod stages;

pub use simplify::Simplify;

use arrow::array::{Array, AsArray};
use arrow::datatypes::DataType;
use arrow::record_batch::RecordBatch;
use std::path::PathBuf;

/// The minhash settings (FILTERS.md; FineWeb's default after each).
#[derive(Debug, Clone, Copy)]
pub struct MinhashConfig {
    /// Words per shingle: 5.
    pub n_grams: usize,
    /// LSH bands: 14.
    pub bands: usize,
    /// Hashes per band: 8.
    pub rows_per_band: usize,
    /// Seed of the permutation coefficients: 1.
    pub hash_seed: u64,
}

impl Default for MinhashConfig {
    fn default() -> Self {
        MinhashConfig {
            n_grams: 5,
            bands: 14,
            rows_per_band: 8,
            hash_seed: 1,
        }
    }
}

/// What every method needs.
#[derive(Debug, Clone)]
pub struct DedupInput {
    /// The input table files, in order, with their row counts.
    pub files: Vec<InputFile>,
    /// The text column hashed.
    pub column: String,
    /// Normalisation before hashing.
    pub simplify: Simplify,
    /// Memory budget in bytes for the sort buffers and in-memory tables.
    pub memory_bytes: u64,
    /// Directory for intermediates (created if missing, emptied by the caller).
    pub work_dir: PathBuf,
}

/// One input Parquet file.
#[derive(Debug, Clone)]
pub struct InputFile {
    /// Path.
    pub path: PathBuf,
    /// Rows, from the artifact's manifest.
    pub rows: u64,
}

impl DedupInput {
    /// Total documents.
    pub fn docs(&self) -> u64 {
        self.files.iter().map(|f| f.rows).sum()
    }

    /// The global index of each file's first row.
    pub fn offsets(&self) -> Vec<u64> {
        let mut at = 0;
        self.files
            .iter()
            .map(|f| {
                let o = at;
                at += f.rows;
                o
            })
            .collect()
    }
}

/// Why a dedup stage stopped.
#[derive(Debug, thiserror::Error)]
pub enum DedupError {
    /// Ctrl-C.
    #[error("cancelled")]
    Cancelled,
    /// Anything else, naming the file or record.
    #[error("{0}")]
    Failed(String),
}

impl From<String> for DedupError {
    fn from(s: String) -> Self {
        DedupError::Failed(s)
    }
}

/// A borrowed string column of one batch (`Utf8` or `LargeUtf8`); nulls
/// read as empty text.
pub enum TextColumn<'a> {
    /// 32-bit offsets.
    Utf8(&'a arrow::array::StringArray),
    /// 64-bit offsets.
    Large(&'a arrow::array::LargeStringArray),
    /// Views.
    View(&'a arrow::array::StringViewArray),
}

impl<'a> TextColumn<'a> {
    /// Column `name` of `batch`, or an error naming `file` and the column.
    pub fn of(batch: &'a RecordBatch, name: &str, file: &std::path::Path) -> Result<Self, String> {
        let col = batch
            .column_by_name(name)
            .ok_or_else(|| format!("{}: no column `{name}` to deduplicate on (set `column`)", file.display()))?;
        Ok(match col.data_type() {
            DataType::Utf8 => TextColumn::Utf8(col.as_string::<i32>()),
            DataType::LargeUtf8 => TextColumn::Large(col.as_string::<i64>()),
            DataType::Utf8View => TextColumn::View(col.as_string_view()),
            t => return Err(format!("{}: column `{name}` is {t}, not a string column", file.display())),
        })
    }

    /// Row `i`'s text ("" when null).
    pub fn get(&self, i: usize) -> &'a str {
        match self {
            TextColumn::Utf8(a) if a.is_valid(i) => a.value(i),
            TextColumn::Large(a) if a.is_valid(i) => a.value(i),
            TextColumn::View(a) if a.is_valid(i) => a.value(i),
            _ => "",
        }
    }
}
