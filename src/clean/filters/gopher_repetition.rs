//! Gopher's repetition rules (Rae et al. 2021, table A1), as datatrove 0.10
//! `GopherRepetitionFilter` implements them
//! (`src/datatrove/pipeline/filters/gopher_repetition_filter.py`).
//!
//! Every fraction divides by the length of the whole text in code points
//! (Python's `len(text)`). Differences from datatrove, all at the margin:
//! empty pieces of the line split are skipped (datatrove's `re.split("\n+")`
//! yields an empty first/last line when the text starts/ends with a
//! newline), and duplicated n-grams compare word sequences rather than
//! their concatenation without spaces (`"ab"+"c"` ≠ `"a"+"bc"` here).

use super::{Problem, Reason, check_frac, n_chars, reason};
use crate::clean::words::for_each_word;
use ahash::{AHashMap, AHashSet};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Parameters of `gopher_repetition`; a null fraction turns its rule off.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct GopherRepetitionParams {
    /// Max fraction of paragraphs (split on `\n{2,}`) that repeat an
    /// earlier one (default 0.30).
    pub dup_para_frac: Option<f64>,
    /// Max characters in repeated paragraphs / characters of the text
    /// (default 0.20).
    pub dup_para_char_frac: Option<f64>,
    /// Max fraction of lines (split on `\n+`) that repeat an earlier one
    /// (default 0.30).
    pub dup_line_frac: Option<f64>,
    /// Max characters in repeated lines / characters of the text (default 0.20).
    pub dup_line_char_frac: Option<f64>,
    /// `[n, max]` pairs: (characters of the most frequent n-gram, words
    /// joined by spaces) × its count / characters of the text must not
    /// exceed max (default `[[2, 0.20], [3, 0.18], [4, 0.16]]`).
    pub top_n_grams: Vec<(usize, f64)>,
    /// `[n, max]` pairs: characters in n-grams that repeat an earlier one
    /// (scanning greedily, jumping n words after a repeat) / characters of
    /// the text must not exceed max (default n = 5..10 → 0.15 … 0.10).
    pub dup_n_grams: Vec<(usize, f64)>,
}

impl Default for GopherRepetitionParams {
    fn default() -> Self {
        GopherRepetitionParams {
            dup_para_frac: Some(0.3),
            dup_para_char_frac: Some(0.2),
            dup_line_frac: Some(0.3),
            dup_line_char_frac: Some(0.2),
            top_n_grams: vec![(2, 0.2), (3, 0.18), (4, 0.16)],
            dup_n_grams: vec![(5, 0.15), (6, 0.14), (7, 0.13), (8, 0.12), (9, 0.11), (10, 0.10)],
        }
    }
}

impl GopherRepetitionParams {
    /// `(field, message)` for each value out of range.
    pub fn check(&self) -> Vec<Problem> {
        let mut p = Vec::new();
        check_frac(&mut p, "dup_para_frac", self.dup_para_frac);
        check_frac(&mut p, "dup_para_char_frac", self.dup_para_char_frac);
        check_frac(&mut p, "dup_line_frac", self.dup_line_frac);
        check_frac(&mut p, "dup_line_char_frac", self.dup_line_char_frac);
        for (field, list) in [("top_n_grams", &self.top_n_grams), ("dup_n_grams", &self.dup_n_grams)] {
            for &(n, f) in list {
                if !(1..=64).contains(&n) {
                    p.push((field.into(), format!("n = {n} is out of range 1..=64")));
                }
                check_frac(&mut p, field, Some(f));
            }
        }
        p
    }
}

/// The `gopher_repetition` step.
#[derive(Debug, Clone)]
pub struct GopherRepetition {
    p: GopherRepetitionParams,
}

