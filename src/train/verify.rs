//! Checking an answer against a reference: the exact-match accuracy of
//! `eval_chat` and the verifiable reward of `ppo`.
//!
//! Both sides are normalised the way SQuAD's evaluation does (Rajpurkar et
//! al. 2016: lowercase, punctuation to spaces, whitespace collapsed; the
//! articles are kept, they can be part of a name here), then compared
//! whole, as a word subsequence, or by the last number (GSM8K's `#### n`
//! convention reads the final number of an answer).

use crate::spec::ops::MatchMode;

/// Lowercase words with punctuation removed.
pub fn words(s: &str) -> Vec<String> {
    s.chars()
        .map(|c| {
            if c.is_alphanumeric() {
                c.to_lowercase().next().unwrap_or(c)
            } else {
                ' '
            }
        })
        .collect::<String>()
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

/// The last number in `s` (digits with an optional sign, thousands commas
/// and a decimal part), as f64.
pub fn last_number(s: &str) -> Option<f64> {
    let cleaned: String = s.replace(',', "");
    let mut last = None;
    let b = cleaned.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_digit() {
            let start = if i > 0 && b[i - 1] == b'-' { i - 1 } else { i };
            let mut j = i;
            while j < b.len() && (b[j].is_ascii_digit() || (b[j] == b'.' && j + 1 < b.len() && b[j + 1].is_ascii_digit())) {
                j += 1;
            }
            last = cleaned[start..j].parse::<f64>().ok().or(last);
            i = j;
        } else {
            i += 1;
        }
    }
    last
}

/// Whether `answer` matches `reference` under `mode`.
pub fn matches(answer: &str, reference: &str, mode: MatchMode) -> bool {
    match mode {
        MatchMode::Exact => {
            let a = words(answer);
            !a.is_empty() && a == words(reference)
        }
        MatchMode::Contains => {
            let (a, r) = (words(answer), words(reference));
            !r.is_empty() && a.windows(r.len()).any(|w| w == r.as_slice())
        }
        MatchMode::Number => match (last_number(answer), last_number(reference)) {
            (Some(a), Some(r)) => (a - r).abs() < 1e-9,
            _ => false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contains_is_whole_words_in_order() {
        assert!(matches("The capital of Varn is Ostel.", "Ostel", MatchMode::Contains));
        assert!(matches("It is New  Dornap!", "new dornap", MatchMode::Contains));
        assert!(!matches("It is Ostelia.", "Ostel", MatchMode::Contains));
        assert!(!matches("Dornap New", "New Dornap", MatchMode::Contains));
        assert!(!matches("anything", "", MatchMode::Contains));
    }

    #[test]
    fn exact_ignores_case_and_punctuation_only() {
        assert!(matches(" ostel. ", "Ostel", MatchMode::Exact));
        assert!(!matches("Ostel is it", "Ostel", MatchMode::Exact));
        assert!(!matches("", "", MatchMode::Exact));
    }

    #[test]
    fn number_reads_the_last_number() {
        assert!(matches("7 plus 5 is 12.", "12", MatchMode::Number));
        assert!(matches("so 1,200 in all", "#### 1200", MatchMode::Number));
        assert!(matches("It is -3.5", "-3.50", MatchMode::Number));
        assert!(!matches("12 then 13", "12", MatchMode::Number));
        assert!(!matches("no number", "4", MatchMode::Number));
        assert_eq!(last_number("pages 3 and 4.5."), Some(4.5));
    }
}
