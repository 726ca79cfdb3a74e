//! MinHash signature throughput on one core: the real English texts of
//! ../shared/data/text cut into ~3 kB documents, each simplified, shingled
//! (word 5-grams) and signed with 14 × 8 permutations (FineWeb's settings).
//!
//!   cargo bench --bench dedup
//!
//! Prints MB/s of input text for the whole signature step and for its
//! parts (simplify, shingles, permutations).

use kiln::clean::dedup::Simplify;
use kiln::clean::dedup::minhash::MinHasher;
use kiln::clean::dedup::simplify::shingles;
use std::path::Path;
use std::time::Instant;

fn documents(data: &Path) -> Vec<String> {
    let mut docs = Vec::new();
    for dir in [
        "nltk-gutenberg",
        "nltk-state_union",
        "nltk-inaugural",
        "tinyshakespeare",
        "wiki-demo",
    ] {
        let Ok(rd) = std::fs::read_dir(data.join("text").join(dir)) else {
            continue;
        };
        let mut files: Vec<_> = rd.flatten().map(|e| e.path()).filter(|p| !p.ends_with("README")).collect();
        files.sort();
        for f in files {
            let Ok(bytes) = std::fs::read(&f) else { continue };
            let text = String::from_utf8_lossy(&bytes);
            let mut start = 0;
            // Cut at the first whitespace after every 3,000 bytes.
            while start < text.len() {
                let mut end = (start + 3000).min(text.len());
                while end < text.len() && !text.is_char_boundary(end) {
                    end += 1;
                }
                let stop = text[end..].find(char::is_whitespace).map_or(text.len(), |i| end + i);
                docs.push(text[start..stop].to_string());
                start = stop;
            }
        }
    }
    docs
}

fn mb_s(bytes: usize, secs: f64) -> f64 {
    bytes as f64 / 1e6 / secs
}

fn main() {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data");
    let docs = documents(&data);
    if docs.is_empty() {
        eprintln!("SKIP: ../shared/data/text is absent");
        return;
    }
    let bytes: usize = docs.iter().map(String::len).sum();
    let simplify = Simplify::default();
    let mh = MinHasher::new(14, 8, 1);
    let (mut text, mut words, mut sh, mut sig) = (String::new(), Vec::new(), Vec::new(), vec![0u64; mh.len()]);
    println!("input: {} documents, {:.1} MB", docs.len(), bytes as f64 / 1e6);
    let rounds = 3;
    let mut best = [f64::MAX; 3];
    let mut checksum = 0u64;
    for _ in 0..rounds {
        let (mut t_simp, mut t_sh, mut t_sig) = (0.0, 0.0, 0.0);
        for d in &docs {
            let t0 = Instant::now();
            simplify.apply(d, &mut text);
            let t1 = Instant::now();
            shingles(&text, 5, &mut words, &mut sh);
            let t2 = Instant::now();
            if !sh.is_empty() {
                mh.signature(&sh, &mut sig);
                checksum ^= sig[0];
            }
            let t3 = Instant::now();
            t_simp += (t1 - t0).as_secs_f64();
            t_sh += (t2 - t1).as_secs_f64();
            t_sig += (t3 - t2).as_secs_f64();
        }
        best = [best[0].min(t_simp), best[1].min(t_sh), best[2].min(t_sig)];
    }
    let total: f64 = best.iter().sum();
    println!("signature (1 thread): {:.1} MB/s ({:.3} s)", mb_s(bytes, total), total);
    println!("  simplify:      {:.1} MB/s", mb_s(bytes, best[0]));
    println!("  shingles:      {:.1} MB/s", mb_s(bytes, best[1]));
    println!("  permutations:  {:.1} MB/s", mb_s(bytes, best[2]));
    println!("(checksum {checksum:x})");
}
