//! C4's bad-words rule: drop a document that contains any term of the
//! "List of Dirty, Naughty, Obscene, and Otherwise Bad Words" (LDNOOBW), as
//! TFDS `c4_utils` and datatrove 0.10 `C4BadWordsFilter`
//! (`src/datatrove/pipeline/filters/c4_filters.py`) do: the text is
//! lowercased and a term matches only when flanked by a non-word character
//! or the text edge (`(?:\W|^)(term|…)(?:\W|$)`); for Japanese, Thai and
//! Chinese lists no flanking is required (`word_boundaries: false`).
//!
//! The list is a file, not bundled: `path` defaults to
//! [`DEFAULT_LDNOOBW_EN`], the English list at LDNOOBW revision 25e679f0,
//! the one C4 and datatrove use for English, where the repository's
//! development data keeps it. Pipelines for users should set `path`.

use super::{Problem, Reason, read_list, reason};
use regex::Regex;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Where the English LDNOOBW list at revision 25e679f0 (C4's) lives in the
/// development data, relative to the repository root.
pub const DEFAULT_LDNOOBW_EN: &str = "../shared/data/lists/ldnoobw/c4-25e679f0/en";

/// Parameters of `c4_badwords`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct C4BadWordsParams {
    /// The bad-words list, one term per line (default
    /// `../shared/data/lists/ldnoobw/c4-25e679f0/en`: LDNOOBW `en` at
    /// revision 25e679f0, the list C4 used).
    pub path: String,
    /// Require a non-word character (or the text edge) on both sides of a
    /// term (default true; false for `ja`, `th`, `zh` lists, as datatrove).
    pub word_boundaries: bool,
    /// Terms removed from the list (datatrove allows `sm`, `グロ`, `女の子`
    /// for ja and `性` for zh; default empty).
    pub allow: Vec<String>,
    /// Fraction of matching documents kept anyway, chosen by a hash of the
    /// text so re-runs agree (default 0, datatrove's `keep_fraction`).
    pub keep_fraction: f64,
}

impl Default for C4BadWordsParams {
    fn default() -> Self {
        C4BadWordsParams {
            path: DEFAULT_LDNOOBW_EN.into(),
            word_boundaries: true,
            allow: vec![],
            keep_fraction: 0.0,
        }
    }
}

impl C4BadWordsParams {
    /// `(field, message)` for each value out of range.
    pub fn check(&self) -> Vec<Problem> {
        let mut p = Vec::new();
        if !(0.0..=1.0).contains(&self.keep_fraction) {
            p.push(("keep_fraction".into(), format!("{} is out of range [0, 1]", self.keep_fraction)));
        }
        if self.path.trim().is_empty() {
            p.push(("path".into(), "is empty; give the bad-words list file".into()));
        }
        p
    }
}

/// The `c4_badwords` step.
#[derive(Debug, Clone)]
pub struct C4BadWords {
    re: Option<Regex>,
    keep_fraction: f64,
}

impl C4BadWords {
    /// Loads the list at `p.path` and compiles one alternation of its terms;
    /// the error names the file.
    pub fn new(p: &C4BadWordsParams) -> Result<Self, String> {
        let terms = read_list(&p.path, "bad-words")?;
        Self::from_terms(terms, p)
    }

    /// The step for an in-memory list (tests, embedded lists).
    pub fn from_terms(terms: Vec<String>, p: &C4BadWordsParams) -> Result<Self, String> {
        let mut terms: Vec<String> = terms
            .into_iter()
            .map(|t| t.to_lowercase())
            .filter(|t| !p.allow.iter().any(|a| a.to_lowercase() == *t))
            .collect();
        terms.sort();
        terms.dedup();
        // Longest first, so the reported term is the longest that matches at a position.
        terms.sort_by_key(|t| std::cmp::Reverse(t.len()));
        let re = if terms.is_empty() {
            None
        } else {
            let alt = terms.iter().map(|t| regex::escape(t)).collect::<Vec<_>>().join("|");
            let pat = if p.word_boundaries {
                format!(r"(?:\W|^)({alt})(?:\W|$)")
            } else {
                format!("({alt})")
            };
            let re = regex::RegexBuilder::new(&pat)
                .size_limit(64 << 20)
                .build()
                .map_err(|e| format!("cannot compile the bad-words list `{}`: {e}", p.path))?;
            Some(re)
        };
        Ok(C4BadWords {
            re,
            keep_fraction: p.keep_fraction,
        })
    }

