//! Language identification with lingua (the 37 languages compiled into
//! kiln, see Cargo.toml): a `lang` (ISO 639-1) and a `lang_score` column,
//! then a keep rule, as FineWeb keeps English with score > 0.65.
//!
//! The score is lingua's confidence for its top language
//! (`compute_language_confidence_values`, which sums to 1 over the
//! detector's languages), computed on the text with newlines turned into
//! spaces (FILTERS.md) and cut at `max_chars` characters: language is
//! settled long before 2,000 characters and the cost grows with length.
//!
//! The detector is built once per step with all models preloaded (lazy
//! loading would take a lock on the hot path). For texts of 120 letters or
//! more, [`trigrams`] first narrows the candidates to the few languages that
//! can win and often settles the answer itself; lingua's answer comes about
//! seven times sooner on a crawl (BENCHMARKS.md; `shortlist: false` asks
//! every language, as before).
//!
//! High-accuracy mode is the default, measured on this machine (tests/langid_accuracy.rs,
//! tests/clean_filters_real.rs): on lingua's test sentences it scores
//! 98.96% mean over the 37 languages against 97.19% for low-accuracy mode
//! at 0.87× the speed (509 vs 586 sentences/s on one core); on the 300
//! English C4 demo documents it labels 300/300 English where low-accuracy
//! mode labels 275/300, and it is faster there (121 vs 94 docs/s).

mod trigrams;

use lingua::{IsoCode639_1, Language, LanguageDetector, LanguageDetectorBuilder};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use std::collections::HashMap;
use std::str::FromStr;
use std::sync::OnceLock;
use trigrams::{Shortlist, Trigrams};

/// Parameters of `langid`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct LangIdParams {
    /// ISO 639-1 codes to keep; empty keeps every document and only adds
    /// the columns (default `[en]`, FineWeb's).
    pub keep: Vec<String>,
    /// Drop documents whose top-language score is below this (default
    /// 0.65, FineWeb's; applies only when `keep` is not empty).
    pub min_score: f64,
    /// Characters of the text examined (default 2000).
    pub max_chars: usize,
    /// Restrict detection to these ISO 639-1 codes (default empty: all
    /// compiled languages). Fewer candidates is faster and avoids confusing
    /// close languages that cannot occur in the data.
    pub languages: Vec<String>,
    /// lingua's high-accuracy mode (uni- to 5-grams; default true: more
    /// accurate on sentences and on documents, see the module docs).
    pub high_accuracy: bool,
    /// Score texts of 120+ letters against the few languages within reach of
    /// the best, found from lingua's own trigram tables (default true; same
    /// answer as asking every language, see `langid/trigrams.rs`; applies in
    /// high-accuracy mode).
    pub shortlist: bool,
}

impl Default for LangIdParams {
    fn default() -> Self {
        LangIdParams {
            keep: vec!["en".into()],
            min_score: 0.65,
            max_chars: 2000,
            languages: vec![],
            high_accuracy: true,
            shortlist: true,
        }
    }
}

/// `(language, iso 639-1 code)` of every compiled language, sorted by code.
fn table() -> &'static [(Language, String)] {
    static T: OnceLock<Vec<(Language, String)>> = OnceLock::new();
    T.get_or_init(|| {
        let mut v: Vec<(Language, String)> = Language::all().into_iter().map(|l| (l, l.iso_code_639_1().to_string())).collect();
        v.sort_by(|a, b| a.1.cmp(&b.1));
        v
    })
}

/// The ISO 639-1 codes of the languages kiln can detect.
pub fn supported_codes() -> Vec<&'static str> {
    table().iter().map(|(_, c)| c.as_str()).collect()
}

/// The compiled language for an ISO 639-1 code (case-insensitive).
fn language_of(code: &str) -> Option<Language> {
    let iso = IsoCode639_1::from_str(code.trim()).ok()?;
    table().iter().find(|(l, _)| l.iso_code_639_1() == iso).map(|(l, _)| *l)
}

/// The ISO 639-1 code of a compiled language.
fn code_of(lang: Language) -> Option<&'static str> {
    table().iter().find(|(l, _)| *l == lang).map(|(_, c)| c.as_str())
}

/// The error text for an unknown code, with the closest supported one.
fn unknown_code(code: &str) -> String {
    let best = supported_codes()
        .into_iter()
        .map(|c| (strsim::levenshtein(&code.to_lowercase(), c), c))
        .min();
    let hint = match best {
        Some((d, c)) if d <= 1 => format!("; did you mean `{c}`?"),
        _ => String::new(),
    };
    format!(
        "`{code}` is not a supported language code{hint} (supported: {})",
        supported_codes().join(", ")
    )
}

