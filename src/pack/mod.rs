//! Packing: token ids per document (a `tokens` artifact) into fixed rows of
//! `seq_len + 1` tokens (a `packed` artifact), and the loader that feeds
//! those rows to a trainer.
//!
//! [`pack`] runs in two passes. The first decodes the Parquet input once
//! into memory-mapped spill files ([`docs::DocStore`]); then the documents
//! are split into train and validation ([`shuffle::split_docs`], by
//! document, before any packing) and each split is packed by
//! [`concat::concat`] or [`bestfit::bestfit`] into Arrow IPC files
//! ([`rows::SplitWriter`]). [`loader::Loader`] maps those files back.
//!
//! Resident memory is the per-document offsets (8 bytes a document), the
//! split order (4 bytes a document) and one block of rows; token ids stay in
//! the page cache, so a few GB of tokens pack on a 24 GB machine.

#![warn(missing_docs)]

pub mod bestfit;
pub mod concat;
pub mod docs;
pub mod loader;
pub mod rows;
pub mod shuffle;
pub mod standalone;
#[cfg(test)]
mod tests;

use crate::exec::store::Artifact;
use crate::io::hash::RowsHash;
use crate::io::writer::FileInfo;
use arrow::datatypes::SchemaRef;
use docs::DocStore;
use serde::Serialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use shuffle::ValSplit;

/// Why packing stopped.
#[derive(Debug, thiserror::Error)]
pub enum PackError {
    /// The caller asked to stop (Ctrl-C).
    #[error("cancelled")]
    Cancelled,
    /// Anything else, with a message that says what and how to fix it.
    #[error("{0}")]
    Failed(String),
}

impl From<String> for PackError {
    fn from(s: String) -> Self {
        PackError::Failed(s)
    }
}

pub use crate::progress::{NoProgress, Progress};

/// How documents are laid into rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Back to back, cut every row ([`concat`]).
    Concat,
    /// Every row starts at a document; best-fit decreasing ([`bestfit`]).
    Bestfit,
}

/// How to pack.
#[derive(Debug, Clone)]
pub struct PackConfig {
    /// Tokens a model sees per row; rows hold `seq_len + 1`.
    pub seq_len: u32,
    /// Layout.
    pub mode: Mode,
    /// `bestfit`: crop documents longer than a row instead of splitting them.
    pub crop: bool,
    /// Documents held out for validation.
    pub val: ValSplit,
    /// Shuffle documents (seeded) before packing.
    pub shuffle: bool,
    /// Rows per IPC file.
    pub rows_per_file: u64,
    /// Seed of the split and the shuffle.
    pub seed: u64,
}

/// The special token ids a `tokens` artifact records in its manifest.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TokenMeta {
    /// Vocabulary size (ids must be below it).
    pub vocab_size: Option<u32>,
    /// Beginning of document.
    pub bos_id: Option<u32>,
    /// End of document.
    pub eos_id: Option<u32>,
    /// Padding.
    pub pad_id: Option<u32>,
    /// End of a chat turn.
    pub end_id: Option<u32>,
}

impl TokenMeta {
    /// Reads the ids from a manifest's `extra` (missing or malformed: `None`).
    pub fn from_extra(extra: &Value) -> Self {
        let get = |k: &str| extra.get(k).and_then(Value::as_u64).and_then(|v| u32::try_from(v).ok());
        TokenMeta {
            vocab_size: get("vocab_size"),
            bos_id: get("bos_id"),
            eos_id: get("eos_id"),
            pad_id: get("pad_id"),
            end_id: get("end_id"),
        }
    }
}

/// A `tokens` artifact's data files and special ids.
#[derive(Debug, Clone)]
pub struct TokensInput {
    /// Parquet files in row order.
    pub files: Vec<PathBuf>,
    /// Special token ids.
    pub meta: TokenMeta,
}

impl TokensInput {
    /// The input of a finished `tokens` artifact.
    pub fn from_artifact(a: &Artifact) -> Result<Self, PackError> {
        if a.manifest.kind != crate::spec::Kind::Tokens {
            return Err(PackError::Failed(format!(
                "{} is a `{}` artifact; pack takes `tokens` (the output of `tokenize`)",
                a.dir.display(),
                a.manifest.kind.name()
            )));
        }
        Ok(TokensInput {
            files: a.data_paths(),
            meta: TokenMeta::from_extra(&a.manifest.extra),
        })
    }
}

