//! Document-level quality filters: the rules and defaults of FILTERS.md
//! (Gopher, C4, FineWeb, as datatrove 0.10 implements them), URL
//! blocklists and length bounds.
//!
//! Each filter is a params struct (serde, one field per YAML knob, defaults
//! = the published values) plus a step object built once per node from it
//! (`new` loads lists and compiles regexes; errors name the file) whose
//! `apply` keeps a document or returns the [`Reason`] it was dropped for.
//! Steps are `Send + Sync` and hold no per-document state, so one instance
//! serves every rayon worker.

pub mod badwords;
pub mod c4;
pub mod fineweb;
pub mod gopher_quality;
pub mod gopher_repetition;
pub mod length;
pub mod url;

pub use badwords::{C4BadWords, C4BadWordsParams};
pub use c4::{C4Quality, C4QualityParams};
pub use fineweb::{FineWebQuality, FineWebQualityParams};
pub use gopher_quality::{GopherQuality, GopherQualityParams};
pub use gopher_repetition::{GopherRepetition, GopherRepetitionParams};
pub use length::{Length, LengthParams};
pub use url::{UrlFilter, UrlFilterParams};

pub use super::Reason;

/// A keep/drop result as its reason class (`keep` when kept), for tests.
#[cfg(test)]
pub(crate) fn test_class(r: Result<(), Reason>) -> String {
    match r {
        Ok(()) => "keep".into(),
        Err(e) => e.split(':').next().unwrap_or_default().to_string(),
    }
}

/// `(field, message)` for a parameter out of range; the same shape as the
/// spec's `RangeProblem`, declared here so `clean` does not depend on `spec`.
pub type Problem = (String, String);

/// `"<class>: <detail>"`, the reason convention of [`super`].
pub(crate) fn reason(class: &str, detail: impl std::fmt::Display) -> Reason {
    format!("{class}: {detail}")
}

/// Pushes a problem when an optional fraction is outside [0, 1].
pub(crate) fn check_frac(p: &mut Vec<Problem>, field: &str, v: Option<f64>) {
    if let Some(v) = v
        && !(0.0..=1.0).contains(&v)
    {
        p.push((field.into(), format!("{v} is out of range [0, 1]")));
    }
}

/// Pushes a problem when an optional value is negative or not finite.
pub(crate) fn check_non_negative(p: &mut Vec<Problem>, field: &str, v: Option<f64>) {
    if let Some(v) = v
        && !(v.is_finite() && v >= 0.0)
    {
        p.push((field.into(), format!("{v} must be a finite number >= 0")));
    }
}

/// Lines of a list file: trimmed, without empty lines and `#` comments
/// (the format of LDNOOBW, squidGuard and datatrove's bundled lists). The
/// error names the file.
pub(crate) fn read_list(path: &str, what: &str) -> Result<Vec<String>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read the {what} list `{path}`: {e}"))?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect())
}

/// Python's `len()` of a string: Unicode code points (datatrove's ratios
/// divide by it).
#[inline]
pub(crate) fn n_chars(s: &str) -> usize {
    if s.is_ascii() { s.len() } else { s.chars().count() }
}

/// `count / total`, 0 when `total` is 0 (the Python originals would raise).
#[inline]
pub(crate) fn ratio(count: usize, total: usize) -> f64 {
    if total == 0 { 0.0 } else { count as f64 / total as f64 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_take_defaults_null_turns_a_rule_off_and_unknown_fields_fail() {
        let p: GopherQualityParams =
            serde_json::from_value(serde_json::json!({"min_doc_words": null, "max_symbol_word_ratio": 0.2})).unwrap();
        assert_eq!(p.min_doc_words, None);
        assert_eq!(p.max_symbol_word_ratio, Some(0.2));
        assert_eq!(p.max_doc_words, Some(100_000));
        let r: GopherRepetitionParams = serde_json::from_value(serde_json::json!({"top_n_grams": [[2, 0.25]]})).unwrap();
        assert_eq!(r.top_n_grams, vec![(2, 0.25)]);
        let e = serde_json::from_value::<FineWebQualityParams>(serde_json::json!({"line_punct": 0.1})).unwrap_err();
        assert!(e.to_string().contains("unknown field `line_punct`"), "{e}");
        let u: UrlFilterParams = serde_json::from_value(serde_json::json!({"domains": ["example.com"]})).unwrap();
        assert_eq!(u.soft_word_threshold, 2);
    }

    #[test]
    fn every_step_is_send_and_sync() {
        fn ok<T: Send + Sync>() {}
        ok::<GopherQuality>();
        ok::<GopherRepetition>();
        ok::<C4Quality>();
        ok::<C4BadWords>();
        ok::<FineWebQuality>();
        ok::<UrlFilter>();
        ok::<Length>();
        ok::<crate::clean::langid::LangId>();
        ok::<crate::clean::pii::Pii>();
        ok::<crate::clean::normalize::Normalize>();
    }
}
