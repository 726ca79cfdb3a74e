//! Gopher's quality heuristics (Rae et al. 2021, appendix A1.1), as
//! datatrove 0.10 `GopherQualityFilter` implements them
//! (`src/datatrove/pipeline/filters/gopher_quality_filter.py`): rules are
//! checked in order and the first failing one drops the document.

use super::{Problem, Reason, check_frac, check_non_negative, ratio, reason};
use crate::clean::words::{for_each_word, is_symbol_word};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Parameters of `gopher_quality`; every rule is off when its field is null.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct GopherQualityParams {
    /// Drop below this many non-symbol words (default 50, Gopher table A1).
    pub min_doc_words: Option<u64>,
    /// Drop above this many non-symbol words (default 100,000).
    pub max_doc_words: Option<u64>,
    /// Drop when the mean length of non-symbol words is below this (default 3).
    pub min_avg_word_length: Option<f64>,
    /// Drop when the mean length of non-symbol words is above this (default 10).
    pub max_avg_word_length: Option<f64>,
    /// Drop when `#` count / tokens, or (`...` + `…`) count / tokens, is
    /// above this (default 0.1).
    pub max_symbol_word_ratio: Option<f64>,
    /// Drop when more than this fraction of lines start with `•` or `-`
    /// (default 0.9).
    pub max_bullet_lines_ratio: Option<f64>,
    /// Drop when more than this fraction of lines end with `...` or `…`
    /// (default 0.3).
    pub max_ellipsis_lines_ratio: Option<f64>,
    /// Drop when fewer than this fraction of tokens contain an alphabetic
    /// character (default 0.8; datatrove's `max_non_alpha_words_ratio`).
    pub min_alpha_words_ratio: Option<f64>,
    /// Drop when fewer than this many distinct stop words occur (default 2).
    pub min_stop_words: Option<u64>,
    /// The stop words, matched case-sensitively (default Gopher's
    /// the, be, to, of, and, that, have, with).
    pub stop_words: Vec<String>,
}

impl Default for GopherQualityParams {
    fn default() -> Self {
        GopherQualityParams {
            min_doc_words: Some(50),
            max_doc_words: Some(100_000),
            min_avg_word_length: Some(3.0),
            max_avg_word_length: Some(10.0),
            max_symbol_word_ratio: Some(0.1),
            max_bullet_lines_ratio: Some(0.9),
            max_ellipsis_lines_ratio: Some(0.3),
            min_alpha_words_ratio: Some(0.8),
            min_stop_words: Some(2),
            stop_words: ["the", "be", "to", "of", "and", "that", "have", "with"].map(String::from).to_vec(),
        }
    }
}

impl GopherQualityParams {
    /// `(field, message)` for each value out of range.
    pub fn check(&self) -> Vec<Problem> {
        let mut p = Vec::new();
        if let (Some(lo), Some(hi)) = (self.min_doc_words, self.max_doc_words)
            && lo > hi
        {
            p.push(("min_doc_words".into(), format!("{lo} is above max_doc_words {hi}")));
        }
        check_non_negative(&mut p, "min_avg_word_length", self.min_avg_word_length);
        check_non_negative(&mut p, "max_avg_word_length", self.max_avg_word_length);
        if let (Some(lo), Some(hi)) = (self.min_avg_word_length, self.max_avg_word_length)
            && lo > hi
        {
            p.push(("min_avg_word_length".into(), format!("{lo} is above max_avg_word_length {hi}")));
        }
        check_non_negative(&mut p, "max_symbol_word_ratio", self.max_symbol_word_ratio);
        check_frac(&mut p, "max_bullet_lines_ratio", self.max_bullet_lines_ratio);
        check_frac(&mut p, "max_ellipsis_lines_ratio", self.max_ellipsis_lines_ratio);
        check_frac(&mut p, "min_alpha_words_ratio", self.min_alpha_words_ratio);
        if let Some(n) = self.min_stop_words
            && n as usize > self.stop_words.len()
        {
            p.push((
                "min_stop_words".into(),
                format!("{n} is more than the {} stop words listed", self.stop_words.len()),
            ));
        }
        p
    }
}

/// The `gopher_quality` step.
#[derive(Debug, Clone)]
pub struct GopherQuality {
    p: GopherQualityParams,
}

impl GopherQuality {
    /// Builds the step (nothing to load; `p` should have passed `check`).
    pub fn new(p: &GopherQualityParams) -> Result<Self, String> {
        Ok(GopherQuality { p: p.clone() })
    }

