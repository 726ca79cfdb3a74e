use super::*;

#[test]
fn charset_params_are_found_and_unquoted() {
    assert_eq!(charset_param("text/html; charset=ISO-8859-1"), Some("ISO-8859-1"));
    assert_eq!(charset_param("text/html;Charset=\"utf-8\""), Some("utf-8"));
    assert_eq!(charset_param("text/html"), None);
    assert_eq!(charset_param("text/html; foo=bar"), None);
}

#[test]
fn meta_charset_and_http_equiv_are_found() {
    assert_eq!(
        meta_charset(b"<html><head><meta charset=\"windows-1251\">").map(|e| e.name()),
        Some("windows-1251")
    );
    assert_eq!(meta_charset(b"<META CHARSET=latin1 />").map(|e| e.name()), Some("windows-1252"));
    let equiv = b"<meta http-equiv='Content-Type' content='text/html; charset=Shift_JIS'>";
    assert_eq!(meta_charset(equiv).map(|e| e.name()), Some("Shift_JIS"));
    // content without http-equiv, a commented-out tag, an unknown label.
    assert_eq!(meta_charset(b"<meta content='text/html; charset=koi8-r'>"), None);
    assert_eq!(meta_charset(b"<!-- <meta charset=koi8-r> --><p>"), None);
    assert_eq!(meta_charset(b"<meta charset=no-such-charset>"), None);
    // <meta> declaring UTF-16 means UTF-8 (WHATWG).
    assert_eq!(meta_charset(b"<meta charset=utf-16>").map(|e| e.name()), Some("UTF-8"));
}

#[test]
fn meta_is_looked_for_only_in_the_prescan_window() {
    let tag = b"<meta charset=koi8-r>";
    let mut at_edge = vec![b' '; PRESCAN_BYTES - tag.len()];
    at_edge.extend_from_slice(tag);
    assert_eq!(meta_charset(&at_edge).map(|e| e.name()), Some("KOI8-R"));
    let mut past = vec![b' '; PRESCAN_BYTES];
    past.extend_from_slice(tag);
    assert_eq!(meta_charset(&past), None);
}

#[test]
fn header_beats_meta_and_bom_beats_both() {
    let body = "<meta charset=utf-8><p>caf\u{e9}</p>";
    let latin1 = encoding_rs::WINDOWS_1252.encode(body).0.into_owned();
    let d = decode(&latin1, Some("iso-8859-1"), true, None);
    assert_eq!((d.charset, d.from), ("windows-1252", "header"));
    assert!(d.text.contains("café"));
    let mut bom = vec![0xef, 0xbb, 0xbf];
    bom.extend_from_slice("<p>é".as_bytes());
    let d = decode(&bom, Some("windows-1251"), true, None);
    assert_eq!((d.charset, d.from, d.text.as_str()), ("UTF-8", "bom", "<p>é"));
}

#[test]
fn an_invalid_header_label_falls_through_to_meta() {
    let body = encoding_rs::WINDOWS_1251
        .encode("<meta charset=windows-1251><p>Привет мир</p>")
        .0
        .into_owned();
    let d = decode(&body, Some("x-no-such-thing"), true, None);
    assert_eq!((d.charset, d.from), ("windows-1251", "meta"));
    assert!(d.text.contains("Привет мир"));
}

#[test]
fn undeclared_shift_jis_is_detected() {
    let text =
        "<html><body><p>日本語のテキストです。これは文字コードの検出のためのテスト文書です。東京は日本の首都です。</p></body></html>";
    let sjis = encoding_rs::SHIFT_JIS.encode(text).0.into_owned();
    let d = decode(&sjis, None, true, Some("jp"));
    assert_eq!((d.charset, d.from), ("Shift_JIS", "detected"));
    assert_eq!(d.text, text);
}

#[test]
fn a_declared_utf8_that_is_not_is_second_guessed() {
    let text = "<p>Ça coûte très cher, déjà payé à l'hôtel près de la forêt</p>";
    let latin1 = encoding_rs::WINDOWS_1252.encode(text).0.into_owned();
    let d = decode(&latin1, Some("utf-8"), true, Some("fr"));
    assert_eq!((d.charset, d.from), ("windows-1252", "detected"));
    assert_eq!(d.text, text);
}

#[test]
fn nul_bytes_and_garbage_are_binary() {
    let png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR";
    let d = decode(png, Some("utf-8"), true, None);
    assert_eq!(
        binary_reason(png, &d).unwrap(), // ok: test module
        "binary_payload: NUL byte at offset 8 of a text body"
    );
    let ok = decode(b"<p>fine</p>", None, true, None);
    assert_eq!(binary_reason(b"<p>fine</p>", &ok), None);
}

#[test]
fn the_bad_character_share_threshold() {
    // 5 bad characters in 100 is at the threshold (kept); 6 is over it.
    let at = format!("{}{}", "\u{1}".repeat(5), "a".repeat(95));
    let d = Decoded {
        text: at.clone(),
        charset: "UTF-8",
        from: "header",
    };
    assert_eq!(binary_reason(at.as_bytes(), &d), None);
    let over = format!("{}{}", "\u{FFFD}".repeat(6), "a".repeat(94));
    let d = Decoded {
        text: over.clone(),
        charset: "UTF-8",
        from: "header",
    };
    let why = binary_reason(b"", &d).unwrap(); // ok: test module
    assert!(why.starts_with("binary_payload: 6.0% of the first 100 characters"), "{why}");
    // Tabs, newlines, form feeds are text.
    let ws = "\t\n\x0c\r".repeat(10);
    let d = Decoded {
        text: ws.clone(),
        charset: "UTF-8",
        from: "header",
    };
    assert_eq!(binary_reason(ws.as_bytes(), &d), None);
}
