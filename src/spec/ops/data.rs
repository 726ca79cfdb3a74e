//! Parameters of the data ops: `read`, `sample`, `write`.

use super::RangeProblem;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Input file formats `read` understands: containers that make
/// `documents`, and named converters that turn the record shapes of common
/// SFT and preference datasets into `chat` or `preferences`.
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
    /// Web archives (`.warc`, `.warc.gz`, legacy `.arc`): one document per
    /// HTTP `response` or `resource` record with an HTML payload, `text`
    /// the HTML decoded to UTF-8 (charset from HTTP, `<meta>`, or
    /// detection), `id` the WARC-Record-ID, `url` the WARC-Target-URI and
    /// `metadata` `{date, charset}`. Other records are counted under
    /// `skipped` in the node's stats; malformed ones go to `rejected/`.
    Warc,
    /// Common Crawl WET files (`.wet`, `.warc.wet.gz`): one document per
    /// `conversion` record, its plain text.
    Wet,
    /// Alpaca records (`instruction`, `input`, `output`, optional `system`
    /// and `history`) → `chat`.
    Alpaca,
    /// ShareGPT records (`conversations: [{from, value}]`, optional
    /// `system`) → `chat`.
    Sharegpt,
    /// Anthropic HH-RLHF records; the `chosen` transcript → `chat`.
    #[serde(rename = "hh-rlhf")]
    HhRlhf,
    /// Anthropic HH-RLHF records → `preferences` (the shared turns are the
    /// prompt, the last assistant turns are chosen and rejected).
    #[serde(rename = "hh-rlhf-preferences")]
    HhRlhfPreferences,
    /// GSM8K records (`question`, `answer`) → `chat`, the final `#### n`
    /// kept in `reference`.
    Gsm8k,
    /// Records that already hold `messages: [{role, content}]` → `chat`.
    Chat,
    /// Records with `prompt`/`chosen`/`rejected` (strings or message lists),
    /// or ShareGPT-style DPO records → `preferences`.
    Preferences,
}

impl Format {
    /// The name used in YAML.
    pub fn name(self) -> &'static str {
        match self {
            Format::Jsonl => "jsonl",
            Format::Json => "json",
            Format::Parquet => "parquet",
            Format::Text => "text",
            Format::Warc => "warc",
            Format::Wet => "wet",
            Format::Alpaca => "alpaca",
            Format::Sharegpt => "sharegpt",
            Format::HhRlhf => "hh-rlhf",
            Format::HhRlhfPreferences => "hh-rlhf-preferences",
            Format::Gsm8k => "gsm8k",
            Format::Chat => "chat",
            Format::Preferences => "preferences",
        }
    }

    /// Whether this is a named converter (a record shape, read from JSON or
    /// JSONL as each file's extension says) rather than a container.
    pub fn is_converter(self) -> bool {
        !matches!(
            self,
            Format::Jsonl | Format::Json | Format::Parquet | Format::Text | Format::Warc | Format::Wet
        )
    }

    /// The kind of artifact reading this format makes.
    pub fn output_kind(self) -> super::Kind {
        match self {
            Format::Jsonl | Format::Json | Format::Parquet | Format::Text | Format::Warc | Format::Wet => super::Kind::Documents,
            Format::HhRlhfPreferences | Format::Preferences => super::Kind::Preferences,
            Format::Alpaca | Format::Sharegpt | Format::HhRlhf | Format::Gsm8k | Format::Chat => super::Kind::Chat,
        }
    }
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

/// Reads files (a file, a directory, or a glob) into a `documents` artifact,
/// or with a converter `format` into `chat` or `preferences`. Unparseable records are counted and written to `rejected/` with their
/// file, line or byte offset and reason; the run continues.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReadParams {
    /// A file, a directory (read recursively, in sorted order) or a glob
    /// (`data/*.jsonl.gz`). Relative paths are relative to the working directory.
    pub path: String,
    /// Input format; by default taken from each file's extension. The
    /// converters (`alpaca`, `sharegpt`, `hh-rlhf`, `gsm8k`, `chat` → `chat`;
    /// `hh-rlhf-preferences`, `preferences` → `preferences`) read JSON arrays
    /// (`.json`) or JSONL (`.jsonl`, `.gz`, `.zst`) by extension; records that
    /// do not fit the format go to `rejected/` with the reason. `warc`
    /// (`.warc`, `.arc`, optionally `.gz`) keeps HTML `response`/`resource`
    /// records as HTML text with `url`, `id` (WARC-Record-ID) and `date` /
    /// `charset` in `metadata`; `wet` (`.wet`, `.warc.wet.gz`) keeps
    /// `conversion` records. Other WARC records are counted under
    /// `skipped` in the node's stats; malformed ones go to `rejected/`.
    #[serde(default)]
    pub format: Option<Format>,
    /// Field holding the document text; dotted paths reach into objects and
    /// lists (`chosen.value`, `messages.0.content`). Ignored by the
    /// converters, which know their fields.
    #[serde(default = "default_text_field")]
    pub text_field: String,
    /// Field holding a record id (string or number); records without it
    /// get `<file>:<line>` (`<file>#<index>` for JSON arrays, `<file>:<row>`
    /// for Parquet), stable across runs. Applies to the converters too.
    #[serde(default = "default_id_field")]
    pub id_field: String,
    /// Field holding the URL, when the records have one (documents only).
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
    /// The kind of artifact this read makes: `documents`, or `chat` /
    /// `preferences` for the converter formats.
    pub fn output_kind(&self) -> super::Kind {
        self.format.map_or(super::Kind::Documents, Format::output_kind)
    }

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