impl LangIdParams {
    /// `(field, message)` for unknown codes and values out of range.
    pub fn check(&self) -> Vec<(String, String)> {
        let mut p = Vec::new();
        for (field, list) in [("keep", &self.keep), ("languages", &self.languages)] {
            for code in list {
                if language_of(code).is_none() {
                    p.push((field.into(), unknown_code(code)));
                }
            }
        }
        if !self.languages.is_empty() {
            for code in &self.keep {
                if language_of(code).is_some() && !self.languages.iter().any(|l| l.eq_ignore_ascii_case(code.trim())) {
                    p.push((
                        "keep".into(),
                        format!("`{code}` is not among `languages`, so it can never be detected"),
                    ));
                }
            }
            if self.languages.len() < 2 {
                p.push((
                    "languages".into(),
                    "give at least two languages (one would always score 1.0)".into(),
                ));
            }
        }
        if !(0.0..=1.0).contains(&self.min_score) {
            p.push(("min_score".into(), format!("{} is out of range [0, 1]", self.min_score)));
        }
        if self.max_chars == 0 {
            p.push(("max_chars".into(), "must be at least 1".into()));
        }
        p
    }
}

/// The `langid` step.
pub struct LangId {
    detector: LanguageDetector,
    /// Codes of the detector's languages, to answer `&'static str`.
    keep: Vec<Language>,
    min_score: f64,
    max_chars: usize,
    /// The trigram table and the bits of this detector's languages in it.
    shortlist: Option<(&'static Trigrams, u64)>,
}

/// The trigram table of every compiled language, read once per process.
fn trigram_table() -> Result<&'static Trigrams, String> {
    static T: OnceLock<Result<Trigrams, String>> = OnceLock::new();
    T.get_or_init(|| Trigrams::load(&table().iter().map(|(l, _)| *l).collect::<Vec<_>>()))
        .as_ref()
        .map_err(Clone::clone)
}

thread_local! {
    /// Detectors for shortlists, by the shortlist's bits in the trigram table.
    /// Building one is cheap (the models are loaded once, process-wide), but
    /// not free; a crawl needs a few dozen distinct shortlists.
    static SMALL: RefCell<HashMap<u64, LanguageDetector>> = RefCell::new(HashMap::new());
}

impl std::fmt::Debug for LangId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LangId")
            .field("keep", &self.keep)
            .field("min_score", &self.min_score)
            .finish()
    }
}

impl LangId {
    /// Builds the detector and preloads its models; unknown codes are errors.
    pub fn new(p: &LangIdParams) -> Result<Self, String> {
        let resolve = |list: &[String]| -> Result<Vec<Language>, String> {
            list.iter().map(|c| language_of(c).ok_or_else(|| unknown_code(c))).collect()
        };
        let keep = resolve(&p.keep)?;
        let langs = resolve(&p.languages)?;
        let mut b = if langs.is_empty() {
            LanguageDetectorBuilder::from_all_languages()
        } else {
            LanguageDetectorBuilder::from_languages(&langs)
        };
        b.with_preloaded_language_models();
        if !p.high_accuracy {
            b.with_low_accuracy_mode();
        }
        // lingua's models and the trigram table load side by side: together
        // they are most of a `clean` node's start (0.26 s on one core).
        // A scoped thread, not rayon: see `Trigrams::load`.
        let (detector, table) = if p.high_accuracy && p.shortlist {
            std::thread::scope(|s| {
                let table = s.spawn(trigram_table);
                let detector = b.build();
                (detector, Some(table.join().unwrap_or_else(|e| std::panic::resume_unwind(e))))
            })
        } else {
            (b.build(), None)
        };
        let shortlist = if let Some(t) = table {
            let t = t?;
            let langs = if langs.is_empty() { t.langs.clone() } else { langs };
            Some((t, t.mask(&langs)))
        } else {
            None
        };
        Ok(LangId {
            detector,
            keep,
            min_score: p.min_score,
            max_chars: p.max_chars.max(1),
            shortlist,
        })
    }

