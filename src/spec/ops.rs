//! The typed parameters of every op, one struct each.
//!
//! Each struct derives `Deserialize` (with `deny_unknown_fields`), `Serialize`
//! (its canonical form feeds the fingerprint) and `JsonSchema` (the README's
//! YAML reference and the unknown-field check are generated from it, so they
//! cannot drift from the code).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// What a node produces and consumes (DESIGN.md, "Nodes exchange typed artifacts").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Text documents: `id`, `text`, `url`, `source`, metadata.
    Documents,
    /// Conversations: `messages`.
    Chat,
    /// Pairwise preferences.
    Preferences,
    /// A trained tokenizer.
    Tokenizer,
    /// Token ids per document.
    Tokens,
    /// Fixed-length training rows.
    Packed,
    /// A model checkpoint.
    Model,
    /// A report or export with no table of its own.
    Report,
}

impl Kind {
    /// The lowercase name used in manifests and messages.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Documents => "documents",
            Kind::Chat => "chat",
            Kind::Preferences => "preferences",
            Kind::Tokenizer => "tokenizer",
            Kind::Tokens => "tokens",
            Kind::Packed => "packed",
            Kind::Model => "model",
            Kind::Report => "report",
        }
    }

    /// Kinds stored as Arrow tables that `sample` and `write` can handle.
    pub const TABLES: &'static [Kind] = &[Kind::Documents, Kind::Chat, Kind::Preferences, Kind::Tokens];
}

/// A reference from a node field to another node, with the kinds it accepts.
#[derive(Debug, Clone)]
pub struct InputRef<'a> {
    /// The field that holds the reference (`input`, `tokenizer`, ...).
    pub field: &'static str,
    /// The referenced node id.
    pub node: &'a str,
    /// Kinds this field accepts.
    pub accepts: &'static [Kind],
}

/// A value out of range: (field, message).
pub type RangeProblem = (String, String);

/// Input file formats `read` understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// One JSON object per line (`.jsonl`, `.ndjson`, optionally `.gz` / `.zst`).
    Jsonl,
    /// A JSON array of objects (`.json`).
    Json,
    /// Apache Parquet (`.parquet`).
    Parquet,
    /// Plain UTF-8 text (`.txt`, `.text`, `.md`); see `text_mode`.
    Text,
}

/// How plain text is split into documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "lowercase")]
pub enum TextMode {
    /// The whole file is one document.
    #[default]
    File,
    /// Every non-blank line is a document.
    Line,
    /// Blocks separated by blank lines are documents.
    Block,
}

fn default_text_field() -> String {
    "text".into()
}
fn default_id_field() -> String {
    "id".into()
}
fn default_url_field() -> String {
    "url".into()
}
fn default_true() -> bool {
    true
}
fn default_batch_bytes() -> u64 {
    4 << 20
}
fn default_max_record_bytes() -> u64 {
    256 << 20
}
fn default_shard_bytes() -> u64 {
    256 << 20
}

/// Reads files (a file, a directory, or a glob) into a `documents` artifact.
/// Unparseable records are counted and written to `rejected/` with their
/// file, line or byte offset and reason; the run continues.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReadParams {
    /// A file, a directory (read recursively, in sorted order) or a glob
    /// (`data/*.jsonl.gz`). Relative paths are relative to the working directory.
    pub path: String,
    /// Input format; by default taken from each file's extension.
    #[serde(default)]
    pub format: Option<Format>,
    /// Field holding the document text; dotted paths reach into objects and
    /// lists (`chosen.value`, `messages.0.content`).
    #[serde(default = "default_text_field")]
    pub text_field: String,
    /// Field holding a document id (string or number); records without it
    /// get `<file>:<line>` (`<file>#<index>` for JSON arrays, `<file>:<row>`
    /// for Parquet), stable across runs.
    #[serde(default = "default_id_field")]
    pub id_field: String,
    /// Field holding the URL, when the records have one.
    #[serde(default = "default_url_field")]
    pub url_field: String,
    /// Value of the `source` column; by default the record's own string
    /// `source` field, else the file's path relative to `path`.
    #[serde(default)]
    pub source: Option<String>,
    /// How `text` files are split into documents.
    #[serde(default)]
    pub text_mode: TextMode,
    /// Keep the other top-level JSON fields in a `metadata` column (JSON text).
    #[serde(default = "default_true")]
    pub keep_metadata: bool,
    /// Bytes of input parsed per batch (memory per in-flight batch).
    #[serde(default = "default_batch_bytes")]
    pub batch_bytes: u64,
    /// Records larger than this are rejected instead of buffered.
    #[serde(default = "default_max_record_bytes")]
    pub max_record_bytes: u64,
    /// Target size of each output Parquet file on disk (zstd-compressed bytes).
    #[serde(default = "default_shard_bytes")]
    pub shard_bytes: u64,
}

