// ok: test module
//! The bundled sample world (`data/world`): the committed files are what
//! `kiln synth --seed 7` makes, and the crawl goes through the FineWeb-order
//! cleaning recipe with the funnel it was built for.

mod common;
use common::{kiln_in, manifest, rejected, rows};
use kiln::synth::crawl::PageKind;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

fn world_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data/world")
}

#[test]
fn committed_files_are_what_the_generator_makes() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("world");
    kiln_in(dir.path(), &["synth", "--out", out.to_str().unwrap(), "--seed", "7"]).ok();
    let mut names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "README.md",
            "crawl.warc.gz",
            "heldout.jsonl",
            "prefs.jsonl",
            "ranked.jsonl",
            "rl_prompts.jsonl",
            "sft.jsonl"
        ]
    );
    let mut total = 0;
    for n in &names {
        let made = std::fs::read(out.join(n)).unwrap();
        let committed = std::fs::read(world_dir().join(n)).unwrap_or_else(|e| panic!("data/world/{n}: {e}"));
        total += committed.len();
        assert!(
            made == committed,
            "data/world/{n} differs from what `kiln synth --out data/world --seed 7` makes now: \
             regenerate it with that command and commit the result"
        );
    }
    assert!(total < 3 << 20, "data/world is {total} bytes; keep it under 3 MB");
}

/// Which kind each URL of the crawl is.
fn kinds_by_url() -> HashMap<String, PageKind> {
    let g = kiln::synth::generate(7, 1.0).unwrap();
    g.pages.iter().map(|p| (p.url.clone(), p.kind)).collect()
}

#[test]
fn the_world_crawl_goes_through_the_cleaning_funnel() {
    let dir = tempfile::tempdir().unwrap();
    let recipe = Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines/world-clean.yaml");
    let crawl = format!("vars.crawl={}", world_dir().join("crawl.warc.gz").display());
    kiln_in(dir.path(), &["run", recipe.to_str().unwrap(), "--quiet", "--set", &crawl]).ok();
    let w = dir.path().join("runs/world-clean");
    let kinds = kinds_by_url();
    let total: BTreeMap<PageKind, usize> = kinds.values().fold(BTreeMap::new(), |mut m, k| {
        *m.entry(*k).or_default() += 1;
        m
    });
    assert_eq!(
        manifest(&w, "raw")["rows"].as_u64().unwrap() as usize,
        kinds.len(),
        "one document per page"
    );
    // (kind, step) → pages dropped there; "kept" for the survivors of dedup.
    let mut funnel: BTreeMap<(PageKind, String), usize> = BTreeMap::new();
    for (node, key) in [("clean", "step"), ("dedup", "step")] {
        for r in rejected(&w, node) {
            let r: Value = serde_json::from_str(&r).unwrap();
            let kind = kinds[r["url"].as_str().unwrap()];
            if std::env::var("WORLD_DEBUG").is_ok() && matches!(kind, PageKind::Article | PageKind::Worksheet) && node == "clean" {
                eprintln!("{} {} {}\n{}\n", r["url"], r["step"], r["reason"], r["text"].as_str().unwrap_or(""));
            }
            let step = if node == "dedup" {
                "dedup".to_string()
            } else {
                r[key].as_str().unwrap().to_string()
            };
            *funnel.entry((kind, step)).or_default() += 1;
        }
    }
    let kept = rows(&w, "final");
    for r in &kept {
        let r: Value = serde_json::from_str(r).unwrap();
        *funnel.entry((kinds[r["url"].as_str().unwrap()], "kept".into())).or_default() += 1;
        let text = r["text"].as_str().unwrap();
        for boiler in ["Accept all", "We use cookies", "All rights reserved", "Privacy"] {
            assert!(!text.contains(boiler), "boilerplate {boiler:?} left in {}", r["url"]);
        }
    }
    let at = |k: PageKind, step: &str| funnel.get(&(k, step.to_string())).copied().unwrap_or(0);
    let mut report = String::from("world funnel (kind: total → dropped by step, kept)\n");
    for (k, n) in &total {
        let steps: Vec<String> = funnel
            .iter()
            .filter(|((kk, _), _)| kk == k)
            .map(|((_, s), c)| format!("{s} {c}"))
            .collect();
        report.push_str(&format!("  {:<10} {n:>4} → {}\n", k.name(), steps.join(", ")));
    }
    eprintln!("{report}");
    let n = |k: PageKind| total.get(&k).copied().unwrap_or(0);
    // Foreign pages: dropped by langid, all of them.
    assert_eq!(at(PageKind::Foreign, "langid"), n(PageKind::Foreign), "{report}");
    // Spam and empty pages never reach dedup.
    for k in [PageKind::Spam, PageKind::Short] {
        assert_eq!(at(k, "kept") + at(k, "dedup"), 0, "{report}");
    }
    assert!(
        at(PageKind::Spam, "langid") * 4 < n(PageKind::Spam),
        "spam should fall to quality filters:\n{report}"
    );
    // Duplicates: the copies or their originals go at dedup, so few copies survive.
    let dups = n(PageKind::ExactDup) + n(PageKind::NearDup);
    let deduped = at(PageKind::ExactDup, "dedup") + at(PageKind::NearDup, "dedup") + at(PageKind::Article, "dedup");
    assert!(deduped >= dups * 9 / 10, "{report}");
    // ... and distinct articles are not mistaken for duplicates of each other.
    assert!(deduped <= dups + n(PageKind::Article) / 20, "{report}");
    // The articles and worksheets, the world's text, are mostly kept.
    let articles = at(PageKind::Article, "kept") + at(PageKind::Article, "dedup");
    assert!(articles * 100 >= n(PageKind::Article) * 90, "{report}");
    assert!(at(PageKind::Worksheet, "kept") * 100 >= n(PageKind::Worksheet) * 90, "{report}");
}

