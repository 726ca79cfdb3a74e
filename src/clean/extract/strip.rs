//! A byte-level pre-pass that removes what `extract` never reads before
//! html5ever sees the page: comments, and script, style, noscript, svg and
//! math elements whole (48% of the bytes of the 990 trafilatura pages),
//! then the attributes of the remaining start tags that nothing reads
//! (37% of what is left, `benches/strip_share.py`). html5ever tokenizes
//! one character at a time, allocates every attribute and builds a node
//! for every svg path, so the parse is the cost it saves.
//!
//! The walk in [`super::dom`] skips those elements and their subtrees
//! anyway and never emits a space for them, so removing them leaves the
//! extracted text unchanged (`tests.rs` compares whole pages both ways).
//!
//! The scan follows the HTML tokenizer (WHATWG HTML §13.2.5) closely enough
//! not to cut text: start tags are stepped over with their quoted attribute
//! values (a `<!--` or `<script` inside an attribute is not markup), and the
//! RCDATA and raw-text elements that are kept (title, textarea, xmp, iframe,
//! noembed, noframes) are passed through unread, so `<title>Use <script>
//! tags</title>` keeps its title. What it does not recognise it copies as
//! is, leaving html5ever to repair it as it would have.

use memchr::memchr;
use std::borrow::Cow;

/// Elements removed whole, start tag to end tag.
const REMOVED: [&[u8]; 5] = [b"script", b"style", b"noscript", b"svg", b"math"];
/// Elements whose content the tokenizer reads as text up to their end tag.
const OPAQUE: [&[u8]; 6] = [b"title", b"textarea", b"xmp", b"iframe", b"noembed", b"noframes"];

/// `html` without comments and script/style/noscript/svg/math elements;
/// borrowed when there is nothing to remove.
pub(super) fn strip(html: &str) -> Cow<'_, str> {
    strip_within(html, &mut ScanBudget::for_page(html))
}

/// Bytes that svg/math scans may still read, and how many they have read.
/// A scan that finds the element left open is read again from the next
/// start tag inside it, so 100k unclosed `<svg>`s before a `<div>` would be
/// quadratic; once the budget is spent, no svg or math is scanned again and
/// they stay for html5ever (whose own cost `nesting` bounds).
struct ScanBudget {
    left: usize,
    /// Read only by the test that bounds the scans' work.
    #[cfg_attr(not(test), allow(dead_code))]
    read: usize,
}

impl ScanBudget {
    /// Twice the page plus 1 MiB: every real page's scans fit.
    fn for_page(html: &str) -> Self {
        ScanBudget {
            left: 2 * html.len() + (1 << 20),
            read: 0,
        }
    }

    /// Charges a scan's hop of `n` bytes; false once the budget is spent.
    fn charge(&mut self, n: usize) -> bool {
        self.read += n;
        match self.left.checked_sub(n) {
            Some(left) => {
                self.left = left;
                true
            }
            None => {
                self.left = 0;
                false
            }
        }
    }
}

/// [`strip`] against a given scan budget.
fn strip_within<'a>(html: &'a str, budget: &mut ScanBudget) -> Cow<'a, str> {
    let b = html.as_bytes();
    let mut out = String::new();
    // `html[copied..]` is what has not been copied to `out` yet.
    let mut copied = 0;
    let mut i = 0;
    // The attributes to drop from one start tag (reused: most tags have some).
    let mut spans = Vec::new();
    while let Some(off) = memchr(b'<', &b[i..]) {
        let lt = i + off;
        let rest = &b[lt..];
        if rest.starts_with(b"<!--") {
            let end = comment_end(b, lt);
            out.push_str(&html[copied..lt]);
            copied = end;
            i = end;
            continue;
        }
        let Some(&c) = rest.get(1) else { break };
        if !c.is_ascii_alphabetic() {
            // An end tag, doctype, CDATA or bogus comment: nothing to remove inside.
            i = lt + 1;
            continue;
        }
        let name_end = lt + 1 + b[lt + 1..].iter().position(|&c| is_name_end(c)).unwrap_or(b.len() - lt - 1);
        let name = &b[lt + 1..name_end];
        let Some(tag_end) = start_tag_end(b, name_end) else { break };
        if let Some(el) = REMOVED.iter().find(|el| name.eq_ignore_ascii_case(el)) {
            // svg and math are foreign content: `<svg/>` is a whole element there.
            let self_closed = matches!(*el, b"svg" | b"math") && b[..tag_end].ends_with(b"/>");
            let end = if self_closed {
                Some(tag_end)
            } else {
                element_end(b, tag_end, el, budget)
            };
            match end {
                Some(end) => {
                    out.push_str(&html[copied..lt]);
                    copied = end;
                    i = end;
                }
                None => i = tag_end,
            }
        } else {
            unread_attributes(b, name_end, tag_end, &mut spans);
            for span in spans.drain(..) {
                out.push_str(&html[copied..span.start]);
                copied = span.end;
            }
            if let Some(el) = OPAQUE.iter().find(|el| name.eq_ignore_ascii_case(el)) {
                i = end_tag_at(b, tag_end, el).unwrap_or(b.len());
            } else if name.eq_ignore_ascii_case(b"plaintext") {
                // Everything after `<plaintext>` is text.
                break;
            } else {
                i = tag_end;
            }
        }
    }
    if copied == 0 {
        return Cow::Borrowed(html);
    }
    out.push_str(&html[copied..]);
    Cow::Owned(out)
}

