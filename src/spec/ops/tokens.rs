//! Parameters of the token ops: `train_tokenizer`, `tokenizer`, `tokenize`,
//! `pack`.

use super::RangeProblem;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The special tokens kiln's chat template and packing use.
pub const DEFAULT_SPECIAL_TOKENS: &[&str] = &[
    "<|bos|>",
    "<|endoftext|>",
    "<|pad|>",
    "<|system|>",
    "<|user|>",
    "<|assistant|>",
    "<|end|>",
];

fn default_vocab_size() -> u32 {
    8192
}
fn default_split() -> String {
    "gpt4".into()
}
fn default_special_tokens() -> Vec<String> {
    DEFAULT_SPECIAL_TOKENS.iter().map(|s| s.to_string()).collect()
}
fn default_max_chars() -> u64 {
    1_000_000_000
}
fn default_doc_cap() -> u64 {
    10_000
}
fn default_min_frequency() -> u32 {
    2
}
fn default_true() -> bool {
    true
}
fn default_shard_bytes() -> u64 {
    256 << 20
}
fn default_seq_len() -> u32 {
    1024
}

/// Trains a byte-level BPE tokenizer (HF `tokenizers`) on documents.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TrainTokenizerParams {
    /// The `documents` node to train on.
    pub input: String,
    /// Vocabulary size, special tokens and the 256 byte tokens included.
    #[serde(default = "default_vocab_size")]
    pub vocab_size: u32,
    /// Pre-tokenizer split: `gpt2`, `gpt4` (cl100k's pattern) or a custom regex.
    #[serde(default = "default_split")]
    pub split: String,
    /// Special tokens, added first (ids 0..n) and never split.
    #[serde(default = "default_special_tokens")]
    pub special_tokens: Vec<String>,
    /// Characters of the corpus used for training, at most.
    #[serde(default = "default_max_chars")]
    pub max_chars: u64,
    /// Characters taken from each document, at most.
    #[serde(default = "default_doc_cap")]
    pub doc_cap: u64,
    /// Pairs seen fewer times than this are not merged.
    #[serde(default = "default_min_frequency")]
    pub min_frequency: u32,
}

impl TrainTokenizerParams {
    /// Range checks.
    pub fn check(&self) -> Vec<RangeProblem> {
        let mut p = Vec::new();
        let floor = 256 + self.special_tokens.len() as u32;
        if self.vocab_size <= floor || self.vocab_size > 1 << 20 {
            p.push((
                "vocab_size".into(),
                format!(
                    "{} is out of range {}..=1048576 (256 bytes + special tokens + merges)",
                    self.vocab_size,
                    floor + 1
                ),
            ));
        }
        if self.max_chars == 0 {
            p.push(("max_chars".into(), "must be at least 1".into()));
        }
        if self.doc_cap == 0 {
            p.push(("doc_cap".into(), "must be at least 1".into()));
        }
        if !matches!(self.split.as_str(), "gpt2" | "gpt4")
            && let Err(e) = fancy_regex::Regex::new(&self.split)
        {
            p.push(("split".into(), format!("not `gpt2`, `gpt4` or a valid regex: {e}")));
        }
        let mut seen = std::collections::HashSet::new();
        for t in &self.special_tokens {
            if t.is_empty() || !seen.insert(t) {
                p.push(("special_tokens".into(), format!("`{t}` is empty or listed twice")));
            }
        }
        p
    }
}

/// Imports an existing Hugging Face `tokenizer.json` as a `tokenizer` artifact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenizerParams {
    /// Path to a `tokenizer.json`.
    pub path: String,
}

/// What to do with documents longer than `max_doc_tokens`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "lowercase")]
pub enum LongDocs {
    /// Split into pieces of at most `max_doc_tokens` (each a row).
    #[default]
    Split,
    /// Drop them (to `rejected/`, counted).
    Drop,
}

/// Turns documents (or chats) into token ids.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenizeParams {
    /// The `documents` or `chat` node.
    pub input: String,
    /// The `tokenizer` node.
    pub tokenizer: String,
    /// Put `<|bos|>` before each document.
    #[serde(default = "default_true")]
    pub bos: bool,
    /// Put `<|endoftext|>` after each document (not used for chats, which end in `<|end|>`).
    #[serde(default = "default_true")]
    pub eos: bool,
    /// Longest document in tokens; longer ones are split or dropped (`long_docs`).
    #[serde(default)]
    pub max_doc_tokens: Option<u64>,
    /// `split` or `drop` documents over `max_doc_tokens`.
    #[serde(default)]
    pub long_docs: LongDocs,
    /// Target size of each output Parquet file on disk.
    #[serde(default = "default_shard_bytes")]
    pub shard_bytes: u64,
}

impl TokenizeParams {
    /// Range checks.
    pub fn check(&self) -> Vec<RangeProblem> {
        match self.max_doc_tokens {
            Some(n) if n < 2 => vec![("max_doc_tokens".into(), format!("{n} is below the minimum 2"))],
            _ => vec![],
        }
    }
}

/// How documents are laid into rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "lowercase")]
pub enum PackMode {
    /// Documents streamed back to back; every token used.
    #[default]
    Concat,
    /// Every row starts at a document start; best-fit-decreasing bins; the
    /// rest of a row is padding.
    Bestfit,
}

/// Packs token ids into rows of `seq_len + 1` tokens (Arrow IPC).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PackParams {
    /// The `tokens` node.
    pub input: String,
    /// Tokens a model sees per row; rows hold `seq_len + 1` (inputs and shifted targets).
    #[serde(default = "default_seq_len")]
    pub seq_len: u32,
    /// `concat` or `bestfit`.
    #[serde(default)]
    pub mode: PackMode,
    /// `bestfit`: documents longer than a row are cropped (`true`) or split across rows (`false`).
    #[serde(default)]
    pub crop: bool,
    /// Fraction of documents held out for validation.
    #[serde(default)]
    pub val_fraction: f64,
    /// Number of documents held out for validation (instead of `val_fraction`).
    #[serde(default)]
    pub val_docs: Option<u64>,
    /// Shuffle documents (seeded by the pipeline seed) before packing.
    #[serde(default = "default_true")]
    pub shuffle: bool,
    /// Rows per IPC file.
    #[serde(default = "default_rows_per_file")]
    pub rows_per_file: u64,
}

fn default_rows_per_file() -> u64 {
    8192
}

impl PackParams {
    /// Range checks.
    pub fn check(&self) -> Vec<RangeProblem> {
        let mut p = Vec::new();
        if !(8..=1 << 20).contains(&self.seq_len) {
            p.push(("seq_len".into(), format!("{} is out of range 8..=1048576", self.seq_len)));
        }
        if !(0.0..1.0).contains(&self.val_fraction) {
            p.push(("val_fraction".into(), format!("{} is out of range [0, 1)", self.val_fraction)));
        }
        if self.val_docs.is_some() && self.val_fraction > 0.0 {
            p.push(("val_docs".into(), "give `val_docs` or `val_fraction`, not both".into()));
        }
        if self.rows_per_file == 0 {
            p.push(("rows_per_file".into(), "must be at least 1".into()));
        }
        p
    }
}
