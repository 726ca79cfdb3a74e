//! Inference: the KV-cached decoder computes what a full forward computes,
//! at every position and for ragged batches; generation and sampling keep
//! their contracts; `kiln sample` streams text from a saved model.

mod common;
use common::kiln_in;
use kiln::backend::Precision;
use kiln::infer::{Decoder, Finish, GenerateConfig, SampleConfig, generate};
use kiln::model::rng::Rng;
use kiln::model::{Gpt, GptConfig};

fn tiny(block_size: usize) -> GptConfig {
    GptConfig {
        n_layer: 2,
        n_head: 4,
        n_embd: 32,
        block_size,
        vocab_size: 70,
        dropout: 0.0,
    }
}

/// A random model whose every parameter (LayerNorm gains and biases
/// included) is perturbed, so no term of the forward is trivially 0 or 1.
fn model(block_size: usize, seed: u64) -> Gpt {
    let mut m = Gpt::new(tiny(block_size), Precision::F32, seed).unwrap();
    let mut r = Rng::new(seed + 100);
    m.params.iter_mut().for_each(|p| *p += (r.normal() * 0.05) as f32);
    m
}

fn tokens(n: usize, seed: u64) -> Vec<u32> {
    let mut r = Rng::new(seed);
    (0..n).map(|_| (r.next_u64() % 70) as u32).collect()
}

/// Logits `[T, V]` of a full forward over `ids` (padding columns dropped).
fn full(m: &mut Gpt, ids: &[u32]) -> Vec<Vec<f32>> {
    m.forward(ids, None, None, 1, ids.len()).unwrap();
    let (v, vp) = (m.config().vocab_size, m.config().padded_vocab());
    m.logits().chunks(vp).map(|r| r[..v].to_vec()).collect()
}

/// Max |a − b| relative to the row's largest logit.
fn assert_close(what: &str, got: &[f32], want: &[f32], tol: f32) {
    assert_eq!(got.len(), want.len(), "{what}");
    let scale = want.iter().fold(1e-3f32, |m, x| m.max(x.abs()));
    let err = got.iter().zip(want).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max) / scale;
    assert!(err < tol, "{what}: relative error {err:.2e} ≥ {tol:.0e}");
}

#[test]
fn kv_cache_logits_equal_a_full_recompute_at_every_position() {
    let mut m = model(40, 1);
    let ids = tokens(40, 2);
    let want = full(&mut m, &ids);
    let mut dec = Decoder::new(&m, 1, 40, Precision::F32).unwrap();
    for (t, id) in ids.iter().enumerate() {
        dec.step(&[&[*id]]).unwrap();
        assert_close(&format!("position {t}"), dec.logits(0).unwrap(), &want[t], 1e-5);
    }
    assert_eq!(dec.len(0), 40);
    // The cache is full: one more token is an error, not a panic.
    assert!(dec.step(&[&[1]]).unwrap_err().to_string().contains("exceed the context"));

    // Chunks: a long one (the GEMM path), single tokens and short ones.
    dec.reset();
    let mut at = 0;
    for len in [17, 1, 5, 1, 3, 13] {
        dec.step(&[&ids[at..at + len]]).unwrap();
        at += len;
        assert_close(&format!("chunk ending at {at}"), dec.logits(0).unwrap(), &want[at - 1], 1e-5);
    }
}

#[test]
fn ragged_batch_matches_each_sequence_alone() {
    let mut m = model(32, 3);
    let seqs: Vec<Vec<u32>> = (0..3).map(|i| tokens(30, 10 + i)).collect();
    let want: Vec<Vec<Vec<f32>>> = seqs.iter().map(|s| full(&mut m, s)).collect();
    let mut dec = Decoder::new(&m, 3, 32, Precision::F32).unwrap();
    // Prompts of 5, 12 and 1 tokens in one call, then uneven continuations
    // where some sequences sit a step out.
    let plan: [[usize; 3]; 5] = [[5, 12, 1], [1, 0, 1], [0, 1, 20], [3, 1, 1], [1, 2, 0]];
    let mut lens = [0usize; 3];
    for (step, take) in plan.iter().enumerate() {
        let chunks: Vec<&[u32]> = (0..3).map(|b| &seqs[b][lens[b]..lens[b] + take[b]]).collect();
        dec.step(&chunks).unwrap();
        for b in 0..3 {
            lens[b] += take[b];
            assert_eq!(dec.len(b), lens[b]);
            match dec.logits(b) {
                Some(l) => assert_close(&format!("step {step} seq {b}"), l, &want[b][lens[b] - 1], 1e-5),
                None => assert_eq!(take[b], 0, "step {step} seq {b} has no logits"),
            }
        }
    }
}

