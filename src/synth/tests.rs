// ok: test module
//! Checks on what one seed makes: answers agree with the world, held-out
//! questions are unseen, and every page's main content survives kiln's own
//! `extract` and is labelled with its language by `langid`.

use super::crawl::PageKind;
use super::html::Block;
use super::qa::fact_items;
use super::splits::HEDGE;
use super::{Generated, generate};
use crate::clean::extract::{ExtractParams, Favor, extract};
use crate::clean::langid::{LangId, LangIdParams};
use regex::Regex;
use serde_json::Value;
use std::collections::BTreeSet;
use std::sync::OnceLock;

fn world() -> &'static Generated {
    static G: OnceLock<Generated> = OnceLock::new();
    G.get_or_init(|| generate(7, 1.0).unwrap()) // ok: test module
}

/// Every true answer sentence about the world, built from the world's
/// tables directly (not through the question code it checks).
fn true_facts(g: &Generated) -> BTreeSet<String> {
    let w = &g.world;
    let mut s = BTreeSet::new();
    for c in &w.countries {
        s.insert(format!("The capital of {} is {}.", c.name, w.towns[c.capital].name));
        s.insert(format!("The main river of {} is the {}.", c.name, c.river));
        s.insert(format!("The flag of {} is {}.", c.name, c.flag));
        s.insert(format!("The national animal of {} is the {}.", c.name, c.animal));
    }
    for t in &w.towns {
        s.insert(format!("{} is in {}.", t.name, w.countries[t.country].name));
        s.insert(format!("{} is known for {}.", t.name, t.goods));
        s.insert(format!("{} was founded by {}.", t.name, w.people[t.founder].name));
    }
    for p in &w.people {
        s.insert(format!("{} lives in {}.", p.name, w.towns[p.home].name));
        s.insert(format!("{} is a {}.", p.name, p.job));
    }
    s
}

/// Whether `answer` is right for `question`: a true world fact, a correct
/// sum or difference, or a fact stated in the question itself.
fn is_right(facts: &BTreeSet<String>, question: &str, answer: &str) -> bool {
    static ARITH: OnceLock<Regex> = OnceLock::new();
    static COLOUR: OnceLock<Regex> = OnceLock::new();
    static JOB: OnceLock<Regex> = OnceLock::new();
    let arith = ARITH.get_or_init(|| Regex::new(r"^(\d+) (plus|minus) (\d+) is (\d+)\.$").unwrap()); // ok: test module
    if let Some(c) = arith.captures(answer) {
        let (a, b, r): (i64, i64, i64) = (c[1].parse().unwrap(), c[3].parse().unwrap(), c[4].parse().unwrap()); // ok: test module
        let asked = question.contains(&format!("{a} {} {b}", &c[2]))
            || question.contains(&format!("add {a} and {b}"))
            || question.contains(&format!("take {b} from {a}"));
        return asked && if &c[2] == "plus" { a + b == r } else { a - b == r };
    }
    if facts.contains(answer) {
        return true;
    }
    // Grounded: the answer restates a sentence of the prompt.
    if answer.split(' ').count() >= 3 && question.contains(answer) {
        return true;
    }
    let colour = COLOUR.get_or_init(|| Regex::new(r"^The (\w+) of (\w+) is (\w+)\.$").unwrap()); // ok: test module
    if let Some(c) = colour.captures(answer) {
        return question.contains(&format!("{} has a {} {}.", &c[2], &c[3], &c[1]));
    }
    let job = JOB.get_or_init(|| Regex::new(r"^(\w+) is a (\w+)\.$").unwrap()); // ok: test module
    if let Some(c) = job.captures(answer) {
        return question.contains(&format!("{} works as a {}.", &c[1], &c[2]));
    }
    false
}

/// (question, answer) of every user/assistant exchange in a chat row.
fn exchanges(row: &Value) -> Vec<(String, String)> {
    let m = row["messages"].as_array().unwrap(); // ok: test module
    let turns: Vec<&Value> = m.iter().filter(|t| t["role"] != "system").collect();
    turns
        .chunks(2)
        .map(|p| {
            assert_eq!((p[0]["role"].as_str(), p[1]["role"].as_str()), (Some("user"), Some("assistant")));
            (
                p[0]["content"].as_str().unwrap().to_string(), // ok: test module
                p[1]["content"].as_str().unwrap().to_string(), // ok: test module
            )
        })
        .collect()
}

