//! Encoding throughput: kiln's fast byte-level BPE vs HF `tokenizers` (Rust,
//! the same library Python's `encode_batch` wraps), on 2 threads, on the text
//! of ../shared/data/text, with a tokenizer trained by kiln (vocab 8192,
//! gpt4 split). Checks the ids are identical, then prints MB/s.
//!
//!   cargo bench --bench encode [-- RUNS]

use kiln::tokenize::Encoder;
use kiln::tokenize::train::{TrainConfig, train};
use rayon::prelude::*;
use std::time::Instant;

fn main() {
    let runs: usize = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(5);
    let data = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/text");
    let mut docs = Vec::new();
    let mut stack = vec![data];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("shared/data/text").flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(t) = std::fs::read_to_string(&p) {
                docs.extend(t.split("\n\n").filter(|s| !s.trim().is_empty()).map(str::to_string));
            }
        }
    }
    docs.sort();
    let bytes: usize = docs.iter().map(String::len).sum();
    let specials = kiln::spec::ops::DEFAULT_SPECIAL_TOKENS.iter().map(|s| s.to_string()).collect();
    let cfg = TrainConfig {
        vocab_size: 8192,
        split: "gpt4".into(),
        special_tokens: specials,
        min_frequency: 2,
    };
    let tok = train(&cfg, docs.iter().cloned()).expect("train");
    let _ = rayon::ThreadPoolBuilder::new().num_threads(2).build_global();
    let fast = Encoder::new(tok.clone());
    assert!(fast.slow_because.is_none(), "{:?}", fast.slow_because);
    let hf = Encoder::hf_only(tok);
    println!(
        "corpus: {} documents, {bytes} bytes; {} cores",
        docs.len(),
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    let encode_all = |e: &Encoder| -> Vec<Vec<u32>> { docs.par_iter().map(|d| e.encode(d).expect("encode")).collect() };
    assert!(encode_all(&fast) == encode_all(&hf), "ids differ");
    let kiln_ids = encode_all(&fast);
    let check = kiln_ids.iter().enumerate().fold(0u128, |acc, (i, ids)| {
        (acc + (i as u128 + 1) * ids.iter().map(|x| *x as u128).sum::<u128>()) % ((1u128 << 61) - 1)
    });
    let mut results: Vec<f64> = Vec::new();
    for (name, e) in [("kiln fast", &fast), ("HF tokenizers (Rust 0.22)", &hf)] {
        let mut secs: Vec<f64> = (0..runs)
            .map(|_| {
                let t = Instant::now();
                std::hint::black_box(encode_all(e));
                t.elapsed().as_secs_f64()
            })
            .collect();
        secs.sort_by(f64::total_cmp);
        let med = secs[secs.len() / 2];
        println!(
            "{name}: median {med:.3}s of {runs} = {:.1} MB/s on 2 threads",
            bytes as f64 / 1e6 / med
        );
        results.push(med);
    }
    // Python `tokenizers` encode_batch on the same tokenizer and documents.
    if let Ok(py) = std::env::var("KILN_PYTHON") {
        let dir = std::env::temp_dir().join("kiln-encode-bench");
        std::fs::create_dir_all(&dir).expect("temp dir");
        let (tj, dj) = (dir.join("tokenizer.json"), dir.join("docs.json"));
        fast.hf.save(&tj, false).expect("save tokenizer");
        std::fs::write(&dj, serde_json::to_string(&docs).expect("json")).expect("write docs");
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/encode_python.py");
        let out = std::process::Command::new(&py)
            .env("RAYON_NUM_THREADS", "2")
            .args([script, tj.to_str().unwrap_or(""), dj.to_str().unwrap_or(""), &runs.to_string()])
            .output()
            .expect("run python");
        let line = String::from_utf8_lossy(&out.stdout);
        let mut parts = line.split_whitespace();
        let secs: f64 = parts.next().and_then(|s| s.parse().ok()).expect("python seconds");
        let py_check: u128 = parts.next().and_then(|s| s.parse().ok()).expect("python checksum");
        assert_eq!(py_check, check, "Python's ids differ from kiln's");
        println!(
            "Python tokenizers encode_batch: median {secs:.3}s = {:.1} MB/s on 2 threads (ids identical)",
            bytes as f64 / 1e6 / secs
        );
        println!("kiln fast / Python speed: {:.1}x", secs / results[0]);
    }
}