#[test]
fn bf16_weights_stay_close_to_f32() {
    let mut m = model(24, 4);
    let ids = tokens(24, 5);
    let want = full(&mut m, &ids);
    let mut dec = Decoder::new(&m, 1, 24, Precision::Bf16).unwrap();
    for (t, id) in ids.iter().enumerate() {
        dec.step(&[&[*id]]).unwrap();
        // bf16 keeps 8 mantissa bits: a relative error ≈ 2⁻⁹ per weight.
        assert_close(&format!("position {t}"), dec.logits(0).unwrap(), &want[t], 2e-2);
    }
}

fn gen_cfg(sampling: SampleConfig, max_new_tokens: usize) -> GenerateConfig {
    GenerateConfig {
        max_new_tokens,
        sampling,
        stop: Vec::new(),
    }
}

#[test]
fn greedy_generation_is_the_argmax_of_a_full_recompute() {
    let mut m = model(32, 6);
    let prompt = tokens(7, 7);
    let out = {
        let mut dec = Decoder::new(&m, 1, 32, Precision::F32).unwrap();
        let mut streamed = Vec::new();
        let out = generate(
            &mut dec,
            std::slice::from_ref(&prompt),
            &gen_cfg(SampleConfig::greedy(), 12),
            |_, t| {
                streamed.push(t);
                true
            },
        )
        .unwrap();
        assert_eq!(streamed, out[0].tokens, "the callback sees every token in order");
        out
    };
    assert_eq!((out[0].tokens.len(), out[0].finish), (12, Finish::Length));
    let mut seq = prompt.clone();
    for &t in &out[0].tokens {
        let logits = full(&mut m, &seq);
        assert_eq!(kiln::infer::sample::argmax(logits.last().unwrap()), t, "after {} tokens", seq.len());
        seq.push(t);
    }
}

#[test]
fn sampling_contracts_hold_on_a_model() {
    let m = model(64, 8);
    let prompts = vec![tokens(3, 9), tokens(9, 10)];
    let run = |s: SampleConfig, prompts: &[Vec<u32>], n: usize| {
        let mut dec = Decoder::new(&m, prompts.len(), 64, Precision::F32).unwrap();
        generate(&mut dec, prompts, &gen_cfg(s, n), |_, _| true).unwrap()
    };
    let greedy = run(SampleConfig::greedy(), &prompts, 20);
    let hot = |top_k, top_p, seed| SampleConfig {
        temperature: 1.5,
        top_k,
        top_p,
        seed,
    };
    assert_eq!(run(hot(1, 1.0, 1), &prompts, 20), greedy, "top-k 1 is greedy");
    assert_eq!(run(hot(0, 1e-6, 2), &prompts, 20), greedy, "a tiny top-p is greedy");
    let a = run(hot(0, 1.0, 3), &prompts, 40);
    assert_eq!(a, run(hot(0, 1.0, 3), &prompts, 40), "same seed, same tokens");
    assert_ne!(a, run(hot(0, 1.0, 4), &prompts, 40), "another seed, other tokens");
    assert_ne!(a[0].tokens, greedy[0].tokens);
    // A sequence draws the same tokens alone as in a batch.
    assert_eq!(run(hot(0, 1.0, 3), &prompts[..1], 40)[0], a[0]);
    // Padded ids (70..128) are never drawn, even at a high temperature.
    let wild = run(
        SampleConfig {
            temperature: 50.0,
            top_k: 0,
            top_p: 1.0,
            seed: 5,
        },
        &prompts,
        60,
    );
    assert!(wild.iter().flat_map(|g| &g.tokens).all(|&t| t < 70));
    assert!(
        wild.iter().flat_map(|g| &g.tokens).any(|&t| t >= 64),
        "the top of the vocabulary is reachable"
    );
}

#[test]
fn sequences_stop_at_eos_or_the_context() {
    let m = model(16, 11);
    let prompts = vec![tokens(4, 12), tokens(10, 13)];
    let mut dec = Decoder::new(&m, 2, 16, Precision::F32).unwrap();
    let g = generate(&mut dec, &prompts, &gen_cfg(SampleConfig::greedy(), 100), |_, _| true).unwrap();
    // 16 positions: 12 new tokens for the 4-token prompt, 6 for the 10-token one
    // (the last token drawn needs no position of its own).
    assert_eq!((g[0].tokens.len(), g[0].finish), (13, Finish::Context));
    assert_eq!((g[1].tokens.len(), g[1].finish), (7, Finish::Context));
    // Stop at the third token sequence 0 would emit: it ends there, the stop
    // token is not in the output, and the other sequence carries on.
    let eos = g[0].tokens[2];
    let cfg = GenerateConfig {
        stop: vec![eos],
        ..gen_cfg(SampleConfig::greedy(), 100)
    };
    let s = generate(&mut dec, &prompts, &cfg, |_, _| true).unwrap();
    let first = g[0].tokens.iter().position(|&t| t == eos).unwrap();
    assert_eq!((s[0].tokens.as_slice(), s[0].finish), (&g[0].tokens[..first], Finish::Stop(eos)));
    assert!(!s[1].tokens.contains(&eos));
    // A callback that says stop ends everything.
    let c = generate(&mut dec, &prompts, &gen_cfg(SampleConfig::greedy(), 100), |_, _| false).unwrap();
    assert_eq!(c[0].tokens.len(), 1);
    assert!(c.iter().all(|g| g.finish == Finish::Cancelled));
    // Bad calls are errors.
    assert!(generate(&mut dec, &[vec![]], &cfg, |_, _| true).is_err());
    assert!(generate(&mut dec, &[vec![1], vec![2], vec![3]], &cfg, |_, _| true).is_err());
    assert!(dec.step(&[&[70u32][..], &[][..]]).unwrap_err().to_string().contains("token id 70"));
}

