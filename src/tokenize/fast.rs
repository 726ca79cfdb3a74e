//! A fast encoder for the byte-level BPE tokenizers kiln trains (and HF
//! tokenizers of the same shape), with ids identical to HF `tokenizers`.
//!
//! HF's encoder tracks offsets and alignments for every piece of text, which
//! a training corpus never needs; this one does only what decides the ids:
//! split out added tokens (leftmost-longest, as HF's added vocabulary does),
//! split the rest with the pre-tokenizer's regex (isolated), then merge each
//! piece's bytes by merge rank, with a per-thread cache of pieces seen
//! (aHash: SipHash would be a third of the time on short pieces). A
//! tokenizer of any other shape (a normalizer, `lstrip`ped added tokens,
//! dropout, ...) is refused and the caller falls back to HF.

use aho_corasick::{AhoCorasick, MatchKind};
use serde_json::Value;
use std::cell::RefCell;
use std::collections::HashMap;

/// GPT-2's split pattern (HF `ByteLevel` with `use_regex: true`).
pub const GPT2_SPLIT: &str = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

/// The known split patterns rewritten for the `regex` crate's DFA, which is
/// many times faster than a backtracking VM. The rewrite drops what only a
/// backtracker can do: possessive quantifiers (here they never change a
/// match: the char they keep cannot start the next item anyway) and
/// `\s+(?!\S)`, which [`Splitter`] restores by giving the last whitespace
/// char of a run back to the word after it. Equality with HF is tested on all
/// the shared text.
const FAST_FORMS: &[(&str, &str, bool)] = &[
    (
        GPT2_SPLIT,
        r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+",
        false,
    ),
    (
        super::train::GPT4_SPLIT,
        r"'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]|\s+",
        true,
    ),
];

/// A pre-tokenizer split: the fast DFA form of a known pattern, or the
/// pattern itself on fancy-regex's backtracker.
pub enum Splitter {
    /// `regex` crate form; `newline_alt`: the pattern has `\s*[\r\n]` before
    /// `\s+(?!\S)` (GPT-4), so whitespace ending in a newline is left whole.
    Dfa(regex::Regex, bool),
    /// Any other pattern.
    Fancy(fancy_regex::Regex),
}

/// Splits with a DFA form; returns where the last piece ended.
fn dfa_split(re: &regex::Regex, newline_alt: bool, text: &str, f: &mut dyn FnMut(&str)) -> usize {
    let (mut pos, mut last) = (0, 0);
    while let Some(m) = re.find_at(text, pos) {
        if m.start() > last {
            f(&text[last..m.start()]);
        }
        let mut end = m.end();
        let piece = m.as_str();
        let ws = piece.chars().all(char::is_whitespace);
        let ends_nl = piece.ends_with(['\r', '\n']);
        // `\s+(?!\S)`: a whitespace run followed by a word keeps its last
        // char for that word.
        if ws && end < text.len() && !(newline_alt && ends_nl) {
            let next_is_word = text[end..].chars().next().is_some_and(|c| !c.is_whitespace());
            let last_char = piece.chars().next_back().map_or(0, char::len_utf8);
            if next_is_word && piece.len() > last_char {
                end -= last_char;
            }
        }
        if end > m.start() {
            f(&text[m.start()..end]);
        }
        last = end;
        if m.start() >= text.len() {
            break;
        }
        pos = end.max(m.start() + 1).min(text.len());
    }
    last
}

