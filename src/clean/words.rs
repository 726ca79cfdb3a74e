//! The one word splitter (and sentence counter) every cleaning step uses.
//!
//! datatrove splits English with a language-aware tokenizer (NLTK's Treebank
//! `word_tokenize` in older releases, spaCy's `blank("en")` in 0.10), and
//! counts sentences with NLTK's punkt. Both are slow, stateful and hard to
//! reproduce exactly; kiln uses one fast deterministic rule instead:
//!
//! 1. split on Unicode whitespace (`char::is_whitespace`);
//! 2. in each chunk, peel leading and trailing punctuation off as separate
//!    tokens, one token per run of the same character (`"(Hello,"` →
//!    `(`, `Hello`, `,`; `"end..."` → `end`, `...`), as Treebank and spaCy do
//!    with prefixes/suffixes;
//! 3. punctuation inside a chunk stays (`U.S.`, `e-mail`, `3.14`, `don't`,
//!    `example.com`): unlike NLTK we do not split clitics (`do` + `n't`) and,
//!    unlike spaCy, not infix hyphens;
//! 4. Han ideographs and kana (no spaces between words) become one token per
//!    character, as UAX #29 treats ideographs; Thai, Lao, Khmer stay whole
//!    whitespace chunks (they need a dictionary segmenter).
//!
//! Consequences for thresholds tuned on NLTK/spaCy output: punctuation tokens
//! count like theirs (so Gopher's `#`/word and alpha-word ratios land in the
//! same place); not splitting clitics gives ≈1–2% fewer tokens on English web
//! text and slightly longer mean word length; hyphenated compounds count as
//! one word (spaCy: three tokens). "Words" for length rules are the
//! *non-symbol* tokens (those with at least one character that is not
//! punctuation, datatrove's `non_symbol_words`), which on ordinary prose is
//! the whitespace word count.

/// Whether `c` is punctuation, a symbol or a control character, the set
/// datatrove's `PUNCTUATION_SET` (`datatrove/utils/text.py`) approximates
/// with a hand-written list: ASCII punctuation, C0/C1 controls, Latin-1
/// punctuation, General Punctuation, currency, arrows / math / box / shape
/// / dingbat symbols, CJK and fullwidth punctuation.
#[inline]
pub fn is_punct(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_punctuation() || c.is_ascii_control();
    }
    let u = c as u32;
    matches!(u,
        0x80..=0x9F
        | 0xA1 | 0xA2..=0xA9 | 0xAB | 0xAC | 0xAE..=0xB1 | 0xB4 | 0xB6..=0xB8 | 0xBB | 0xBF | 0xD7 | 0xF7
        | 0x2000..=0x206F
        | 0x20A0..=0x20CF
        | 0x2100..=0x2101 | 0x2190..=0x2BFF
        | 0x3000..=0x3004 | 0x3008..=0x3020 | 0x3030 | 0x303D..=0x303F
        | 0xFE30..=0xFE6F
        | 0xFF01..=0xFF0F | 0xFF1A..=0xFF20 | 0xFF3B..=0xFF40 | 0xFF5B..=0xFF65
    )
}

/// Characters written without spaces between words that we split one per
/// token: CJK ideographs (BMP blocks and extension A), hiragana, katakana.
#[inline]
fn is_cjk_char(c: char) -> bool {
    matches!(c as u32, 0x3040..=0x30FF | 0x31F0..=0x31FF | 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF | 0x20000..=0x2FFFF)
}

/// True when every character of `w` is punctuation (datatrove: a word that
/// is not a `non_symbol_word`). Empty strings count as symbols.
#[inline]
pub fn is_symbol_word(w: &str) -> bool {
    w.chars().all(is_punct)
}

/// Calls `f` with each token of `text`, in order, without allocating.
pub fn for_each_word<'a>(text: &'a str, mut f: impl FnMut(&'a str)) {
    for chunk in text.split_whitespace() {
        split_chunk(chunk, &mut f);
    }
}

/// The tokens of `text` (see the module docs for the rule).
pub fn split_words(text: &str) -> Vec<&str> {
    let mut out = Vec::with_capacity(text.len() / 5 + 1);
    for_each_word(text, |w| out.push(w));
    out
}

/// Number of non-symbol tokens in `text`: the "word count" of the length
/// rules and of C4's words-per-line rule.
pub fn count_words(text: &str) -> usize {
    let mut n = 0;
    for_each_word(text, |w| n += usize::from(!is_symbol_word(w)));
    n
}

/// Length in bytes of the run of `first` (a char) at the start of `s`.
#[inline]
fn run_len_front(s: &str, first: char) -> usize {
    s.chars().take_while(|&c| c == first).map(char::len_utf8).sum()
}

/// Length in bytes of the run of `last` at the end of `s`.
#[inline]
fn run_len_back(s: &str, last: char) -> usize {
    s.chars().rev().take_while(|&c| c == last).map(char::len_utf8).sum()
}

fn split_chunk<'a>(chunk: &'a str, f: &mut impl FnMut(&'a str)) {
    let mut rest = chunk;
    // Leading punctuation runs.
    while let Some(c) = rest.chars().next() {
        if !is_punct(c) {
            break;
        }
        let n = run_len_front(rest, c);
        f(&rest[..n]);
        rest = &rest[n..];
    }
    if rest.is_empty() {
        return;
    }
    // Trailing punctuation runs: find where they start, emit them after the core.
    let mut core_end = rest.len();
    while let Some(c) = rest[..core_end].chars().next_back() {
        if !is_punct(c) {
            break;
        }
        core_end -= run_len_back(&rest[..core_end], c);
    }
    emit_core(&rest[..core_end], f);
    let mut tail = &rest[core_end..];
    while let Some(c) = tail.chars().next() {
        let n = run_len_front(tail, c);
        f(&tail[..n]);
        tail = &tail[n..];
    }
}