/// Attributes kept: those `extract` reads (`dom`, `patterns`), and those
/// that change how html5ever builds the tree (`type` of a hidden input in
/// a table, `color`/`face`/`size` of a `<font>` in foreign content,
/// `encoding` of `<annotation-xml>`). Every other attribute (href, src,
/// srcset, data-*, aria-*, on*...) is dropped: they are 37% of the bytes
/// left after the elements above on the 990 trafilatura pages, and html5ever
/// allocates every one.
const KEPT_ATTRIBUTES: [&[u8]; 14] = [
    b"class",
    b"id",
    b"role",
    b"itemprop",
    b"hidden",
    b"style",
    b"property",
    b"name",
    b"content",
    b"type",
    b"color",
    b"face",
    b"size",
    b"encoding",
];

/// Sets `spans` to the byte ranges of the attributes not in
/// [`KEPT_ATTRIBUTES`] in the start tag whose name ends at `from` and which
/// [`start_tag_end`] ends at `end`, each from its name to the end of its
/// value. The walk follows the tokenizer's attribute states
/// (§13.2.5.32–39; its whitespace is `u8::is_ascii_whitespace`); a tag it
/// ends elsewhere than `end`, or an unquoted value ending in `/` (dropping
/// it would make the tag self-closing), keeps every attribute.
fn unread_attributes(b: &[u8], from: usize, end: usize, spans: &mut Vec<std::ops::Range<usize>>) {
    spans.clear();
    let mut j = from;
    loop {
        // Before attribute name: whitespace and stray solidi are skipped.
        while j < end && (b[j].is_ascii_whitespace() || (b[j] == b'/' && b.get(j + 1) != Some(&b'>'))) {
            j += 1;
        }
        if j >= end || b[j] == b'>' || b[j] == b'/' {
            break;
        }
        let start = j;
        // A name may begin with `=`; then runs to whitespace, `/`, `>` or `=`.
        j += 1;
        while j < end && !b[j].is_ascii_whitespace() && !matches!(b[j], b'/' | b'>' | b'=') {
            j += 1;
        }
        let name = &b[start..j];
        let mut k = j;
        while k < end && b[k].is_ascii_whitespace() {
            k += 1;
        }
        let mut value_end = j;
        if b.get(k) == Some(&b'=') {
            k += 1;
            while k < end && b[k].is_ascii_whitespace() {
                k += 1;
            }
            match b.get(k) {
                Some(&q) if q == b'"' || q == b'\'' => match memchr(q, &b[k + 1..end]) {
                    Some(p) => value_end = k + 1 + p + 1,
                    None => return spans.clear(),
                },
                Some(b'>') => value_end = k,
                _ => {
                    let mut v = k;
                    while v < end && !b[v].is_ascii_whitespace() && b[v] != b'>' {
                        v += 1;
                    }
                    if v > k && b[v - 1] == b'/' {
                        return spans.clear();
                    }
                    value_end = v;
                }
            }
            j = value_end;
        }
        if !KEPT_ATTRIBUTES.iter().any(|k| name.eq_ignore_ascii_case(k)) {
            spans.push(start..value_end);
        }
    }
    if j + 1 != end && !(j + 2 == end && b[j] == b'/') {
        spans.clear();
    }
}

/// Where a tag name ends (§13.2.5.8: whitespace, `/` or `>`).
fn is_name_end(c: u8) -> bool {
    matches!(c, b'\t' | b'\n' | b'\x0c' | b'\r' | b' ' | b'/' | b'>')
}