    /// `(ISO 639-1 code of the top language, its confidence)`; `(None, 0.0)`
    /// when the text holds nothing lingua can classify (no letters).
    pub fn detect(&self, text: &str) -> (Option<&'static str>, f64) {
        let prepared = self.prepare(text);
        let short = self.shortlist.and_then(|(t, allowed)| Some((t, t.shortlist(&prepared, allowed)?)));
        let values = match short {
            Some((_, Shortlist::Decided(lang))) => vec![(lang, 1.0)],
            Some((t, Shortlist::Ask(langs))) => SMALL.with_borrow_mut(|small| {
                if small.len() > 1024 {
                    small.clear();
                }
                small
                    .entry(t.mask(&langs))
                    .or_insert_with(|| LanguageDetectorBuilder::from_languages(&langs).build())
                    .compute_language_confidence_values(prepared)
            }),
            None => self.detector.compute_language_confidence_values(prepared),
        };
        match values.first() {
            Some(&(lang, score)) if score > 0.0 => (code_of(lang), score),
            _ => (None, 0.0),
        }
    }

    /// How [`LangId::detect`] answers for `text` (a diagnostic, for tests):
    /// `Some(vec![code])` when the shortlist settles it alone, `Some(codes)`
    /// when it asks lingua about those, `None` when it asks every language.
    pub fn shortlist_of(&self, text: &str) -> Option<Vec<&'static str>> {
        let (t, allowed) = self.shortlist?;
        let langs = match t.shortlist(&self.prepare(text), allowed)? {
            Shortlist::Decided(l) => vec![l],
            Shortlist::Ask(langs) => langs,
        };
        Some(langs.iter().filter_map(|&l| code_of(l)).collect())
    }

    /// The text lingua sees: cut at `max_chars` characters, newlines as spaces.
    fn prepare(&self, text: &str) -> String {
        let cut = match text.char_indices().nth(self.max_chars) {
            Some((i, _)) => &text[..i],
            None => text,
        };
        cut.chars().map(|c| if c == '\n' || c == '\r' { ' ' } else { c }).collect()
    }

    /// The keep rule on [`LangId::detect`]'s result: with a `keep` list, the
    /// language must be in it and score at least `min_score`.
    pub fn apply(&self, lang: Option<&str>, score: f64) -> Result<(), super::Reason> {
        if self.keep.is_empty() {
            return Ok(());
        }
        let Some(code) = lang else {
            return Err("langid_unknown: no language detected".to_string());
        };
        let kept = language_of(code).is_some_and(|l| self.keep.contains(&l));
        if !kept {
            return Err(format!("langid_not_kept: {code} ({score:.2})"));
        }
        if score < self.min_score {
            return Err(format!("langid_low_score: {code} {score:.2} < {}", self.min_score));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_validation() {
        let codes = supported_codes();
        assert_eq!(codes.len(), 37);
        assert!(codes.contains(&"en") && codes.contains(&"nb") && codes.contains(&"zh"));
        assert!(LangIdParams::default().check().is_empty());
        let bad = LangIdParams {
            keep: vec!["eng".into(), "xx".into()],
            ..Default::default()
        };
        let p = bad.check();
        assert_eq!(p.len(), 2);
        assert!(p[0].1.contains("did you mean `en`"), "{}", p[0].1);
        assert!(LangId::new(&bad).unwrap_err().contains("`eng`"));
        let not_in = LangIdParams {
            keep: vec!["en".into()],
            languages: vec!["de".into(), "fr".into()],
            ..Default::default()
        };
        assert_eq!(not_in.check().len(), 1);
        assert_eq!(
            LangIdParams {
                min_score: 1.5,
                ..Default::default()
            }
            .check()
            .len(),
            1
        );
    }

    #[test]
    fn detects_and_applies_the_keep_rule() {
        let p = LangIdParams {
            languages: vec!["en".into(), "de".into(), "fr".into()],
            ..Default::default()
        };
        let s = LangId::new(&p).unwrap();
        let (l, score) = s.detect("The quick brown fox jumps over the lazy dog.\nIt was a sunny day in the park.");
        assert_eq!(l, Some("en"));
        assert!(score > 0.65, "{score}");
        assert!(s.apply(l, score).is_ok());
        let (l, score) = s.detect("Der schnelle braune Fuchs springt über den faulen Hund.");
        assert_eq!(l, Some("de"));
        assert!(s.apply(l, score).unwrap_err().starts_with("langid_not_kept"));
        assert!(s.apply(Some("en"), 0.64).unwrap_err().starts_with("langid_low_score"));
        assert!(s.apply(Some("en"), 0.65).is_ok());
        assert_eq!(s.detect("1234 5678 !!!"), (None, 0.0));
        assert!(s.apply(None, 0.0).unwrap_err().starts_with("langid_unknown"));
        let all = LangId::new(&LangIdParams { keep: vec![], ..p }).unwrap();
        assert!(all.apply(None, 0.0).is_ok());
    }
}