/// A fresh key for [`Splitter::for_each`]'s per-thread regex copies.
pub fn new_key() -> usize {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// GPT-2's byte ↔ char table (see [`byte_level_chars`]), for callers that
/// build byte-level words themselves.
pub fn byte_level_table() -> [char; 256] {
    byte_level_chars()
}

impl Splitter {
    /// The splitter for `pattern` (the DFA form when the pattern is GPT-2's
    /// or GPT-4's).
    pub fn new(pattern: &str) -> Result<Self, String> {
        if let Some((_, fast, nl)) = FAST_FORMS.iter().find(|(p, _, _)| *p == pattern) {
            return regex::Regex::new(fast).map(|r| Splitter::Dfa(r, *nl)).map_err(|e| e.to_string());
        }
        fancy_regex::Regex::new(pattern).map(Splitter::Fancy).map_err(|e| e.to_string())
    }

    /// Calls `f` with each piece of `text` (matches and the gaps between them).
    /// `key` names the tokenizer: each thread keeps its own clone of a DFA
    /// regex, since threads sharing one contend on its cache pool.
    pub fn for_each(&self, key: usize, text: &str, f: &mut dyn FnMut(&str)) -> Result<(), String> {
        let mut last = 0;
        match self {
            Splitter::Fancy(re) => {
                for m in re.find_iter(text) {
                    let m = m.map_err(|e| format!("split regex: {e}"))?;
                    if m.start() > last {
                        f(&text[last..m.start()]);
                    }
                    if m.end() > m.start() {
                        f(m.as_str());
                    }
                    last = m.end();
                }
            }
            Splitter::Dfa(shared, newline_alt) => LOCAL_RE.with(|l| {
                let mut l = l.borrow_mut();
                if l.as_ref().is_none_or(|(k, _)| *k != key) {
                    *l = Some((key, shared.clone()));
                }
                let re = l.as_ref().map_or(shared, |(_, r)| r);
                last = dfa_split(re, *newline_alt, text, f);
            }),
        }
        if last < text.len() {
            f(&text[last..]);
        }
        Ok(())
    }
}

/// An encoder for one tokenizer.
pub struct FastBpe {
    split: Splitter,
    /// Added tokens: matcher and ids, in pattern order.
    added: Option<(AhoCorasick, Vec<u32>)>,
    /// Id of each single byte.
    byte_ids: [u32; 256],
    /// (left id, right id) → (rank, merged id).
    merges: ahash::AHashMap<(u32, u32), (u32, u32)>,
    /// Cache key space: one per tokenizer instance.
    key: usize,
}

thread_local! {
    static LOCAL_RE: RefCell<Option<(usize, regex::Regex)>> = const { RefCell::new(None) };
    static CACHE: RefCell<(usize, PieceCache)> = RefCell::new((0, PieceCache::new()));
}

const CACHE_MAX: usize = 1 << 18;

/// Piece bytes → ids, per thread.
type PieceCache = ahash::AHashMap<Vec<u8>, Vec<u32>>;

/// The byte ↔ char table of GPT-2's byte-level encoding: printable bytes map
/// to themselves, the rest to U+0100 onwards, in order.
fn byte_level_chars() -> [char; 256] {
    let mut table = ['\0'; 256];
    let mut n = 0u32;
    for b in 0..256u32 {
        let printable = (33..=126).contains(&b) || (161..=172).contains(&b) || (174..=255).contains(&b);
        table[b as usize] = if printable {
            char::from_u32(b).unwrap_or('\0')
        } else {
            n += 1;
            char::from_u32(255 + n).unwrap_or('\0')
        };
    }
    table
}

fn field<'a>(v: &'a Value, k: &str) -> &'a Value {
    v.get(k).unwrap_or(&Value::Null)
}

impl FastBpe {
    /// Builds the encoder from a `tokenizer.json`, or says why it cannot.
    pub fn from_json(json: &str) -> Result<Self, String> {
        let t: Value = serde_json::from_str(json).map_err(|e| e.to_string())?;
        if !field(&t, "normalizer").is_null() {
            return Err("has a normalizer".into());
        }
        let m = field(&t, "model");
        if field(m, "type") != "BPE" {
            return Err("model is not BPE".into());
        }
        for k in ["dropout", "continuing_subword_prefix", "end_of_word_suffix"] {
            if !field(m, k).is_null() {
                return Err(format!("model sets {k}"));
            }
        }
        if field(m, "byte_fallback") == true || field(m, "ignore_merges") == true {
            return Err("model uses byte_fallback or ignore_merges".into());
        }
        let split = Self::split_pattern(field(&t, "pre_tokenizer"))?;
        let split = Splitter::new(&split)?;

        let chars = byte_level_chars();
        let vocab = field(m, "vocab").as_object().ok_or("no vocab")?;
        let mut ids: HashMap<&str, u32> = HashMap::with_capacity(vocab.len());
        for (tok, id) in vocab {
            ids.insert(tok.as_str(), id.as_u64().ok_or("vocab id is not a number")? as u32);
        }
        let mut byte_ids = [u32::MAX; 256];
        for (b, c) in chars.iter().enumerate() {
            byte_ids[b] = *ids.get(c.to_string().as_str()).ok_or("vocab lacks a byte")?;
        }
        let mut merges = ahash::AHashMap::new();
        for (rank, mg) in field(m, "merges").as_array().ok_or("no merges")?.iter().enumerate() {
            let (a, b) = match mg {
                Value::Array(p) if p.len() == 2 => (p[0].as_str().unwrap_or(""), p[1].as_str().unwrap_or("")),
                Value::String(s) => s.split_once(' ').ok_or("bad merge")?,
                _ => return Err("bad merge".into()),
            };
            let (Some(&ia), Some(&ib)) = (ids.get(a), ids.get(b)) else {
                return Err(format!("merge of unknown tokens {a} {b}"));
            };
            let joined = format!("{a}{b}");
            let Some(&ij) = ids.get(joined.as_str()) else {
                return Err(format!("merge result {joined} not in vocab"));
            };
            merges.entry((ia, ib)).or_insert((rank as u32, ij));
        }
        let mut patterns = Vec::new();
        let mut added_ids = Vec::new();
        for a in field(&t, "added_tokens").as_array().map(Vec::as_slice).unwrap_or(&[]) {
            if field(a, "single_word") == true || field(a, "lstrip") == true || field(a, "rstrip") == true {
                return Err("an added token uses single_word/lstrip/rstrip".into());
            }
            patterns.push(field(a, "content").as_str().ok_or("added token without content")?.to_string());
            added_ids.push(field(a, "id").as_u64().ok_or("added token without id")? as u32);
        }
        let added = if patterns.is_empty() {
            None
        } else {
            let ac = AhoCorasick::builder()
                .match_kind(MatchKind::LeftmostLongest)
                .build(&patterns)
                .map_err(|e| e.to_string())?;
            Some((ac, added_ids))
        };
        let key = new_key();
        Ok(FastBpe {
            split,
            added,
            byte_ids,
            merges,
            key,
        })
    }