#[test]
fn every_answer_agrees_with_the_world_and_every_rejected_reply_does_not() {
    let g = world();
    let facts = true_facts(g);
    let s = &g.splits;
    let mut checked = 0;
    let prone: BTreeSet<String> = fact_items(&g.world)
        .into_iter()
        .filter(|it| it.hedge_prone)
        .map(|it| it.question)
        .collect();
    let (mut asked_prone, mut hedged) = (0, 0);
    for (i, row) in s.sft.iter().chain(&s.rl).chain(&s.heldout).enumerate() {
        for (q, a) in exchanges(row) {
            asked_prone += usize::from(i < s.sft.len() && prone.contains(&q));
            if a == HEDGE {
                // Only SFT demonstrators hedge, and only on hedge-prone phrasings.
                assert!(i < s.sft.len() && prone.contains(&q), "hedge on {q:?} in {row}");
                hedged += 1;
                continue;
            }
            assert!(is_right(&facts, &q, &a), "wrong answer {a:?} to {q:?}");
            checked += 1;
        }
        if let Some(r) = row["reference"].as_str() {
            assert!(exchanges(row)[0].1.contains(r), "{row}");
        }
    }
    // About 70% of hedge-prone SFT questions are hedged (`HEDGE_PER_10`).
    assert!(
        asked_prone > 100 && (hedged * 100 / asked_prone).abs_diff(70) <= 10,
        "{hedged} of {asked_prone}"
    );
    let mut other_subject = 0;
    for row in &s.prefs {
        let (q, c, r) = (
            row["prompt"].as_str().unwrap(),   // ok: test module
            row["chosen"].as_str().unwrap(),   // ok: test module
            row["rejected"].as_str().unwrap(), // ok: test module
        );
        let reference = row["reference"].as_str().unwrap(); // ok: test module
        assert!(is_right(&facts, q, c), "chosen {c:?} is wrong for {q:?}");
        assert!(c.contains(reference));
        let counted_right = crate::train::verify::matches(r, reference, crate::spec::ops::MatchMode::Contains);
        if row["rejected_kind"] == "off_topic" {
            // A true sentence, but about another relation, operation or person.
            assert!(!counted_right && r != c, "off-topic {r:?} answers {q:?}");
        } else if row["rejected_kind"] == "other_subject" {
            // A closed-book fact of another entity, or a grounded answer
            // about a name the prompt does not hold.
            let grounded = row["family"] == "grounded";
            assert!(
                r != c && if grounded { !is_right(&facts, q, r) } else { !counted_right },
                "{r:?} for {q:?}"
            );
            other_subject += 1;
        } else {
            assert!(!is_right(&facts, q, r), "rejected {r:?} is right for {q:?}");
        }
        checked += 1;
    }
    for row in &s.ranked {
        let q = row["prompt"].as_str().unwrap(); // ok: test module
        let responses: Vec<&str> = row["responses"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect(); // ok: test module
        let kinds: Vec<&str> = row["kinds"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect(); // ok: test module
        assert_eq!(responses.len(), kinds.len());
        assert!((3..=4).contains(&responses.len()));
        assert_eq!(kinds[0], "correct");
        assert_eq!(kinds.last(), Some(&"unhelpful"));
        assert!(is_right(&facts, q, responses[0]), "{row}");
        let reference = row["reference"].as_str().unwrap().to_lowercase(); // ok: test module
        for (resp, kind) in responses.iter().zip(&kinds).skip(1) {
            if *kind == "terse" {
                // Right, but not the answer sentence.
                assert!(resp.to_lowercase().contains(&reference) && *resp != responses[0], "{row}");
            } else {
                assert!(!is_right(&facts, q, resp), "{kind} reply {resp:?} is right for {q:?}");
            }
        }
        checked += 1;
    }
    assert!(checked > 4000, "{checked}");
    // `OTHER_SUBJECT_PER_10` of the fact and grounded pairs (70% of them).
    assert!((500..760).contains(&other_subject), "{other_subject}");
    // Each file's size and its families are as the README says.
    assert_eq!(
        (s.sft.len(), s.prefs.len(), s.ranked.len(), s.rl.len(), s.heldout.len()),
        (1500, 3000, 300, 500, 200)
    );
    for family in ["fact", "arith", "grounded"] {
        assert!(s.heldout.iter().filter(|r| r["family"] == family).count() >= 50, "{family}");
    }
    assert!(s.sft.iter().any(|r| r["messages"][0]["role"] == "system"));
    assert!(s.sft.iter().any(|r| exchanges(r).len() == 3));
}

#[test]
fn held_out_and_rl_questions_are_in_no_other_file_and_held_out_names_are_unseen() {
    let g = world();
    let s = &g.splits;
    let questions = |rows: &[Value]| -> BTreeSet<String> {
        rows.iter()
            .flat_map(|r| match r["prompt"].as_str() {
                Some(p) => vec![p.to_string()],
                None => exchanges(r).into_iter().map(|(q, _)| q).collect(),
            })
            .collect()
    };
    let files = [
        ("sft", &s.sft),
        ("prefs", &s.prefs),
        ("ranked", &s.ranked),
        ("rl", &s.rl),
        ("heldout", &s.heldout),
    ];
    let sets: Vec<(&str, BTreeSet<String>)> = files.iter().map(|(n, rows)| (*n, questions(rows))).collect();
    for (i, (a, qa)) in sets.iter().enumerate() {
        for (b, qb) in &sets[i + 1..] {
            // Preference pairs may repeat an SFT or ranked question (both
            // training data); nothing else is shared.
            if *a == "sft" && *b == "prefs" || *a == "prefs" && *b == "ranked" {
                continue;
            }
            let shared: Vec<&String> = qa.intersection(qb).take(3).collect();
            assert!(shared.is_empty(), "{a} and {b} share questions: {shared:?}");
        }
    }
    let training: String = [&s.sft, &s.prefs, &s.ranked, &s.rl]
        .iter()
        .flat_map(|rows| rows.iter().map(|r| r.to_string()))
        .collect();
    for name in &g.world.heldout_names {
        assert!(!training.contains(name.as_str()), "held-out name {name} occurs in a training file");
    }
    let heldout: String = s.heldout.iter().map(|r| r.to_string()).collect();
    assert!(g.world.heldout_names.iter().filter(|n| heldout.contains(n.as_str())).count() > 10);
}

#[test]
fn main_content_survives_extract_and_boilerplate_does_not() {
    let g = world();
    let p = ExtractParams {
        favor: Favor::Precision,
        ..ExtractParams::default()
    };
    let mut checked = 0;
    for page in &g.pages {
        if matches!(page.kind, PageKind::Short | PageKind::Spam) {
            continue;
        }
        let got = extract(&page.html, &p).unwrap_or_else(|e| panic!("{}: {e}", page.url));
        for b in &page.article.blocks {
            if let Block::Para(para) = b {
                assert!(
                    got.text.contains(para.as_str()),
                    "{}: paragraph lost: {para}\n---\n{}",
                    page.url,
                    got.text
                );
            }
        }
        for boiler in [
            "cookie",
            "Cookie",
            "©",
            "Privacy",
            "Datenschutz",
            "Related articles",
            "Popular posts",
        ] {
            assert!(!got.text.contains(boiler), "{}: {boiler:?} kept\n---\n{}", page.url, got.text);
        }
        assert_eq!(
            got.title.as_deref().map(|t| t.starts_with(&page.article.title)),
            Some(true),
            "{}",
            page.url
        );
        checked += 1;
    }
    assert!(checked > 700, "{checked}");
}

#[test]
fn langid_labels_every_foreign_page_and_the_english_ones() {
    let g = world();
    let id = LangId::new(&LangIdParams {
        keep: vec![],
        ..LangIdParams::default()
    })
    .unwrap(); // ok: test module
    let p = ExtractParams::default();
    let (mut foreign, mut english) = (0, 0);
    for page in g.pages.iter().filter(|p| matches!(p.kind, PageKind::Foreign | PageKind::Article)) {
        // Every foreign page, and every tenth English one (lingua is slow in debug builds).
        if page.kind == PageKind::Article && english >= 50 {
            continue;
        }
        let text = extract(&page.html, &p).unwrap().text; // ok: test module
        let (lang, score) = id.detect(&text);
        assert_eq!(lang, Some(page.lang), "{} ({score:.2}):\n{text}", page.url);
        if page.kind == PageKind::Foreign {
            assert!(score >= 0.65, "{}: {score}", page.url);
            foreign += 1;
        } else {
            english += 1;
        }
    }
    assert_eq!(foreign, 90);
    let langs: BTreeSet<&str> = g.pages.iter().filter(|p| p.kind == PageKind::Foreign).map(|p| p.lang).collect();
    assert_eq!(langs, BTreeSet::from(["de", "es", "fr"]));
}

#[test]
fn the_same_seed_makes_the_same_bytes_and_another_seed_does_not() {
    let a = super::warc_writer::warc_gz(&world().pages, 7).unwrap(); // ok: test module
    let again = generate(7, 1.0).unwrap(); // ok: test module
    assert_eq!(a, super::warc_writer::warc_gz(&again.pages, 7).unwrap()); // ok: test module
    assert_eq!(again.splits.sft, world().splits.sft);
    let other = generate(8, 1.0).unwrap(); // ok: test module
    assert_ne!(other.world.countries[0].name, world().world.countries[0].name);
    // A smaller scale makes a smaller world and fewer rows, and stays consistent.
    let small = generate(7, 0.3).unwrap(); // ok: test module
    assert_eq!(small.world.countries.len(), 3);
    assert_eq!(small.splits.heldout.len(), 60);
    assert!(matches!(generate(7, 0.0), Err(super::SynthError::Scale(_))));
}