/// A model directory: a tiny random model saved with `hf::save` and a BPE
/// tokenizer trained on the shared text.
fn model_dir(data: &std::path::Path, dir: &std::path::Path) {
    let text = std::fs::read_to_string(data.join("text/nltk-gutenberg/austen-emma.txt")).unwrap();
    let cfg = kiln::tokenize::train::TrainConfig {
        vocab_size: 400,
        split: "gpt2".into(),
        special_tokens: vec!["<|bos|>".into(), "<|endoftext|>".into()],
        min_frequency: 2,
    };
    let tok = kiln::tokenize::train::train(&cfg, text.lines().map(String::from).collect::<Vec<_>>().into_iter()).unwrap();
    tok.save(dir.join("tokenizer.json"), false).unwrap();
    let mut c = tiny(64);
    c.vocab_size = tok.get_vocab_size(true);
    let m = Gpt::new(c, Precision::F32, 3).unwrap();
    kiln::model::hf::save(&m, dir, Some(0), Some(1)).unwrap();
}

#[test]
fn kiln_sample_streams_text_and_rejects_bad_input() {
    let Some(data) = common::shared_data() else { return };
    let d = tempfile::tempdir().unwrap();
    let md = d.path().join("model");
    std::fs::create_dir(&md).unwrap();
    model_dir(&data, &md);
    let m = md.to_str().unwrap();
    let r = kiln_in(
        d.path(),
        &[
            "sample",
            m,
            "--prompt",
            "Emma Woodhouse, handsome,",
            "--max-new-tokens",
            "20",
            "--seed",
            "3",
        ],
    );
    r.ok();
    assert!(r.stdout.starts_with("Emma Woodhouse, handsome,"), "{}", r.stdout);
    assert!(r.stdout.trim_end().len() > "Emma Woodhouse, handsome,".len(), "{}", r.stdout);
    assert!(r.stderr.contains("tokens/s"), "{}", r.stderr);
    let again = kiln_in(
        d.path(),
        &[
            "sample",
            m,
            "--prompt",
            "Emma Woodhouse, handsome,",
            "--max-new-tokens",
            "20",
            "--seed",
            "3",
        ],
    );
    assert_eq!(again.stdout, r.stdout, "same seed, same text");
    // Greedy in f32, a batch of two, and a prompt longer than the context.
    let long = "word ".repeat(200);
    let b = kiln_in(
        d.path(),
        &[
            "sample",
            m,
            "--prompt",
            "She",
            "--prompt",
            &long,
            "--temperature",
            "0",
            "--precision",
            "f32",
            "--max-new-tokens",
            "8",
        ],
    );
    b.ok();
    assert!(b.stdout.contains("=== sample 1 ==="), "{}", b.stdout);
    assert!(b.stderr.contains("kept its last"), "{}", b.stderr);

    let bad = |args: &[&str], needle: &str| {
        let r = kiln_in(d.path(), args);
        assert!(r.code != 0, "{args:?} succeeded");
        assert!(r.stderr.contains(needle), "{args:?}: {}", r.stderr);
    };
    bad(&["sample", "nowhere", "--prompt", "x"], "no such model directory");
    bad(&["sample", d.path().to_str().unwrap(), "--prompt", "x"], "has no config.json");
    bad(&["sample", m, "--prompt", "x", "--top-p", "0"], "--top-p");
    bad(&["sample", m, "--prompt", "x", "--temperature=-1"], "--temperature");
    std::fs::write(d.path().join("manifest.json"), r#"{"kind": "tokenizer"}"#).unwrap();
    bad(&["sample", d.path().to_str().unwrap(), "--prompt", "x"], "`tokenizer` artifact");
    std::fs::remove_file(md.join("tokenizer.json")).unwrap();
    bad(&["sample", m, "--prompt", "x"], "no tokenizer.json");
}
