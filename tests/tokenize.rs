//! Tokenizer training, import and tokenization on real text; the tokenizer
//! round-trips every text file and loads in Python with the same ids.

mod common;
use common::{kiln_in, manifest, pipeline};
use std::path::Path;

fn texts_under(dir: &Path, out: &mut Vec<(String, String)>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir).unwrap().flatten().map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            texts_under(&p, out);
        } else if let Ok(text) = std::fs::read_to_string(&p) {
            out.push((p.display().to_string(), text));
        }
    }
}

/// Trains a tokenizer with kiln on the shared text; returns its workdir.
fn trained(dir: &Path, data: &Path) -> std::path::PathBuf {
    let yaml = format!(
        "name: tok\nworkdir: runs\nnodes:\n  docs:\n    op: read\n    path: {}/text/nltk-gutenberg/*.txt\n    text_mode: block\n  bpe:\n    op: train_tokenizer\n    input: docs\n    vocab_size: 2048\n",
        data.display()
    );
    let f = pipeline(dir, &yaml);
    kiln_in(dir, &["run", f.to_str().unwrap(), "--quiet"]).ok();
    dir.join("runs")
}

#[test]
fn byte_level_bpe_round_trips_every_text_file_and_udhr() {
    let Some(data) = common::shared_data() else { return };
    let d = tempfile::tempdir().unwrap();
    let runs = trained(d.path(), &data);
    let m = manifest(&runs, "bpe");
    assert_eq!(m["kind"], "tokenizer");
    assert_eq!(m["extra"]["vocab_size"], 2048);
    assert_eq!(m["extra"]["specials"]["bos"], 0);
    assert_eq!(m["extra"]["specials"]["end"], 6);
    let tok = kiln::tokenize::load(&runs.join("bpe/tokenizer.json")).unwrap();
    let mut files = Vec::new();
    texts_under(&data.join("text"), &mut files);
    let udhr: Vec<_> = std::fs::read_dir(data.join("langid/nltk-udhr"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    let mut n_udhr = 0;
    // The UTF-8 translations (a few files named so are not valid UTF-8: skipped).
    for p in udhr.iter().filter(|p| p.to_string_lossy().contains("UTF8")) {
        if let Ok(text) = std::fs::read_to_string(p) {
            files.push((p.display().to_string(), text));
            n_udhr += 1;
        }
    }
    assert!(n_udhr > 50, "{n_udhr}");
    assert!(files.len() > 150, "{}", files.len());
    for (name, text) in &files {
        let ids = kiln::tokenize::encode(&tok, text).unwrap();
        assert!(!ids.is_empty() || text.is_empty(), "{name}");
        assert!(kiln::tokenize::decode(&tok, &ids).unwrap() == *text, "{name} does not round-trip");
    }
}

#[test]
fn tokenize_frames_documents_splits_long_ones_and_counts_rejects() {
    let Some(data) = common::shared_data() else { return };
    let d = tempfile::tempdir().unwrap();
    let runs = trained(d.path(), &data);
    // Odd documents: empty, whitespace only, NUL bytes, a lone surrogate.
    std::fs::write(
        d.path().join("odd.jsonl"),
        "{\"text\": \"\"}\n{\"text\": \"  \\n \"}\n{\"text\": \"nul\\u0000inside\"}\n{\"text\": \"lone \\ud800 surrogate\"}\n{\"text\": \"The end of the story.\"}\n",
    )
    .unwrap();
    let yaml = format!(
        "name: tok\nworkdir: runs\nnodes:\n  docs:\n    op: read\n    path: {data}/text/nltk-gutenberg/*.txt\n    text_mode: block\n  bpe:\n    op: train_tokenizer\n    input: docs\n    vocab_size: 2048\n  ids:\n    op: tokenize\n    input: docs\n    tokenizer: bpe\n  short:\n    op: tokenize\n    input: docs\n    tokenizer: bpe\n    max_doc_tokens: 32\n  dropped:\n    op: tokenize\n    input: docs\n    tokenizer: bpe\n    max_doc_tokens: 32\n    long_docs: drop\n  odd:\n    op: read\n    path: odd.jsonl\n  odd_ids:\n    op: tokenize\n    input: odd\n    tokenizer: bpe\n",
        data = data.display()
    );
    let f = pipeline(d.path(), &yaml);
    kiln_in(d.path(), &["run", f.to_str().unwrap(), "--quiet"]).ok();
    let ids = manifest(&runs, "ids");
    let docs = manifest(&runs, "docs");
    assert_eq!(ids["rows"], docs["rows"]);
    assert_eq!(ids["stats"]["tokenize"]["bytes"], ids["stats"]["tokenize"]["bytes"]);
    let tokens = ids["extra"]["tokens"].as_u64().unwrap();
    let short = manifest(&runs, "short");
    assert_eq!(short["extra"]["tokens"].as_u64().unwrap(), tokens, "splitting loses no token");
    assert!(short["rows"].as_u64().unwrap() > ids["rows"].as_u64().unwrap());
    assert_eq!(
        short["stats"]["tokenize"]["bytes"], ids["stats"]["tokenize"]["bytes"],
        "bytes are kept once"
    );
    let dropped = manifest(&runs, "dropped");
    let n_long = short["stats"]["tokenize"]["pieces_split_off"].as_u64().unwrap();
    assert!(n_long > 0);
    assert_eq!(
        dropped["rows"].as_u64().unwrap() + dropped["rejected_rows"].as_u64().unwrap(),
        ids["rows"].as_u64().unwrap()
    );
    assert!(
        dropped["stats"]["tokenize"]["reasons"]
            .as_object()
            .unwrap()
            .keys()
            .any(|k| k.contains("exceed max_doc_tokens"))
    );
    // The lone surrogate cannot be read; empty texts cannot be tokenized.
    let odd = manifest(&runs, "odd");
    assert_eq!((odd["rows"].as_u64(), odd["rejected_rows"].as_u64()), (Some(4), Some(1)));
    let odd_ids = manifest(&runs, "odd_ids");
    assert_eq!((odd_ids["rows"].as_u64(), odd_ids["rejected_rows"].as_u64()), (Some(2), Some(2)));
    let rejected = common::rejected(&runs, "odd_ids");
    assert!(
        rejected
            .iter()
            .all(|r| r.contains("\"reason\":\"empty document\"") && r.contains("\"step\":\"tokenize\"")),
        "{rejected:?}"
    );
}

/// The GPT-NeoX test tokenizer's vocabulary (the data README: 50,280 with added tokens).
const VOCAB: u64 = 50_280;

#[test]
fn importing_a_tokenizer_json_and_refusing_what_is_not_one() {
    let Some(data) = common::shared_data() else { return };
    let d = tempfile::tempdir().unwrap();
    let good = data.join("tokenizer/gpt-neox-20b-pii/tokenizer.json");
    std::fs::write(d.path().join("bad.json"), "{\"not\": \"a tokenizer\"}").unwrap();
    std::fs::write(d.path().join("text.json"), "hello").unwrap();
    let yaml = format!(
        "name: imp\nworkdir: runs\nnodes:\n  neox:\n    op: tokenizer\n    path: {}\n",
        good.display()
    );
    let f = pipeline(d.path(), &yaml);
    kiln_in(d.path(), &["run", f.to_str().unwrap(), "--quiet"]).ok();
    let m = manifest(&d.path().join("runs"), "neox");
    assert_eq!(m["extra"]["vocab_size"], VOCAB);
    assert_eq!(
        m["extra"]["specials"]["eos"], m["extra"]["specials"]["bos"],
        "GPT-2 style: <|endoftext|> frames both ends"
    );
    for (file, want) in [("bad.json", "is not a tokenizer.json"), ("text.json", "is not JSON")] {
        let yaml = format!("name: imp\nworkdir: runs\nnodes:\n  t:\n    op: tokenizer\n    path: {file}\n");
        let f = pipeline(d.path(), &yaml);
        let r = kiln_in(d.path(), &["run", f.to_str().unwrap(), "--quiet"]);
        assert_eq!(r.code, 1, "{}", r.stderr);
        assert!(r.stderr.contains(want), "{}", r.stderr);
    }
}

#[test]
fn python_tokenizers_and_transformers_load_it_and_encode_the_same() {
    let Some(data) = common::shared_data() else { return };
    let python = std::env::var("KILN_PYTHON").unwrap_or_else(|_| "python3".into());
    let probe = std::process::Command::new(&python)
        .args(["-c", "import tokenizers, transformers"])
        .output();
    if !probe.map(|o| o.status.success()).unwrap_or(false) {
        eprintln!("SKIP: {python} lacks `tokenizers`/`transformers` (pip install tokenizers transformers, or set KILN_PYTHON)");
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let runs = trained(d.path(), &data);
    let path = runs.join("bpe/tokenizer.json");
    let tok = kiln::tokenize::load(&path).unwrap();
    let mut cases = Vec::new();
    let mut files = Vec::new();
    texts_under(&data.join("text/nltk-inaugural"), &mut files);
    for (_, text) in files.iter().take(20) {
        cases.push(text.clone());
    }
    cases.extend(
        [
            "",
            " leading space",
            "tabs\tand\r\nCRLF",
            "naïve café 東京 🙂",
            "<|end|> and <|user|> inside",
            "x".repeat(3000).as_str(),
        ]
        .map(String::from),
    );
    let json: Vec<_> = cases
        .iter()
        .map(|t| serde_json::json!({"text": t, "ids": kiln::tokenize::encode(&tok, t).unwrap()}))
        .collect();
    let cases_path = d.path().join("cases.json");
    std::fs::write(&cases_path, serde_json::to_string(&json).unwrap()).unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/tokenizer_parity.py");
    let out = std::process::Command::new(&python)
        .args([script, path.to_str().unwrap(), cases_path.to_str().unwrap()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains(&format!("{} passed, 0 failed", cases.len())), "{stdout}");
}

#[test]
fn the_fast_encoder_gives_hf_ids_on_all_shared_text() {
    use kiln::tokenize::Encoder;
    use kiln::tokenize::train::{TrainConfig, train};
    let Some(data) = common::shared_data() else { return };
    let mut files = Vec::new();
    texts_under(&data.join("text"), &mut files);
    for p in std::fs::read_dir(data.join("langid/nltk-udhr"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
    {
        if let Ok(text) = std::fs::read_to_string(&p) {
            files.push((p.display().to_string(), text));
        }
    }
    let corpus: Vec<String> = files
        .iter()
        .flat_map(|(_, t)| t.split("\n\n").map(str::to_string).collect::<Vec<_>>())
        .collect();
    let specials: Vec<String> = kiln::spec::ops::DEFAULT_SPECIAL_TOKENS.iter().map(|s| s.to_string()).collect();
    let mut tokenizers = Vec::new();
    for split in ["gpt4", "gpt2"] {
        let cfg = TrainConfig {
            vocab_size: 3000,
            split: split.into(),
            special_tokens: specials.clone(),
            min_frequency: 2,
        };
        tokenizers.push((split.to_string(), train(&cfg, corpus.iter().take(20_000).cloned()).unwrap()));
    }
    tokenizers.push((
        "neox".into(),
        kiln::tokenize::load(&data.join("tokenizer/gpt-neox-20b-pii/tokenizer.json")).unwrap(),
    ));
    for (name, tok) in tokenizers {
        let fast = Encoder::new(tok.clone());
        let hf = Encoder::hf_only(tok);
        if name != "neox" {
            assert!(fast.slow_because.is_none(), "{name}: {:?}", fast.slow_because);
        }
        let mut extra = vec![
            "<|end|>x<|endoftext|><|user|>".to_string(),
            "  \n\n\t 12345 6789 'll 'S 's".into(),
            String::new(),
        ];
        // Every file, capped (HF is slow in a debug build): 40k chars each.
        extra.extend(files.iter().map(|(_, t)| kiln::tokenize::train::cap_chars(t, 40_000).to_string()));
        for (i, text) in extra.iter().enumerate() {
            let (a, b) = (fast.encode(text).unwrap(), hf.encode(text).unwrap());
            assert!(
                a == b,
                "{name}: text {i} encodes differently (first difference at {:?})",
                a.iter().zip(&b).position(|(x, y)| x != y)
            );
        }
    }
}
