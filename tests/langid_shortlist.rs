//! The langid shortlist gives lingua's own answer: on real text of every
//! length regime the shortlist serves (120+ letters), the language and the
//! confidence with the shortlist equal those of lingua asked about every
//! compiled language (`shortlist: false`), and with a restricted
//! `languages` set in which one script belongs to one language.
//!
//! Texts: the 300 C4 documents (`../shared/data/text/c4-demo`), the
//! Universal Declaration of Human Rights in every UTF-8 and Latin-1 file of
//! `../shared/data/langid/nltk-udhr` (hundreds of languages, most of them
//! not among kiln's 37, which is the hard case: no language fits well), cut
//! into 2,000- and 200-character pieces, and runs of three of lingua's test
//! sentences per language (`../shared/data/langid/lingua-rs`).

use kiln::clean::langid::{LangId, LangIdParams, supported_codes};
use std::path::Path;

const DATA: &str = "../shared/data";

/// `text` cut into pieces of `n` characters, at most `max` of them.
fn pieces(text: &str, n: usize, max: usize) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    chars.chunks(n).take(max).map(|c| c.iter().collect()).collect()
}

fn texts() -> Vec<(String, String)> {
    let mut out = Vec::new();
    if let Ok(c4) = std::fs::read_to_string(Path::new(DATA).join("text/c4-demo/c4_demo.jsonl")) {
        for (i, line) in c4.lines().enumerate() {
            let v: serde_json::Value = serde_json::from_str(line).expect("c4 line");
            out.push((format!("c4:{i}"), v["text"].as_str().unwrap_or_default().to_string()));
        }
    }
    let udhr = Path::new(DATA).join("langid/nltk-udhr");
    if let Ok(dir) = std::fs::read_dir(&udhr) {
        let mut files: Vec<_> = dir.flatten().map(|e| e.path()).collect();
        files.sort();
        for f in files {
            let name = f.file_name().unwrap_or_default().to_string_lossy().to_string();
            let Ok(bytes) = std::fs::read(&f) else { continue };
            let text = if name.ends_with("-UTF8") {
                String::from_utf8_lossy(&bytes).to_string()
            } else if name.ends_with("-Latin1") {
                bytes.iter().map(|&b| b as char).collect()
            } else {
                continue;
            };
            for (size, max) in [(2000, 2), (200, 3)] {
                for (i, p) in pieces(&text, size, max).into_iter().enumerate() {
                    out.push((format!("udhr:{name}:{size}:{i}"), p));
                }
            }
        }
    }
    for code in supported_codes() {
        let Ok(s) = std::fs::read_to_string(Path::new(DATA).join(format!("langid/lingua-rs/{code}/sentences.txt"))) else {
            continue;
        };
        let lines: Vec<&str> = s.lines().filter(|l| !l.trim().is_empty()).take(60).collect();
        for (i, three) in lines.chunks(3).enumerate() {
            out.push((format!("sentences:{code}:{i}"), three.join(" ")));
        }
    }
    out
}

#[test]
fn shortlist_gives_lingua_s_answer() {
    let texts = texts();
    if texts.is_empty() {
        println!("SKIP: no text under {DATA}");
        return;
    }
    // Every compiled language, and a restricted set in which Cyrillic is one
    // language's script alone, which changes lingua's rules.
    let (mut differ, mut served, mut decided) = (Vec::new(), 0, 0);
    for languages in [vec![], vec!["en".to_string(), "de".into(), "fr".into(), "ru".into()]] {
        let params = |shortlist| LangIdParams {
            keep: vec![],
            shortlist,
            languages: languages.clone(),
            ..Default::default()
        };
        let (fast, full) = (
            LangId::new(&params(true)).expect("detector"),
            LangId::new(&params(false)).expect("detector"),
        );
        for (name, text) in &texts {
            let short = fast.shortlist_of(text);
            if languages.is_empty() {
                served += usize::from(short.is_some());
                decided += usize::from(short.is_some_and(|s| s.len() == 1));
            }
            let (a, b) = (fast.detect(text), full.detect(text));
            if a.0 != b.0 || (a.1 - b.1).abs() > 1e-9 {
                differ.push(format!("{name} {languages:?}: shortlist {a:?}, every language {b:?}"));
            }
        }
    }
    println!(
        "{} texts, {served} served by a shortlist ({decided} settled without lingua), {} differ in either set",
        texts.len(),
        differ.len()
    );
    assert!(texts.len() > 1000, "only {} texts found", texts.len());
    // Most are: the rest are short, or in scripts whose rules lingua applies itself.
    assert!(
        served * 10 > texts.len() * 7,
        "only {served} of {} texts were served by a shortlist",
        texts.len()
    );
    assert!(
        differ.is_empty(),
        "{} of {} differ:\n{}",
        differ.len(),
        texts.len(),
        differ.join("\n")
    );
}
