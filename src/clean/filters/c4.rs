//! C4's line-level cleaning (Raffel et al. 2020, §2.2), as TFDS `c4_utils`
//! and datatrove 0.10 `C4QualityFilter` implement it
//! (`src/datatrove/pipeline/filters/c4_filters.py`, `split_paragraph=True`).
//!
//! The step rewrites the text to the lines that survive and drops the
//! document when a whole-document rule fires or too few sentences remain.
//! Line words are whitespace-split here, as in both originals (the rule is
//! defined on `line.split()`); sentences are counted per kept line with
//! [`count_sentences`] where datatrove uses NLTK punkt.

use super::{Problem, Reason, reason};
use crate::clean::words::count_sentences;
use regex::Regex;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Parameters of `c4`; defaults are C4's (FineWeb turns
/// `filter_no_terminal_punct` off).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct C4QualityParams {
    /// Remove Wikipedia citation marks `[1]`, `[edit]`, `[citation needed]` (default true).
    pub remove_citations: bool,
    /// Drop lines that do not end in `.` `?` `!` `"` `'`, or end in `...` (default true).
    pub filter_no_terminal_punct: bool,
    /// Drop the document when fewer sentences remain (default 5; null = off).
    pub min_num_sentences: Option<u64>,
    /// Drop lines with fewer whitespace-separated words (default 3; null = off).
    pub min_words_per_line: Option<u64>,
    /// Drop lines with a whitespace-separated word longer than this many
    /// characters (default 1000; null = off).
    pub max_word_length: Option<u64>,
    /// Drop the document when a kept line contains "lorem ipsum" (default true).
    pub filter_lorem_ipsum: bool,
    /// Drop lines containing "javascript" (default true).
    pub filter_javascript: bool,
    /// Drop the document when a kept line contains `{` (default true).
    pub filter_curly_bracket: bool,
    /// Drop lines with cookie / terms-of-use / privacy-policy phrases (default true).
    pub filter_policy: bool,
}

impl Default for C4QualityParams {
    fn default() -> Self {
        C4QualityParams {
            remove_citations: true,
            filter_no_terminal_punct: true,
            min_num_sentences: Some(5),
            min_words_per_line: Some(3),
            max_word_length: Some(1000),
            filter_lorem_ipsum: true,
            filter_javascript: true,
            filter_curly_bracket: true,
            filter_policy: true,
        }
    }
}

impl C4QualityParams {
    /// `(field, message)` for each value out of range.
    pub fn check(&self) -> Vec<Problem> {
        let mut p = Vec::new();
        if self.max_word_length == Some(0) {
            p.push((
                "max_word_length".into(),
                "0 would drop every line; use null to turn the rule off".into(),
            ));
        }
        p
    }
}

/// C4's policy phrases (TFDS `c4_utils._POLICY_SUBSTRINGS`).
const POLICY_SUBSTRINGS: [&str; 6] = [
    "terms of use",
    "privacy policy",
    "cookie policy",
    "uses cookies",
    "use of cookies",
    "use cookies",
];

/// The `c4` step.
#[derive(Debug, Clone)]
pub struct C4Quality {
    p: C4QualityParams,
    citation: Regex,
}

impl C4Quality {
    /// Builds the step, compiling the citation pattern.
    pub fn new(p: &C4QualityParams) -> Result<Self, String> {
        // datatrove's CITATION_REGEX.
        let citation = Regex::new(r"\[\d*]|\[edit]|\[citation needed]").map_err(|e| e.to_string())?;
        Ok(C4Quality { p: p.clone(), citation })
    }