/// The end of the comment opened at `lt`: after `-->`, or after `<!-->` /
/// `<!--->` (abruptly closed empty comments), or the end of input.
fn comment_end(b: &[u8], lt: usize) -> usize {
    let body = lt + 4;
    if b[body..].starts_with(b">") {
        return body + 1;
    }
    if b[body..].starts_with(b"->") {
        return body + 2;
    }
    // `-->`, or `--!>` (§13.2.5.50), whichever comes first. One memchr pass:
    // searching for each ending separately would rescan the rest of the page.
    let mut j = body;
    while let Some(p) = memchr(b'-', &b[j..]) {
        let at = j + p;
        let tail = &b[at..];
        if tail.starts_with(b"-->") {
            return at + 3;
        }
        if tail.starts_with(b"--!>") {
            return at + 4;
        }
        j = at + 1;
    }
    b.len()
}

/// The byte after the `>` closing the start tag whose name ends at `from`,
/// stepping over quoted attribute values; `None` if the input ends first
/// (the tokenizer then drops the tag and there is nothing after it).
fn start_tag_end(b: &[u8], from: usize) -> Option<usize> {
    let mut j = from;
    while j < b.len() {
        match b[j] {
            b'>' => return Some(j + 1),
            b'=' => {
                j += 1;
                while j < b.len() && b[j].is_ascii_whitespace() {
                    j += 1;
                }
                // An unquoted value is stepped over by the loop, which
                // must see a `>` right after the `=` (`<a href=>`).
                if let Some(&q) = b.get(j).filter(|&&q| q == b'"' || q == b'\'') {
                    j += 2 + memchr(q, &b[j + 1..])?;
                }
            }
            _ => j += 1,
        }
    }
    None
}

/// The byte after the end tag `</name ...>` found from `from`, or `None`.
fn end_tag_at(b: &[u8], from: usize, name: &[u8]) -> Option<usize> {
    let mut j = from;
    while let Some(p) = memchr(b'<', &b[j..]) {
        let at = j + p + 1;
        let after = at + 1 + name.len();
        if b.get(at) == Some(&b'/')
            && b.len() >= after
            && b[at + 1..after].eq_ignore_ascii_case(name)
            && b.get(after).is_none_or(|&c| is_name_end(c))
        {
            return Some(memchr(b'>', &b[after..]).map_or(b.len(), |q| after + q + 1));
        }
        j = at;
    }
    None
}

/// The end of a removed element whose start tag ends at `from`: its end tag,
/// or the end of input if it is never closed, as the tokenizer reads it.
/// `None` when it is not safe to remove: see [`foreign_end`].
fn element_end(b: &[u8], from: usize, name: &[u8], budget: &mut ScanBudget) -> Option<usize> {
    if matches!(name, b"svg" | b"math") {
        foreign_end(b, from, name, budget)
    } else {
        // script, style and noscript content is raw text: it cannot nest.
        Some(end_tag_at(b, from, name).unwrap_or(b.len()))
    }
}

/// HTML elements whose tags end svg and math early: the start tags that
/// "break out" of foreign content (WHATWG HTML §13.2.6.5), and the common
/// containers whose end tags close an svg left open inside them.
const BREAKOUT: [&[u8]; 48] = [
    b"b",
    b"big",
    b"blockquote",
    b"body",
    b"br",
    b"center",
    b"code",
    b"dd",
    b"div",
    b"dl",
    b"dt",
    b"em",
    b"embed",
    b"h1",
    b"h2",
    b"h3",
    b"h4",
    b"h5",
    b"h6",
    b"head",
    b"hr",
    b"i",
    b"img",
    b"li",
    b"listing",
    b"menu",
    b"meta",
    b"nobr",
    b"ol",
    b"p",
    b"pre",
    b"ruby",
    b"s",
    b"small",
    b"span",
    b"strong",
    b"strike",
    b"sub",
    b"sup",
    b"table",
    b"tt",
    b"u",
    b"ul",
    b"var",
    b"a",
    b"button",
    b"td",
    b"section",
];