/// Counts of one split (or of all of them).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct SplitStats {
    /// Documents.
    pub docs: u64,
    /// Their tokens.
    pub tokens_in: u64,
    /// Real tokens placed in rows.
    pub tokens_out: u64,
    /// Padding slots (`bestfit`).
    pub padding: u64,
    /// Tokens of the final partial row (`concat`).
    pub dropped: u64,
    /// Tokens cut off long documents (`bestfit` with `crop`).
    pub cropped: u64,
    /// Documents cropped.
    pub docs_cropped: u64,
    /// Documents split across rows (`bestfit` without `crop`).
    pub docs_split: u64,
    /// Rows written.
    pub rows: u64,
}

impl SplitStats {
    /// Adds another split's (or window's) counts.
    pub fn add(&mut self, o: &SplitStats) {
        self.docs += o.docs;
        self.tokens_in += o.tokens_in;
        self.tokens_out += o.tokens_out;
        self.padding += o.padding;
        self.dropped += o.dropped;
        self.cropped += o.cropped;
        self.docs_cropped += o.docs_cropped;
        self.docs_split += o.docs_split;
        self.rows += o.rows;
    }

    /// Real tokens over all slots of the rows (1 when there are no rows).
    pub fn utilisation(&self) -> f64 {
        let slots = self.tokens_out + self.padding;
        if slots == 0 { 1.0 } else { self.tokens_out as f64 / slots as f64 }
    }
}

/// What [`pack`] wrote.
#[derive(Debug)]
pub struct PackOutput {
    /// Every file, train then validation, names relative to the output dir.
    pub files: Vec<FileInfo>,
    /// Rows in all files.
    pub rows: u64,
    /// The rows' schema.
    pub schema: SchemaRef,
    /// Hash of all rows, train then validation.
    pub rows_hash: RowsHash,
    /// Counts per split.
    pub splits: BTreeMap<String, SplitStats>,
    /// File names per split.
    pub split_files: BTreeMap<String, Vec<String>>,
    /// Input rows with no tokens.
    pub empty_docs: u64,
    /// Rows per sequence (`seq_len + 1`).
    pub row_len: usize,
    /// The padding id used (`bestfit`) or known.
    pub pad_id: Option<u32>,
}

impl PackOutput {
    /// Counts for the manifest's `stats`.
    pub fn stats(&self) -> Value {
        let mut all = SplitStats::default();
        self.splits.values().for_each(|s| all.add(s));
        let per = |f: fn(&SplitStats) -> u64| -> Value { self.splits.iter().map(|(k, s)| (k.clone(), json!(f(s)))).collect() };
        json!({
            "docs_in": all.docs,
            "empty_docs": self.empty_docs,
            "tokens_in": all.tokens_in,
            "tokens_out": all.tokens_out,
            "padding": all.padding,
            "dropped": all.dropped,
            "cropped": all.cropped,
            "docs_cropped": all.docs_cropped,
            "docs_split": all.docs_split,
            "utilisation": all.utilisation(),
            "rows": per(|s| s.rows),
            "docs": per(|s| s.docs),
            "tokens": per(|s| s.tokens_out),
        })
    }

    /// What a trainer needs, for the manifest's `extra` (read by the loader).
    pub fn extra(&self, cfg: &PackConfig, meta: &TokenMeta) -> Value {
        json!({
            "seq_len": cfg.seq_len,
            "row_len": self.row_len,
            "mode": cfg.mode,
            "pad_id": self.pad_id,
            "has_loss_mask": self.schema.column_with_name("loss_mask").is_some(),
            "splits": self.split_files,
            "rows": self.splits.iter().map(|(k, s)| (k.clone(), json!(s.rows))).collect::<serde_json::Map<_, _>>(),
            "vocab_size": meta.vocab_size,
            "bos_id": meta.bos_id,
            "eos_id": meta.eos_id,
            "end_id": meta.end_id,
        })
    }
}

