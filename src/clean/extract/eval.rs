//! Scoring an extractor on trafilatura's benchmark (../shared/data/extraction/trafilatura:
//! `evaldata.json` + `html/<file>.gz`), shared by `tests/extract_quality.rs` and
//! `benches/extract.rs`.
//!
//! The metric is trafilatura's (tests/eval_common.py, `count_item`): both the
//! output and each snippet are whitespace-normalised (runs of whitespace → one
//! space, trimmed); a "with" snippet found in the output is a true positive,
//! missing a false negative; a "without" snippet found is a false positive,
//! absent a true negative; a failed extraction counts as an empty output.

use flate2::read::MultiGzDecoder;
use rayon::prelude::*;
use std::io::Read;
use std::path::Path;

/// One annotated page of the benchmark.
#[derive(Debug, Clone)]
pub struct EvalItem {
    /// The evaldata.json key (a URL or "hard::name").
    pub key: String,
    /// File name under `html/`, without the `.gz` that was added to the shared copy.
    pub file: String,
    /// Snippets that must be in the extracted text.
    pub with: Vec<String>,
    /// Snippets that must not be.
    pub without: Vec<String>,
}

/// Reads `dir/evaldata.json` in file order; errors name the file and the entry.
pub fn load_evaldata(dir: &Path) -> Result<Vec<EvalItem>, String> {
    let path = dir.join("evaldata.json");
    let raw = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let map: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&raw).map_err(|e| format!("{}: {e}", path.display()))?;
    let strings = |v: &serde_json::Value, key: &str, field: &str| -> Result<Vec<String>, String> {
        v.get(field)
            .and_then(|a| a.as_array())
            .map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_string)).collect())
            .ok_or_else(|| format!("{}: entry {key:?}: field {field:?} is not a list", path.display()))
    };
    map.iter()
        .map(|(key, v)| {
            let file = v
                .get("file")
                .and_then(|f| f.as_str())
                .ok_or_else(|| format!("{}: entry {key:?}: no \"file\"", path.display()))?;
            Ok(EvalItem {
                key: key.clone(),
                file: file.to_string(),
                with: strings(v, key, "with")?,
                without: strings(v, key, "without")?,
            })
        })
        .collect()
}

/// Reads and gunzips `dir/html/<file>.gz`.
pub fn read_page(dir: &Path, item: &EvalItem) -> Result<Vec<u8>, String> {
    let path = dir.join("html").join(format!("{}.gz", item.file));
    let f = std::fs::File::open(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut out = Vec::new();
    MultiGzDecoder::new(f)
        .read_to_end(&mut out)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(out)
}

/// eval_common.py's `norm`: Python's `\s+` → " ", then strip. Python's `\s` is
/// `str.isspace()`, which is Rust's `char::is_whitespace` plus U+001C..U+001F.
pub fn norm(s: &str) -> String {
    let is_space = |c: char| c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c);
    let mut out = String::with_capacity(s.len());
    for w in s.split(is_space).filter(|w| !w.is_empty()) {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(w);
    }
    out
}

/// Confusion counts over snippets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Confusion {
    /// "with" snippets found.
    pub tp: usize,
    /// "without" snippets found.
    pub fp: usize,
    /// "with" snippets missing.
    pub fn_: usize,
    /// "without" snippets absent.
    pub tn: usize,
}

impl Confusion {
    /// Adds another page's counts.
    pub fn add(&mut self, o: Confusion) {
        self.tp += o.tp;
        self.fp += o.fp;
        self.fn_ += o.fn_;
        self.tn += o.tn;
    }
    /// TP / (TP + FP), 0 when empty.
    pub fn precision(&self) -> f64 {
        ratio(self.tp, self.tp + self.fp)
    }
    /// TP / (TP + FN), 0 when empty.
    pub fn recall(&self) -> f64 {
        ratio(self.tp, self.tp + self.fn_)
    }
    /// 2TP / (2TP + FP + FN), as eval_common.py computes it.
    pub fn f1(&self) -> f64 {
        ratio(2 * self.tp, 2 * self.tp + self.fp + self.fn_)
    }
    /// (TP + TN) / all.
    pub fn accuracy(&self) -> f64 {
        ratio(self.tp + self.tn, self.tp + self.tn + self.fp + self.fn_)
    }
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

/// Scores one page's output (`None` = the extractor failed or returned nothing).
pub fn count_item(item: &EvalItem, output: Option<&str>) -> Confusion {
    let out = output.map(norm).unwrap_or_default();
    let found = |s: &String| output.is_some() && out.contains(norm(s).as_str());
    let tp = item.with.iter().filter(|s| found(s)).count();
    let fp = item.without.iter().filter(|s| found(s)).count();
    Confusion {
        tp,
        fp,
        fn_: item.with.len() - tp,
        tn: item.without.len() - fp,
    }
}

/// Runs `extract` on every page (in parallel on the current rayon pool) and scores it;
/// returns the total and the per-page counts, in `items` order.
pub fn evaluate<F>(items: &[EvalItem], pages: &[Vec<u8>], extract: F) -> (Confusion, Vec<Confusion>)
where
    F: Fn(&[u8]) -> Option<String> + Sync,
{
    let per: Vec<Confusion> = items
        .par_iter()
        .zip(pages.par_iter())
        .map(|(item, page)| count_item(item, extract(page).as_deref()))
        .collect();
    let mut total = Confusion::default();
    per.iter().for_each(|c| total.add(*c));
    (total, per)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(with: &[&str], without: &[&str]) -> EvalItem {
        EvalItem {
            key: "k".into(),
            file: "f".into(),
            with: with.iter().map(|s| s.to_string()).collect(),
            without: without.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn norm_collapses_like_python_whitespace() {
        assert_eq!(norm("  a\t\n b\u{a0}c\u{1f}d  "), "a b c d");
        assert_eq!(norm(""), "");
    }

    #[test]
    fn counts_follow_eval_common() {
        let it = item(&["first  snippet", "missing"], &["Impressum", "absent"]);
        let c = count_item(&it, Some("the first\nsnippet and Impressum"));
        assert_eq!(
            c,
            Confusion {
                tp: 1,
                fp: 1,
                fn_: 1,
                tn: 1
            }
        );
        let none = count_item(&it, None);
        assert_eq!(
            none,
            Confusion {
                tp: 0,
                fp: 0,
                fn_: 2,
                tn: 2
            }
        );
        let mut t = c;
        t.add(none);
        assert_eq!((t.precision(), t.recall()), (0.5, 0.25));
        assert!((t.f1() - 2.0 / 6.0).abs() < 1e-12);
        assert_eq!(Confusion::default().f1(), 0.0);
    }
}