impl ReadParams {
    /// Range checks that serde cannot express.
    pub fn check(&self) -> Vec<RangeProblem> {
        let mut p = Vec::new();
        if self.path.trim().is_empty() {
            p.push(("path".into(), "must not be empty".into()));
        }
        if self.text_field.is_empty() {
            p.push(("text_field".into(), "must not be empty".into()));
        }
        if !(1024..=1 << 30).contains(&self.batch_bytes) {
            p.push((
                "batch_bytes".into(),
                format!("{} is out of range 1024..=1073741824", self.batch_bytes),
            ));
        }
        if self.max_record_bytes < 1024 || self.max_record_bytes > (1 << 31) - 1 {
            p.push((
                "max_record_bytes".into(),
                format!("{} is out of range 1024..=2147483647", self.max_record_bytes),
            ));
        }
        if self.shard_bytes < 1 << 16 {
            p.push(("shard_bytes".into(), format!("{} is below the minimum 65536", self.shard_bytes)));
        }
        p
    }
}

/// Keeps the first `n` rows, or each row with probability `fraction` (decided
/// by a hash of the pipeline `seed` and the row's `id`, so it is stable and
/// shardable).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SampleParams {
    /// The node whose rows are sampled.
    pub input: String,
    /// Keep the first N rows.
    #[serde(default)]
    pub n: Option<u64>,
    /// Keep this fraction of rows, in (0, 1].
    #[serde(default)]
    pub fraction: Option<f64>,
}

impl SampleParams {
    /// Exactly one of `n` / `fraction`, each in range.
    pub fn check(&self) -> Vec<RangeProblem> {
        let mut p = Vec::new();
        match (self.n, self.fraction) {
            (None, None) => p.push(("n".into(), "one of `n` or `fraction` is required".into())),
            (Some(_), Some(_)) => p.push(("fraction".into(), "give `n` or `fraction`, not both".into())),
            _ => {}
        }
        if self.n == Some(0) {
            p.push(("n".into(), "must be at least 1".into()));
        }
        if let Some(f) = self.fraction
            && !(f > 0.0 && f <= 1.0)
        {
            p.push(("fraction".into(), format!("{f} is out of range (0, 1]")));
        }
        p
    }
}

/// Export formats for `write`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ExportFormat {
    /// JSON Lines; a `metadata` column is spread back into top-level fields.
    Jsonl,
    /// One Parquet file (zstd).
    Parquet,
}

/// Exports a table artifact to a file outside the workdir.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WriteParams {
    /// The node whose artifact is exported.
    pub input: String,
    /// Destination file; written to a temporary name and renamed when complete.
    pub path: String,
    /// `jsonl` or `parquet`; by default from the extension of `path`
    /// (`.jsonl`, `.jsonl.gz`, `.jsonl.zst`, `.parquet`).
    #[serde(default)]
    pub format: Option<ExportFormat>,
}

impl WriteParams {
    /// The export format, from `format` or the extension.
    pub fn resolved_format(&self) -> Option<ExportFormat> {
        self.format.or_else(|| {
            let p = self.path.to_ascii_lowercase();
            if p.ends_with(".parquet") {
                Some(ExportFormat::Parquet)
            } else if p.ends_with(".jsonl") || p.ends_with(".jsonl.gz") || p.ends_with(".jsonl.zst") || p.ends_with(".ndjson") {
                Some(ExportFormat::Jsonl)
            } else {
                None
            }
        })
    }

