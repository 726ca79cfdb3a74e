//! Parameters of the `dedup` op.

use super::RangeProblem;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// How `dedup` decides two documents are duplicates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum DedupMethod {
    /// Same normalised text (blake3, 128 bits).
    Exact,
    /// Near duplicates: MinHash LSH (FineWeb's settings), connected components.
    Minhash,
    /// Removes lines found in more than `max_occurrences` documents (CCNet).
    Lines,
}

fn default_column() -> String {
    "text".into()
}
fn default_n_grams() -> u32 {
    5
}
fn default_bands() -> u32 {
    14
}
fn default_rows_per_band() -> u32 {
    8
}
fn default_hash_seed() -> u64 {
    1
}
fn default_memory_mb() -> u64 {
    1024
}
fn default_true() -> bool {
    true
}
fn default_one() -> u64 {
    1
}

/// Removes duplicate documents (or, with `lines`, duplicate lines) across a
/// whole `documents` artifact. Kept rows are unchanged and in input order;
/// the earliest document of each duplicate group is kept, and the others go
/// to `rejected/` with the id of the document they duplicate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DedupParams {
    /// The `documents` node.
    pub input: String,
    /// `exact`, `minhash` or `lines`.
    pub method: DedupMethod,
    /// The text column compared.
    #[serde(default = "default_column")]
    pub column: String,
    /// Words per shingle (`minhash`).
    #[serde(default = "default_n_grams")]
    pub n_grams: u32,
    /// LSH bands (`minhash`); documents sharing any band are candidates.
    #[serde(default = "default_bands")]
    pub bands: u32,
    /// Hashes per band (`minhash`); `bands × rows_per_band` permutations in all.
    #[serde(default = "default_rows_per_band")]
    pub rows_per_band: u32,
    /// Seed of the hash permutations (`minhash`), fixed rather than the
    /// pipeline seed so that changing the seed does not change dedup.
    #[serde(default = "default_hash_seed")]
    pub hash_seed: u64,
    /// Memory budget for sort buffers; bucket and line records beyond it
    /// spill to disk in sorted runs. Plus 4 bytes per document for clustering.
    #[serde(default = "default_memory_mb")]
    pub memory_mb: u64,
    /// Normalisation before hashing: lowercase.
    #[serde(default = "default_true")]
    pub lowercase: bool,
    /// Normalisation: every digit becomes 0.
    #[serde(default = "default_true")]
    pub digits_to_zero: bool,
    /// Normalisation: punctuation and symbols become spaces.
    #[serde(default = "default_true")]
    pub strip_punctuation: bool,
    /// Normalisation: accents removed (`é` → `e`).
    #[serde(default = "default_true")]
    pub strip_diacritics: bool,
    /// `lines`: a line found in more than this many documents is removed
    /// from all of them (CCNet's rule is 1: any line shared by two documents).
    #[serde(default = "default_one")]
    pub max_occurrences: u64,
    /// `lines`: a document left with fewer characters (trimmed) is dropped
    /// with reason `lines_empty`.
    #[serde(default = "default_one")]
    pub min_chars: u64,
}

impl DedupParams {
    /// Range checks.
    pub fn check(&self) -> Vec<RangeProblem> {
        let mut p = Vec::new();
        if self.column.is_empty() {
            p.push(("column".into(), "must name a column".into()));
        }
        if !(1..=64).contains(&self.n_grams) {
            p.push(("n_grams".into(), format!("{} is out of range 1..=64", self.n_grams)));
        }
        if !(1..=256).contains(&self.bands) {
            p.push(("bands".into(), format!("{} is out of range 1..=256", self.bands)));
        }
        if !(1..=64).contains(&self.rows_per_band) {
            p.push(("rows_per_band".into(), format!("{} is out of range 1..=64", self.rows_per_band)));
        }
        if self.memory_mb == 0 {
            p.push(("memory_mb".into(), "must be at least 1".into()));
        }
        if self.max_occurrences == 0 {
            p.push((
                "max_occurrences".into(),
                "must be at least 1 (a line is always in its own document)".into(),
            ));
        }
        p
    }
}