/// Packs a `tokens` input into `out` (train/ and val/ IPC files).
pub fn pack(input: &TokensInput, out: &Path, cfg: &PackConfig, progress: &dyn Progress) -> Result<PackOutput, PackError> {
    let mut total = 0u64;
    for f in &input.files {
        total += crate::io::table::parquet_rows(f)?;
    }
    progress.start(total * 2);
    let spill = out.join(".spill");
    let read = DocStore::spill(&input.files, &spill, progress);
    // The spill files are unlinked once mapped; only the folder is left.
    let _ = std::fs::remove_dir_all(&spill);
    let (docs, facts) = read?;
    if facts.tokens == 0 {
        return Err(PackError::Failed(format!(
            "the input has no tokens ({} document(s), all empty); check the `tokenize` node",
            facts.docs
        )));
    }
    if let (Some(v), Some(m)) = (input.meta.vocab_size, facts.max_id)
        && m >= v
    {
        return Err(PackError::Failed(format!(
            "token id {m} is not below the vocabulary size {v} the input's manifest records; the tokens do not match their tokenizer"
        )));
    }
    let mut o = pack_docs(&docs, out, cfg, &input.meta, progress)?;
    o.empty_docs = facts.empty_docs;
    Ok(o)
}

/// Packs documents already in memory (or mapped) into `out`.
pub fn pack_docs(
    docs: &DocStore,
    out: &Path,
    cfg: &PackConfig,
    meta: &TokenMeta,
    progress: &dyn Progress,
) -> Result<PackOutput, PackError> {
    let row_len = cfg.seq_len as usize + 1;
    if cfg.seq_len == 0 || cfg.rows_per_file == 0 {
        return Err(PackError::Failed("seq_len and rows_per_file must be at least 1".into()));
    }
    let (train, val) = shuffle::split_docs(docs.count() as u64, cfg.val, cfg.seed, cfg.shuffle)?;
    let pad_id = match cfg.mode {
        Mode::Bestfit => Some(meta.pad_id.or(meta.eos_id).ok_or_else(|| {
            "bestfit pads rows, but the input's manifest records no `pad_id` (nor `eos_id`); use mode: concat or a tokenizer with a pad token"
                .to_string()
        })?),
        Mode::Concat => meta.pad_id,
    };
    let schema = rows::schema(row_len, docs.has_mask() || cfg.mode == Mode::Bestfit);
    let mut o = PackOutput {
        files: Vec::new(),
        rows: 0,
        schema: schema.clone(),
        rows_hash: RowsHash::default(),
        splits: BTreeMap::new(),
        split_files: BTreeMap::new(),
        empty_docs: 0,
        row_len,
        pad_id,
    };
    for (name, order) in [("train", &train), ("val", &val)] {
        let mut w = rows::SplitWriter::new(out, name, cfg.rows_per_file, schema.clone());
        let mut emit = |b: rows::RowBlock| w.write(b);
        let st = match cfg.mode {
            Mode::Concat => concat::concat(docs, order, row_len, progress, &mut emit)?,
            Mode::Bestfit => {
                let window = bestfit::window_tokens(row_len);
                bestfit::bestfit(docs, order, row_len, cfg.crop, pad_id.unwrap_or(0), window, progress, &mut emit)?
            }
        };
        let (files, n, hash) = w.finish()?;
        if st.docs > 0 && n == 0 {
            progress.note(&format!(
                "split `{name}` has {} token(s) in {} document(s), less than one row of {row_len}; it has no rows",
                st.tokens_in, st.docs
            ));
        }
        o.split_files.insert(name.into(), files.iter().map(|f| f.name.clone()).collect());
        o.files.extend(files);
        o.rows += n;
        o.rows_hash.append(&hash);
        o.splits.insert(name.into(), st);
    }
    if o.splits.get("train").is_none_or(|s| s.rows == 0) {
        return Err(PackError::Failed(format!(
            "no training rows: the training documents hold fewer tokens than one row of seq_len + 1 = {row_len}; lower `seq_len` or add data"
        )));
    }
    Ok(o)
}