    /// The path must name a format.
    pub fn check(&self) -> Vec<RangeProblem> {
        if self.resolved_format().is_none() {
            vec![(
                "path".into(),
                format!(
                    "cannot tell the format of `{}`; use .jsonl, .jsonl.gz, .jsonl.zst or .parquet, or set `format`",
                    self.path
                ),
            )]
        } else {
            Vec::new()
        }
    }
}

/// A node's op with its typed parameters.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// `read`
    Read(ReadParams),
    /// `sample`
    Sample(SampleParams),
    /// `write`
    Write(WriteParams),
}

/// Every op name, for suggestions and the reference.
pub const OP_NAMES: &[&str] = &["read", "sample", "write"];

impl Op {
    /// The op's name in YAML.
    pub fn name(&self) -> &'static str {
        match self {
            Op::Read(_) => "read",
            Op::Sample(_) => "sample",
            Op::Write(_) => "write",
        }
    }

    /// Parses params for op `name` from JSON (fields other than `op`).
    pub fn from_json(name: &str, v: serde_json::Value) -> Result<Op, serde_path_to_error::Error<serde_json::Error>> {
        Ok(match name {
            "read" => Op::Read(serde_path_to_error::deserialize(v)?),
            "sample" => Op::Sample(serde_path_to_error::deserialize(v)?),
            _ => Op::Write(serde_path_to_error::deserialize(v)?),
        })
    }

    /// The JSON schema of op `name`'s parameters.
    pub fn schema(name: &str) -> Option<schemars::Schema> {
        match name {
            "read" => Some(schemars::schema_for!(ReadParams)),
            "sample" => Some(schemars::schema_for!(SampleParams)),
            "write" => Some(schemars::schema_for!(WriteParams)),
            _ => None,
        }
    }

    /// Canonical parameters (every field, defaults filled in).
    pub fn params_json(&self) -> serde_json::Value {
        let v = match self {
            Op::Read(p) => serde_json::to_value(p),
            Op::Sample(p) => serde_json::to_value(p),
            Op::Write(p) => serde_json::to_value(p),
        };
        v.unwrap_or(serde_json::Value::Null)
    }

    /// Node references in this op's fields.
    pub fn inputs(&self) -> Vec<InputRef<'_>> {
        match self {
            Op::Read(_) => vec![],
            Op::Sample(p) => vec![InputRef {
                field: "input",
                node: &p.input,
                accepts: Kind::TABLES,
            }],
            Op::Write(p) => vec![InputRef {
                field: "input",
                node: &p.input,
                accepts: Kind::TABLES,
            }],
        }
    }

    /// The kind of artifact this op makes; `input_kind` is the kind of its
    /// first input, for ops that pass their input's kind through.
    pub fn output_kind(&self, input_kind: Option<Kind>) -> Kind {
        match self {
            Op::Read(_) => Kind::Documents,
            Op::Sample(_) => input_kind.unwrap_or(Kind::Documents),
            Op::Write(_) => Kind::Report,
        }
    }

    /// Range checks.
    pub fn check(&self) -> Vec<RangeProblem> {
        match self {
            Op::Read(p) => p.check(),
            Op::Sample(p) => p.check(),
            Op::Write(p) => p.check(),
        }
    }

    /// Whether the pipeline seed changes this op's output.
    pub fn uses_seed(&self) -> bool {
        matches!(self, Op::Sample(p) if p.fraction.is_some())
    }

    /// Whether `--shard i/N` can split this op's work.
    pub fn shardable(&self) -> bool {
        match self {
            Op::Read(_) => true,
            Op::Sample(p) => p.fraction.is_some(),
            Op::Write(_) => false,
        }
    }

    /// One line about the op, for the reference.
    pub fn about(name: &str) -> &'static str {
        match name {
            "read" => "Reads JSONL (.gz/.zst), JSON arrays, Parquet or plain text into `documents`.",
            "sample" => "Keeps the first `n` rows or a seeded `fraction` of an artifact (same kind out).",
            "write" => "Exports an artifact to JSONL or Parquet at a path of yours (kind `report`).",
            _ => "",
        }
    }
}