    fn split_pattern(pre: &Value) -> Result<String, String> {
        let byte_level_plain = |v: &Value| field(v, "type") == "ByteLevel" && field(v, "add_prefix_space") == false;
        if byte_level_plain(pre) && field(pre, "use_regex") == true {
            return Ok(GPT2_SPLIT.to_string());
        }
        if field(pre, "type") == "Sequence" {
            let parts = field(pre, "pretokenizers").as_array().ok_or("bad Sequence")?;
            if parts.len() == 2
                && field(&parts[0], "type") == "Split"
                && field(&parts[0], "behavior") == "Isolated"
                && field(&parts[0], "invert") == false
                && byte_level_plain(&parts[1])
                && field(&parts[1], "use_regex") == false
                && let Some(r) = field(field(&parts[0], "pattern"), "Regex").as_str()
            {
                return Ok(r.to_string());
            }
        }
        Err("pre-tokenizer is not byte-level with a regex split".into())
    }

    /// Encodes `text` (no BOS/EOS), appending ids to `out`.
    pub fn encode_into(&self, text: &str, out: &mut Vec<u32>) -> Result<(), String> {
        let mut last = 0;
        if let Some((ac, ids)) = &self.added {
            for m in ac.find_iter(text) {
                self.encode_plain(&text[last..m.start()], out)?;
                out.push(ids[m.pattern().as_usize()]);
                last = m.end();
            }
        }
        self.encode_plain(&text[last..], out)
    }

    /// Encodes `text` (no BOS/EOS).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, String> {
        let mut out = Vec::with_capacity(text.len() / 3);
        self.encode_into(text, &mut out)?;
        Ok(out)
    }

    fn encode_plain(&self, text: &str, out: &mut Vec<u32>) -> Result<(), String> {
        self.split
            .for_each(self.key, text, &mut |piece| self.encode_piece(piece.as_bytes(), out))
    }

    fn encode_piece(&self, piece: &[u8], out: &mut Vec<u32>) {
        if piece.len() == 1 {
            out.push(self.byte_ids[piece[0] as usize]);
            return;
        }
        CACHE.with(|c| {
            let mut c = c.borrow_mut();
            if c.0 != self.key {
                *c = (self.key, PieceCache::new());
            }
            if let Some(ids) = c.1.get(piece) {
                out.extend_from_slice(ids);
                return;
            }
            let ids = self.merge(piece);
            out.extend_from_slice(&ids);
            if c.1.len() >= CACHE_MAX {
                c.1.clear();
            }
            c.1.insert(piece.to_vec(), ids);
        });
    }

    /// Merges by lowest rank first, leftmost on ties (HF's BPE order).
    fn merge(&self, piece: &[u8]) -> Vec<u32> {
        let mut ids: Vec<u32> = piece.iter().map(|b| self.byte_ids[*b as usize]).collect();
        loop {
            let mut best: Option<(u32, usize, u32)> = None;
            for i in 0..ids.len().saturating_sub(1) {
                if let Some(&(rank, merged)) = self.merges.get(&(ids[i], ids[i + 1]))
                    && best.is_none_or(|(r, _, _)| rank < r)
                {
                    best = Some((rank, i, merged));
                }
            }
            let Some((rank, _, _)) = best else { break };
            // Apply every occurrence of this merge, left to right.
            let mut j = 0;
            let mut next = Vec::with_capacity(ids.len());
            while j < ids.len() {
                if j + 1 < ids.len() && self.merges.get(&(ids[j], ids[j + 1])).is_some_and(|m| m.0 == rank) {
                    next.push(self.merges[&(ids[j], ids[j + 1])].1);
                    j += 2;
                } else {
                    next.push(ids[j]);
                    j += 1;
                }
            }
            ids = next;
        }
        ids
    }
}
