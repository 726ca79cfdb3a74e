//! The typed parameters of every op, one struct each.
//!
//! Each struct derives `Deserialize` (with `deny_unknown_fields`), `Serialize`
//! (its canonical form feeds the fingerprint) and `JsonSchema` (the README's
//! YAML reference and the unknown-field check are generated from it, so they
//! cannot drift from the code).

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
    /// Prompts for generation (PPO rollouts, evaluation): `id`, `prompt`
    /// (messages ending with a user turn), `reference` (an expected answer, nullable), `source`.
    Prompts,
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
            Kind::Prompts => "prompts",
        }
    }

    /// Kinds stored as Arrow tables that `sample` and `write` can handle.
    pub const TABLES: &'static [Kind] = &[Kind::Documents, Kind::Chat, Kind::Preferences, Kind::Tokens, Kind::Prompts];
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

mod clean;
mod data;
mod dedup;
mod post;
mod rl;
mod tokens;
mod train;

pub use clean::*;
pub use data::*;
pub use dedup::*;
pub use post::*;
pub use rl::*;
pub use tokens::*;
pub use train::*;

/// A node's op with its typed parameters.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// `read`
    Read(ReadParams),
    /// `sample`
    Sample(SampleParams),
    /// `write`
    Write(WriteParams),
    /// `train_tokenizer`
    TrainTokenizer(TrainTokenizerParams),
    /// `tokenizer`
    Tokenizer(TokenizerParams),
    /// `tokenize`
    Tokenize(TokenizeParams),
    /// `pack`
    Pack(PackParams),
    /// `clean`
    Clean(CleanParams),
    /// `pretrain`
    Pretrain(PretrainParams),
    /// `eval`
    Eval(EvalParams),
    /// `import_model`
    ImportModel(ImportModelParams),
    /// `dedup`
    Dedup(DedupParams),
    /// `prompts`
    Prompts(PromptsParams),
    /// `sft`
    Sft(SftParams),
    /// `reward_model`
    RewardModel(RewardModelParams),
    /// `dpo`
    Dpo(DpoParams),
    /// `ppo`
    Ppo(PpoParams),
    /// `eval_chat`
    EvalChat(EvalChatParams),
}

/// Every op name, for suggestions and the reference.
pub const OP_NAMES: &[&str] = &[
    "read",
    "sample",
    "write",
    "clean",
    "train_tokenizer",
    "tokenizer",
    "tokenize",
    "pack",
    "pretrain",
    "import_model",
    "eval",
    "dedup",
    "prompts",
    "sft",
    "reward_model",
    "dpo",
    "ppo",
    "eval_chat",
];

/// Applies `$body` to the params of whichever op `$op` is.
macro_rules! each_op {
    ($op:expr, $p:ident => $body:expr) => {
        match $op {
            Op::Read($p) => $body,
            Op::Sample($p) => $body,
            Op::Write($p) => $body,
            Op::TrainTokenizer($p) => $body,
            Op::Tokenizer($p) => $body,
            Op::Tokenize($p) => $body,
            Op::Pack($p) => $body,
            Op::Clean($p) => $body,
            Op::Pretrain($p) => $body,
            Op::Eval($p) => $body,
            Op::ImportModel($p) => $body,
            Op::Dedup($p) => $body,
            Op::Prompts($p) => $body,
            Op::Sft($p) => $body,
            Op::RewardModel($p) => $body,
            Op::Dpo($p) => $body,
            Op::Ppo($p) => $body,
            Op::EvalChat($p) => $body,
        }
    };
}

