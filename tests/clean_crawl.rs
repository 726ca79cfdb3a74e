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
    let clean = manifest(&w, "clean");
    // `clean` reads the WARC itself: the reader's part of the funnel.
    let r = &clean["stats"]["read"];
    let c = &clean["stats"]["clean"];
    let docs_in = c["docs_in"].as_u64().unwrap();
    assert_eq!(docs_in, r["rows_out"].as_u64().unwrap());
    let read_rejected = r["rejected"].as_u64().unwrap();
    assert!(read_rejected > 0, "the crawl's broken fixtures are rejected by the reader");
    assert!(r["skipped"].as_object().is_some_and(|m| !m.is_empty()), "{r}");
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
    assert_eq!(dropped + read_rejected, clean["rejected_rows"].as_u64().unwrap());
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
    let mut read_rows = 0;
    for r in rejected(&w, "clean") {
        let r: Value = serde_json::from_str(&r).unwrap();
        let step = r["step"].as_str().unwrap();
        read_rows += u64::from(step == "read");
        assert!(step == "read" || steps.contains_key(step), "{r}");
        assert!(r["reason"].as_str().is_some_and(|s| !s.is_empty()));
    }
    assert_eq!(read_rows, read_rejected);
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

/// `clean` with `read:` is the same work as a `read` node then `clean`: the
/// same kept rows, in the same order, and the same rejects between them.
#[test]
fn clean_reading_the_warc_itself_equals_read_then_clean() {
    let Some(data) = shared_data() else { return };
    let dir = tempfile::tempdir().unwrap();
    let crawl = data.join("crawl");
    let steps = "[url_filter, {extract: {favor: precision}}, {langid: {keep: [en], min_score: 0.65}}, gopher_quality]";
    let yaml = format!(
        "name: t\nworkdir: w\nnodes:\n  \
         raw: {{op: read, path: {c}, format: warc}}\n  \
         two: {{op: clean, input: raw, steps: {steps}}}\n  \
         one: {{op: clean, read: {{path: {c}, format: warc}}, steps: {steps}}}\n",
        c = crawl.display()
    );
    let p = dir.path().join("p.yaml");
    std::fs::write(&p, yaml).unwrap();
    kiln_in(dir.path(), &["run", p.to_str().unwrap(), "-q"]).ok();
    let w = dir.path().join("w");
    let (raw, two, one) = (manifest(&w, "raw"), manifest(&w, "two"), manifest(&w, "one"));
    assert!(one["rows"].as_u64().unwrap() > 0);
    assert_eq!(one["content_hash"], two["content_hash"], "the kept rows differ");
    assert_eq!(one["rows"], two["rows"]);
    assert_eq!(one["schema"], two["schema"]);
    assert_eq!(one["stats"]["clean"], two["stats"]["clean"], "the step funnels differ");
    // The reader's stats move into the fused node, rejects and skips included.
    assert_eq!(one["stats"]["read"]["rejected"], raw["stats"]["read"]["rejected"]);
    assert_eq!(one["stats"]["read"]["reasons"], raw["stats"]["read"]["reasons"]);
    assert_eq!(one["stats"]["read"]["skipped"], raw["stats"]["read"]["skipped"]);
    assert_eq!(one["stats"]["read"]["records_in"], raw["stats"]["read"]["records_in"]);
    assert_eq!(
        one["rejected_rows"].as_u64().unwrap(),
        raw["rejected_rows"].as_u64().unwrap() + two["rejected_rows"].as_u64().unwrap()
    );
    let key = |r: &String| {
        let v: Value = serde_json::from_str(r).unwrap();
        format!("{} {} {}", v["id"], v["step"], v["reason"])
    };
    let mut fused: Vec<String> = rejected(&w, "one").iter().map(key).collect();
    let mut apart: Vec<String> = rejected(&w, "raw").iter().chain(rejected(&w, "two").iter()).map(key).collect();
    fused.sort();
    apart.sort();
    assert_eq!(fused, apart);
}
