//! Length bounds in characters (Unicode code points) and words (the
//! non-symbol tokens of [`crate::clean::words`], as Gopher counts them).

use super::{Problem, Reason, n_chars, reason};
use crate::clean::words::count_words;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Parameters of `length`; each bound is off when null (the default).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct LengthParams {
    /// Drop documents with fewer characters.
    pub min_chars: Option<u64>,
    /// Drop documents with more characters.
    pub max_chars: Option<u64>,
    /// Drop documents with fewer words.
    pub min_words: Option<u64>,
    /// Drop documents with more words.
    pub max_words: Option<u64>,
}

impl LengthParams {
    /// `(field, message)` when a minimum is above its maximum.
    pub fn check(&self) -> Vec<Problem> {
        let mut p = Vec::new();
        for (field, lo, hi) in [
            ("min_chars", self.min_chars, self.max_chars),
            ("min_words", self.min_words, self.max_words),
        ] {
            if let (Some(lo), Some(hi)) = (lo, hi)
                && lo > hi
            {
                p.push((field.into(), format!("{lo} is above the maximum {hi}")));
            }
        }
        p
    }
}

/// The `length` step.
#[derive(Debug, Clone)]
pub struct Length {
    p: LengthParams,
}

impl Length {
    /// Builds the step (nothing to load).
    pub fn new(p: &LengthParams) -> Result<Self, String> {
        Ok(Length { p: p.clone() })
    }

    /// Keeps `text`, or names the bound it breaks.
    pub fn apply(&self, text: &str) -> Result<(), Reason> {
        let p = &self.p;
        if p.min_chars.is_some() || p.max_chars.is_some() {
            let n = n_chars(text) as u64;
            if let Some(min) = p.min_chars
                && n < min
            {
                return Err(reason("length_min_chars", format!("{n} chars < {min}")));
            }
            if let Some(max) = p.max_chars
                && n > max
            {
                return Err(reason("length_max_chars", format!("{n} chars > {max}")));
            }
        }
        if p.min_words.is_some() || p.max_words.is_some() {
            let n = count_words(text) as u64;
            if let Some(min) = p.min_words
                && n < min
            {
                return Err(reason("length_min_words", format!("{n} words < {min}")));
            }
            if let Some(max) = p.max_words
                && n > max
            {
                return Err(reason("length_max_words", format!("{n} words > {max}")));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_are_inclusive() {
        let s = Length::new(&LengthParams {
            min_chars: Some(5),
            max_chars: Some(7),
            min_words: Some(2),
            max_words: Some(3),
        })
        .unwrap();
        assert!(s.apply("abcd").unwrap_err().starts_with("length_min_chars"));
        assert!(s.apply("ab cd").is_ok());
        assert!(s.apply("ab cd e").is_ok());
        assert!(s.apply("ab cd ef").unwrap_err().starts_with("length_max_chars"));
        // Characters are code points: 5 × "é" is 10 bytes but 5 chars.
        assert!(s.apply("éé éé").is_ok());
        assert!(s.apply("abcde").unwrap_err().starts_with("length_min_words"));
        assert!(s.apply("a b c d").unwrap_err().starts_with("length_max_words"));
        // Punctuation tokens are not words.
        assert!(s.apply("abc , .").unwrap_err().starts_with("length_min_words"));
        assert!(Length::new(&LengthParams::default()).unwrap().apply("").is_ok());
        assert_eq!(
            LengthParams {
                min_chars: Some(9),
                max_chars: Some(3),
                ..Default::default()
            }
            .check()
            .len(),
            1
        );
    }
}
