//! Text simplification and stable 64-bit hashing for deduplication.
//!
//! FILTERS.md ("minhash (FineWeb settings)"): lowercase, digits → 0,
//! punctuation → space, whitespace collapsed, diacritics removed, then word
//! 5-grams. datatrove (`pipeline/dedup/utils.py`, `simplify_text`) does the
//! same before `nltk.word_tokenize`; here a word is a maximal run of
//! characters that are neither whitespace nor (when stripped) punctuation, so
//! the splitter is one simple rule. "Punctuation" means every character that
//! is not alphanumeric and not whitespace (symbols, emoji and control
//! characters included), since Rust's std has no Unicode general category.
//!
//! The hashes must never change between runs or kiln versions (a cached
//! artifact's dedup decisions must be reproducible), so they are written out
//! here rather than taken from `ahash`/`std`, whose outputs are not promised
//! to be stable.

use unicode_normalization::char::{decompose_canonical, is_combining_mark};

/// Which simplifications run before words are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Simplify {
    /// Lowercase every letter.
    pub lowercase: bool,
    /// Every numeric character becomes `0`.
    pub digits_to_zero: bool,
    /// Punctuation and symbols become word breaks.
    pub strip_punctuation: bool,
    /// Canonical decomposition, then combining marks dropped (`é` → `e`).
    pub strip_diacritics: bool,
}

impl Default for Simplify {
    /// FineWeb's settings: everything on.
    fn default() -> Self {
        Simplify {
            lowercase: true,
            digits_to_zero: true,
            strip_punctuation: true,
            strip_diacritics: true,
        }
    }
}

impl Simplify {
    /// Writes the simplified `text` into `out` (cleared first): words
    /// separated by single spaces, no leading or trailing space.
    pub fn apply(&self, text: &str, out: &mut String) {
        out.clear();
        out.reserve(text.len());
        // Whether a space is owed before the next word character.
        let mut gap = false;
        for c in text.chars() {
            if c.is_ascii() {
                self.push_char(c, out, &mut gap);
            } else if self.strip_diacritics {
                decompose_canonical(c, |d| {
                    if !is_combining_mark(d) {
                        self.push_char(d, out, &mut gap);
                    }
                });
            } else {
                self.push_char(c, out, &mut gap);
            }
        }
    }

    fn push_char(&self, c: char, out: &mut String, gap: &mut bool) {
        let is_break = c.is_whitespace() || (self.strip_punctuation && !c.is_alphanumeric());
        if is_break {
            *gap = !out.is_empty();
            return;
        }
        if *gap {
            out.push(' ');
            *gap = false;
        }
        if self.digits_to_zero && c.is_numeric() {
            out.push('0');
        } else if self.lowercase {
            if c.is_ascii() {
                out.push(c.to_ascii_lowercase());
            } else {
                out.extend(c.to_lowercase());
            }
        } else {
            out.push(c);
        }
    }
}

const K0: u64 = 0xa076_1d64_78bd_642f;
const K1: u64 = 0xe703_7ed1_a0b4_28db;
const K2: u64 = 0x8ebc_6af0_9c88_c6e3;

/// Multiplies into 128 bits and folds the halves: the mixing step of
/// wyhash (Wang Yi, public domain), which spreads every input bit.
#[inline]
fn fold_mul(a: u64, b: u64) -> u64 {
    let r = (a as u128).wrapping_mul(b as u128);
    (r as u64) ^ ((r >> 64) as u64)
}

/// A stable, well-mixed 64-bit hash of bytes (wyhash-style folding over
/// 8-byte little-endian chunks; the length is mixed in last so that
/// zero-padded inputs differ).
pub fn hash_bytes(bytes: &[u8]) -> u64 {
    let mut h = K0;
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        h = fold_mul(h ^ u64::from_le_bytes(w), K1);
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut w = [0u8; 8];
        w[..rest.len()].copy_from_slice(rest);
        h = fold_mul(h ^ u64::from_le_bytes(w), K1);
    }
    fold_mul(h ^ bytes.len() as u64, K2)
}

/// Combines a sequence of 64-bit hashes in order (a shingle from its words,
/// a band key from its minhash values).
#[inline]
pub fn combine(hashes: &[u64]) -> u64 {
    let mut h = K2;
    for &x in hashes {
        h = fold_mul(h ^ x, K1);
    }
    fold_mul(h ^ hashes.len() as u64, K0)
}

/// The shingle hashes of a simplified text: one per run of `n` consecutive
/// words. A text with fewer than `n` words (but at least one) gives one
/// shingle of all its words, so short identical documents still match
/// (datatrove gives them none and never deduplicates them); an empty text
/// gives none. `words` is scratch space.
pub fn shingles(simplified: &str, n: usize, words: &mut Vec<u64>, out: &mut Vec<u64>) {
    words.clear();
    out.clear();
    words.extend(simplified.split(' ').filter(|w| !w.is_empty()).map(|w| hash_bytes(w.as_bytes())));
    if words.is_empty() {
        return;
    }
    if words.len() < n {
        out.push(combine(words));
        return;
    }
    out.extend(words.windows(n.max(1)).map(combine));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn simp(s: &str) -> String {
        let mut out = String::new();
        Simplify::default().apply(s, &mut out);
        out
    }

    #[test]
    fn simplify_follows_the_fineweb_rules() {
        assert_eq!(simp("  Hello,   World!\n\tIt's 2024. "), "hello world it s 0000");
        assert_eq!(simp("Café naïve — ÉCOLE"), "cafe naive ecole");
        assert_eq!(simp("...!!!"), "");
        assert_eq!(simp(""), "");
        let keep_case = Simplify {
            lowercase: false,
            digits_to_zero: false,
            strip_punctuation: false,
            strip_diacritics: false,
        };
        let mut out = String::new();
        keep_case.apply(" Café, 42 ", &mut out);
        assert_eq!(out, "Café, 42");
    }

    #[test]
    fn shingles_ignore_case_punctuation_and_digits_but_not_words() {
        let (mut w, mut a, mut b) = (vec![], vec![], vec![]);
        shingles(&simp("The quick brown fox jumps over 3 dogs."), 5, &mut w, &mut a);
        shingles(&simp("the QUICK, brown fox -- jumps over 7 dogs"), 5, &mut w, &mut b);
        assert_eq!(a.len(), 4);
        assert_eq!(a, b);
        shingles(&simp("the quick brown cat jumps over 7 dogs"), 5, &mut w, &mut b);
        assert_eq!(b.len(), 4);
        assert!(a.iter().zip(&b).all(|(x, y)| x != y), "every shingle holds the changed word");
    }

    #[test]
    fn short_texts_give_one_shingle_and_empty_ones_none() {
        let (mut w, mut a) = (vec![], vec![]);
        shingles("two words", 5, &mut w, &mut a);
        assert_eq!(a.len(), 1);
        shingles("", 5, &mut w, &mut a);
        assert!(a.is_empty());
        shingles("a b c d e", 5, &mut w, &mut a);
        assert_eq!(a.len(), 1);
    }

    #[test]
    fn hashes_are_stable_across_versions() {
        // Pinned values: if these change, every cached dedup decision changes.
        assert_eq!(hash_bytes(b""), 16325314592318339460);
        assert_eq!(hash_bytes(b"kiln"), hash_bytes(b"kiln"));
        assert_ne!(hash_bytes(b"kiln"), hash_bytes(b"kiln\0"));
        assert_ne!(combine(&[1, 2]), combine(&[2, 1]));
    }
}
