//! Every row-wise cleaning step over real text, in FineWeb's order
//! (FILTERS.md): the 300 C4 documents of `../shared/data/text/c4-demo`
//! (already C4-filtered, so C4's own rules must keep nearly all of them)
//! and NLTK's Gutenberg books cut into ~2,000-word documents at blank lines.
//! Prints the funnel (kept / dropped by reason class) and per-step speed.

use kiln::clean::filters::*;
use kiln::clean::langid::{LangId, LangIdParams};
use kiln::clean::normalize::{Normalize, NormalizeParams};
use kiln::clean::pii::{Pii, PiiCounts, PiiParams};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

const C4: &str = "../shared/data/text/c4-demo/c4_demo.jsonl";
const GUTENBERG: &str = "../shared/data/text/nltk-gutenberg";

/// The steps, built once, and what happened to each document.
struct Funnel {
    normalize: Normalize,
    langid: LangId,
    repetition: GopherRepetition,
    quality: GopherQuality,
    c4: C4Quality,
    fineweb: FineWebQuality,
    badwords: Option<C4BadWords>,
    pii: Pii,
    dropped: BTreeMap<String, usize>,
    /// Documents that reached each step, and time spent in it.
    seen: BTreeMap<&'static str, (usize, Duration)>,
    kept: usize,
    langs: BTreeMap<String, usize>,
    pii_counts: PiiCounts,
}

impl Funnel {
    fn new(c4: C4QualityParams) -> Funnel {
        let badwords = C4BadWords::new(&C4BadWordsParams::default()).ok();
        if badwords.is_none() {
            println!("(no LDNOOBW list at {}; c4_badwords skipped)", badwords::DEFAULT_LDNOOBW_EN);
        }
        Funnel {
            normalize: Normalize::new(&NormalizeParams::default()).unwrap(),
            langid: LangId::new(&LangIdParams::default()).unwrap(),
            repetition: GopherRepetition::new(&GopherRepetitionParams::default()).unwrap(),
            quality: GopherQuality::new(&GopherQualityParams::default()).unwrap(),
            c4: C4Quality::new(&c4).unwrap(),
            fineweb: FineWebQuality::new(&FineWebQualityParams::default()).unwrap(),
            badwords,
            pii: Pii::new(&PiiParams::default()).unwrap(),
            dropped: BTreeMap::new(),
            seen: BTreeMap::new(),
            kept: 0,
            langs: BTreeMap::new(),
            pii_counts: PiiCounts::default(),
        }
    }

    fn timed<T>(&mut self, step: &'static str, f: impl FnOnce(&Self) -> T) -> T {
        let t = Instant::now();
        let out = f(self);
        let e = self.seen.entry(step).or_default();
        e.0 += 1;
        e.1 += t.elapsed();
        out
    }

    fn drop_for(&mut self, r: String) {
        let class = r.split(':').next().unwrap_or("?").to_string();
        *self.dropped.entry(class).or_default() += 1;
    }

    fn run(&mut self, doc: &str) {
        let text = self
            .timed("1 normalize", |s| s.normalize.apply(doc))
            .unwrap_or_else(|| doc.to_string());
        let (lang, score) = self.timed("2 langid", |s| s.langid.detect(&text));
        *self.langs.entry(lang.unwrap_or("?").to_string()).or_default() += 1;
        let mut text = text;
        let result: Result<(), String> = (|| {
            self.langid.apply(lang, score)?;
            self.timed("3 gopher_repetition", |s| s.repetition.apply(&text))?;
            self.timed("4 gopher_quality", |s| s.quality.apply(&text))?;
            if let Some(t) = self.timed("5 c4", |s| s.c4.apply(&text))? {
                text = t;
            }
            self.timed("6 fineweb", |s| s.fineweb.apply(&text))?;
            if self.badwords.is_some() {
                self.timed("7 c4_badwords", |s| s.badwords.as_ref().map_or(Ok(()), |b| b.apply(&text)))?;
            }
            let (_, counts) = self.timed("8 pii", |s| s.pii.apply(&text));
            self.pii_counts.add(&counts);
            Ok(())
        })();
        match result {
            Ok(()) => self.kept += 1,
            Err(r) => self.drop_for(r),
        }
    }

    fn report(&self, name: &str, n: usize) {
        println!(
            "== {name}: {n} documents, {} kept ({:.1}%)",
            self.kept,
            100.0 * self.kept as f64 / n as f64
        );
        for (class, k) in &self.dropped {
            println!("   dropped {class:<32} {k:>5}");
        }
        println!("   languages: {:?}", self.langs);
        println!("   pii replaced in kept docs: {:?}", self.pii_counts);
        for (step, (k, d)) in &self.seen {
            println!("   {step:<22} {k:>5} docs {:>9.1} docs/s", *k as f64 / d.as_secs_f64().max(1e-9));
        }
    }

    fn count(&self, class: &str) -> usize {
        self.dropped.get(class).copied().unwrap_or(0)
    }
}

fn c4_docs() -> Option<Vec<String>> {
    let text = std::fs::read_to_string(C4).ok()?;
    let docs = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l)
                .ok()
                .and_then(|v| v["text"].as_str().map(String::from))
                .expect("c4_demo line has text")
        })
        .collect();
    Some(docs)
}

