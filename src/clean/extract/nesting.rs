//! A linear pre-scan that bounds html5ever's worst case before parsing.
//!
//! html5ever keeps every nesting level (it has no depth cap), and some of
//! its steps scan the stack of open elements: a block start tag looks for an
//! open `<p>` "in button scope", an end tag that does not match the current
//! element searches the stack for its match. On 100k nested `<div>`s, or
//! 100k `<span>`s followed by 100k stray `</i>`, that is quadratic: minutes
//! measured here (≈ 7–14 ns per element scanned). The parser cannot be
//! interrupted, so this scan mirrors those stack walks on a cheap tag-name
//! stack and reports the page when their total would pass a limit. Its own
//! work is bounded by the same count, so it is linear plus the limit.

use memchr::memchr_iter;

/// Void and implicitly closed elements: they never deepen the stack for long.
const FLAT: &[&[u8]] = &[
    b"area",
    b"base",
    b"br",
    b"col",
    b"embed",
    b"hr",
    b"img",
    b"input",
    b"link",
    b"meta",
    b"param",
    b"source",
    b"track",
    b"wbr",
    b"p",
    b"li",
    b"dt",
    b"dd",
    b"option",
    b"tr",
    b"td",
    b"th",
    b"!doctype",
    b"frame",
    b"keygen",
];

/// Start tags whose insertion checks for an open `<p>` in button scope (the HTML spec's
/// "in body" rules for block elements).
const SCANNING: &[&[u8]] = &[
    b"div",
    b"p",
    b"section",
    b"article",
    b"aside",
    b"blockquote",
    b"center",
    b"details",
    b"dialog",
    b"dir",
    b"dl",
    b"fieldset",
    b"figcaption",
    b"figure",
    b"footer",
    b"header",
    b"hgroup",
    b"main",
    b"menu",
    b"nav",
    b"ol",
    b"ul",
    b"h1",
    b"h2",
    b"h3",
    b"h4",
    b"h5",
    b"h6",
    b"pre",
    b"listing",
    b"form",
    b"li",
    b"dd",
    b"dt",
    b"table",
    b"hr",
    b"address",
    b"summary",
    b"search",
    b"xmp",
    b"plaintext",
];

/// Elements whose content is raw text: skipped to their end tag.
const RAW: &[&[u8]] = &[
    b"script",
    b"style",
    b"textarea",
    b"title",
    b"xmp",
    b"iframe",
    b"noembed",
    b"noframes",
    b"noscript",
];

/// html5ever's stack of open elements, estimated from tags alone: each entry a
/// hash of the tag name; `cost` counts the elements its stack scans would visit.
#[derive(Default)]
pub(super) struct Nesting {
    stack: Vec<u64>,
    /// The estimated stack-scan steps so far.
    pub cost: u64,
    /// The deepest estimated nesting so far.
    pub deepest: usize,
}

impl Nesting {
    /// One tag: `name16` is its ASCII lower-cased name cut to 16 bytes, `len` the
    /// whole name's length. Returns whether a start tag opens raw text (whose
    /// end tag the caller finds; the element itself is not stacked).
    pub(super) fn tag(&mut self, end_tag: bool, name16: &[u8], len: usize, self_closing: bool) -> bool {
        let key = name16.iter().fold(len as u64, |k, c| k.rotate_left(7) ^ *c as u64);
        let known = |set: &[&[u8]]| len <= 16 && set.contains(&name16);
        let flat = known(FLAT);
        let stack = &mut self.stack;
        if end_tag {
            if flat {
                return false;
            }
            if stack.last() == Some(&key) {
                stack.pop();
            } else {
                // Searched from the top, as html5ever does; popped to the match if any.
                let found = stack.iter().rposition(|k| *k == key);
                self.cost += (stack.len() - found.unwrap_or(0)) as u64;
                if let Some(i) = found {
                    stack.truncate(i);
                }
            }
            return false;
        }
        if known(SCANNING) {
            self.cost += stack.len() as u64;
        }
        if known(RAW) {
            return true;
        }
        if !flat && !self_closing {
            stack.push(key);
            self.deepest = self.deepest.max(stack.len());
        }
        false
    }
}

/// The estimated stack-scan cost of parsing `html`, and the deepest estimated nesting;
/// stops counting once the cost passes `limit`.
pub(super) fn parse_cost(html: &str, limit: u64) -> (u64, usize) {
    let b = html.as_bytes();
    let mut nesting = Nesting::default();
    let mut skip_to = 0usize;
    for pos in memchr_iter(b'<', b) {
        if pos < skip_to {
            continue;
        }
        let rest = &b[pos + 1..];
        if rest.starts_with(b"!--") {
            skip_to = memchr::memmem::find(&rest[3..], b"-->").map_or(b.len(), |i| pos + 4 + i + 3);
            continue;
        }
        let (end_tag, name_at) = if rest.first() == Some(&b'/') { (true, 1) } else { (false, 0) };
        let rest = &rest[name_at..];
        if !rest.first().is_some_and(u8::is_ascii_alphabetic) {
            continue;
        }
        let len = rest.iter().take_while(|c| c.is_ascii_alphanumeric()).count();
        let mut buf = [0u8; 16];
        let n = len.min(16);
        buf[..n].copy_from_slice(&rest[..n]);
        buf.make_ascii_lowercase();
        let name = &buf[..n];
        let self_closing = !end_tag && {
            let attrs = &rest[len..rest.len().min(len + 2048)];
            attrs.iter().take_while(|c| **c != b'>').last() == Some(&b'/')
        };
        if nesting.tag(end_tag, name, len, self_closing) {
            skip_to = find_end_tag(b, pos + 1 + len, name);
            continue;
        }
        if nesting.cost > limit {
            break;
        }
    }
    (nesting.cost, nesting.deepest)
}

/// Position of the `</name` (ASCII case-insensitive) that ends a raw-text element, or the end.
fn find_end_tag(b: &[u8], from: usize, name: &[u8]) -> usize {
    let from = from.min(b.len());
    memchr::memmem::find_iter(&b[from..], b"</")
        .map(|i| from + i)
        .find(|&i| b.get(i + 2..i + 2 + name.len()).is_some_and(|n| n.eq_ignore_ascii_case(name)))
        .unwrap_or(b.len())
}
