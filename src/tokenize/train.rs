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

fn trainer(cfg: &TrainConfig) -> tokenizers::models::bpe::BpeTrainer {
    let specials: Vec<AddedToken> = cfg.special_tokens.iter().map(|s| AddedToken::from(s.clone(), true)).collect();
    BpeTrainerBuilder::new()
        .vocab_size(cfg.vocab_size as usize)
        .min_frequency(cfg.min_frequency as u64)
        .special_tokens(specials)
        .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
        .show_progress(false)
        .build()
}

/// Trains on `texts` (already capped) and returns the tokenizer.
///
/// For the GPT-2 and GPT-4 splits, kiln counts the words itself with the
/// fast splitter of [`super::fast`] and hands the counts to HF's BPE trainer
/// (`do_train`): the same words, so the same merges, without HF's slower
/// pre-tokenizer. Other splits go through HF's `train` whole.
pub fn train<I>(cfg: &TrainConfig, texts: I) -> Result<Tokenizer, String>
where
    I: Iterator<Item = String> + Send,
{
    let pattern = match cfg.split.as_str() {
        "gpt2" => super::fast::GPT2_SPLIT,
        "gpt4" => GPT4_SPLIT,
        other => other,
    };
    let mut tok = skeleton(&cfg.split)?;
    match super::fast::Splitter::new(pattern) {
        Ok(splitter @ super::fast::Splitter::Dfa(..)) => {
            let counts = count_words(&splitter, texts)?;
            let mut model = BPE::default();
            let specials = trainer(cfg)
                .do_train(&counts, &mut model)
                .map_err(|e| format!("training failed: {e}"))?;
            let pre = tok.get_pre_tokenizer().cloned();
            let mut trained = Tokenizer::new(model);
            trained.with_pre_tokenizer(pre);
            trained.with_decoder(Some(ByteLevelDecoder::default()));
            trained.add_special_tokens(&specials);
            Ok(trained)
        }
        _ => {
            let mut trainer = TrainerWrapper::BpeTrainer(trainer(cfg));
            tok.train(&mut trainer, texts).map_err(|e| format!("training failed: {e}"))?;
            Ok(tok)
        }
    }
}

/// Byte-level words and their counts, as HF's trainer would count them.
fn count_words<I>(splitter: &super::fast::Splitter, texts: I) -> Result<ahash::AHashMap<compact_str::CompactString, u64>, String>
where
    I: Iterator<Item = String> + Send,
{
    use rayon::iter::{ParallelBridge, ParallelIterator};
    let table = super::fast::byte_level_table();
    let key = super::fast::new_key();
    texts
        .par_bridge()
        .try_fold(ahash::AHashMap::new, |mut counts, text| {
            let mut word = String::new();
            splitter.for_each(key, &text, &mut |piece| {
                word.clear();
                word.extend(piece.bytes().map(|b| table[b as usize]));
                match counts.get_mut(word.as_str()) {
                    Some(n) => *n += 1,
                    None => {
                        counts.insert(compact_str::CompactString::from(word.as_str()), 1u64);
                    }
                }
            })?;
            Ok::<_, String>(counts)
        })
        .try_reduce(ahash::AHashMap::new, |a, b| {
            Ok(if a.len() >= b.len() { merge_into(a, b) } else { merge_into(b, a) })
        })
}

/// Adds `small`'s counts into `big`.
fn merge_into(
    mut big: ahash::AHashMap<compact_str::CompactString, u64>,
    small: ahash::AHashMap<compact_str::CompactString, u64>,
) -> ahash::AHashMap<compact_str::CompactString, u64> {
    for (k, v) in small {
        *big.entry(k).or_default() += v;
    }
    big
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
    fn counting_words_ourselves_trains_the_same_tokenizer_as_hf() {
        for split in ["gpt2", "gpt4"] {
            let cfg = TrainConfig {
                vocab_size: 500,
                split: split.into(),
                special_tokens: vec!["<|end|>".into()],
                min_frequency: 2,
            };
            let ours = train(&cfg, corpus().into_iter()).unwrap();
            let mut hf = skeleton(split).unwrap();
            let mut t = TrainerWrapper::BpeTrainer(trainer(&cfg));
            hf.train(&mut t, corpus().into_iter()).unwrap();
            let json = |t: &Tokenizer| serde_json::from_str::<serde_json::Value>(&t.to_string(false).unwrap()).unwrap();
            let (a, b) = (json(&ours), json(&hf));
            assert_eq!(a["model"]["merges"], b["model"]["merges"], "{split}");
            assert_eq!(a["model"]["vocab"], b["model"]["vocab"], "{split}");
            assert_eq!(a["pre_tokenizer"], b["pre_tokenizer"], "{split}");
            assert_eq!(a["added_tokens"], b["added_tokens"], "{split}");
        }
    }

    #[test]
    fn caps_on_char_boundaries() {
        assert_eq!(cap_chars("héllo", 2), "hé");
        assert_eq!(cap_chars("hi", 10), "hi");
    }
}