/// The core of a chunk: whole, unless it holds CJK characters, which are
/// split one per token with the non-CJK runs between them kept whole.
fn emit_core<'a>(core: &'a str, f: &mut impl FnMut(&'a str)) {
    if core.is_ascii() || !core.chars().any(is_cjk_char) {
        f(core);
        return;
    }
    let mut start = 0;
    for (i, c) in core.char_indices() {
        if is_cjk_char(c) {
            if start < i {
                f(&core[start..i]);
            }
            f(&core[i..i + c.len_utf8()]);
            start = i + c.len_utf8();
        }
    }
    if start < core.len() {
        f(&core[start..]);
    }
}

/// Abbreviations whose trailing period does not end a sentence (a short
/// English list in the spirit of punkt's learned abbreviations).
const ABBREVIATIONS: &[&str] = &[
    "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "vs", "etc", "e.g", "i.e", "inc", "ltd", "co", "corp", "no", "fig", "al", "approx",
    "dept", "est", "gen", "gov", "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec", "mt", "ft", "u.s",
];

/// Number of sentences in `text` (at least 1 when it holds any non-space
/// character), for C4's "at least 5 sentences" rule.
///
/// A sentence ends at a run of `.`, `!`, `?` or `…` (optionally followed
/// by closing quotes or brackets) that is followed by whitespace and then
/// not by a lowercase letter, or by the end of the text; a `.` after a
/// single letter (an initial) or a known abbreviation does not end one.
/// This is punkt's default behaviour on ordinary prose without its learned
/// parameters; it differs on rare cases (abbreviations not listed, a
/// sentence starting with a lowercase word).
pub fn count_sentences(text: &str) -> usize {
    let t = text.trim();
    if t.is_empty() {
        return 0;
    }
    let mut count = 0;
    let mut i = 0;
    let mut ended_at_end = false;
    while i < t.len() {
        let c = match t[i..].chars().next() {
            Some(c) => c,
            None => break,
        };
        let clen = c.len_utf8();
        if !matches!(c, '.' | '!' | '?' | '…') {
            i += clen;
            continue;
        }
        let start = i;
        // The run of terminal marks, then closing quotes/brackets.
        let mut j = i;
        while let Some(d) = t[j..].chars().next() {
            if matches!(d, '.' | '!' | '?' | '…') {
                j += d.len_utf8();
            } else {
                break;
            }
        }
        while let Some(d) = t[j..].chars().next() {
            if matches!(d, '"' | '\'' | ')' | ']' | '”' | '’' | '»') {
                j += d.len_utf8();
            } else {
                break;
            }
        }
        i = j;
        if j == t.len() {
            ended_at_end = true;
            count += 1;
            break;
        }
        if !t[j..].starts_with(char::is_whitespace) {
            continue;
        }
        if c == '.' && j == start + 1 && is_abbreviation(&t[..start]) {
            continue;
        }
        let next = t[j..].trim_start().chars().next();
        if next.is_some_and(char::is_lowercase) {
            continue;
        }
        count += 1;
    }
    if !ended_at_end {
        count += 1;
    }
    count
}

/// Whether the word before a single `.` at the end of `before` is an
/// initial or a listed abbreviation.
fn is_abbreviation(before: &str) -> bool {
    let word = before
        .rsplit(|c: char| c.is_whitespace() || c == '(' || c == '"')
        .next()
        .unwrap_or("");
    let mut chars = word.chars();
    if let (Some(c), None) = (chars.next(), chars.next())
        && c.is_alphabetic()
    {
        return true;
    }
    if word.len() > 6 {
        return false;
    }
    let lower = word.to_ascii_lowercase();
    ABBREVIATIONS.contains(&lower.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_punctuation_off_words() {
        assert_eq!(
            split_words("(Hello, world...)  don't"),
            vec!["(", "Hello", ",", "world", "...", ")", "don't"]
        );
        assert_eq!(
            split_words("U.S. e-mail 3.14 example.com."),
            vec!["U.S", ".", "e-mail", "3.14", "example.com", "."]
        );
        assert_eq!(split_words("— !!"), vec!["—", "!!"]);
        assert_eq!(split_words(""), Vec::<&str>::new());
    }

    #[test]
    fn splits_cjk_per_character() {
        assert_eq!(split_words("我爱abc北京。"), vec!["我", "爱", "abc", "北", "京", "。"]);
    }

    #[test]
    fn counts_non_symbol_words() {
        assert_eq!(count_words("Hello , world - again #"), 3);
        assert!(is_symbol_word("«»"));
        assert!(!is_symbol_word("a."));
    }

    #[test]
    fn counts_sentences() {
        assert_eq!(count_sentences(""), 0);
        assert_eq!(count_sentences("One sentence without end"), 1);
        assert_eq!(count_sentences("One. Two! Three? Four."), 4);
        assert_eq!(count_sentences("Mr. Smith met Dr. Jones in J. R. Town. They talked."), 2);
        assert_eq!(count_sentences("He said \"stop.\" Then he left."), 2);
        assert_eq!(count_sentences("Pi is 3.14 and e is 2.71. Fine."), 2);
        assert_eq!(count_sentences("wait... and then it went on. Done."), 2);
    }
}
