//! The FineWeb-order recipe `pipelines/clean-crawl.yaml` on the real crawl
//! excerpts: every document is accounted for, step by step.

mod common;
use common::{kiln_in, manifest, rejected, shared_data};
use serde_json::Value;

#[test]
fn the_clean_crawl_recipe_accounts_for_every_document() {
    let Some(data) = shared_data() else { return };
    let dir = tempfile::tempdir().unwrap();
    let recipe = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines/clean-crawl.yaml");
    let yaml = std::fs::read_to_string(&recipe).unwrap();
    let p = dir.path().join("clean-crawl.yaml");
    std::fs::write(&p, yaml).unwrap();
    let crawl = format!("vars.crawl={}", data.join("crawl").display());
    kiln_in(dir.path(), &["run", p.to_str().unwrap(), "--set", &crawl]).ok();
    let w = dir.path().join("runs/clean-crawl");
    let raw = manifest(&w, "raw");
    let clean = manifest(&w, "clean");
    let c = &clean["stats"]["clean"];
    let docs_in = c["docs_in"].as_u64().unwrap();
    assert_eq!(docs_in, raw["rows"].as_u64().unwrap());
    assert!(docs_in > 50, "the crawl excerpts hold dozens of HTML pages");
    let kept = c["kept"].as_u64().unwrap();
    assert_eq!(kept, clean["rows"].as_u64().unwrap());
    // Each step saw what the previous one kept; drops add up to the rejects.
    let steps = c["steps"].as_object().unwrap();
    let mut reaching = docs_in;
    let mut dropped = 0;
    for (name, s) in steps {
        assert_eq!(s["docs_in"].as_u64().unwrap(), reaching, "{name}");
        let d = s["dropped"].as_u64().unwrap();
        let by_reason: u64 = s["reasons"].as_object().unwrap().values().map(|v| v.as_u64().unwrap()).sum();
        assert_eq!(d, by_reason, "{name}: reasons must add up");
        reaching -= d;
        dropped += d;
    }
    assert_eq!(reaching, kept);
    assert_eq!(dropped, clean["rejected_rows"].as_u64().unwrap());
    let names: Vec<&str> = steps.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "url_filter",
            "extract",
            "langid",
            "gopher_repetition",
            "gopher_quality",
            "c4",
            "fineweb"
        ]
    );
    for r in rejected(&w, "clean") {
        let r: Value = serde_json::from_str(&r).unwrap();
        assert!(steps.contains_key(r["step"].as_str().unwrap()), "{r}");
        assert!(r["reason"].as_str().is_some_and(|s| !s.is_empty()));
    }
    // Languages other than English are dropped, and the kept text is text.
    assert!(steps["langid"]["dropped"].as_u64().unwrap() > 0);
    let rows = common::rows(&w, "final");
    assert!(!rows.is_empty());
    for r in &rows {
        let r: Value = serde_json::from_str(r).unwrap();
        assert_eq!(r["lang"], "en");
        assert!(!r["text"].as_str().unwrap().contains("<div"), "HTML left in the text");
    }
    let dedup = manifest(&w, "dedup");
    assert_eq!(
        dedup["rows"].as_u64().unwrap() + dedup["rejected_rows"].as_u64().unwrap(),
        kept,
        "dedup accounts for every cleaned document"
    );
}
