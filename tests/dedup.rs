//! The `dedup` op through the `kiln` binary: `exact`, `lines`, and
//! `minhash` recall/precision on a near-duplicate set built from the real
//! texts in ../shared/data/text, stable across thread counts and spills.

mod common;
use common::{kiln_in, manifest, pipeline, rejected, rows};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

fn write_jsonl(path: &Path, docs: &[(String, String)]) {
    let mut out = String::new();
    for (id, text) in docs {
        out.push_str(&serde_json::json!({ "id": id, "text": text }).to_string());
        out.push('\n');
    }
    std::fs::write(path, out).unwrap();
}

fn dedup_yaml(extra: &str) -> String {
    format!("name: d\nworkdir: runs\nnodes:\n  docs:\n    op: read\n    path: docs.jsonl\n  dd:\n    op: dedup\n    input: docs\n{extra}")
}

fn parse(lines: Vec<String>) -> Vec<Value> {
    lines.iter().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[test]
fn exact_keeps_the_first_copy_and_rejects_name_it() {
    let d = tempfile::tempdir().unwrap();
    let docs: Vec<(String, String)> = [
        ("a", "Hello world. This is the first document."),
        ("b", "Something else entirely, with 3 numbers."),
        ("c", "hello   WORLD, this is the first document!"),
        ("d", "Something else entirely; with 7 numbers"),
        ("e", "Hello world. This is the first document, changed."),
        ("f", "Hello world. This is the first document."),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    write_jsonl(&d.path().join("docs.jsonl"), &docs);
    let f = pipeline(d.path(), &dedup_yaml("    method: exact\n"));
    kiln_in(d.path(), &["run", f.to_str().unwrap(), "--quiet"]).ok();
    let w = d.path().join("runs");
    let kept: Vec<String> = parse(rows(&w, "dd"))
        .iter()
        .map(|v| v["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(kept, ["a", "b", "e"]);
    let rej: Vec<(String, String)> = parse(rejected(&w, "dd"))
        .iter()
        .map(|v| (v["id"].as_str().unwrap().to_string(), v["reason"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(
        rej,
        [
            ("c".to_string(), "exact_duplicate: of a".to_string()),
            ("d".into(), "exact_duplicate: of b".into()),
            ("f".into(), "exact_duplicate: of a".into()),
        ]
    );
    let s = &manifest(&w, "dd")["stats"]["dedup"];
    assert_eq!(
        (s["docs_in"].as_u64(), s["kept"].as_u64(), s["components"].as_u64()),
        (Some(6), Some(3), Some(2))
    );
    assert_eq!(s["dropped"]["dedup: exact_duplicate"], 3);
}

#[test]
fn lines_removes_boilerplate_shared_by_documents_and_drops_emptied_ones() {
    let d = tempfile::tempdir().unwrap();
    let header = "Home | About us | Contact";
    let footer = "Copyright 2024 Example Inc. All rights reserved.";
    let topics = ["alpha", "bravo", "charlie", "delta", "echo"];
    let mut docs: Vec<(String, String)> = (0..5)
        .map(|i| {
            (
                format!("p{i}"),
                format!("{header}\nUnique body line about {}.\n\n{footer}", topics[i]),
            )
        })
        .collect();
    // Only boilerplate (the year differs: digits are normalised away).
    docs.push((
        "menu".into(),
        "HOME - about us - contact\nCopyright 2025 Example Inc. All rights reserved.".into(),
    ));
    // A line in exactly two documents goes at max_occurrences 1 but stays at 2.
    docs.push(("q1".into(), "Shared by two.\nOwn text one.".into()));
    docs.push(("q2".into(), "shared BY two\nOwn text two.".into()));
    write_jsonl(&d.path().join("docs.jsonl"), &docs);
    let run = |extra: &str| {
        let f = pipeline(d.path(), &dedup_yaml(&format!("    method: lines\n{extra}")));
        kiln_in(d.path(), &["run", f.to_str().unwrap(), "--quiet"]).ok();
        let w = d.path().join("runs");
        let kept: BTreeMap<String, String> = parse(rows(&w, "dd"))
            .iter()
            .map(|v| (v["id"].as_str().unwrap().to_string(), v["text"].as_str().unwrap().to_string()))
            .collect();
        (kept, parse(rejected(&w, "dd")), manifest(&w, "dd")["stats"]["dedup"].clone())
    };
    let (kept, rej, stats) = run("");
    assert_eq!(kept["p3"], "Unique body line about delta.\n");
    assert_eq!(kept["q1"], "Own text one.");
    assert_eq!(rej.len(), 1);
    assert_eq!(rej[0]["id"], "menu");
    assert!(
        rej[0]["reason"].as_str().unwrap().starts_with("lines_empty: 0 chars left"),
        "{}",
        rej[0]
    );
    assert_eq!(stats["lines_removed"], 14);
    assert_eq!(stats["frequent_lines"], 3);

    let (kept, rej, _) = run("    max_occurrences: 2\n");
    assert_eq!(kept["q2"], "shared BY two\nOwn text two.");
    assert_eq!(kept["p0"], "Unique body line about alpha.\n");
    assert_eq!(rej.len(), 1, "the header and footer are in 6 documents, still over 2");
}

/// SplitMix64: the test's seeded randomness.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// ~3 kB documents cut at whitespace from every text of the three corpora.
fn base_documents(data: &Path) -> Vec<String> {
    let mut files = Vec::new();
    for dir in ["nltk-gutenberg", "nltk-state_union", "nltk-inaugural"] {
        let mut fs: Vec<_> = std::fs::read_dir(data.join("text").join(dir))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "txt") && !p.ends_with("README"))
            .collect();
        fs.sort();
        files.extend(fs);
    }
    let mut docs = Vec::new();
    for f in files {
        let text = String::from_utf8_lossy(&std::fs::read(&f).unwrap()).into_owned();
        let words: Vec<&str> = text.split_whitespace().collect();
        for chunk in words.chunks(500) {
            if chunk.len() >= 300 {
                docs.push(chunk.join(" "));
            }
        }
    }
    docs
}

/// Replaces `frac` of the words: scattered one by one, or in runs of up to
/// 50 consecutive words (a rewritten passage: the near-duplicate shape of
/// templated web pages).
fn edit(text: &str, frac: f64, clustered: bool, vocab: &[String], rng: &mut Rng) -> String {
    let mut words: Vec<String> = text.split(' ').map(str::to_string).collect();
    let target = (words.len() as f64 * frac).round() as usize;
    let mut changed = vec![false; words.len()];
    let mut done = 0;
    while done < target {
        let run = if clustered { (target - done).min(50) } else { 1 };
        let start = rng.below(words.len() - run + 1);
        for i in start..start + run {
            if !changed[i] {
                changed[i] = true;
                done += 1;
                words[i] = vocab[rng.below(vocab.len())].clone();
            }
        }
    }
    words.join(" ")
}

/// Jaccard similarity of the 5-gram shingle sets, as `dedup` simplifies them.
fn jaccard(a: &str, b: &str) -> f64 {
    let set = |t: &str| {
        let (mut simple, mut words, mut sh) = (String::new(), Vec::new(), Vec::new());
        kiln::clean::dedup::Simplify::default().apply(t, &mut simple);
        kiln::clean::dedup::simplify::shingles(&simple, 5, &mut words, &mut sh);
        sh.into_iter().collect::<std::collections::HashSet<u64>>()
    };
    let (a, b) = (set(a), set(b));
    a.intersection(&b).count() as f64 / a.union(&b).count() as f64
}

struct Corpus {
    docs: Vec<(String, String)>,
    /// Edited copy id → (base id, level, clustered).
    copies: HashMap<String, (String, usize, bool)>,
}

const LEVELS: [f64; 4] = [0.05, 0.10, 0.20, 0.40];
const PER_LEVEL: usize = 60;

fn near_duplicate_corpus(data: &Path) -> Corpus {
    let bases = base_documents(data);
    let vocab: Vec<String> = bases.iter().flat_map(|d| d.split(' ')).take(200_000).map(str::to_string).collect();
    let mut rng = Rng(20240601);
    let mut docs: Vec<(String, String)> = bases.iter().enumerate().map(|(i, t)| (format!("base{i}"), t.clone())).collect();
    let mut copies = HashMap::new();
    let mut order: Vec<usize> = (0..bases.len()).collect();
    for i in (1..order.len()).rev() {
        order.swap(i, rng.below(i + 1));
    }
    let mut picks = order.into_iter();
    for clustered in [true, false] {
        for (level, &frac) in LEVELS.iter().enumerate() {
            for _ in 0..PER_LEVEL {
                let b = picks.next().unwrap();
                let id = format!("copy{}_{}_{b}", if clustered { "c" } else { "s" }, level);
                docs.push((id.clone(), edit(&bases[b], frac, clustered, &vocab, &mut rng)));
                copies.insert(id, (format!("base{b}"), level, clustered));
            }
        }
    }
    Corpus { docs, copies }
}

#[test]
fn minhash_finds_near_duplicates_and_leaves_unrelated_documents_alone() {
    let Some(data) = common::shared_data() else { return };
    let corpus = near_duplicate_corpus(&data);
    let d = tempfile::tempdir().unwrap();
    write_jsonl(&d.path().join("docs.jsonl"), &corpus.docs);
    let run = |threads: &str, memory_mb: u64| {
        let f = pipeline(d.path(), &dedup_yaml(&format!("    method: minhash\n    memory_mb: {memory_mb}\n")));
        kiln_in(d.path(), &["run", f.to_str().unwrap(), "--quiet", "--threads", threads]).ok();
        let w = d.path().join("runs");
        let m = manifest(&w, "dd");
        let rej: Vec<(String, String)> = parse(rejected(&w, "dd"))
            .iter()
            .map(|v| (v["id"].as_str().unwrap().to_string(), v["reason"].as_str().unwrap().to_string()))
            .collect();
        (m["content_hash"].clone(), rej, m["stats"]["dedup"].clone())
    };
    let (hash, rej, stats) = run("2", 1024);
    eprintln!("minhash stats: {stats}");

    // Recall: an edited copy is found when it is rejected as a copy of its base.
    let of: HashMap<&str, &str> = rej
        .iter()
        .map(|(id, r)| (id.as_str(), r.strip_prefix("minhash_duplicate: of ").unwrap()))
        .collect();
    // Beside it, what LSH theory predicts from each pair's true Jaccard
    // similarity J of 5-gram shingle sets: P = 1 − (1 − J^8)^14.
    let texts: HashMap<&str, &str> = corpus.docs.iter().map(|(i, t)| (i.as_str(), t.as_str())).collect();
    let mut recall = BTreeMap::new();
    let (mut hits, mut expected, mut variance) = (0.0, 0.0, 0.0);
    for (id, (base, level, clustered)) in &corpus.copies {
        let j = jaccard(texts[base.as_str()], texts[id.as_str()]);
        let p = 1.0 - (1.0 - j.powi(8)).powi(14);
        let e = recall.entry((*clustered, *level)).or_insert((0, 0, 0.0));
        e.1 += 1;
        e.2 += p;
        expected += p;
        variance += p * (1.0 - p);
        if of.get(id.as_str()) == Some(&base.as_str()) {
            e.0 += 1;
            hits += 1.0;
        }
    }
    for ((clustered, level), (hit, n, p)) in &recall {
        eprintln!(
            "recall at {:>2.0}% words changed ({}): {hit}/{n} = {:.3} (LSH theory from each pair's Jaccard: {:.3})",
            LEVELS[*level] * 100.0,
            if *clustered { "runs of ≤50 words" } else { "scattered" },
            *hit as f64 / *n as f64,
            p / *n as f64
        );
    }
    assert!(
        (hits - expected).abs() <= 4.0 * variance.sqrt() + 2.0,
        "{hits} copies found, theory expects {expected:.1} ± {:.1}",
        variance.sqrt()
    );
    let (hit, n, _) = recall[&(true, 1)];
    assert!(hit as f64 / n as f64 >= 0.9, "recall at 10% (clustered edits) {hit}/{n}");
    let (hit5, n5, _) = recall[&(true, 0)];
    assert!(hit5 as f64 / n5 as f64 >= 0.95, "recall at 5% (clustered edits) {hit5}/{n5}");

    // Precision on unrelated pairs: every base document is unrelated to all
    // the others, so none may be dropped, and no copy may be matched to a
    // document other than its own base.
    let bases = corpus.docs.len() - corpus.copies.len();
    let wrong: Vec<&(String, String)> = rej
        .iter()
        .filter(|(id, _)| {
            corpus
                .copies
                .get(id)
                .is_none_or(|(b, _, _)| of.get(id.as_str()) != Some(&b.as_str()))
        })
        .collect();
    let precision = 1.0 - wrong.len() as f64 / bases as f64;
    eprintln!(
        "unrelated documents: {bases}, wrongly clustered: {} → precision {precision:.4}",
        wrong.len()
    );
    assert!(precision >= 0.99, "{wrong:?}");

    // The same rows and rejects with one thread, and with a 1 MB budget
    // that forces the band sorts to spill.
    let (hash1, rej1, _) = run("1", 1024);
    assert_eq!((&hash1, &rej1), (&hash, &rej));
    let (hash_s, rej_s, stats_s) = run("2", 1);
    assert!(stats_s["spill_runs"].as_u64().unwrap() > 0, "{stats_s}");
    assert_eq!((&hash_s, &rej_s), (&hash, &rej));
}

/// The near-duplicate corpus as text in lines of 12 words (edited copies
/// share most lines with their bases, which `lines` finds), plus a copy of
/// every tenth base differing only in case and spacing (which `exact`
/// finds).
fn sharding_corpus(data: &Path) -> Vec<(String, String)> {
    let corpus = near_duplicate_corpus(data);
    let lines = |t: &str| {
        let words: Vec<&str> = t.split(' ').collect();
        words.chunks(12).map(|c| c.join(" ")).collect::<Vec<_>>().join("\n")
    };
    let mut docs: Vec<(String, String)> = corpus.docs.iter().map(|(id, t)| (id.clone(), lines(t))).collect();
    let bases = corpus.docs.len() - corpus.copies.len();
    for i in (0..bases).step_by(10) {
        let t = docs[i].1.to_uppercase().replace(' ', "  ");
        docs.push((format!("same{i}"), t));
    }
    docs
}

/// Runs `dd` (dedup with `method`) whole, then in three shards over an
/// input of eight files and a merge; a part damaged on disk must stop the
/// merge naming it, and the mended merge must equal the whole run.
fn sharded_dedup_equals_whole(docs: &[(String, String)], method: &str) {
    let d = tempfile::tempdir().unwrap();
    let per = docs.len().div_ceil(8);
    for (i, chunk) in docs.chunks(per).enumerate() {
        write_jsonl(&d.path().join(format!("docs-{i}.jsonl")), chunk);
    }
    let yaml = format!(
        "name: d\nworkdir: runs\nnodes:\n  docs:\n    op: read\n    path: docs-*.jsonl\n  dd:\n    op: dedup\n    input: docs\n    method: {method}\n    max_occurrences: 1\n"
    );
    let f = pipeline(d.path(), &yaml);
    let f = f.to_str().unwrap();
    let run = |args: &[&str]| {
        let mut a = vec!["run", f, "--quiet", "--set", "workdir=sharded"];
        a.extend_from_slice(args);
        kiln_in(d.path(), &a)
    };
    kiln_in(d.path(), &["run", f, "--quiet"]).ok();
    let whole = d.path().join("runs");
    let want = manifest(&whole, "dd");
    eprintln!("{method}: {}", want["stats"]["dedup"]);
    assert!(want["rejected_rows"].as_u64().unwrap() > 100 || want["stats"]["dedup"]["lines_removed"].as_u64() > Some(10_000));

    // `docs` in eight shards, so that `dd`'s input is eight files, with
    // copies in other files than their bases.
    run(&["--until", "docs", "--executor", "local", "--set", "executor.tasks=8"]).ok();
    let w = d.path().join("sharded");
    assert_eq!(manifest(&w, "docs")["files"].as_array().unwrap().len(), 8);
    // The same first round of shards in two workdirs: one finishes with a
    // merge that clusters and filters in one process, the other clusters,
    // filters in a second round of shards, and joins.
    let first_round = |wd: &str| {
        for i in 0..3 {
            let s = format!("{i}/3");
            kiln_in(
                d.path(),
                &[
                    "run",
                    f,
                    "--quiet",
                    "--set",
                    &format!("workdir={wd}"),
                    "--node",
                    "dd",
                    "--shard",
                    &s,
                ],
            )
            .ok();
        }
    };
    first_round("sharded");
    let onepass = d.path().join("onepass");
    std::fs::create_dir_all(&onepass).unwrap();
    copy_dir(&w.join("docs"), &onepass.join("docs"));
    first_round("onepass");
    // A damaged part: clustering names it and refuses.
    let set = std::fs::read_dir(w.join(".parts/dd")).unwrap().next().unwrap().unwrap().path();
    let part = set.join("part-00001");
    let kind = if method == "minhash" { "signatures" } else { "runs" };
    let victim = std::fs::read_dir(part.join(kind)).unwrap().next().unwrap().unwrap().path();
    let bytes = std::fs::read(&victim).unwrap();
    std::fs::write(&victim, &bytes[..bytes.len() - 8]).unwrap();
    let bad = run(&["--node", "dd", "--cluster"]);
    assert_ne!(bad.code, 0);
    let named = if method == "minhash" {
        victim.file_name().unwrap().to_str().unwrap()
    } else {
        "part-00001"
    };
    assert!(bad.stderr.contains(named) && bad.stderr.contains("--shard"), "{}", bad.stderr);
    assert!(!set.join("clusters").exists(), "a failed clustering was kept");

    // Running the shard again mends it; cluster, filter in three
    // second-round shards, and join.
    run(&["--node", "dd", "--shard", "1/3"]).ok();
    if method == "minhash" {
        // The bucket sorts as two jobs over groups of bands; a damaged pair
        // file stops clustering, naming the job that rebuilds it.
        for g in ["0/2", "1/2"] {
            run(&["--node", "dd", "--bands", g]).ok();
        }
        let group = set.join("buckets-of-2/group-00001");
        let pairs = std::fs::read_dir(&group)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.extension().is_some_and(|e| e == "bin") && std::fs::metadata(p).unwrap().len() >= 8)
            .expect("a non-empty pair file");
        let bytes = std::fs::read(&pairs).unwrap();
        std::fs::write(&pairs, &bytes[..bytes.len() - 8]).unwrap();
        let bad = run(&["--node", "dd", "--cluster"]);
        assert_ne!(bad.code, 0);
        assert!(bad.stderr.contains("--bands 1/2"), "{}", bad.stderr);
        run(&["--node", "dd", "--bands", "1/2"]).ok();
    }
    run(&["--node", "dd", "--cluster"]).ok();
    assert!(set.join("clusters/manifest.json").exists());
    for i in 0..3 {
        run(&["--node", "dd", "--shard", &format!("{i}/3")]).ok();
        assert!(set.join(format!("second/part-{i:05}/manifest.json")).exists(), "round-2 part {i}");
    }
    run(&["--node", "dd", "--merge"]).ok();
    kiln_in(
        d.path(),
        &["run", f, "--quiet", "--set", "workdir=onepass", "--node", "dd", "--merge"],
    )
    .ok();
    let why = |w: &Path| -> Vec<(String, String)> {
        parse(rejected(w, "dd"))
            .iter()
            .map(|v| (v["id"].as_str().unwrap().to_string(), v["reason"].as_str().unwrap().to_string()))
            .collect()
    };
    for w in [&w, &onepass] {
        let got = manifest(w, "dd");
        assert_eq!(got["content_hash"], want["content_hash"], "{method} {}", w.display());
        assert_eq!(got["parts"], 3);
        // Every count but where the intermediates went: the shards' sorted
        // runs are spill runs of the merge, where one process kept them in memory.
        let counts = |m: &Value| {
            let mut s = m["stats"]["dedup"].clone();
            for k in ["spill_runs", "peak_spill_bytes", "intermediate_bytes"] {
                s.as_object_mut().unwrap().remove(k);
            }
            s
        };
        assert_eq!(counts(&got), counts(&want), "{method} {}", w.display());
        // The same rejects; only the input file they name differs, since
        // the sharded `docs` is eight files.
        assert_eq!(why(w), why(&whole));
        assert!(
            !w.join(".parts/dd").read_dir().is_ok_and(|mut r| r.next().is_some()),
            "parts left behind"
        );
    }
}

/// Copies a directory tree (an artifact into another workdir).
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

#[test]
fn every_method_in_three_shards_and_a_merge_equals_a_whole_run() {
    let Some(data) = common::shared_data() else { return };
    let docs = sharding_corpus(&data);
    for method in ["minhash", "exact", "lines"] {
        sharded_dedup_equals_whole(&docs, method);
    }
}