/// (number of pieces that repeat an earlier piece, their characters).
fn find_duplicates<'a>(pieces: impl Iterator<Item = &'a str>) -> (usize, usize, usize) {
    let mut seen = AHashSet::new();
    let (mut total, mut dups, mut dup_chars) = (0, 0, 0);
    for piece in pieces {
        total += 1;
        if !seen.insert(piece) {
            dups += 1;
            dup_chars += n_chars(piece);
        }
    }
    (total, dups, dup_chars)
}

/// Splits on runs of at least `min_run` newlines, skipping empty pieces.
fn split_newline_runs(text: &str, min_run: usize) -> impl Iterator<Item = &str> {
    let b = text.as_bytes();
    let mut pos = 0;
    std::iter::from_fn(move || {
        while pos < b.len() {
            let start = pos;
            let mut i = pos;
            loop {
                match memchr::memchr(b'\n', &b[i..]) {
                    None => {
                        pos = b.len();
                        let piece = &text[start..];
                        return if piece.is_empty() { None } else { Some(piece) };
                    }
                    Some(k) => {
                        let nl = i + k;
                        let mut end = nl;
                        while end < b.len() && b[end] == b'\n' {
                            end += 1;
                        }
                        if end - nl >= min_run {
                            pos = end;
                            if nl > start {
                                return Some(&text[start..nl]);
                            }
                            break;
                        }
                        i = end;
                    }
                }
            }
        }
        None
    })
}

/// Characters of the most frequent n-gram (joined by spaces) × its count;
/// ties go to the n-gram seen first, as `Counter.most_common` does.
fn top_ngram_chars(words: &[u32], lens: &[usize], n: usize) -> usize {
    let mut counts: AHashMap<&[u32], (usize, usize)> = AHashMap::with_capacity(words.len());
    for i in 0..=words.len() - n {
        counts.entry(&words[i..i + n]).or_insert((0, i)).0 += 1;
    }
    let best = counts.values().max_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
    match best {
        Some(&(count, first)) => (lens[first..first + n].iter().sum::<usize>() + n - 1) * count,
        None => 0,
    }
}

/// Characters (words joined without spaces) of n-grams that repeat an
/// earlier one, scanning greedily and jumping `n` words after a repeat.
fn dup_ngram_chars(words: &[u32], lens: &[usize], n: usize) -> usize {
    let mut seen: AHashSet<&[u32]> = AHashSet::with_capacity(words.len());
    let (mut chars, mut i) = (0, 0);
    while i + n <= words.len() {
        let g = &words[i..i + n];
        if seen.contains(g) {
            chars += lens[i..i + n].iter().sum::<usize>();
            i += n;
        } else {
            seen.insert(g);
            i += 1;
        }
    }
    chars
}

impl GopherRepetition {
    /// Builds the step (nothing to load).
    pub fn new(p: &GopherRepetitionParams) -> Result<Self, String> {
        Ok(GopherRepetition { p: p.clone() })
    }

