//! The lexer against html5ever's own tokenizer: the same tree, or a fallback.

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
        "<p>a<!-- c -->b<!---->c<!-->d<!--->e<!-- x --->f<!-- y --!>g<!-- -- z --!-->h</p>",
        "<p>&amp without semicolon, &copy2024 &notit; &notin; &ampx &AMP</p>",
        "<p title=\"&notit; &copy=1 &copyx &copy; &amp-\" class=a&ampb>x</p>",
        "<p>&#128; &#x9F; &#x81; C1</p>",
        "<!--[if IE]><p>ie</p><![endif]--><![if !IE]><p>not ie</p><![endif]><!ELEMENT x>",
        "<p>caf\u{e9} \u{4e2d}\u{6587} <span class=\u{e9}t\u{e9}>t</span></p>",
    ];
    for html in cases {
        assert!(fast(html).is_some(), "gave up on {html:?}");
    }
}

/// The forms the lexer leaves to html5ever (references without digits, NUL,
/// script data, CDATA, input ending mid-comment or mid-tag, a `=` opening an
/// attribute name, a doctype with no name): [`Dom::parse`] falls back whole.
#[test]
fn rare_forms_are_left_to_html5ever() {
    let cases = [
        "<p>&#; no digits</p>",
        "<p>a\0b</p>",
        "<script>var a = '</div>';</script><p>x</p>",
        "<svg><![CDATA[x]]></svg>",
        "<p>a<!-- never closed",
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
    let gave_up = Dom::parse_fast(&html, 1_000_000).err().expect("gave up"); // ok: test module
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
        let html = super::super::decode_html(&read_page(&dir, it).expect("page")); // ok: test module
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
    // Stripped pages are what extraction parses: 988 of 990 are lexed; a fall
    // below 98% means the lexer gave up on something common.
    assert!(
        stripped * 100 >= items.len() * 98,
        "lexed only {stripped} of {} stripped pages",
        items.len()
    );
}

/// Real markup cut and spliced at random with the characters the tokenizer
/// branches on: wherever the lexer does not give up, its tree is html5ever's.
/// `KILN_LEXER_FUZZ=N` runs N cases (default 3,000: a few seconds), from the
/// seed `KILN_LEXER_FUZZ_SEED` (a number) if set.
#[test]
fn spliced_markup_builds_html5evers_tree_or_gives_up() {
    const PIECES: &[&str] = &[
        "<",
        ">",
        "&",
        "&amp",
        "&amp;",
        "&#",
        "&#x",
        "&#12",
        "&#x9F;",
        "&notin",
        "&copy=",
        "&copyx",
        ";",
        "\"",
        "'",
        "=",
        "/",
        "/>",
        "<!--",
        "-->",
        "--!>",
        "--",
        "<!",
        "<?",
        "</",
        "</>",
        "<p",
        "<p>",
        "</p>",
        "<title>",
        "</title>",
        "<textarea>",
        "</textarea>",
        "<xmp>",
        "<plaintext>",
        "<table>",
        "<td>",
        "<b>",
        "</b>",
        "<svg>",
        "<math>",
        "<![CDATA[",
        "\0",
        " ",
        "\n",
        "\r",
        "\t",
        "<!DOCTYPE html>",
        "<!doctype html public \"x\" 'y'>",
        "é",
        "\u{FEFF}",
        "<a b=c d='e' f=\"g\" b=h>",
        "<div class=nav id=x hidden>",
        "<meta property=og:title content='T &amp; U'>",
    ];
    let seeds: Vec<String> = {
        let mut v: Vec<String> = vec![
            "<!DOCTYPE html><html><head><title>T</title></head><body><div class=main><p>One &amp; two.</p><ul><li>a<li>b</ul></div><footer>f</footer></body></html>".into(),
            "<table><tr><td>x<p>y</table><b><i>z</b></i><form><input value=\"&lt;\"></form>".into(),
        ];
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/extraction/trafilatura");
        if let Ok(items) = super::super::eval::load_evaldata(&dir) {
            for it in items.iter().step_by(10) {
                let html = super::super::decode_html(&super::super::eval::read_page(&dir, it).expect("page")); // ok: test module
                v.push(super::super::strip::strip(&html).into_owned());
            }
        }
        v
    };
    let n: usize = std::env::var("KILN_LEXER_FUZZ").ok().and_then(|s| s.parse().ok()).unwrap_or(3_000);
    // xorshift64*: reproducible without a dependency.
    let mut state = std::env::var("KILN_LEXER_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x9E37_79B9_7F4A_7C15u64)
        | 1;
    let mut rand = move |below: usize| {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        (state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 33) as usize % below.max(1)
    };
    let (mut lexed, mut gave_up) = (0, 0);
    for case in 0..n {
        let seed = &seeds[rand(seeds.len())];
        let cut = |s: &str, at: usize| {
            let mut at = at.min(s.len());
            while !s.is_char_boundary(at) {
                at -= 1;
            }
            at
        };
        let from = cut(seed, rand(seed.len()));
        let to = cut(seed, from + 1 + rand(1500));
        let mut html = seed[from..to].to_string();
        for _ in 0..1 + rand(4) {
            let at = cut(&html, rand(html.len() + 1));
            if rand(4) == 0 {
                let end = cut(&html, at + rand(20));
                html.replace_range(at..end, "");
            } else {
                html.insert_str(at, PIECES[rand(PIECES.len())]);
            }
        }
        match Dom::parse_fast(&html, u64::MAX) {
            Ok(dom) => {
                lexed += 1;
                assert!(dom.dump() == Dom::parse_html5ever(&html).dump(), "case {case} differs: {html:?}");
            }
            Err(_) => gave_up += 1,
        }
    }
    println!("{lexed} lexed, {gave_up} given up");
    // Most cuts end inside a tag, which gives up; enough must still be lexed.
    assert!(lexed * 4 > n, "lexed only {lexed} of {n}");
}
