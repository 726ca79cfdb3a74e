//! Tokenizers: byte-level BPE training with HF `tokenizers`, loading
//! `tokenizer.json` files, and encoding documents and chats (with the chat
//! template and its loss mask).

pub mod chat;
pub mod fast;
pub mod train;

use std::path::Path;
pub use tokenizers::Tokenizer;

/// The ids of the special tokens kiln's template and packing use, where the
/// tokenizer has them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Specials {
    /// Before each document: `<|bos|>`, else `<|endoftext|>` (GPT-2 style).
    pub bos: Option<u32>,
    /// After each document: `<|endoftext|>`.
    pub eos: Option<u32>,
    /// Padding: `<|pad|>`, else `<|endoftext|>`.
    pub pad: Option<u32>,
    /// `<|system|>`.
    pub system: Option<u32>,
    /// `<|user|>`.
    pub user: Option<u32>,
    /// `<|assistant|>`.
    pub assistant: Option<u32>,
    /// Closes every chat message: `<|end|>`.
    pub end: Option<u32>,
}

impl Specials {
    /// Looks the special tokens up in `tok`.
    pub fn of(tok: &Tokenizer) -> Self {
        let id = |s: &str| tok.token_to_id(s);
        Specials {
            bos: id("<|bos|>").or_else(|| id("<|endoftext|>")),
            eos: id("<|endoftext|>"),
            pad: id("<|pad|>").or_else(|| id("<|endoftext|>")),
            system: id("<|system|>"),
            user: id("<|user|>"),
            assistant: id("<|assistant|>"),
            end: id("<|end|>"),
        }
    }
}

/// Loads a `tokenizer.json`, with an error that says what the file is not.
pub fn load(path: &Path) -> Result<Tokenizer, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if serde_json::from_slice::<serde_json::Value>(&bytes).is_err() {
        return Err(format!("{} is not JSON, so not a tokenizer.json", path.display()));
    }
    Tokenizer::from_bytes(&bytes).map_err(|e| format!("{} is not a tokenizer.json that `tokenizers` can load: {e}", path.display()))
}

/// Encodes text without the tokenizer's post-processing (kiln adds BOS/EOS
/// itself, so the same text encodes the same way for every tokenizer).
pub fn encode(tok: &Tokenizer, text: &str) -> Result<Vec<u32>, String> {
    tok.encode_fast(text, false)
        .map(|e| e.get_ids().to_vec())
        .map_err(|e| format!("cannot encode: {e}"))
}

/// A tokenizer with kiln's fast encoder when its shape allows (same ids as
/// HF, several times faster), HF's otherwise.
pub struct Encoder {
    /// The HF tokenizer (decoding, and encoding when `fast` is `None`).
    pub hf: Tokenizer,
    fast: Option<fast::FastBpe>,
    /// Why the fast encoder is not used, when it is not.
    pub slow_because: Option<String>,
}

impl Encoder {
    /// Wraps `hf`, building the fast encoder if the tokenizer fits it.
    pub fn new(hf: Tokenizer) -> Self {
        let fast = hf
            .to_string(false)
            .map_err(|e| e.to_string())
            .and_then(|j| fast::FastBpe::from_json(&j));
        let (fast, slow_because) = match fast {
            Ok(f) => (Some(f), None),
            Err(e) => (None, Some(e)),
        };
        Encoder { hf, fast, slow_because }
    }

    /// HF only (for comparisons).
    pub fn hf_only(hf: Tokenizer) -> Self {
        Encoder {
            hf,
            fast: None,
            slow_because: Some("asked for HF".into()),
        }
    }

    /// Encodes `text` (no BOS/EOS).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, String> {
        match &self.fast {
            Some(f) => f.encode(text),
            None => encode(&self.hf, text),
        }
    }
}

/// Decodes ids back to text (special tokens kept).
pub fn decode(tok: &Tokenizer, ids: &[u32]) -> Result<String, String> {
    tok.decode(ids, false).map_err(|e| format!("cannot decode: {e}"))
}