#[test]
fn the_qa_files_read_with_kiln_converters_without_a_reject() {
    let dir = tempfile::tempdir().unwrap();
    let d = world_dir();
    let f = |n: &str| d.join(n).display().to_string();
    let yaml = format!(
        "name: w\nworkdir: runs\nnodes:\n  sft:\n    op: read\n    path: '{}'\n    format: chat\n  prefs:\n    op: read\n    path: '{}'\n    format: preferences\n  \
         rl:\n    op: read\n    path: '{}'\n    format: chat\n  heldout:\n    op: read\n    path: '{}'\n    format: chat\n  \
         ranked:\n    op: read\n    path: '{}'\n    text_field: prompt\n",
        f("sft.jsonl"),
        f("prefs.jsonl"),
        f("rl_prompts.jsonl"),
        f("heldout.jsonl"),
        f("ranked.jsonl")
    );
    common::pipeline(dir.path(), &yaml);
    kiln_in(dir.path(), &["run", "pipeline.yaml", "--quiet"]).ok();
    let w = dir.path().join("runs");
    for (node, file, kind) in [
        ("sft", "sft.jsonl", "chat"),
        ("prefs", "prefs.jsonl", "preferences"),
        ("rl", "rl_prompts.jsonl", "chat"),
        ("heldout", "heldout.jsonl", "chat"),
        ("ranked", "ranked.jsonl", "documents"),
    ] {
        let m = manifest(&w, node);
        let lines = std::fs::read_to_string(d.join(file)).unwrap().lines().count() as u64;
        assert_eq!(m["kind"], kind, "{node}");
        assert_eq!((m["rows"].as_u64(), m["rejected_rows"].as_u64()), (Some(lines), Some(0)), "{node}");
    }
    // The short answer arrives as the `reference` column, or (while the chat
    // converter reads only gsm8k's) in the metadata, which `write` spreads as
    // `metadata.reference`.
    for r in rows(&w, "heldout") {
        let r: Value = serde_json::from_str(&r).unwrap();
        let last = r["messages"].as_array().unwrap().last().unwrap()["content"]
            .as_str()
            .unwrap()
            .to_string();
        let reference = match r["reference"].as_str() {
            Some(s) => s.to_string(),
            None => r["metadata.reference"].as_str().unwrap_or_default().to_string(),
        };
        assert!(!reference.is_empty() && last.contains(&reference), "{r}");
    }
}