impl Op {
    /// The op's name in YAML.
    pub fn name(&self) -> &'static str {
        match self {
            Op::Read(_) => "read",
            Op::Sample(_) => "sample",
            Op::Write(_) => "write",
            Op::TrainTokenizer(_) => "train_tokenizer",
            Op::Tokenizer(_) => "tokenizer",
            Op::Tokenize(_) => "tokenize",
            Op::Pack(_) => "pack",
            Op::Clean(_) => "clean",
            Op::Pretrain(_) => "pretrain",
            Op::Eval(_) => "eval",
            Op::ImportModel(_) => "import_model",
            Op::Dedup(_) => "dedup",
            Op::Prompts(_) => "prompts",
            Op::Sft(_) => "sft",
            Op::RewardModel(_) => "reward_model",
            Op::Dpo(_) => "dpo",
            Op::Ppo(_) => "ppo",
            Op::EvalChat(_) => "eval_chat",
        }
    }

    /// Parses params for op `name` from JSON (fields other than `op`).
    pub fn from_json(name: &str, v: serde_json::Value) -> Result<Op, serde_path_to_error::Error<serde_json::Error>> {
        use serde_path_to_error::deserialize as de;
        Ok(match name {
            "read" => Op::Read(de(v)?),
            "sample" => Op::Sample(de(v)?),
            "train_tokenizer" => Op::TrainTokenizer(de(v)?),
            "tokenizer" => Op::Tokenizer(de(v)?),
            "tokenize" => Op::Tokenize(de(v)?),
            "pack" => Op::Pack(de(v)?),
            "clean" => Op::Clean(de(v)?),
            "pretrain" => Op::Pretrain(de(v)?),
            "eval" => Op::Eval(de(v)?),
            "import_model" => Op::ImportModel(de(v)?),
            "dedup" => Op::Dedup(de(v)?),
            "prompts" => Op::Prompts(de(v)?),
            "sft" => Op::Sft(de(v)?),
            "reward_model" => Op::RewardModel(de(v)?),
            "dpo" => Op::Dpo(de(v)?),
            "ppo" => Op::Ppo(de(v)?),
            "eval_chat" => Op::EvalChat(de(v)?),
            _ => Op::Write(de(v)?),
        })
    }

    /// The JSON schema of op `name`'s parameters.
    pub fn schema(name: &str) -> Option<schemars::Schema> {
        Some(match name {
            "read" => schemars::schema_for!(ReadParams),
            "sample" => schemars::schema_for!(SampleParams),
            "write" => schemars::schema_for!(WriteParams),
            "train_tokenizer" => schemars::schema_for!(TrainTokenizerParams),
            "tokenizer" => schemars::schema_for!(TokenizerParams),
            "tokenize" => schemars::schema_for!(TokenizeParams),
            "pack" => schemars::schema_for!(PackParams),
            "clean" => schemars::schema_for!(CleanParams),
            "pretrain" => schemars::schema_for!(PretrainParams),
            "eval" => schemars::schema_for!(EvalParams),
            "import_model" => schemars::schema_for!(ImportModelParams),
            "dedup" => schemars::schema_for!(DedupParams),
            "prompts" => schemars::schema_for!(PromptsParams),
            "sft" => schemars::schema_for!(SftParams),
            "reward_model" => schemars::schema_for!(RewardModelParams),
            "dpo" => schemars::schema_for!(DpoParams),
            "ppo" => schemars::schema_for!(PpoParams),
            "eval_chat" => schemars::schema_for!(EvalChatParams),
            _ => return None,
        })
    }

    /// Canonical parameters (every field, defaults filled in).
    pub fn params_json(&self) -> serde_json::Value {
        each_op!(self, p => serde_json::to_value(p)).unwrap_or(serde_json::Value::Null)
    }

    /// Node references in this op's fields.
    pub fn inputs(&self) -> Vec<InputRef<'_>> {
        let model_ref = |node| InputRef {
            field: "model",
            node,
            accepts: &[Kind::Model],
        };
        let input = |node, accepts| InputRef {
            field: "input",
            node,
            accepts,
        };
        match self {
            Op::Read(_) | Op::Tokenizer(_) | Op::ImportModel(_) => vec![],
            Op::Sample(p) => vec![input(&p.input, Kind::TABLES)],
            Op::Write(p) => vec![input(&p.input, Kind::TABLES)],
            Op::TrainTokenizer(p) => vec![input(&p.input, &[Kind::Documents])],
            Op::Tokenize(p) => vec![
                input(&p.input, &[Kind::Documents, Kind::Chat]),
                InputRef {
                    field: "tokenizer",
                    node: &p.tokenizer,
                    accepts: &[Kind::Tokenizer],
                },
            ],
            Op::Pack(p) => vec![input(&p.input, &[Kind::Tokens])],
            Op::Clean(p) => p.input.as_deref().map(|n| input(n, &[Kind::Documents])).into_iter().collect(),
            Op::Pretrain(p) => {
                let mut v = vec![
                    input(&p.input, &[Kind::Packed]),
                    InputRef {
                        field: "tokenizer",
                        node: &p.tokenizer,
                        accepts: &[Kind::Tokenizer],
                    },
                ];
                if let Some(init) = &p.init {
                    v.push(InputRef {
                        field: "init",
                        node: init,
                        accepts: &[Kind::Model],
                    });
                }
                v
            }
            Op::Eval(p) => vec![
                InputRef {
                    field: "model",
                    node: &p.model,
                    accepts: &[Kind::Model],
                },
                input(&p.input, &[Kind::Documents]),
            ],
            Op::Dedup(p) => vec![input(&p.input, &[Kind::Documents])],
            Op::Prompts(p) => {
                let mut v = vec![input(&p.input, &[Kind::Chat, Kind::Preferences, Kind::Documents])];
                v.extend(p.tokenizer.as_deref().map(|node| InputRef {
                    field: "tokenizer",
                    node,
                    accepts: &[Kind::Tokenizer, Kind::Model],
                }));
                v
            }
            Op::Sft(p) => vec![model_ref(&p.model), input(&p.input, &[Kind::Packed])],
            Op::RewardModel(p) => {
                let mut v = vec![model_ref(&p.model), input(&p.input, &[Kind::Preferences])];
                v.extend(p.val.as_deref().map(|node| InputRef {
                    field: "val",
                    node,
                    accepts: &[Kind::Preferences],
                }));
                v.extend(p.normalize.as_deref().map(|node| InputRef {
                    field: "normalize",
                    node,
                    accepts: &[Kind::Chat],
                }));
                v
            }
            Op::Dpo(p) => {
                let mut v = vec![model_ref(&p.model), input(&p.input, &[Kind::Preferences])];
                v.extend(p.val.as_deref().map(|node| InputRef {
                    field: "val",
                    node,
                    accepts: &[Kind::Preferences],
                }));
                v.extend(p.reference.as_deref().map(|node| InputRef {
                    field: "ref",
                    node,
                    accepts: &[Kind::Model],
                }));
                v
            }
            Op::Ppo(p) => {
                let model = |field, node| InputRef {
                    field,
                    node,
                    accepts: &[Kind::Model],
                };
                let mut v = vec![
                    model("policy", &p.policy),
                    InputRef {
                        field: "prompts",
                        node: &p.prompts,
                        accepts: &[Kind::Prompts],
                    },
                ];
                for (field, node) in [
                    ("reward_model", &p.reward_model),
                    ("reference", &p.reference),
                    ("value_model", &p.value_model),
                ] {
                    if let Some(n) = node {
                        v.push(model(field, n));
                    }
                }
                if let Some(n) = &p.ptx {
                    v.push(InputRef {
                        field: "ptx",
                        node: n,
                        accepts: &[Kind::Packed],
                    });
                }
                v
            }
            Op::EvalChat(p) => {
                let mut v = vec![
                    InputRef {
                        field: "model",
                        node: &p.model,
                        accepts: &[Kind::Model],
                    },
                    InputRef {
                        field: "prompts",
                        node: &p.prompts,
                        accepts: &[Kind::Prompts],
                    },
                ];
                if let Some(n) = &p.reward_model {
                    v.push(InputRef {
                        field: "reward_model",
                        node: n,
                        accepts: &[Kind::Model],
                    });
                }
                v
            }
        }
    }

    /// The kind of artifact this op makes; `input_kind` is the kind of its
    /// first input, for ops that pass their input's kind through.
    pub fn output_kind(&self, input_kind: Option<Kind>) -> Kind {
        match self {
            Op::Read(p) => p.output_kind(),
            Op::Sample(_) => input_kind.unwrap_or(Kind::Documents),
            Op::Write(_) => Kind::Report,
            Op::TrainTokenizer(_) | Op::Tokenizer(_) => Kind::Tokenizer,
            Op::Tokenize(_) => Kind::Tokens,
            Op::Pack(_) => Kind::Packed,
            Op::Clean(_) => Kind::Documents,
            Op::Pretrain(_) | Op::ImportModel(_) => Kind::Model,
            Op::Eval(_) => Kind::Report,
            Op::Dedup(_) => Kind::Documents,
            Op::Prompts(_) => Kind::Prompts,
            Op::Sft(_) | Op::RewardModel(_) | Op::Dpo(_) => Kind::Model,
            Op::Ppo(_) => Kind::Model,
            Op::EvalChat(_) => Kind::Report,
        }
    }

    /// Range checks.
    pub fn check(&self) -> Vec<RangeProblem> {
        match self {
            Op::Tokenizer(_) => vec![],
            Op::Read(p) => p.check(),
            Op::Sample(p) => p.check(),
            Op::Write(p) => p.check(),
            Op::TrainTokenizer(p) => p.check(),
            Op::Tokenize(p) => p.check(),
            Op::Pack(p) => p.check(),
            Op::Clean(p) => p.check(),
            Op::Pretrain(p) => p.check(),
            Op::Eval(p) => p.check(),
            Op::ImportModel(p) => p.check(),
            Op::Dedup(p) => p.check(),
            Op::Prompts(p) => p.check(),
            Op::Sft(p) => p.check(),
            Op::RewardModel(p) => p.check(),
            Op::Dpo(p) => p.check(),
            Op::Ppo(p) => p.check(),
            Op::EvalChat(p) => p.check(),
        }
    }

    /// The files this op reads itself: a `read`, or a `clean` with `read:`.
    /// Their names, sizes and times go into the fingerprint.
    pub fn read_source(&self) -> Option<&ReadParams> {
        match self {
            Op::Read(r) => Some(r),
            Op::Clean(c) => c.read.as_ref(),
            _ => None,
        }
    }

    /// Whether the pipeline seed changes this op's output.
    pub fn uses_seed(&self) -> bool {
        matches!(self, Op::Sample(p) if p.fraction.is_some())
            || matches!(self, Op::Pack(p) if p.shuffle || p.val_fraction > 0.0 || p.val_docs.is_some())
            || matches!(self, Op::Pretrain(_) | Op::Ppo(_) | Op::Sft(_) | Op::RewardModel(_) | Op::Dpo(_))
            || matches!(self, Op::EvalChat(p) if p.temperature > 0.0)
    }

    /// Whether `--shard i/N` can split this op's work.
    pub fn shardable(&self) -> bool {
        match self {
            // A dedup shard hashes its slice; its merge finishes with all of them.
            Op::Read(_) | Op::Tokenize(_) | Op::Clean(_) | Op::Dedup(_) => true,
            Op::Sample(p) => p.fraction.is_some(),
            _ => false,
        }
    }

    /// The LSH bands of an op whose clustering can be split into bucket
    /// jobs over groups of bands (`dedup` by `minhash`).
    pub fn bucket_bands(&self) -> Option<u32> {
        match self {
            Op::Dedup(p) if p.method == DedupMethod::Minhash => Some(p.bands),
            _ => None,
        }
    }

    /// Whether merging this op's shard parts is a computation over them
    /// (the op runs again with the parts in hand) rather than joining
    /// their files.
    pub fn merge_computes(&self) -> bool {
        matches!(self, Op::Dedup(_))
    }

    /// One line about the op, for the reference.
    pub fn about(name: &str) -> &'static str {
        match name {
            "read" => {
                "Reads JSONL (.gz/.zst), JSON arrays, Parquet, plain text or web archives (WARC/WET/ARC) into `documents`; converter formats (`alpaca`, `sharegpt`, `hh-rlhf`, `gsm8k`, `chat`, `preferences`, ...) make `chat` or `preferences`."
            }
            "sample" => "Keeps the first `n` rows or a seeded `fraction` of an artifact (same kind out).",
            "write" => "Exports an artifact to JSONL or Parquet at a path of yours (kind `report`).",
            "train_tokenizer" => "Trains a byte-level BPE tokenizer on `documents` (kind `tokenizer`, an HF `tokenizer.json`).",
            "tokenizer" => "Imports an existing HF `tokenizer.json` (kind `tokenizer`).",
            "tokenize" => "Encodes `documents` or `chat` into token ids (kind `tokens`); chats get a loss mask.",
            "clean" => {
                "Cleans `documents` with an ordered list of row-wise steps (extraction, language ID, quality rules, PII, SQL), fused into one streaming pass; dropped documents go to `rejected/` with the step and reason, and the manifest holds the funnel."
            }
            "pretrain" => {
                "Trains a GPT-2 (kiln's own forward/backward, CPU backend) on `packed` rows; makes a `model` that `transformers` opens (`model.safetensors`, `config.json`, `tokenizer.json`) plus `metrics.jsonl`. Resumes from its last checkpoint when re-run."
            }
            "eval" => "Loss and bits per byte of a `model` on `documents` (kind `report`).",
            "import_model" => "Imports a Hugging Face GPT-2 directory (safetensors) as a `model`.",
            "pack" => "Packs `tokens` into rows of `seq_len + 1` in Arrow IPC files (kind `packed`).",
            "dedup" => {
                "Removes duplicate `documents`: `exact` (same normalised text), `minhash` (near duplicates, FineWeb's LSH) or `lines` (lines shared by too many documents, CCNet); the earliest copy is kept, the rest go to `rejected/` naming it. Runs in shards: the first round hashes, `--cluster` clusters (`minhash`) or merges sorted runs (`exact`, `lines`), the second round filters."
            }
            "prompts" => {
                "Makes `prompts` (conversations ending with a user turn) from `chat` (minus the last assistant reply, kept as `reference`), `preferences` (the shared prompt) or `documents` (each text one user message)."
            }
            "sft" => {
                "Fine-tunes a `model` on packed chat rows with the loss on assistant tokens only (the pretrain loop: schedule, eval on held-out chats, checkpoints, resume)."
            }
            "reward_model" => {
                "Trains a reward model on `preferences` (pairs or K-way rankings) from a `model`'s trunk and a new scalar head at the final `<|end|>`; saved as `GPT2ForSequenceClassification`."
            }
            "dpo" => "Direct preference optimisation of a `model` on `preferences` against a frozen reference (sigmoid loss, β 0.1).",
            "ppo" => {
                "RLHF with PPO (InstructGPT, TRL's implementation details): a `policy` model samples answers to `prompts`, a `reward_model` (or a `verify` rule against the prompts' references) scores them, a KL penalty holds it near the frozen reference; makes a `model` plus `metrics.jsonl` (TRL's metric names) and `samples.jsonl`."
            }
            "eval_chat" => {
                "Answers `prompts` with a `model` (greedy by default) and scores the answers against each prompt's `reference` (and with a `reward_model`); writes `eval.json` with the accuracy, mean score and every answer (kind `report`)."
            }
            _ => "",
        }
    }
}
