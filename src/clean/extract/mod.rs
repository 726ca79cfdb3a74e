//! `extract`: HTML → main text and title.
//!
//! The page is parsed into [`tree`]'s arena by html5ever's tree builder, fed
//! by kiln's [`lexer`] (or html5ever's own tokenizer, for the rare page the
//! lexer leaves to it), then handled in three passes over flat arrays, never
//! a recursive walk (pages nest 100k deep in the wild and in our tests):
//!
//! 1. [`dom`] walks the tree once (iteratively, over sibling links) into an
//!    element table (parent, tag, boilerplate hints from id/class/role) and
//!    text blocks: each block-level element, `<br>` and flagged inline
//!    element ends a line; inline text is joined with whitespace collapsed.
//! 2. [`select`] drops boilerplate subtrees (navigation, headers/footers,
//!    cookie banners, comments, share bars, ads, hidden elements), scores
//!    containers readability-style (text length, commas, link density, tag
//!    and class hints, plus `<article>`/`<main>`/`itemprop=articleBody` as
//!    trafilatura prefers them) and keeps the best one and its
//!    qualifying siblings, with a paragraph baseline as fallback.
//! 3. The kept blocks become lines; link-heavy and boilerplate-phrase lines
//!    are dropped as `favor` asks.
//!
//! Before parsing, [`strip`] removes comments and script, style, svg and
//! similar elements at the byte level, and the attributes nothing here
//! reads: most of a real page, never read.
//!
//! Bad input: text that looks binary is rejected before parsing; input
//! longer than `max_html_bytes` is cut (at a character boundary) before
//! parsing, and nesting that would make html5ever quadratic is rejected as
//! `extract_too_deep` (see [`nesting`]: the lexer stops at the limit, and a
//! page left to html5ever's tokenizer, which cannot be interrupted, is
//! pre-scanned); every later loop checks the time budget, and a page that
//! overruns it is dropped as `extract_timeout` (so a hang is impossible and
//! the funnel counts it).

mod decode;
mod dom;
pub mod eval;
mod lexer;
mod nesting;
mod patterns;
mod select;
mod strip;
#[cfg(test)]
mod tests;
mod tree;

pub use decode::decode_html;

use crate::clean::Reason;
use std::time::{Duration, Instant};

/// How `extract` trades boilerplate removal against lost text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Favor {
    /// Drop doubtful lines (link-heavy, short, outside the main container); FineWeb's choice.
    Precision,
    /// Middle thresholds.
    Balanced,
    /// Keep doubtful lines and more sibling containers.
    Recall,
}

/// Parameters of the `extract` step (YAML; defaults documented in each field's doc comment).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ExtractParams {
    /// Precision/recall trade-off: `precision`, `balanced` or `recall`. Default `balanced`.
    pub favor: Favor,
    /// Pages whose main text has fewer characters are dropped as `extract_empty`. Default 1.
    pub min_text_chars: usize,
    /// Keep text in `<table>`s (one line per row, cells joined by " | "). Default true.
    pub include_tables: bool,
    /// Wall-clock budget per page in milliseconds, parsing included; 0 = none. Default 1000.
    pub time_budget_ms: u64,
    /// Input beyond this many bytes, counted after the strip pre-pass (comments, scripts, unread attributes), is cut
    /// off before parsing (the parser itself cannot be interrupted, so this bounds its time).
    /// Default 4 MiB.
    pub max_html_bytes: usize,
}

impl Default for ExtractParams {
    fn default() -> Self {
        ExtractParams {
            favor: Favor::Balanced,
            min_text_chars: 1,
            include_tables: true,
            time_budget_ms: 1000,
            max_html_bytes: 4 << 20,
        }
    }
}

/// The main text and title of one page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extracted {
    /// Main text: one line per paragraph, heading, list item or table row.
    pub text: String,
    /// `og:title`, else `<title>`, else the first `<h1>`; whitespace collapsed.
    pub title: Option<String>,
}

/// Extracts; Err is a reason string "<class>: <detail>" (e.g. "extract_empty: no main text",
/// "extract_timeout: 1000 ms budget hit", "extract_binary: ...").
pub fn extract(html: &str, p: &ExtractParams) -> Result<Extracted, Reason> {
    extract_page(html, p, true)
}

