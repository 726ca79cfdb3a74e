//! Decoding speed of the KV-cached decoder on GPT-2 small (124M, random
//! init): batch 1, a 16-token prompt, 128 new tokens, greedy; the median of
//! 5 runs for f32 and for bf16 weights. Compare with `benches/generate_hf.py`
//! (HF `generate(use_cache=True)` on the same model size).
//!
//! `cargo bench --bench generate [-- THREADS]` (default: all cores).
//! Prints one line per precision: new tokens/s (prefill excluded) and the
//! weight bytes streamed per token.

use kiln::backend::Precision;
use kiln::infer::{Decoder, GenerateConfig, SampleConfig, generate};
use kiln::model::{Gpt, GptConfig};
use std::time::Instant;

const PROMPT: usize = 16;
const NEW: usize = 128;
const RUNS: usize = 5;

fn main() {
    if let Some(t) = std::env::args().skip(1).find_map(|a| a.parse::<usize>().ok()) {
        let _ = rayon::ThreadPoolBuilder::new().num_threads(t).build_global();
    }
    let cfg = GptConfig::default();
    let model = Gpt::new(cfg.clone(), Precision::F32, 42).expect("GPT-2 small builds");
    let prompt: Vec<u32> = (0..PROMPT as u32).map(|i| i * 997 % cfg.vocab_size as u32).collect();
    let gen_cfg = GenerateConfig {
        max_new_tokens: NEW,
        sampling: SampleConfig::greedy(),
        stop: Vec::new(),
    };
    println!(
        "GPT-2 124M, batch 1, prompt {PROMPT}, {NEW} new tokens, {} threads, median of {RUNS}",
        rayon::current_num_threads()
    );
    for precision in [Precision::F32, Precision::Bf16] {
        let mut dec = Decoder::new(&model, 1, PROMPT + NEW, precision).expect("decoder");
        let mut rates = Vec::new();
        for _ in 0..RUNS {
            // Time from the first new token on: the prompt is a separate
            // (compute-bound) prefill that HF's number includes too, but it
            // is one call against 128.
            let mut first = None;
            let start = Instant::now();
            let out = generate(&mut dec, std::slice::from_ref(&prompt), &gen_cfg, |_, _| {
                first.get_or_insert_with(Instant::now);
                true
            })
            .expect("generate");
            let end = Instant::now();
            let decode = end - first.unwrap_or(start);
            assert_eq!(out[0].tokens.len(), NEW);
            rates.push(((NEW - 1) as f64 / decode.as_secs_f64(), NEW as f64 / (end - start).as_secs_f64()));
        }
        rates.sort_by(|a, b| a.0.total_cmp(&b.0));
        let (decode, total) = rates[RUNS / 2];
        let bytes = if precision == Precision::Bf16 { 2 } else { 4 };
        let streamed = (model.params.len() - cfg.block_size * cfg.n_embd) as f64 * bytes as f64;
        println!(
            "{precision:?}: {decode:7.1} tokens/s decoding ({total:.1} tokens/s with the prompt), {:.0} MB of weights per token → {:.1} GB/s",
            streamed / 1e6,
            streamed * decode / 1e9
        );
    }
}
