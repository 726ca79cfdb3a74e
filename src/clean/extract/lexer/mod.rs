//! A fast HTML tokenizer for the pages extraction sees, feeding html5ever's own tree builder.
//!
//! html5ever's tokenizer pops its input a character at a time from a buffer
//! queue and grows every token in tendrils: the top of the extraction
//! profile before this lexer (BENCHMARKS.md, "Extraction with kiln's own
//! lexer"). What [`super::strip`] leaves is mostly text and plain tags with
//! a few attributes, so this lexer finds the next `<` or `&` with memchr,
//! cuts text and names straight out of the input, and hands html5ever's
//! `TreeBuilder` the tokens html5ever's tokenizer would have made:
//! the tree, and so the extraction, is the same.
//!
//! It follows the WHATWG tokenizer (HTML §13.2.5) as html5ever 0.40 implements
//! it, for the common shapes only. Anything else gives up ([`GiveUp`]), and the
//! caller parses the page again with html5ever whole: NUL characters, CDATA,
//! script data, a `=` starting an attribute name, input ending inside a tag or
//! comment, doctypes other than a name with optional public and system ids, and
//! numeric references without digits.

use super::nesting::Nesting;
use html5ever::data::{C1_REPLACEMENTS, NAMED_ENTITIES};
use html5ever::tendril::StrTendril;
use html5ever::tokenizer::states::RawKind;
use html5ever::tokenizer::{Doctype, Tag, TagKind, Token, TokenSink, TokenSinkResult};
use html5ever::{Attribute, LocalName, QualName, ns};

/// The page has something this lexer leaves to html5ever's tokenizer: what, in a word.
/// The reason is for tests, which count the fallbacks on real pages.
#[derive(Debug)]
pub(super) struct GiveUp(#[cfg_attr(not(test), allow(dead_code))] pub &'static str);

type Lexed<T> = Result<T, GiveUp>;

/// What the tokenizer reads next, as the tree builder asked.
enum Mode {
    Data,
    /// RCDATA (`rcdata`, with character references) or RAWTEXT, until `</end`.
    Raw {
        rcdata: bool,
        end: LocalName,
    },
    Plaintext,
}

/// Tokenizes `html` into `sink` (html5ever's tree builder), ending with the EOF
/// token. On [`GiveUp`] the sink holds a partial tree and must be thrown away;
/// that includes a page whose estimated stack scans ([`Nesting`]) pass `limit`,
/// which stops the tree builder before it does that much work.
pub(super) fn run<S: TokenSink>(html: &str, sink: &S, limit: u64) -> Lexed<()> {
    // The input stream's preprocessing: CR LF and lone CR become LF; a BOM goes.
    let normalized;
    let mut html = html.strip_prefix('\u{FEFF}').unwrap_or(html);
    if memchr::memchr(b'\r', html.as_bytes()).is_some() {
        normalized = html.replace("\r\n", "\n").replace('\r', "\n");
        html = &normalized;
    }
    let mut lx = Lexer {
        s: html,
        b: html.as_bytes(),
        text: StrTendril::new(),
        sink,
        nesting: Nesting::default(),
        limit,
    };
    lx.tokens()
}

struct Lexer<'a, S> {
    s: &'a str,
    b: &'a [u8],
    /// Character data not yet handed to the sink.
    text: StrTendril,
    sink: &'a S,
    nesting: Nesting,
    limit: u64,
}

fn is_ws(c: u8) -> bool {
    matches!(c, b'\t' | b'\n' | b'\x0c' | b' ')
}

/// The first index from `i` on that is not the tokenizer's whitespace.
fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && is_ws(b[i]) {
        i += 1;
    }
    i
}