/// The end of an svg or math element: its matching end tag, counting nested
/// ones. An svg left open (`<div><svg><use></div>`) is closed by the tree
/// builder at the next HTML tag, which a byte scan cannot follow, so any
/// tag from [`BREAKOUT`] (or `<font>`) before the end tag makes this `None`
/// and the element stays for html5ever. So does every svg or math once the
/// scans have spent `budget` (see [`ScanBudget`]).
fn foreign_end(b: &[u8], from: usize, name: &[u8], budget: &mut ScanBudget) -> Option<usize> {
    if budget.left == 0 {
        return None;
    }
    let mut depth = 1usize;
    let mut j = from;
    while let Some(p) = memchr(b'<', &b[j..]) {
        let lt = j + p;
        if !budget.charge(lt + 1 - j) {
            return None;
        }
        let (close, at) = if b.get(lt + 1) == Some(&b'/') {
            (true, lt + 2)
        } else {
            (false, lt + 1)
        };
        let Some(len) = b[at..].iter().position(|&c| is_name_end(c)) else {
            return Some(b.len());
        };
        let tag = &b[at..at + len];
        if tag.is_empty() || !tag[0].is_ascii_alphabetic() {
            j = lt + 1;
            continue;
        }
        if BREAKOUT.iter().chain([&&b"font"[..]]).any(|t| tag.eq_ignore_ascii_case(t)) {
            return None;
        }
        let end = start_tag_end(b, at + len)?;
        if tag.eq_ignore_ascii_case(name) {
            if close {
                depth -= 1;
                if depth == 0 {
                    return Some(end);
                }
            } else if !b[..end].ends_with(b"/>") {
                depth += 1;
            }
        }
        j = end;
    }
    Some(b.len())
}

#[cfg(test)]
mod tests {
    use super::{ScanBudget, strip, strip_within};

    #[test]
    fn removes_what_extract_never_reads() {
        let cases = [
            ("<p>a<!-- x --> b</p>", "<p>a b</p>"),
            ("<p>a<script>if (x<y) {}</script>b</p>", "<p>ab</p>"),
            ("<p>a<SCRIPT type='t'>x</Script >b", "<p>ab"),
            ("<style>p>b{}</style><p>t", "<p>t"),
            ("<noscript><img></noscript>t", "t"),
            ("<svg><svg><path/></svg><text>x</text></svg>t", "t"),
            ("<svg viewBox='0 0 1 1'/>t", "t"),
            ("<math><mi>x</mi></math>t", "t"),
            // An svg left open inside a div is closed by `</div>`: left for html5ever.
            ("<div><svg><use></div><p>t<svg/></p>", "<div><svg><use></div><p>t</p>"),
            // Abruptly closed comments, and the `--!>` form.
            ("a<!-->b<!--->c<!-- x --!>d", "abcd"),
            // Unclosed: to the end of input, as the tokenizer reads it.
            ("a<script>b", "a"),
            ("a<!-- b", "a"),
            // Attributes nothing reads go; class, id, style and the like stay.
            ("<a href=\"/x\" class='nav'>t</a>", "<a  class='nav'>t</a>"),
            ("<img src=a.png alt=\"x > y\" data-x>t", "<img   >t"),
            ("<div ID=main onclick=\"go('<p>')\"hidden>t</div>", "<div ID=main hidden>t</div>"),
            (
                "<meta property=og:title content=\"T\" itemprop=x lang=\"en\"/>",
                "<meta property=og:title content=\"T\" itemprop=x />",
            ),
            ("<input type=hidden value=1><br data-a = 'b' />", "<input type=hidden ><br  />"),
            ("<p =x title>t", "<p  >t"),
            ("<a href=>t</a>", "<a >t</a>"),
        ];
        for (html, want) in cases {
            assert_eq!(strip(html), want, "{html}");
        }
    }

    #[test]
    fn keeps_text_that_only_looks_like_markup() {
        for html in [
            "<title>Use <script> tags</title><p>a</p>",
            "<textarea><!-- not a comment --></textarea>",
            "<a class=\"<!-- x\" id='<script>'>link</a>",
            "<a class = '>' id=1>t</a>",
            "<p>1 < 2 and <3</p>",
            "<scripts>t</scripts><svgx>t</svgx>",
            "<plaintext><script>x</script>",
            "</script>t<!doctype html>",
            "<p>unclosed <b",
            // Dropping `src=a/` would make the tag self-closing: all stay.
            "<x src=a/>t",
            "<a href=\"x>t",
        ] {
            assert_eq!(strip(html), html, "{html}");
        }
        assert_eq!(
            strip("<title>a</title><script>x</script><textarea>b</textarea>"),
            "<title>a</title><textarea>b</textarea>"
        );
    }

    #[test]
    fn unclosed_svgs_before_a_breakout_stay_linear() {
        // Each `<svg>` scan stops at the `<div>` at the end and is read again
        // from the next one: quadratic without the budget (10^10 bytes here).
        // Counted, not timed: the scans read at most the budget and the one
        // hop that overran it, and the budget did engage.
        let html = format!("{}<div>t</div>", "<svg>".repeat(100_000));
        let mut budget = ScanBudget::for_page(&html);
        let limit = budget.left;
        assert_eq!(strip_within(&html, &mut budget), html);
        assert_eq!(budget.left, 0);
        assert!(budget.read <= limit + html.len(), "read {} of {limit}", budget.read);
    }
}