/// Strips and parses `html` into the tree [`extract`] walks, as it does, and returns
/// the node count, nothing more: the parsing-only ceiling `benches/extract.rs` sets
/// next to full extraction.
#[doc(hidden)]
pub fn parse_only(html: &str) -> usize {
    tree::Dom::parse(&strip::strip(html)).nodes.len()
}

/// [`extract`], with the [`strip`] pre-pass optional so that tests can show it changes nothing.
fn extract_page(html: &str, p: &ExtractParams, strip_first: bool) -> Result<Extracted, Reason> {
    let mut budget = Budget::new(p.time_budget_ms);
    if let Some(why) = looks_binary(html) {
        return Err(format!("extract_binary: {why}"));
    }
    let stripped = if strip_first { strip::strip(html) } else { html.into() };
    let html = cut(&stripped, p.max_html_bytes);
    let doc = tree::Dom::parse_within(html, MAX_PARSE_COST).map_err(|deepest| {
        format!("extract_too_deep: ~{deepest} nested elements; parsing would scan the open-element stack over {MAX_PARSE_COST} times")
    })?;
    budget.check_now()?;
    let page = dom::walk(&doc, p, &mut budget)?;
    // The tree is no longer needed; it is freed from a Vec, without recursion.
    drop(doc);
    let kept = select::select(&page, p, &mut budget)?;
    let text = select::assemble(&page, &kept, p);
    let chars = text.chars().count();
    if chars == 0 {
        return Err("extract_empty: no main text".into());
    }
    if chars < p.min_text_chars {
        return Err(format!(
            "extract_empty: {chars} chars of main text < min_text_chars {}",
            p.min_text_chars
        ));
    }
    Ok(Extracted { text, title: page.title() })
}

/// The most open-element-stack steps html5ever may take on one page (see [`nesting`]):
/// at the measured 7–14 ns a step, about 0.15–0.3 s of parsing. Real pages stay
/// below a few million.
const MAX_PARSE_COST: u64 = 20_000_000;

/// Cuts `s` to at most `max` bytes, at a character boundary.
fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Why the start of `html` looks like a binary payload decoded as text, if it does:
/// NUL bytes, many C0 control characters or U+FFFD replacement characters (what a
/// lossy decode of binary bytes leaves). Real HTML has almost none.
fn looks_binary(html: &str) -> Option<String> {
    let (mut n, mut bad) = (0usize, 0usize);
    for c in html.chars().take(8192) {
        n += 1;
        if c == '\u{FFFD}' || c == '\0' || (c.is_control() && !matches!(c, '\t' | '\n' | '\r' | '\x0c')) {
            bad += 1;
        }
    }
    // 10%: far above the odd stray control character in real pages, far below
    // the ~50% of random bytes that are invalid UTF-8 or control characters.
    if n > 0 && bad * 10 > n {
        return Some(format!("{bad} of the first {n} characters are control or replacement characters"));
    }
    None
}

/// The per-document time budget; `tick` is cheap and reads the clock every 1024 calls.
pub(crate) struct Budget {
    start: Instant,
    limit: Option<Duration>,
    ticks: u32,
}

impl Budget {
    fn new(ms: u64) -> Self {
        Budget {
            start: Instant::now(),
            limit: (ms > 0).then(|| Duration::from_millis(ms)),
            ticks: 0,
        }
    }

    /// Counts one unit of work; every 1024 units, fails if the budget is spent.
    #[inline]
    pub(crate) fn tick(&mut self) -> Result<(), Reason> {
        self.ticks = self.ticks.wrapping_add(1);
        if self.ticks & 1023 == 0 { self.check_now() } else { Ok(()) }
    }

    /// Fails if the budget is spent.
    pub(crate) fn check_now(&self) -> Result<(), Reason> {
        match self.limit {
            Some(limit) if self.start.elapsed() > limit => Err(format!("extract_timeout: {} ms budget hit", limit.as_millis())),
            _ => Ok(()),
        }
    }
}