impl<S: TokenSink> Lexer<'_, S> {
    fn tokens(&mut self) -> Lexed<()> {
        let mut mode = Mode::Data;
        let mut i = 0;
        while i < self.b.len() {
            let (next, new_mode) = match &mode {
                Mode::Data => self.data(i)?,
                Mode::Raw { rcdata, end } => self.raw(i, *rcdata, end)?,
                Mode::Plaintext => {
                    if memchr::memchr(0, &self.b[i..]).is_some() {
                        return Err(GiveUp("nul"));
                    }
                    self.text.push_slice(&self.s[i..]);
                    (self.b.len(), None)
                }
            };
            i = next;
            if let Some(m) = new_mode {
                mode = m;
            }
        }
        self.emit(Token::EOFToken)?;
        self.sink.end();
        Ok(())
    }

    /// Hands `token` to the sink, after any pending text; what the sink asks the
    /// tokenizer to do next.
    fn emit(&mut self, token: Token) -> Lexed<Option<Mode>> {
        self.flush();
        let name = match &token {
            Token::TagToken(t) if t.kind == TagKind::StartTag => Some(t.name.clone()),
            _ => None,
        };
        Ok(match self.sink.process_token(token, 1) {
            TokenSinkResult::Continue | TokenSinkResult::EncodingIndicator(_) => None,
            TokenSinkResult::Plaintext => Some(Mode::Plaintext),
            TokenSinkResult::RawData(RawKind::Rcdata) => Some(Mode::Raw {
                rcdata: true,
                end: name.ok_or(GiveUp("raw data"))?,
            }),
            TokenSinkResult::RawData(RawKind::Rawtext) => Some(Mode::Raw {
                rcdata: false,
                end: name.ok_or(GiveUp("raw data"))?,
            }),
            TokenSinkResult::RawData(RawKind::ScriptData | RawKind::ScriptDataEscaped(_)) | TokenSinkResult::Script(_) => {
                return Err(GiveUp("script"));
            }
        })
    }

    fn flush(&mut self) {
        if !self.text.is_empty() {
            let t = std::mem::take(&mut self.text);
            // Text never changes the tokenizer's state.
            let _ = self.sink.process_token(Token::CharacterTokens(t), 1);
        }
    }

    /// Adds the text from `i` to the stop that memchr `found` (an offset from
    /// `i`) to the pending text; the stop's index, or `None` at the end of input.
    fn text_to(&mut self, i: usize, found: Option<usize>) -> Option<usize> {
        let j = found.map_or(self.b.len(), |k| i + k);
        self.text.push_slice(&self.s[i..j]);
        found.map(|_| j)
    }

    /// The data state from `i` up to and including the next markup or reference.
    fn data(&mut self, i: usize) -> Lexed<(usize, Option<Mode>)> {
        let Some(j) = self.text_to(i, memchr::memchr3(b'<', b'&', 0, &self.b[i..])) else {
            return Ok((self.b.len(), None));
        };
        match self.b[j] {
            b'&' => Ok((char_ref(self.s, j, false, &mut self.text)?, None)),
            b'<' => self.markup(j),
            _ => Err(GiveUp("nul")),
        }
    }

    /// RCDATA or RAWTEXT from `i`: text up to `</end` followed by whitespace, `/` or `>`.
    fn raw(&mut self, i: usize, rcdata: bool, end: &LocalName) -> Lexed<(usize, Option<Mode>)> {
        let rest = &self.b[i..];
        let found = if rcdata {
            memchr::memchr3(b'<', b'&', 0, rest)
        } else {
            memchr::memchr2(b'<', 0, rest)
        };
        let Some(j) = self.text_to(i, found) else {
            return Ok((self.b.len(), None));
        };
        match self.b[j] {
            b'&' => Ok((char_ref(self.s, j, false, &mut self.text)?, None)),
            b'<' => {
                let name_start = j + 2;
                let name_end = name_start
                    + self
                        .b
                        .get(name_start..)
                        .map_or(0, |r| r.iter().take_while(|c| c.is_ascii_alphabetic()).count());
                let closes = self.b.get(j + 1) == Some(&b'/')
                    && name_end > name_start
                    && self.b[name_start..name_end].eq_ignore_ascii_case(end.as_bytes())
                    && self.b.get(name_end).is_some_and(|&c| is_ws(c) || c == b'/' || c == b'>');
                if closes {
                    let (next, mode) = self.tag(j + 2, TagKind::EndTag)?;
                    Ok((next, Some(mode.unwrap_or(Mode::Data))))
                } else {
                    self.text.push_char('<');
                    Ok((j + 1, None))
                }
            }
            _ => Err(GiveUp("nul")),
        }
    }

    /// After a `<` at `j` in the data state.
    fn markup(&mut self, j: usize) -> Lexed<(usize, Option<Mode>)> {
        match self.b.get(j + 1) {
            Some(c) if c.is_ascii_alphabetic() => self.tag(j + 1, TagKind::StartTag),
            Some(b'/') => match self.b.get(j + 2) {
                Some(c) if c.is_ascii_alphabetic() => self.tag(j + 2, TagKind::EndTag),
                // `</>` is dropped; `</` then anything else opens a bogus comment.
                Some(b'>') => Ok((j + 3, None)),
                Some(_) => self.bogus_comment(j + 2),
                None => Err(GiveUp("tag at end")),
            },
            Some(b'!') if self.b[j..].starts_with(b"<!--") => self.comment(j + 4),
            Some(b'!') => self.doctype(j),
            // `<?xml …?>` and the like: a bogus comment from the `?` on.
            Some(b'?') => self.bogus_comment(j + 1),
            // A `<` that starts no markup is text.
            _ => {
                self.text.push_char('<');
                Ok((j + 1, None))
            }
        }
    }

    /// A tag whose name starts at `i`; returns the index after its `>`.
    fn tag(&mut self, mut i: usize, kind: TagKind) -> Lexed<(usize, Option<Mode>)> {
        let b = self.b;
        let n = b[i..]
            .iter()
            .position(|&c| is_ws(c) || c == b'/' || c == b'>' || c == 0)
            .ok_or(GiveUp("tag at end"))?;
        let name = self.name(i, i + n);
        i += n;
        let mut attrs: Vec<Attribute> = Vec::new();
        let mut dup = false;
        let mut self_closing = false;
        loop {
            // Before (or after) an attribute name.
            i = skip_ws(b, i);
            match *b.get(i).ok_or(GiveUp("tag at end"))? {
                b'>' => {
                    i += 1;
                    break;
                }
                b'/' => {
                    // The self-closing start tag state: anything but `>` is reconsumed
                    // before an attribute name.
                    i += 1;
                    if b.get(i) == Some(&b'>') {
                        self_closing = true;
                        i += 1;
                        break;
                    }
                    continue;
                }
                b'=' | 0 => return Err(GiveUp("attribute name")),
                _ => {}
            }
            let n = b[i..]
                .iter()
                .position(|&c| is_ws(c) || matches!(c, b'/' | b'>' | b'=' | 0))
                .ok_or(GiveUp("tag at end"))?;
            if b[i + n] == 0 {
                return Err(GiveUp("nul"));
            }
            let attr_name = self.name(i, i + n);
            i = skip_ws(b, i + n);
            let mut value = StrTendril::new();
            if b.get(i) == Some(&b'=') {
                i = skip_ws(b, i + 1);
                i = match *b.get(i).ok_or(GiveUp("tag at end"))? {
                    q @ (b'"' | b'\'') => {
                        let close = i + 1 + memchr::memchr(q, &b[i + 1..]).ok_or(GiveUp("tag at end"))?;
                        self.attr_value(i + 1, close, &mut value)?;
                        close + 1
                    }
                    // A missing value: the tag ends here, the attribute empty.
                    b'>' => i,
                    _ => {
                        let end = i + b[i..].iter().position(|&c| is_ws(c) || c == b'>').ok_or(GiveUp("tag at end"))?;
                        self.attr_value(i, end, &mut value)?;
                        end
                    }
                };
            }
            // html5ever keeps the first of two attributes with one name.
            if attrs.iter().any(|a| a.name.local == attr_name) {
                dup = true;
            } else {
                attrs.push(Attribute {
                    name: QualName::new(None, ns!(), attr_name),
                    value,
                });
            }
        }
        let lower = name.as_bytes();
        self.nesting
            .tag(kind == TagKind::EndTag, &lower[..lower.len().min(16)], lower.len(), self_closing);
        if self.nesting.cost > self.limit {
            return Err(GiveUp("too deep"));
        }
        let tag = Tag {
            kind,
            name,
            self_closing,
            attrs,
            had_duplicate_attributes: dup,
        };
        Ok((i, self.emit(Token::TagToken(tag))?))
    }

    /// A tag or attribute name from `from..to`, ASCII lower-cased as the tokenizer does.
    fn name(&self, from: usize, to: usize) -> LocalName {
        let raw = &self.s[from..to];
        if raw.bytes().any(|c| c.is_ascii_uppercase()) {
            LocalName::from(raw.to_ascii_lowercase())
        } else {
            LocalName::from(raw)
        }
    }

    /// An attribute value's text `from..to`, references decoded, into `out`.
    fn attr_value(&self, mut from: usize, to: usize, out: &mut StrTendril) -> Lexed<()> {
        while let Some(k) = memchr::memchr2(b'&', 0, &self.b[from..to]) {
            let j = from + k;
            out.push_slice(&self.s[from..j]);
            if self.b[j] == 0 {
                return Err(GiveUp("nul"));
            }
            from = char_ref(self.s, j, true, out)?;
            if from > to {
                return Err(GiveUp("reference"));
            }
        }
        out.push_slice(&self.s[from..to]);
        Ok(())
    }

    /// A comment whose text starts at `i`, after `<!--`. It ends at the first `-->`
    /// or `--!>`; `<!-->` and `<!--->` are empty comments.
    fn comment(&mut self, i: usize) -> Lexed<(usize, Option<Mode>)> {
        let rest = &self.b[i..];
        let (text, next) = if rest.starts_with(b">") {
            (i..i, i + 1)
        } else if rest.starts_with(b"->") {
            (i..i, i + 2)
        } else {
            // The first `>` that follows `--` or `--!` in the comment's own text.
            let end = memchr::memchr_iter(b'>', rest)
                .find_map(|k| {
                    if rest[..k].ends_with(b"--") {
                        Some(k - 2)
                    } else if rest[..k].ends_with(b"--!") {
                        Some(k - 3)
                    } else {
                        None
                    }
                    .map(|text_end| (text_end, k + 1))
                })
                .ok_or(GiveUp("comment at end"))?;
            (i..i + end.0, i + end.1)
        };
        if memchr::memchr(0, &self.b[text.clone()]).is_some() {
            return Err(GiveUp("nul"));
        }
        let text = StrTendril::from_slice(&self.s[text]);
        Ok((next, self.emit(Token::CommentToken(text))?))
    }

    /// A bogus comment whose text starts at `i` and runs to the next `>`.
    fn bogus_comment(&mut self, i: usize) -> Lexed<(usize, Option<Mode>)> {
        let k = i + memchr::memchr2(b'>', 0, &self.b[i..]).ok_or(GiveUp("bogus comment"))?;
        if self.b[k] == 0 {
            return Err(GiveUp("nul"));
        }
        let text = StrTendril::from_slice(&self.s[i..k]);
        Ok((k + 1, self.emit(Token::CommentToken(text))?))
    }

    /// `<!` at `j`, not a comment: a bogus comment, or a doctype if it is
    /// `<!DOCTYPE name [PUBLIC "id" ["id"] | SYSTEM "id"]>`.
    fn doctype(&mut self, j: usize) -> Lexed<(usize, Option<Mode>)> {
        let b = self.b;
        if !b.get(j + 2..j + 9).is_some_and(|kw| kw.eq_ignore_ascii_case(b"doctype")) {
            // CDATA is a section in foreign content and a comment elsewhere: the
            // tree builder's to say. Any other `<!…>` is a bogus comment.
            if b[j + 2..].starts_with(b"[CDATA[") {
                return Err(GiveUp("cdata"));
            }
            return self.bogus_comment(j + 2);
        }
        let mut i = skip_ws(b, j + 9);
        let n = b[i..]
            .iter()
            .position(|&c| is_ws(c) || c == b'>' || c == 0)
            .ok_or(GiveUp("doctype"))?;
        if n == 0 || b[i + n] == 0 {
            return Err(GiveUp("doctype"));
        }
        let name = StrTendril::from_slice(&self.s[i..i + n].to_ascii_lowercase());
        i = skip_ws(b, i + n);
        let quoted = |i: usize| -> Lexed<(StrTendril, usize)> {
            let q = *b.get(i).ok_or(GiveUp("doctype"))?;
            if q != b'"' && q != b'\'' {
                return Err(GiveUp("doctype"));
            }
            let close = i + 1 + memchr::memchr(q, &b[i + 1..]).ok_or(GiveUp("doctype"))?;
            let id = &self.s[i + 1..close];
            // `>` inside an id ends the doctype early and forces quirks mode.
            if id.bytes().any(|c| c == b'>' || c == 0) {
                return Err(GiveUp("doctype"));
            }
            Ok((StrTendril::from_slice(id), close + 1))
        };
        let (mut public_id, mut system_id) = (None, None);
        if b.get(i) != Some(&b'>') {
            let kw = b.get(i..i + 6).ok_or(GiveUp("doctype"))?;
            let public = kw.eq_ignore_ascii_case(b"public");
            if !public && !kw.eq_ignore_ascii_case(b"system") {
                return Err(GiveUp("doctype"));
            }
            let (id, after) = quoted(skip_ws(b, i + 6))?;
            i = skip_ws(b, after);
            if public {
                public_id = Some(id);
                if b.get(i) != Some(&b'>') {
                    let (id, after) = quoted(i)?;
                    system_id = Some(id);
                    i = skip_ws(b, after);
                }
            } else {
                system_id = Some(id);
            }
            if b.get(i) != Some(&b'>') {
                return Err(GiveUp("doctype"));
            }
        }
        let doctype = Doctype {
            name: Some(name),
            public_id,
            system_id,
            force_quirks: false,
        };
        Ok((i + 1, self.emit(Token::DoctypeToken(doctype))?))
    }
}

