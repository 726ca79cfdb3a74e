// ok: test module
//! A chat model directory for the `kiln chat` / `kiln serve` tests: a BPE
//! tokenizer with kiln's chat tokens, trained on a shared-data novel, and a
//! small random GPT saved as an HF checkpoint. Its replies are noise, but
//! real tokens through the real template, decoder and sampler.

use kiln::backend::Precision;
use kiln::model::{Gpt, GptConfig};
use std::path::Path;

/// Writes `config.json`, `model.safetensors` and `tokenizer.json` into `dir`.
pub fn chat_model_dir(data: &Path, dir: &Path, block_size: usize) {
    model_dir(data, dir, block_size, kiln::spec::ops::DEFAULT_SPECIAL_TOKENS)
}

/// The same with the tokenizer's special tokens chosen.
pub fn model_dir(data: &Path, dir: &Path, block_size: usize, specials: &[&str]) {
    let text = std::fs::read_to_string(data.join("text/nltk-gutenberg/austen-emma.txt")).unwrap();
    let cfg = kiln::tokenize::train::TrainConfig {
        vocab_size: 400,
        split: "gpt4".into(),
        special_tokens: specials.iter().map(|s| s.to_string()).collect(),
        min_frequency: 2,
    };
    let tok = kiln::tokenize::train::train(&cfg, text.lines().map(String::from).collect::<Vec<_>>().into_iter()).unwrap();
    tok.save(dir.join("tokenizer.json"), false).unwrap();
    let c = GptConfig {
        n_layer: 2,
        n_head: 4,
        n_embd: 64,
        block_size,
        vocab_size: tok.get_vocab_size(true),
        dropout: 0.0,
    };
    let m = Gpt::new(c, Precision::F32, 7).unwrap();
    kiln::model::hf::save(&m, dir, tok.token_to_id("<|bos|>"), tok.token_to_id("<|endoftext|>")).unwrap();
}