    /// Keeps `text`, or names the first rule it fails.
    pub fn apply(&self, text: &str) -> Result<(), Reason> {
        let p = &self.p;
        // One pass over the tokens gathers every word statistic.
        let (mut n_words, mut n_non_symbol, mut non_symbol_chars, mut n_alpha) = (0usize, 0usize, 0usize, 0usize);
        let mut stop_seen = vec![false; p.stop_words.len()];
        for_each_word(text, |w| {
            n_words += 1;
            if !is_symbol_word(w) {
                n_non_symbol += 1;
                non_symbol_chars += w.chars().count();
            }
            if w.chars().any(char::is_alphabetic) {
                n_alpha += 1;
            }
            if let Some(i) = p.stop_words.iter().position(|s| s == w) {
                stop_seen[i] = true;
            }
        });

        if let Some(min) = p.min_doc_words
            && (n_non_symbol as u64) < min
        {
            return Err(reason("gopher_short_doc", format!("{n_non_symbol} words < {min}")));
        }
        if let Some(max) = p.max_doc_words
            && n_non_symbol as u64 > max
        {
            return Err(reason("gopher_long_doc", format!("{n_non_symbol} words > {max}")));
        }
        // With no words at all (only possible when min_doc_words is off)
        // the ratios below are undefined; datatrove would raise. Keep.
        if n_words == 0 {
            return Ok(());
        }
        if n_non_symbol > 0 {
            let avg = non_symbol_chars as f64 / n_non_symbol as f64;
            if let Some(min) = p.min_avg_word_length
                && avg < min
            {
                return Err(reason("gopher_below_avg_threshold", format!("mean word length {avg:.2} < {min}")));
            }
            if let Some(max) = p.max_avg_word_length
                && avg > max
            {
                return Err(reason("gopher_above_avg_threshold", format!("mean word length {avg:.2} > {max}")));
            }
        }
        if let Some(max) = p.max_symbol_word_ratio {
            let hashes = ratio(memchr::memchr_iter(b'#', text.as_bytes()).count(), n_words);
            if hashes > max {
                return Err(reason("gopher_too_many_hashes", format!("{hashes:.3} '#' per word > {max}")));
            }
            // Python's str.count counts non-overlapping occurrences, as matches() does.
            let ellipses = ratio(text.matches("...").count() + text.matches('…').count(), n_words);
            if ellipses > max {
                return Err(reason(
                    "gopher_too_many_ellipsis",
                    format!("{ellipses:.3} ellipses per word > {max}"),
                ));
            }
        }
        if p.max_bullet_lines_ratio.is_some() || p.max_ellipsis_lines_ratio.is_some() {
            let (mut lines, mut bullets, mut ellipsis) = (0usize, 0usize, 0usize);
            for line in text.lines() {
                lines += 1;
                let l = line.trim_start();
                bullets += usize::from(l.starts_with('•') || l.starts_with('-'));
                let r = line.trim_end();
                ellipsis += usize::from(r.ends_with("...") || r.ends_with('…'));
            }
            if let Some(max) = p.max_bullet_lines_ratio
                && ratio(bullets, lines) > max
            {
                return Err(reason(
                    "gopher_too_many_bullets",
                    format!("{bullets}/{lines} lines start with a bullet > {max}"),
                ));
            }
            if let Some(max) = p.max_ellipsis_lines_ratio
                && ratio(ellipsis, lines) > max
            {
                return Err(reason(
                    "gopher_too_many_end_ellipsis",
                    format!("{ellipsis}/{lines} lines end with an ellipsis > {max}"),
                ));
            }
        }
        if let Some(min) = p.min_alpha_words_ratio {
            let r = ratio(n_alpha, n_words);
            if r < min {
                return Err(reason(
                    "gopher_below_alpha_threshold",
                    format!("{r:.3} of words alphabetic < {min}"),
                ));
            }
        }
        if let Some(min) = p.min_stop_words {
            let n = stop_seen.iter().filter(|&&b| b).count() as u64;
            if n < min {
                // datatrove's class name, kept for comparable funnels.
                return Err(reason("gopher_enough_stop_words", format!("{n} distinct stop words < {min}")));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clean::filters::test_class as class;

    fn step() -> GopherQuality {
        GopherQuality::new(&GopherQualityParams::default()).unwrap()
    }

    /// `n` words of plain prose (4-letter mean length) with two stop words.
    fn prose(n: usize) -> String {
        let mut words = vec!["the", "and"];
        let pool = ["cats", "dogs", "rain", "grew", "quiet", "near", "rivers"];
        for i in 0..n - 2 {
            words.push(pool[i % pool.len()]);
        }
        words.join(" ")
    }

    #[test]
    fn word_count_threshold() {
        assert_eq!(class(step().apply(&prose(49))), "gopher_short_doc");
        assert_eq!(class(step().apply(&prose(50))), "keep");
        assert_eq!(class(step().apply(&prose(51))), "keep");
        // Punctuation tokens do not count as words.
        assert_eq!(class(step().apply(&format!("{} , , , .", prose(49)))), "gopher_short_doc");
        let p = GopherQualityParams {
            max_doc_words: Some(60),
            ..Default::default()
        };
        let s = GopherQuality::new(&p).unwrap();
        assert_eq!(class(s.apply(&prose(60))), "keep");
        assert_eq!(class(s.apply(&prose(61))), "gopher_long_doc");
    }

    #[test]
    fn mean_word_length_bounds() {
        // 50 words: "the and" + 48 × "ab" → mean (3+3+96)/50 = 2.04 < 3.
        let short = format!("the and {}", vec!["ab"; 48].join(" "));
        assert_eq!(class(step().apply(&short)), "gopher_below_avg_threshold");
        // Exactly 3.0 passes: "the and" + 48 × "abc".
        let three = format!("the and {}", vec!["abc"; 48].join(" "));
        assert_eq!(class(step().apply(&three)), "keep");
        // Mean just above 10: the + and + 48 × 11-letter words → (6 + 528)/50 = 10.68.
        let long = format!("the and {}", vec!["abcdefghijk"; 48].join(" "));
        assert_eq!(class(step().apply(&long)), "gopher_above_avg_threshold");
    }

    #[test]
    fn symbol_ratio() {
        // 100 word tokens; `#` glued to words so the token count stays 100.
        let base: Vec<String> = prose(100).split(' ').map(String::from).collect();
        let with = |k: usize| {
            base.iter()
                .enumerate()
                .map(|(i, w)| if i < k { format!("{w}#") } else { w.clone() })
                .collect::<Vec<_>>()
                .join(" ")
        };
        // `cats#` splits into `cats` + `#`: k hashes add k tokens → k/(100+k).
        assert_eq!(class(step().apply(&with(11))), "keep"); // 11/111 = 0.099
        assert_eq!(class(step().apply(&with(12))), "gopher_too_many_hashes"); // 12/112 = 0.107
    }

    #[test]
    fn bullet_and_ellipsis_lines() {
        let line = "the cat and the dog walked along the river bank today";
        // 10 lines, 9 bullets = 0.9 → keep; 10 bullets → drop.
        let doc = |bullets: usize| {
            (0..10)
                .map(|i| if i < bullets { format!("- {line}") } else { line.to_string() })
                .collect::<Vec<_>>()
                .join("\n")
        };
        assert_eq!(class(step().apply(&doc(9))), "keep");
        assert_eq!(class(step().apply(&doc(10))), "gopher_too_many_bullets");
        // 3 of 10 lines end with "…" = 0.3 → keep; 4 → drop.
        let ell = |k: usize| {
            (0..10)
                .map(|i| if i < k { format!("{line}…") } else { format!("{line}.") })
                .collect::<Vec<_>>()
                .join("\n")
        };
        assert_eq!(class(step().apply(&ell(3))), "keep");
        assert_eq!(class(step().apply(&ell(4))), "gopher_too_many_end_ellipsis");
    }

    #[test]
    fn alpha_ratio_and_stop_words() {
        // 80 alphabetic + 20 numeric tokens = 0.8 → keep; 79/100 → drop.
        let doc = |alpha: usize| {
            let mut w: Vec<String> = prose(alpha).split(' ').map(String::from).collect();
            w.extend((0..100 - alpha).map(|i| format!("{}", 1000 + i)));
            w.join(" ")
        };
        assert_eq!(class(step().apply(&doc(80))), "keep");
        assert_eq!(class(step().apply(&doc(79))), "gopher_below_alpha_threshold");
        // One distinct stop word (repeated) is not enough; case matters.
        let one = prose(60).replace("and", "the");
        assert_eq!(class(step().apply(&one)), "gopher_enough_stop_words");
        let upper = prose(60).replace("the", "The");
        assert_eq!(class(step().apply(&upper)), "gopher_enough_stop_words");
    }

    #[test]
    fn disabled_rules_and_check() {
        let off = GopherQualityParams {
            min_doc_words: None,
            max_doc_words: None,
            min_avg_word_length: None,
            max_avg_word_length: None,
            max_symbol_word_ratio: None,
            max_bullet_lines_ratio: None,
            max_ellipsis_lines_ratio: None,
            min_alpha_words_ratio: None,
            min_stop_words: None,
            stop_words: vec![],
        };
        assert_eq!(class(GopherQuality::new(&off).unwrap().apply("# ... 1 2")), "keep");
        assert_eq!(class(GopherQuality::new(&off).unwrap().apply("")), "keep");
        assert!(GopherQualityParams::default().check().is_empty());
        let bad = GopherQualityParams {
            min_alpha_words_ratio: Some(1.5),
            min_stop_words: Some(9),
            ..Default::default()
        };
        let fields: Vec<String> = bad.check().into_iter().map(|(f, _)| f).collect();
        assert_eq!(fields, vec!["min_alpha_words_ratio", "min_stop_words"]);
    }
}