    /// The kept lines joined by `\n` (`Ok(None)` when that equals the
    /// input), or the reason the document is dropped.
    pub fn apply(&self, text: &str) -> Result<Option<String>, Reason> {
        let p = &self.p;
        let mut kept: Vec<std::borrow::Cow<'_, str>> = Vec::new();
        let mut sentences = 0u64;
        for raw in text.lines() {
            let line = raw.trim();
            let words = || line.split_whitespace();
            if let Some(max) = p.max_word_length
                && words().any(|w| w.chars().count() as u64 > max)
            {
                continue;
            }
            let line = if p.remove_citations {
                self.citation.replace_all(line, "")
            } else {
                line.into()
            };
            if p.filter_no_terminal_punct && (!line.ends_with(['.', '?', '!', '"', '\'']) || line.ends_with("...")) {
                continue;
            }
            // Counted on the line before citations were removed, as datatrove does.
            if let Some(min) = p.min_words_per_line
                && (words().count() as u64) < min
            {
                continue;
            }
            let lower = line.to_lowercase();
            if p.filter_lorem_ipsum && lower.contains("lorem ipsum") {
                return Err(reason("c4_lorem_ipsum", "a line contains \"lorem ipsum\""));
            }
            if p.filter_javascript && lower.contains("javascript") {
                continue;
            }
            if p.filter_curly_bracket && line.contains('{') {
                return Err(reason("c4_curly_bracket", "a line contains '{'"));
            }
            if p.filter_policy && POLICY_SUBSTRINGS.iter().any(|s| lower.contains(s)) {
                continue;
            }
            sentences += count_sentences(&line) as u64;
            kept.push(line);
        }
        if let Some(min) = p.min_num_sentences
            && sentences < min
        {
            return Err(reason(
                "c4_too_few_sentences",
                format!("{sentences} sentences in kept lines < {min}"),
            ));
        }
        let out = kept.join("\n");
        let out = out.trim();
        if out.is_empty() {
            return Err(reason("c4_empty", "no line survived"));
        }
        Ok(if out == text { None } else { Some(out.to_string()) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(p: &C4QualityParams, text: &str) -> Result<Option<String>, Reason> {
        C4Quality::new(p).unwrap().apply(text)
    }

    fn class(r: &Result<Option<String>, Reason>) -> String {
        match r {
            Ok(_) => "keep".into(),
            Err(e) => e.split(':').next().unwrap_or_default().to_string(),
        }
    }

    const FIVE: &str = "One line here. Two is here.\nThree comes next. Four as well. Five ends.";

    #[test]
    fn sentence_threshold() {
        let d = C4QualityParams::default();
        assert_eq!(class(&run(&d, FIVE)), "keep");
        assert_eq!(run(&d, FIVE).unwrap(), None, "unchanged text is reported as None");
        let four = "One line here. Two is here.\nThree comes next. Four as well.";
        assert_eq!(class(&run(&d, four)), "c4_too_few_sentences");
        let six = format!("{FIVE} Six is extra.");
        assert_eq!(class(&run(&d, &six)), "keep");
    }

    #[test]
    fn line_rules_rewrite_the_text() {
        let d = C4QualityParams::default();
        let text = format!(
            "Menu\nNo terminal punctuation here\nToo short.\nTrailing dots are bad...\n\
             Please enable JavaScript to continue.\nThis site uses cookies to work.\n  {FIVE}  \nCited claim here.[1][citation needed]"
        );
        let out = run(&d, &text).unwrap().unwrap();
        assert_eq!(out, format!("{FIVE}\nCited claim here."));
    }

    #[test]
    fn words_per_line_threshold() {
        let d = C4QualityParams::default();
        // Two-word lines go, three-word lines stay.
        let text = format!("{FIVE}\nTwo words.\nThree words here.");
        assert_eq!(run(&d, &text).unwrap().unwrap(), format!("{FIVE}\nThree words here."));
    }

    #[test]
    fn long_word_threshold() {
        let d = C4QualityParams::default();
        let at = format!("{FIVE}\nA {} word.", "x".repeat(1000));
        assert!(run(&d, &at).unwrap().is_none());
        let over = format!("{FIVE}\nA {} word.", "x".repeat(1001));
        assert_eq!(run(&d, &over).unwrap().unwrap(), FIVE);
    }

    #[test]
    fn document_rules() {
        let d = C4QualityParams::default();
        assert_eq!(class(&run(&d, &format!("{FIVE}\nLorem Ipsum dolor sit amet."))), "c4_lorem_ipsum");
        assert_eq!(class(&run(&d, &format!("{FIVE}\nvar x = {{ a: 1 }}."))), "c4_curly_bracket");
        // A dropped line does not trigger the document rules.
        assert_eq!(class(&run(&d, &format!("{FIVE}\nlorem ipsum"))), "keep");
        // FineWeb's setting: no terminal punctuation rule.
        let fw = C4QualityParams {
            filter_no_terminal_punct: false,
            ..Default::default()
        };
        assert_eq!(
            run(&fw, &format!("{FIVE}\nNo terminal punctuation here")).unwrap(),
            None,
            "kept unchanged"
        );
        let none = C4QualityParams {
            min_num_sentences: None,
            ..Default::default()
        };
        assert_eq!(class(&run(&none, "nothing survives")), "c4_empty");
        assert!(d.check().is_empty());
    }
}