    /// Keeps `text`, or drops it naming the first bad word found.
    pub fn apply(&self, text: &str) -> Result<(), Reason> {
        let Some(re) = &self.re else { return Ok(()) };
        let lower = text.to_lowercase();
        let Some(m) = re.captures(&lower).and_then(|c| c.get(1)) else {
            return Ok(());
        };
        if self.keep_fraction > 0.0 {
            // A stable uniform draw in [0, 1) from the text.
            let h = blake3::hash(text.as_bytes());
            let mut b = [0u8; 8];
            b.copy_from_slice(&h.as_bytes()[..8]);
            let u = (u64::from_le_bytes(b) >> 11) as f64 / (1u64 << 53) as f64;
            if u < self.keep_fraction {
                return Ok(());
            }
        }
        Err(reason("c4_badwords", format!("contains {:?}", m.as_str())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(terms: &[&str], bounds: bool) -> C4BadWords {
        let p = C4BadWordsParams {
            word_boundaries: bounds,
            ..Default::default()
        };
        C4BadWords::from_terms(terms.iter().map(|s| s.to_string()).collect(), &p).unwrap()
    }

    #[test]
    fn matches_whole_words_case_insensitively() {
        let s = step(&["ass", "two words"], true);
        assert!(s.apply("You ASS!").is_err());
        assert!(s.apply("ass").is_err());
        assert!(s.apply("a class assignment, passed").is_ok());
        assert!(s.apply("said two words.").is_err());
        assert!(s.apply("two wordsmiths").is_ok());
        assert_eq!(s.apply("the ass.").unwrap_err(), "c4_badwords: contains \"ass\"");
        let cjk = step(&["性"], false);
        assert!(cjk.apply("男性").is_err());
        assert!(step(&[], true).apply("anything").is_ok());
    }

    #[test]
    fn keep_fraction_and_allow_list() {
        let p = C4BadWordsParams {
            keep_fraction: 1.0,
            ..Default::default()
        };
        let s = C4BadWords::from_terms(vec!["ass".into()], &p).unwrap();
        assert!(s.apply("you ass").is_ok());
        let p = C4BadWordsParams {
            allow: vec!["Ass".into()],
            ..Default::default()
        };
        let s = C4BadWords::from_terms(vec!["ass".into()], &p).unwrap();
        assert!(s.apply("you ass").is_ok());
        assert_eq!(
            C4BadWordsParams {
                keep_fraction: 2.0,
                ..Default::default()
            }
            .check()
            .len(),
            1
        );
    }

    #[test]
    fn missing_file_is_named() {
        let p = C4BadWordsParams {
            path: "/nonexistent/ldnoobw-en".into(),
            ..Default::default()
        };
        let e = C4BadWords::new(&p).unwrap_err();
        assert!(e.contains("/nonexistent/ldnoobw-en"), "{e}");
    }

    #[test]
    fn real_ldnoobw_list() {
        let path = std::path::Path::new(DEFAULT_LDNOOBW_EN);
        if !path.exists() {
            println!("skipping: {DEFAULT_LDNOOBW_EN} not found");
            return;
        }
        let s = C4BadWords::new(&C4BadWordsParams::default()).unwrap();
        assert!(s.apply("This is a perfectly clean sentence about gardening.").is_ok());
        assert!(s.apply("Some text with the word porn in it.").is_err());
    }
}