#[test]
fn c4_demo_funnel() {
    let Some(docs) = c4_docs() else {
        println!("skipping: {C4} not found");
        return;
    };
    let mut f = Funnel::new(C4QualityParams::default());
    for d in &docs {
        f.run(d);
    }
    f.report("c4-demo, C4 defaults", docs.len());
    let n = docs.len() as f64;
    // These documents passed C4's line cleaning (every line ends in terminal
    // punctuation): its line rules must keep nearly every line. (About 15%
    // of them have fewer than 5 sentence ends by any count, so the demo
    // file is not strictly C4's 5-sentence output; those are reported above
    // as c4_too_few_sentences, not asserted.)
    let lines_only = C4Quality::new(&C4QualityParams {
        min_num_sentences: None,
        ..Default::default()
    })
    .unwrap();
    let (mut lines_in, mut lines_out, mut doc_drops) = (0usize, 0usize, 0usize);
    for d in &docs {
        lines_in += d.lines().filter(|l| !l.trim().is_empty()).count();
        match lines_only.apply(d) {
            Ok(None) => lines_out += d.lines().filter(|l| !l.trim().is_empty()).count(),
            Ok(Some(t)) => lines_out += t.lines().count(),
            Err(_) => doc_drops += 1,
        }
    }
    println!("   c4 line rules alone: {lines_out}/{lines_in} lines kept, {doc_drops} documents dropped");
    assert!(
        lines_out as f64 >= 0.98 * lines_in as f64,
        "c4 line rules kept {lines_out} of {lines_in} lines"
    );
    assert!((doc_drops as f64) < 0.02 * n, "c4 document rules dropped {doc_drops} C4 documents");
    assert!(
        (f.count("c4_badwords") as f64) < 0.02 * n,
        "bad words in {} C4 documents",
        f.count("c4_badwords")
    );
    assert!(f.langs.get("en").copied().unwrap_or(0) as f64 >= 0.98 * n, "langid: {:?}", f.langs);

    // FineWeb's setting of the C4 step (terminal-punctuation rule off).
    let mut fw = Funnel::new(C4QualityParams {
        filter_no_terminal_punct: false,
        ..Default::default()
    });
    for d in &docs {
        fw.run(d);
    }
    fw.report("c4-demo, FineWeb order and settings", docs.len());
    assert!(fw.kept >= f.kept, "turning a rule off cannot drop more");
}

/// A book cut at blank lines into documents of about `words` words.
fn chunks(book: &str, words: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut n = 0;
    for para in book.split("\n\n") {
        cur.push_str(para);
        cur.push_str("\n\n");
        n += para.split_whitespace().count();
        if n >= words {
            out.push(std::mem::take(&mut cur));
            n = 0;
        }
    }
    if n > 0 {
        out.push(cur);
    }
    out
}

#[test]
fn gutenberg_funnel() {
    let books = [
        "austen-emma.txt",
        "chesterton-brown.txt",
        "melville-moby_dick.txt",
        "shakespeare-hamlet.txt",
        "blake-poems.txt",
    ];
    let Ok(first) = std::fs::read_to_string(Path::new(GUTENBERG).join(books[0])) else {
        println!("skipping: {GUTENBERG} not found");
        return;
    };
    let mut docs = chunks(&first, 2000);
    for b in &books[1..] {
        let text = std::fs::read_to_string(Path::new(GUTENBERG).join(b)).expect("book");
        docs.extend(chunks(&text, 2000));
    }
    let mut f = Funnel::new(C4QualityParams {
        filter_no_terminal_punct: false,
        ..Default::default()
    });
    for d in &docs {
        f.run(d);
    }
    f.report("gutenberg (5 books, ~2,000-word documents), FineWeb settings", docs.len());
    let n = docs.len() as f64;
    assert!(f.langs.get("en").copied().unwrap_or(0) as f64 >= 0.95 * n, "langid: {:?}", f.langs);
    // Hard-wrapped prose: most lines are short and lack terminal punctuation,
    // so FineWeb's line rules reject much of it; Gopher's must not.
    let gopher: usize = f.dropped.iter().filter(|(c, _)| c.starts_with("gopher_")).map(|(_, k)| k).sum();
    assert!((gopher as f64) < 0.2 * n, "gopher_quality dropped {gopher} of {n} book chunks");
}

/// lingua's two modes on whole documents: speed and agreement.
#[test]
fn langid_modes_on_documents() {
    let Some(docs) = c4_docs() else {
        println!("skipping: {C4} not found");
        return;
    };
    let mut results = Vec::new();
    for high in [false, true] {
        let step = LangId::new(&LangIdParams {
            keep: vec![],
            high_accuracy: high,
            ..Default::default()
        })
        .unwrap();
        step.detect("warm up the models");
        let t = Instant::now();
        let r: Vec<_> = docs.iter().map(|d| step.detect(d)).collect();
        let secs = t.elapsed().as_secs_f64();
        let mean_score = r.iter().map(|x| x.1).sum::<f64>() / r.len() as f64;
        let en = r.iter().filter(|x| x.0 == Some("en")).count();
        println!(
            "high_accuracy={high}: {:.0} docs/s, en {en}/{}, mean score {mean_score:.3}",
            docs.len() as f64 / secs,
            docs.len()
        );
        results.push(r);
    }
    let agree = results[0].iter().zip(&results[1]).filter(|(a, b)| a.0 == b.0).count();
    println!("modes agree on {agree}/{} documents", docs.len());
    // The default (high-accuracy) mode must call these English documents English.
    let en = results[1].iter().filter(|x| x.0 == Some("en")).count();
    assert!(en as f64 >= 0.98 * docs.len() as f64, "high-accuracy mode: {en} English");
}
