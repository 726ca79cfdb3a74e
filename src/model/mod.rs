//! GPT-2, written llm.c-style: one flat buffer each for parameters,
//! gradients and activations, every layer a forward/backward pair of plain
//! functions (`ops/`), no general autograd.
//!
//! - [`GptConfig`]: the architecture hyper-parameters (serde + schemars).
//! - [`params`]: where each named tensor lives in the flat parameter buffer.
//! - [`acts`]: where each activation lives in the flat activation buffer.
//! - [`ops`]: the forward/backward pairs.
//! - [`gpt`]: the [`Gpt`] model that wires them together.

pub mod acts;
pub mod gpt;
pub mod head;
pub mod hf;
pub mod ops;
pub mod params;
pub mod rng;

pub use gpt::Gpt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// GPT-2 architecture (defaults: the 124M model).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GptConfig {
    /// Number of transformer blocks.
    #[serde(default = "default_n_layer")]
    pub n_layer: usize,
    /// Attention heads per block; must divide `n_embd`.
    #[serde(default = "default_n_head")]
    pub n_head: usize,
    /// Residual stream width.
    #[serde(default = "default_n_embd")]
    pub n_embd: usize,
    /// Maximum sequence length (rows of the position embedding).
    #[serde(default = "default_block_size")]
    pub block_size: usize,
    /// Tokenizer vocabulary size. Padded internally to a multiple of 64 for
    /// matmul efficiency; padded ids are never in the loss and never sampled.
    #[serde(default = "default_vocab_size")]
    pub vocab_size: usize,
    /// Dropout probability. Only 0 is supported for now (`check` rejects
    /// anything else): GPT-2 pre-training on single-epoch data uses none.
    #[serde(default)]
    pub dropout: f32,
}

fn default_n_layer() -> usize {
    12
}
fn default_n_head() -> usize {
    12
}
fn default_n_embd() -> usize {
    768
}
fn default_block_size() -> usize {
    1024
}
fn default_vocab_size() -> usize {
    50257
}

impl Default for GptConfig {
    fn default() -> Self {
        GptConfig {
            n_layer: default_n_layer(),
            n_head: default_n_head(),
            n_embd: default_n_embd(),
            block_size: default_block_size(),
            vocab_size: default_vocab_size(),
            dropout: 0.0,
        }
    }
}

impl GptConfig {
    /// The vocabulary rounded up to a multiple of 64 (llm.c's `padded_vocab_size`).
    pub fn padded_vocab(&self) -> usize {
        self.vocab_size.div_ceil(64) * 64
    }

    /// Size of one attention head.
    pub fn head_size(&self) -> usize {
        self.n_embd / self.n_head.max(1)
    }

    /// Problems with this config as (field, message); empty when valid.
    pub fn check(&self) -> Vec<(&'static str, String)> {
        let mut p = Vec::new();
        for (field, v) in [
            ("n_layer", self.n_layer),
            ("n_head", self.n_head),
            ("n_embd", self.n_embd),
            ("block_size", self.block_size),
            ("vocab_size", self.vocab_size),
        ] {
            if v == 0 {
                p.push((field, "must be at least 1".to_string()));
            }
        }
        if self.n_head > 0 && !self.n_embd.is_multiple_of(self.n_head) {
            p.push(("n_embd", format!("{} is not divisible by n_head {}", self.n_embd, self.n_head)));
        }
        if self.vocab_size > u32::MAX as usize {
            p.push(("vocab_size", format!("{} does not fit token ids of 32 bits", self.vocab_size)));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            p.push(("dropout", format!("{} is outside [0, 1)", self.dropout)));
        } else if self.dropout != 0.0 {
            p.push(("dropout", format!("{} > 0 is not supported yet; use 0", self.dropout)));
        }
        p
    }
}

/// The tiny config the unit tests share: 2 layers, 2 heads, 16 wide, T 8,
/// a 70-token vocabulary padded to 128.
#[cfg(test)]
pub(crate) fn tiny_config() -> GptConfig {
    GptConfig {
        n_layer: 2,
        n_head: 2,
        n_embd: 16,
        block_size: 8,
        vocab_size: 70,
        dropout: 0.0,
    }
}

/// Errors from building or running the model; each names what was wrong.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The config failed [`GptConfig::check`].
    #[error("invalid model config: {}", .0.iter().map(|(f, m)| format!("{f}: {m}")).collect::<Vec<_>>().join("; "))]
    Config(Vec<(&'static str, String)>),
    /// A batch shape does not fit the model.
    #[error("batch shape: {0}")]
    Shape(String),
    /// A token id at `position` (flat index into the B×T batch) is outside the vocabulary.
    #[error("{what} id {id} at position {position} is outside the vocabulary of {vocab}")]
    Token {
        /// `input` or `target`.
        what: &'static str,
        /// The offending id.
        id: u32,
        /// Flat index into the batch.
        position: usize,
        /// The (unpadded) vocabulary size.
        vocab: usize,
    },
    /// A backward call without the forward state it needs.
    #[error("{0}")]
    State(&'static str),
    /// A checkpoint file that cannot be read or written (the message names it).
    #[error("{0}")]
    Io(String),
    /// The GPU failed or is missing (the message says what).
    #[error("CUDA: {0}")]
    Device(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_gpt2_small_and_valid() {
        let c = GptConfig::default();
        assert!(c.check().is_empty());
        assert_eq!(c.padded_vocab(), 50304);
        assert_eq!(c.head_size(), 64);
    }

    #[test]
    fn check_names_fields() {
        let c = GptConfig {
            n_embd: 100,
            n_head: 3,
            dropout: 0.1,
            vocab_size: 0,
            ..GptConfig::default()
        };
        let fields: Vec<_> = c.check().into_iter().map(|(f, _)| f).collect();
        assert_eq!(fields, vec!["vocab_size", "n_embd", "dropout"]);
    }

    #[test]
    fn padding_rounds_up_to_64() {
        let c = GptConfig {
            vocab_size: 64,
            ..GptConfig::default()
        };
        assert_eq!(c.padded_vocab(), 64);
        let c = GptConfig {
            vocab_size: 65,
            ..GptConfig::default()
        };
        assert_eq!(c.padded_vocab(), 128);
    }

    #[test]
    fn unknown_fields_are_rejected() {
        let e = serde_json::from_str::<GptConfig>(r#"{"n_layers": 2}"#).unwrap_err();
        assert!(e.to_string().contains("n_layers"), "{e}");
        let c: GptConfig = serde_json::from_str(r#"{"n_layer": 2, "n_embd": 32, "n_head": 4}"#).unwrap();
        assert_eq!((c.n_layer, c.n_embd, c.block_size), (2, 32, 1024));
    }
}
