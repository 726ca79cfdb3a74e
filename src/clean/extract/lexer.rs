//! A fast HTML tokenizer for the pages extraction sees, feeding html5ever's own tree builder.
//!
//! html5ever's tokenizer pops its input a character at a time from a buffer
//! queue and grows every token in tendrils. On the 990 benchmark pages, after
//! [`super::strip`], that was more than half of parsing: 0.48 s of tokenizing
//! against 0.39 s of tree building on one core. What `strip` leaves is mostly
//! text and plain tags with a few attributes, so this lexer finds the next `<`
//! or `&` with memchr, cuts text and names straight out of the input, and hands
//! html5ever's `TreeBuilder` the tokens html5ever's tokenizer would have made:
//! the tree, and so the extraction, is the same.
//!
//! It follows the WHATWG tokenizer (HTML §13.2.5) as html5ever 0.40 implements
//! it, for the common shapes only. Anything else gives up ([`GiveUp`]), and the
//! caller parses the page again with html5ever whole: NUL characters, comments,
//! CDATA, script data, a `=` starting an attribute name,
//! input ending inside a tag, doctypes other than a name with optional public and
//! system ids, numeric references without digits or into the C1 table, and named
//! references whose meaning depends on legacy prefix matching (`&amp` without `;`).

use super::nesting::Nesting;
use html5ever::data::NAMED_ENTITIES;
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

    /// The data state from `i` up to and including the next markup or reference.
    fn data(&mut self, i: usize) -> Lexed<(usize, Option<Mode>)> {
        let rest = &self.b[i..];
        let Some(k) = memchr::memchr3(b'<', b'&', 0, rest) else {
            self.text.push_slice(&self.s[i..]);
            return Ok((self.b.len(), None));
        };
        let j = i + k;
        self.text.push_slice(&self.s[i..j]);
        match self.b[j] {
            b'&' => Ok((self.char_ref(j)?, None)),
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
        let Some(k) = found else {
            self.text.push_slice(&self.s[i..]);
            return Ok((self.b.len(), None));
        };
        let j = i + k;
        self.text.push_slice(&self.s[i..j]);
        match self.b[j] {
            b'&' => Ok((self.char_ref(j)?, None)),
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
            while i < b.len() && is_ws(b[i]) {
                i += 1;
            }
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
            i += n;
            while i < b.len() && is_ws(b[i]) {
                i += 1;
            }
            let mut value = StrTendril::new();
            if b.get(i) == Some(&b'=') {
                i += 1;
                while i < b.len() && is_ws(b[i]) {
                    i += 1;
                }
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
    fn attr_value(&mut self, mut from: usize, to: usize, out: &mut StrTendril) -> Lexed<()> {
        let saved = std::mem::replace(&mut self.text, std::mem::take(out));
        let result = (|| {
            while let Some(k) = memchr::memchr2(b'&', 0, &self.b[from..to]) {
                let j = from + k;
                self.text.push_slice(&self.s[from..j]);
                if self.b[j] == 0 {
                    return Err(GiveUp("nul"));
                }
                from = self.char_ref(j)?;
                if from > to {
                    return Err(GiveUp("reference"));
                }
            }
            self.text.push_slice(&self.s[from..to]);
            Ok(())
        })();
        *out = std::mem::replace(&mut self.text, saved);
        result
    }

    /// A character reference at the `&` at `j`, appended to the pending text;
    /// returns where the input goes on.
    /// Attribute values need no rule of their own: the one difference (a legacy
    /// reference followed by `=` or an alphanumeric stays as written) is among
    /// the cases left to html5ever.
    fn char_ref(&mut self, j: usize) -> Lexed<usize> {
        let b = self.b;
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
                    0x80..=0x9F => return Err(GiveUp("reference")),
                    n => char::from_u32(n).ok_or(GiveUp("reference"))?,
                };
                self.text.push_char(c);
                let end = start + digits;
                Ok(if b.get(end) == Some(&b';') { end + 1 } else { end })
            }
            Some(c) if c.is_ascii_alphanumeric() => {
                let run = b[j + 1..].iter().take_while(|c| c.is_ascii_alphanumeric()).count();
                let name = &self.s[j + 1..j + 1 + run];
                if b.get(j + 1 + run) == Some(&b';') {
                    let key = &self.s[j + 1..j + 2 + run];
                    if let Some(&(c1, c2)) = NAMED_ENTITIES.get(key)
                        && c1 != 0
                    {
                        self.text.push_char(char::from_u32(c1).ok_or(GiveUp("reference"))?);
                        if c2 != 0 {
                            self.text.push_char(char::from_u32(c2).ok_or(GiveUp("reference"))?);
                        }
                        return Ok(j + 2 + run);
                    }
                }
                // A legacy reference (one that may end without `;`) at the start of
                // the name means prefix matching and its exceptions: html5ever's job.
                let legacy = (1..=run).any(|k| NAMED_ENTITIES.get(&name[..k]).is_some_and(|m| m.0 != 0));
                if legacy {
                    return Err(GiveUp("legacy reference"));
                }
                // No reference: the `&` and the name stay as they are.
                self.text.push_char('&');
                Ok(j + 1)
            }
            _ => {
                self.text.push_char('&');
                Ok(j + 1)
            }
        }
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

    /// `<!` at `j`: only `<!DOCTYPE name [PUBLIC "id" ["id"] | SYSTEM "id"]>`.
    fn doctype(&mut self, j: usize) -> Lexed<(usize, Option<Mode>)> {
        let b = self.b;
        let kw = b.get(j + 2..j + 9).ok_or(GiveUp("markup declaration"))?;
        if !kw.eq_ignore_ascii_case(b"doctype") {
            return Err(GiveUp("markup declaration"));
        }
        let mut i = j + 9;
        let skip_ws = |mut i: usize| {
            while i < b.len() && is_ws(b[i]) {
                i += 1;
            }
            i
        };
        i = skip_ws(i);
        let n = b[i..]
            .iter()
            .position(|&c| is_ws(c) || c == b'>' || c == 0)
            .ok_or(GiveUp("doctype"))?;
        if n == 0 || b[i + n] == 0 {
            return Err(GiveUp("doctype"));
        }
        let name = StrTendril::from_slice(&self.s[i..i + n].to_ascii_lowercase());
        i = skip_ws(i + n);
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
            let (id, after) = quoted(skip_ws(i + 6))?;
            i = skip_ws(after);
            if public {
                public_id = Some(id);
                if b.get(i) != Some(&b'>') {
                    let (id, after) = quoted(i)?;
                    system_id = Some(id);
                    i = skip_ws(after);
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

#[cfg(test)]
mod tests {
    use super::super::tree::Dom;

    /// The lexer's tree for `html`, which must be html5ever's; `None` where it gave up.
    fn fast(html: &str) -> Option<String> {
        let want = Dom::parse_html5ever(html).dump();
        let got = Dom::parse_fast(html, u64::MAX).ok()?.dump();
        assert_eq!(got, want, "for {html:?}");
        Some(got)
    }

    #[test]
    fn common_markup_is_lexed_as_html5ever_tokenizes_it() {
        let cases = [
            "<!DOCTYPE html><html><head><title>A &amp; B</title></head><body><p>x</p></body></html>",
            "<!doctype HTML PUBLIC \"-//W3C//DTD HTML 4.01 Transitional//EN\" \"http://www.w3.org/TR/html4/loose.dtd\"><p>quirks?</p>",
            "<!DOCTYPE html PUBLIC \"-//W3C//DTD XHTML 1.0 Strict//EN\"><table><p>a</table>",
            "<!DOCTYPE html SYSTEM 'about:legacy-compat'><p>x",
            "<!DOCTYPE html PUBLIC \"-//W3C//DTD HTML 3.2 Final//EN\"><table><p>foster</table>",
            "<P CLASS=\"Nav\" ID=main class=second data-x>Up<BR/>per</P>",
            "<div class='a' class=\"b\" hidden style=\"display:none\">dup</div>",
            "<div class=\"x\"id=y/><span / >z</span>",
            "<p title=>empty value</p><p a = 'spaced' >v</p>",
            "a < b and c <3 d </> e <= f",
            "&amp;&lt;&gt;&quot;&#39;&#x27;&#X41;&#65&copy;&hellip;&nbsp;&NotEqualTilde;",
            "&foo; &zzz &#0; &#xD800; &#x110000; &#99999999999; & bare &",
            "<meta property=\"og:title\" content=\"Tom &amp; Jerry &#8211; the film\"><p>t</p>",
            "<title>a <b> &amp; </titlex> </title><p>after</p>",
            "<textarea>\n<p>not a tag</p> &amp; </TEXTAREA ><p>x</p>",
            "<xmp><b>&amp;</b></xmp><iframe>raw</iframe><noembed>n</noembed>",
            "<noscript><p>scripting on: raw text</p></noscript><p>y</p>",
            "<plaintext><p>everything &amp; after</p>",
            "\u{FEFF}<p>bom\r\nCRLF\rCR</p>",
            "<table>a<tr>b<td>c</td></tr></table><b><p>x</b>y</p>",
            "<ul><li>one<li>two</ul><select><option>o<option>p</select>",
            "<a href=x>link <a>nested</a></a><form><form></form>",
            "<?xml version=\"1.0\"?><p>x</p></ bogus><p>y</p><?php echo 1 ?>",
            "<p>caf\u{e9} \u{4e2d}\u{6587} <span class=\u{e9}t\u{e9}>t</span></p>",
        ];
        for html in cases {
            assert!(fast(html).is_some(), "gave up on {html:?}");
        }
    }

    /// What the lexer leaves to html5ever, so that prefix-matched and other
    /// rare forms come out right.
    #[test]
    fn rare_forms_are_left_to_html5ever() {
        let cases = [
            "<p>a<!-- c -->b</p>",
            "<p>&amp without semicolon</p>",
            "<p title=\"&notit;\">x</p>",
            "<p>&#128; C1</p>",
            "<p>&#; no digits</p>",
            "<p>a\0b</p>",
            "<script>var a = '</div>';</script><p>x</p>",
            "<svg><![CDATA[x]]></svg>",
            "<p =x>eq</p>",
            "<p class=\"unterminated",
            "<!DOCTYPE>",
        ];
        for html in cases {
            assert!(fast(html).is_none(), "lexed {html:?}");
            // The whole parse still builds html5ever's tree.
            assert_eq!(Dom::parse(html).dump(), Dom::parse_html5ever(html).dump());
        }
    }

    /// The nesting guard runs inside the lexer: a page that would make html5ever's
    /// stack scans quadratic is given up after about `limit` steps, not parsed.
    #[test]
    fn deep_nesting_stops_the_lexer_at_the_limit() {
        use super::super::nesting::parse_cost;
        let html = "<div>".repeat(100_000) + "x";
        let gave_up = Dom::parse_fast(&html, 1_000_000).err().expect("gave up");
        assert_eq!(gave_up.0, "too deep");
        assert!(parse_cost(&html, 1_000_000).0 > 1_000_000);
        // Below the limit, the same rules let the page through.
        let html = "<div>".repeat(100) + "x";
        assert!(fast(&html).is_some());
        assert!(Dom::parse_fast(&html, parse_cost(&html, u64::MAX).0).is_ok());
    }

    /// Every page of the extraction benchmark, raw and stripped: the lexer's tree
    /// is html5ever's wherever the lexer does not give up.
    #[test]
    fn real_pages_build_html5evers_tree() {
        use super::super::eval::{load_evaldata, read_page};
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/extraction/trafilatura");
        let Ok(items) = load_evaldata(&dir) else {
            return println!("SKIP: {} is absent", dir.display());
        };
        // Pages lexed, of the stripped and of the raw ones.
        let (mut stripped, mut raw) = (0, 0);
        let mut why = std::collections::BTreeMap::new();
        for it in &items {
            let html = super::super::decode_html(&read_page(&dir, it).expect("page"));
            for (page, is_raw) in [(super::super::strip::strip(&html).into_owned(), false), (html, true)] {
                match Dom::parse_fast(&page, u64::MAX) {
                    Ok(dom) => {
                        *if is_raw { &mut raw } else { &mut stripped } += 1;
                        assert!(dom.dump() == Dom::parse_html5ever(&page).dump(), "{} differs", it.file);
                    }
                    Err(e) => *why.entry((is_raw, e.0)).or_insert(0) += 1,
                }
            }
        }
        println!(
            "lexed {stripped} stripped and {raw} raw pages of {}; (raw?, gave up on): {why:?}",
            items.len()
        );
        // Stripped pages are what extraction parses: nine in ten must not fall back.
        assert!(
            stripped * 10 >= items.len() * 9,
            "lexed only {stripped} of {} stripped pages",
            items.len()
        );
    }
}