/// A character reference at the `&` at `j` of `s`, appended to `out`; returns
/// where the input goes on.
fn char_ref(s: &str, j: usize, in_attr: bool, out: &mut StrTendril) -> Lexed<usize> {
    let b = s.as_bytes();
    match b.get(j + 1) {
        Some(b'#') => {
            let (hex, start) = match b.get(j + 2) {
                Some(b'x' | b'X') => (true, j + 3),
                _ => (false, j + 2),
            };
            let digits = b[start..]
                .iter()
                .take_while(|c| if hex { c.is_ascii_hexdigit() } else { c.is_ascii_digit() })
                .count();
            if digits == 0 {
                return Err(GiveUp("reference"));
            }
            let mut n: u32 = 0;
            let mut too_big = false;
            for &c in &b[start..start + digits] {
                let d = (c as char).to_digit(if hex { 16 } else { 10 }).unwrap_or(0);
                n = n.wrapping_mul(if hex { 16 } else { 10 });
                if n > 0x10FFFF {
                    too_big = true;
                }
                n = n.wrapping_add(d);
            }
            let c = match n {
                _ if too_big || n > 0x10FFFF => '\u{FFFD}',
                0 | 0xD800..=0xDFFF => '\u{FFFD}',
                // Windows-1252's meanings, as browsers read them.
                0x80..=0x9F => C1_REPLACEMENTS[n as usize - 0x80].unwrap_or(char::from_u32(n).ok_or(GiveUp("reference"))?),
                n => char::from_u32(n).ok_or(GiveUp("reference"))?,
            };
            out.push_char(c);
            let end = start + digits;
            Ok(if b.get(end) == Some(&b';') { end + 1 } else { end })
        }
        Some(c) if c.is_ascii_alphanumeric() => {
            // html5ever's walk: extend the name while it is a prefix of some
            // entity's (all ASCII alphanumerics, then `;`), keeping the longest
            // full match; the rest of the name is text again.
            let mut best = None;
            let mut k = 1;
            while b.get(j + k).is_some_and(|c| c.is_ascii_alphanumeric() || (*c == b';' && k > 1)) {
                let Some(&m) = NAMED_ENTITIES.get(&s[j + 1..j + 1 + k]) else {
                    break;
                };
                if m.0 != 0 {
                    best = Some((k, m));
                }
                if b[j + k] == b';' {
                    break;
                }
                k += 1;
            }
            let Some((k, (c1, c2))) = best else {
                // No reference: the `&` and the name stay as they are.
                out.push_char('&');
                return Ok(j + 1);
            };
            // In an attribute, a match without `;` followed by `=` or an
            // alphanumeric stays as written (`?a=1&copy=2`), for historical reasons.
            let next = b.get(j + 1 + k);
            if in_attr && b[j + k] != b';' && next.is_some_and(|c| *c == b'=' || c.is_ascii_alphanumeric()) {
                out.push_char('&');
                return Ok(j + 1);
            }
            out.push_char(char::from_u32(c1).ok_or(GiveUp("reference"))?);
            if c2 != 0 {
                out.push_char(char::from_u32(c2).ok_or(GiveUp("reference"))?);
            }
            Ok(j + 1 + k)
        }
        _ => {
            out.push_char('&');
            Ok(j + 1)
        }
    }
}

#[cfg(test)]
mod tests;