    /// Keeps `text`, or names the first repetition rule it fails.
    pub fn apply(&self, text: &str) -> Result<(), Reason> {
        let p = &self.p;
        let len = n_chars(text);
        if len == 0 {
            return Ok(());
        }
        let frac = |x: usize| x as f64 / len as f64;

        let (n, dups, chars) = find_duplicates(split_newline_runs(text.trim(), 2));
        if let Some(max) = p.dup_para_frac
            && n > 0
            && dups as f64 / n as f64 > max
        {
            return Err(reason("dup_para_frac", format!("{dups}/{n} paragraphs repeated > {max}")));
        }
        if let Some(max) = p.dup_para_char_frac
            && frac(chars) > max
        {
            return Err(reason(
                "dup_para_char_frac",
                format!("{:.3} of chars in repeated paragraphs > {max}", frac(chars)),
            ));
        }
        let (n, dups, chars) = find_duplicates(split_newline_runs(text, 1));
        if let Some(max) = p.dup_line_frac
            && n > 0
            && dups as f64 / n as f64 > max
        {
            return Err(reason("dup_line_frac", format!("{dups}/{n} lines repeated > {max}")));
        }
        if let Some(max) = p.dup_line_char_frac
            && frac(chars) > max
        {
            return Err(reason(
                "dup_line_char_frac",
                format!("{:.3} of chars in repeated lines > {max}", frac(chars)),
            ));
        }

        if p.top_n_grams.is_empty() && p.dup_n_grams.is_empty() {
            return Ok(());
        }
        // Words as ids, so n-gram keys hash and compare as small integer slices.
        let mut ids: AHashMap<&str, u32> = AHashMap::new();
        let (mut words, mut lens) = (Vec::new(), Vec::new());
        for_each_word(text, |w| {
            let next = ids.len() as u32;
            words.push(*ids.entry(w).or_insert(next));
            lens.push(n_chars(w));
        });
        for &(n, max) in &p.top_n_grams {
            if n == 0 || words.len() < n {
                continue;
            }
            let f = frac(top_ngram_chars(&words, &lens, n));
            if f > max {
                return Err(reason(
                    &format!("top_{n}_gram"),
                    format!("{f:.3} of chars in the top {n}-gram > {max}"),
                ));
            }
        }
        for &(n, max) in &p.dup_n_grams {
            if n == 0 || words.len() < n {
                continue;
            }
            let f = frac(dup_ngram_chars(&words, &lens, n));
            if f > max {
                return Err(reason(
                    &format!("duplicated_{n}_n_grams"),
                    format!("{f:.3} of chars in repeated {n}-grams > {max}"),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clean::filters::test_class as class;

    /// Only the named rule on, at its default.
    fn only(f: impl FnOnce(&mut GopherRepetitionParams, &GopherRepetitionParams)) -> GopherRepetition {
        let d = GopherRepetitionParams::default();
        let mut p = GopherRepetitionParams {
            dup_para_frac: None,
            dup_para_char_frac: None,
            dup_line_frac: None,
            dup_line_char_frac: None,
            top_n_grams: vec![],
            dup_n_grams: vec![],
        };
        f(&mut p, &d);
        GopherRepetition::new(&p).unwrap()
    }

    /// `n` distinct 4-character lines ("l000" …).
    fn distinct(n: usize, start: usize) -> Vec<String> {
        (start..start + n).map(|i| format!("l{i:03}")).collect()
    }

    #[test]
    fn splits_paragraphs_and_lines() {
        let v: Vec<&str> = split_newline_runs("\na\nb\n\n\nc\n", 2).collect();
        assert_eq!(v, vec!["\na\nb", "c\n"]);
        let v: Vec<&str> = split_newline_runs("\na\nb\n\n\nc\n", 1).collect();
        assert_eq!(v, vec!["a", "b", "c"]);
    }

    #[test]
    fn duplicate_line_fraction() {
        let s = only(|p, d| p.dup_line_frac = d.dup_line_frac);
        // 10 lines, 3 repeats = 0.3 → keep; 4 repeats → drop.
        let doc = |reps: usize| {
            let mut l = distinct(10 - reps, 0);
            l.extend(std::iter::repeat_n("l000".to_string(), reps));
            l.join("\n")
        };
        assert_eq!(class(s.apply(&doc(3))), "keep");
        assert_eq!(class(s.apply(&doc(4))), "dup_line_frac");
    }

    #[test]
    fn duplicate_line_chars() {
        let s = only(|p, d| p.dup_line_char_frac = d.dup_line_char_frac);
        // 100 chars: a 20-char line repeated once is exactly 0.2 of the text.
        let big = "x".repeat(20);
        let rest = "y".repeat(100 - 40 - 2);
        let doc = format!("{big}\n{big}\n{rest}");
        assert_eq!(n_chars(&doc), 100);
        assert_eq!(class(s.apply(&doc)), "keep");
        let doc = format!("{big}z\n{big}z\n{}", &rest[1..]);
        assert_eq!(class(s.apply(&doc)), "dup_line_char_frac"); // 21/101
    }

    #[test]
    fn duplicate_paragraphs() {
        let s = only(|p, d| p.dup_para_frac = d.dup_para_frac);
        let doc = |reps: usize| {
            let mut l = distinct(10 - reps, 0);
            l.extend(std::iter::repeat_n("l000".to_string(), reps));
            l.join("\n\n")
        };
        assert_eq!(class(s.apply(&doc(3))), "keep");
        assert_eq!(class(s.apply(&doc(4))), "dup_para_frac");
        // Single newlines do not split paragraphs: one paragraph, no repeat.
        let s = only(|p, d| p.dup_para_char_frac = d.dup_para_char_frac);
        assert_eq!(class(s.apply("same\nsame\nsame")), "keep");
        assert_eq!(class(s.apply("same\n\nsame\n\nsame")), "dup_para_char_frac");
    }

    #[test]
    fn top_two_gram() {
        let s = only(|p, _| p.top_n_grams = vec![(2, 0.2)]);
        // "ab cd" (5 chars) × k in a text of length L: k·5/L.
        // 4 × "ab cd" + filler: 20 / 100 = 0.2 → keep; 5 × → 25/100 drop.
        let doc = |k: usize| {
            let head = vec!["ab cd"; k].join(" ");
            let filler_len = 100 - head.len() - 1;
            // Distinct filler words: w00 w01 … (3 chars + space).
            let mut filler: String = (0..).map(|i| format!("w{i:02} ")).take(filler_len / 4 + 1).collect();
            filler.truncate(filler_len);
            format!("{head} {filler}")
        };
        assert_eq!(n_chars(&doc(4)), 100);
        assert_eq!(class(s.apply(&doc(4))), "keep");
        assert_eq!(class(s.apply(&doc(5))), "top_2_gram");
        // A two-word text: its one 2-gram is the whole text (datatrove drops it too).
        assert_eq!(class(s.apply("hello world")), "top_2_gram");
    }

    #[test]
    fn duplicated_five_grams() {
        let s = only(|p, _| p.dup_n_grams = vec![(5, 0.15)]);
        // A 5-gram of 1-char words "a b c d e" (5 chars without spaces)
        // repeated: the repeat counts 5 chars.
        let gram = "a b c d e";
        let doc = |filler_words: usize| {
            let filler: Vec<String> = (0..filler_words).map(|i| format!("w{i:03}")).collect();
            format!("{gram} {gram} {}", filler.join(" "))
        };
        // len = 19 + 1 + 5·k - 1 → with k = 5: 44 chars, 5/44 = 0.114 keep;
        // k = 2: 29 chars, 5/29 = 0.172 drop.
        assert_eq!(class(s.apply(&doc(5))), "keep");
        assert_eq!(class(s.apply(&doc(2))), "duplicated_5_n_grams");
        // The greedy jump: "a a a a a a a a a a" has 10 words; 5-grams at
        // 0 and 1..: idx0 new, idx1 repeat (+5, jump to 6), idx 6 > 10-5 stop.
        let words = vec![0u32; 10];
        let lens = vec![1; 10];
        assert_eq!(dup_ngram_chars(&words, &lens, 5), 5);
    }

    #[test]
    fn defaults_keep_real_prose() {
        let s = GopherRepetition::new(&GopherRepetitionParams::default()).unwrap();
        let text = "The quick brown fox jumps over the lazy dog near the river.\n\
                    A second sentence talks about something else entirely, with new words.\n\
                    Finally the third line closes the paragraph with a different thought.";
        assert_eq!(class(s.apply(text)), "keep");
        assert!(GopherRepetitionParams::default().check().is_empty());
        let bad = GopherRepetitionParams {
            top_n_grams: vec![(0, 0.5)],
            dup_line_frac: Some(-0.1),
            ..Default::default()
        };
        assert_eq!(bad.check().len(), 2);
    }
}
