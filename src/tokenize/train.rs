//! Byte-level BPE training. The corpus streams from the documents artifact:
//! each document capped at `doc_cap` characters, the whole at `max_chars`.

use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::TrainerWrapper;
use tokenizers::models::bpe::{BPE, BpeTrainerBuilder};
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::{AddedToken, SplitDelimiterBehavior, Tokenizer};

/// GPT-4's (cl100k) split pattern, as tiktoken publishes it.
pub const GPT4_SPLIT: &str =
    r"'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]++[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+";

/// What to train.
#[derive(Debug, Clone)]
pub struct TrainConfig {
    /// Final vocabulary size.
    pub vocab_size: u32,
    /// `gpt2`, `gpt4` or a regex.
    pub split: String,
    /// Special tokens, ids 0..n.
    pub special_tokens: Vec<String>,
    /// Pairs rarer than this are not merged.
    pub min_frequency: u32,
}

/// A byte-level BPE tokenizer, untrained, with the chosen split.
fn skeleton(split: &str) -> Result<Tokenizer, String> {
    let mut tok = Tokenizer::new(BPE::default());
    let pre: PreTokenizerWrapper = match split {
        // GPT-2: ByteLevel's own regex, no prefix space (as GPT-2's tokenizer.json).
        "gpt2" => ByteLevel::new(false, true, true).into(),
        other => {
            let pattern = if other == "gpt4" { GPT4_SPLIT } else { other };
            let split = Split::new(SplitPattern::Regex(pattern.to_string()), SplitDelimiterBehavior::Isolated, false)
                .map_err(|e| format!("split regex: {e}"))?;
            Sequence::new(vec![split.into(), ByteLevel::new(false, true, false).into()]).into()
        }
    };
    tok.with_pre_tokenizer(Some(pre));
    tok.with_decoder(Some(ByteLevelDecoder::default()));
    Ok(tok)
}

/// Trains on `texts` (already capped) and returns the tokenizer.
pub fn train<I>(cfg: &TrainConfig, texts: I) -> Result<Tokenizer, String>
where
    I: Iterator<Item = String> + Send,
{
    let mut tok = skeleton(&cfg.split)?;
    let specials: Vec<AddedToken> = cfg.special_tokens.iter().map(|s| AddedToken::from(s.clone(), true)).collect();
    let trainer = BpeTrainerBuilder::new()
        .vocab_size(cfg.vocab_size as usize)
        .min_frequency(cfg.min_frequency as u64)
        .special_tokens(specials)
        .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
        .show_progress(false)
        .build();
    let mut trainer = TrainerWrapper::BpeTrainer(trainer);
    tok.train(&mut trainer, texts).map_err(|e| format!("training failed: {e}"))?;
    Ok(tok)
}

/// Caps `text` at `cap` characters (on a character boundary).
pub fn cap_chars(text: &str, cap: usize) -> &str {
    match text.char_indices().nth(cap) {
        Some((at, _)) => &text[..at],
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn corpus() -> Vec<String> {
        let base = "The quick brown fox jumps over the lazy dog. It's 2024 and we've got 12345 tokens!\n";
        (0..200).map(|i| format!("{base} Line {i}: naïve café, 東京, emoji 🙂.")).collect()
    }

    #[test]
    fn trains_round_trips_and_keeps_specials_first() {
        for split in ["gpt2", "gpt4", r"\s+|\S+"] {
            let cfg = TrainConfig {
                vocab_size: 400,
                split: split.into(),
                special_tokens: vec!["<|bos|>".into(), "<|end|>".into()],
                min_frequency: 2,
            };
            let tok = train(&cfg, corpus().into_iter()).unwrap();
            assert_eq!(tok.token_to_id("<|bos|>"), Some(0), "{split}");
            assert_eq!(tok.token_to_id("<|end|>"), Some(1), "{split}");
            assert!(tok.get_vocab_size(true) <= 400, "{split}");
            for text in corpus()
                .iter()
                .take(5)
                .map(String::as_str)
                .chain(["", "  spaces\n\n\ttabs", "<|end|> inside"])
            {
                let ids = crate::tokenize::encode(&tok, text).unwrap();
                assert_eq!(crate::tokenize::decode(&tok, &ids).unwrap(), text, "{split}: {text:?}");
            }
        }
    }

    #[test]
    fn caps_on_char_boundaries() {
        assert_eq!(cap_chars("héllo", 2), "hé");
        assert_eq!(cap_chars("hi", 10), "hi");
    }
}
