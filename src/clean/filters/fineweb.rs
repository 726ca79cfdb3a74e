//! FineWeb's own quality rules (Penedo et al. 2024, §3.3), as datatrove
//! 0.10 `FineWebQualityFilter` implements them
//! (`src/datatrove/pipeline/filters/fineweb_quality_filter.py`).
//!
//! Lines are the `\n`-split text without blank lines (FILTERS.md); the
//! comparisons are datatrove's: drop when the terminal-punctuation ratio is
//! `<=` its threshold, the short-line ratio `>=`, the duplicate-character
//! ratio `>=`, and the newline/word ratio `>`.

use super::{Problem, Reason, check_frac, check_non_negative, n_chars, ratio, reason};
use crate::clean::words::for_each_word;
use ahash::AHashSet;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Parameters of `fineweb`; a null threshold turns its rule off.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct FineWebQualityParams {
    /// Drop when the fraction of lines ending in `.` `'` `"` `!` `?` is at
    /// most this (default 0.12).
    pub line_punct_thr: Option<f64>,
    /// Do not apply `line_punct_thr` when no line ends in punctuation
    /// (default false).
    pub line_punct_exclude_zero: bool,
    /// Drop when the fraction of lines of at most `short_line_length`
    /// characters is at least this (default 0.67).
    pub short_line_thr: Option<f64>,
    /// What counts as a short line, in characters (default 30).
    pub short_line_length: u64,
    /// Drop when characters in repeated lines / characters of the text
    /// without newlines is at least this (default 0.01).
    pub char_duplicates_ratio: Option<f64>,
    /// Drop when newlines / words is above this (default 0.3).
    pub new_line_ratio: Option<f64>,
}

impl Default for FineWebQualityParams {
    fn default() -> Self {
        FineWebQualityParams {
            line_punct_thr: Some(0.12),
            line_punct_exclude_zero: false,
            short_line_thr: Some(0.67),
            short_line_length: 30,
            char_duplicates_ratio: Some(0.01),
            new_line_ratio: Some(0.3),
        }
    }
}

impl FineWebQualityParams {
    /// `(field, message)` for each value out of range.
    pub fn check(&self) -> Vec<Problem> {
        let mut p = Vec::new();
        check_frac(&mut p, "line_punct_thr", self.line_punct_thr);
        check_frac(&mut p, "short_line_thr", self.short_line_thr);
        check_frac(&mut p, "char_duplicates_ratio", self.char_duplicates_ratio);
        check_non_negative(&mut p, "new_line_ratio", self.new_line_ratio);
        p
    }
}

/// The `fineweb` step.
#[derive(Debug, Clone)]
pub struct FineWebQuality {
    p: FineWebQualityParams,
}

impl FineWebQuality {
    /// Builds the step (nothing to load).
    pub fn new(p: &FineWebQualityParams) -> Result<Self, String> {
        Ok(FineWebQuality { p: p.clone() })
    }

