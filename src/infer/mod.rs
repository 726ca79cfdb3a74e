//! Inference: a KV-cached decoder over a trained [`Gpt`](crate::model::Gpt),
//! token sampling, batched generation and the `kiln sample` command.
//!
//! - [`linear`]: matrix–vector products over f32 or bf16 weights (AVX-512).
//! - [`kv`]: the [`Decoder`], which owns the KV cache and runs new tokens.
//! - [`sample`]: temperature, top-k, top-p with a seeded RNG.
//! - [`generate`]: a batch of prompts of different lengths, streaming.
//! - [`session`]: `kiln sample` — load a model directory, stream text.
//! - [`chat`]: the prompt for a reply, history trimming, streamed replies
//!   (shared by `kiln chat` and `kiln serve`); [`stop`]: stop strings.
//! - [`repl`]: `kiln chat`, the terminal conversation.

pub mod chat;
pub mod generate;
pub mod kv;
pub mod linear;
pub mod repl;
pub mod sample;
pub mod session;
pub mod stop;

pub use generate::{Finish, GenerateConfig, Generation, generate};
pub use kv::Decoder;
pub use sample::{SampleConfig, Sampler};

use crate::model::ModelError;

/// Errors from inference; each names what was wrong and where.
#[derive(Debug, thiserror::Error)]
pub enum InferError {
    /// Loading or building the model failed.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// A call that does not fit the decoder (batch size, context length, ...).
    #[error("{0}")]
    Shape(String),
    /// A token id outside the vocabulary.
    #[error("sequence {seq}: token id {id} at position {pos} is outside the vocabulary of {vocab}")]
    Token {
        /// Sequence index in the batch.
        seq: usize,
        /// Position in the sequence.
        pos: usize,
        /// The offending id.
        id: u32,
        /// The (unpadded) vocabulary size.
        vocab: usize,
    },
    /// A sampling setting out of range (the message names the flag).
    #[error("{0}")]
    Config(String),
    /// A missing or unreadable model directory, tokenizer or output stream.
    #[error("{0}")]
    Io(String),
}