    /// Keeps `text`, or names the first rule it fails.
    pub fn apply(&self, text: &str) -> Result<(), Reason> {
        let p = &self.p;
        let (mut n, mut punct, mut short, mut dup_chars) = (0usize, 0usize, 0usize, 0usize);
        let mut seen = AHashSet::new();
        for line in text.split('\n').filter(|l| !l.trim().is_empty()) {
            n += 1;
            punct += usize::from(line.ends_with(['.', '\'', '"', '!', '?']));
            let len = n_chars(line);
            short += usize::from(len as u64 <= p.short_line_length);
            if !seen.insert(line) {
                dup_chars += len;
            }
        }
        if n == 0 {
            return Err(reason("fineweb_empty", "no non-blank line"));
        }
        if let Some(thr) = p.line_punct_thr {
            let r = ratio(punct, n);
            if r <= thr && !(punct == 0 && p.line_punct_exclude_zero) {
                return Err(reason(
                    "fineweb_line_punct_ratio",
                    format!("{punct}/{n} lines end in punctuation, {r:.3} <= {thr}"),
                ));
            }
        }
        if let Some(thr) = p.short_line_thr {
            let r = ratio(short, n);
            if r >= thr {
                return Err(reason(
                    "fineweb_short_line_ratio",
                    format!("{short}/{n} lines <= {} chars, {r:.3} >= {thr}", p.short_line_length),
                ));
            }
        }
        if let Some(thr) = p.char_duplicates_ratio {
            let newlines = memchr::memchr_iter(b'\n', text.as_bytes()).count();
            let r = ratio(dup_chars, n_chars(text) - newlines);
            if r >= thr {
                return Err(reason(
                    "fineweb_char_dup_ratio",
                    format!("{r:.4} of chars in repeated lines >= {thr}"),
                ));
            }
        }
        if let Some(thr) = p.new_line_ratio {
            let newlines = memchr::memchr_iter(b'\n', text.as_bytes()).count();
            let mut words = 0usize;
            for_each_word(text, |_| words += 1);
            // No words but newlines: datatrove divides by zero; treat as a list.
            let r = if words == 0 {
                f64::INFINITY
            } else {
                newlines as f64 / words as f64
            };
            if r > thr {
                return Err(reason("fineweb_list_ratio", format!("{newlines} newlines / {words} words > {thr}")));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clean::filters::test_class as class;

    fn only(f: impl FnOnce(&mut FineWebQualityParams)) -> FineWebQuality {
        let mut p = FineWebQualityParams {
            line_punct_thr: None,
            line_punct_exclude_zero: false,
            short_line_thr: None,
            short_line_length: 30,
            char_duplicates_ratio: None,
            new_line_ratio: None,
        };
        f(&mut p);
        FineWebQuality::new(&p).unwrap()
    }

    /// Line `i`: a distinct 40-char line ending with `end`.
    fn line(i: usize, end: &str) -> String {
        format!("line number {i:04} of the test document here{end}")
    }

    #[test]
    fn terminal_punctuation_ratio() {
        let s = only(|p| p.line_punct_thr = Some(0.12));
        // 25 lines: 3 with a period = 0.12 → drop (<=); 4 = 0.16 → keep.
        let doc = |k: usize| {
            (0..25)
                .map(|i| line(i, if i < k { "." } else { "" }))
                .collect::<Vec<_>>()
                .join("\n")
        };
        assert_eq!(class(s.apply(&doc(3))), "fineweb_line_punct_ratio");
        assert_eq!(class(s.apply(&doc(4))), "keep");
        // Blank lines do not count.
        assert_eq!(class(s.apply(&doc(4).replace('\n', "\n\n\n"))), "keep");
        let z = only(|p| {
            p.line_punct_thr = Some(0.12);
            p.line_punct_exclude_zero = true
        });
        assert_eq!(class(z.apply(&doc(0))), "keep");
    }

    #[test]
    fn short_line_ratio() {
        let s = only(|p| p.short_line_thr = Some(0.67));
        // 100 lines; k short ("ok k") ones: 66 → keep, 67 → drop (>=).
        let doc = |k: usize| {
            (0..100)
                .map(|i| if i < k { format!("ok {i}") } else { line(i, ".") })
                .collect::<Vec<_>>()
                .join("\n")
        };
        assert_eq!(class(s.apply(&doc(66))), "keep");
        assert_eq!(class(s.apply(&doc(67))), "fineweb_short_line_ratio");
        // Exactly 30 chars is short, 31 is not.
        let thirty = "x".repeat(30);
        assert_eq!(class(s.apply(&thirty)), "fineweb_short_line_ratio");
        assert_eq!(class(s.apply(&"x".repeat(31))), "keep");
    }

    #[test]
    fn duplicate_chars_ratio() {
        let s = only(|p| p.char_duplicates_ratio = Some(0.01));
        // A 10-char line repeated once in 1000 chars (without newlines) = 0.01 → drop (>=).
        let rep = "abcdefghij";
        let filler_total = 1000 - 20;
        let filler: Vec<String> = (0..filler_total / 98).map(|i| format!("{i:02}{}", "y".repeat(96))).collect();
        let used: usize = filler.iter().map(String::len).sum();
        let last = "z".repeat(filler_total - used);
        let doc = format!("{rep}\n{rep}\n{}\n{last}", filler.join("\n"));
        assert_eq!(n_chars(&doc) - doc.matches('\n').count(), 1000);
        assert_eq!(class(s.apply(&doc)), "fineweb_char_dup_ratio");
        // One more character: 10/1001 < 0.01 → keep.
        assert_eq!(class(s.apply(&format!("{doc}X"))), "keep");
    }

    #[test]
    fn list_ratio() {
        let s = only(|p| p.new_line_ratio = Some(0.3));
        // 10 words, 3 newlines = 0.3 → keep; 4 → drop.
        assert_eq!(class(s.apply("a b c\nd e f\ng h\ni j")), "keep");
        assert_eq!(class(s.apply("a b c\nd e f\ng h\ni\nj")), "fineweb_list_ratio");
        assert_eq!(class(only(|_| {}).apply("\n \n")), "fineweb_empty");
        assert!(FineWebQualityParams::default().check().is_empty());
    }
}
