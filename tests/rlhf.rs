//! RLHF end to end through the engine: pretrain → SFT → reward model →
//! prompts → PPO (reward model or verifiable reward) → eval_chat, on a
//! small arithmetic task the test writes itself; and the bad inputs PPO
//! must refuse or count.

mod common;
use common::{kiln_in, manifest, pipeline};
use serde_json::Value;
use std::path::Path;

/// Single-digit sums: chats, correct-vs-wrong pairs, prompts with references.
fn write_data(dir: &Path) {
    let mut docs = String::new();
    let mut chats = String::new();
    let mut prefs = String::new();
    let mut prompts = String::new();
    for a in 0..10u32 {
        for b in 0..10u32 {
            let q = format!("What is {a} plus {b}?");
            let good = format!("{a} plus {b} is {}.", a + b);
            let bad = format!("{a} plus {b} is {}.", a + b + 1 + (a * b) % 3);
            docs.push_str(&serde_json::json!({ "text": format!("{q} {good}") }).to_string());
            docs.push('\n');
            let chat = serde_json::json!({"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": good}]});
            if (a + b) % 5 != 0 {
                chats.push_str(&chat.to_string());
                chats.push('\n');
            } else {
                prompts.push_str(&chat.to_string());
                prompts.push('\n');
            }
            prefs.push_str(&serde_json::json!({"prompt": q, "chosen": good, "rejected": bad}).to_string());
            prefs.push('\n');
        }
    }
    // One prompt far longer than any context: rejected with its reason.
    let long = "seven ".repeat(400);
    prompts.push_str(
        &serde_json::json!({"messages": [{"role": "user", "content": long}, {"role": "assistant", "content": "no"}]}).to_string(),
    );
    prompts.push('\n');
    for (name, text) in [
        ("docs.jsonl", docs),
        ("chats.jsonl", chats),
        ("prefs.jsonl", prefs),
        ("heldout.jsonl", prompts),
    ] {
        std::fs::write(dir.join(name), text).unwrap();
    }
}

const BASE: &str = "name: rlhf
workdir: runs
seed: 3
nodes:
  docs: {op: read, path: docs.jsonl}
  chats: {op: read, path: chats.jsonl, format: chat}
  prefs: {op: read, path: prefs.jsonl, format: preferences}
  heldout: {op: read, path: heldout.jsonl, format: chat}
  bpe: {op: train_tokenizer, input: docs, vocab_size: 300, min_frequency: 1}
  doc_tokens: {op: tokenize, input: docs, tokenizer: bpe}
  doc_rows: {op: pack, input: doc_tokens, seq_len: 32}
  base:
    op: pretrain
    input: doc_rows
    tokenizer: bpe
    model: {n_layer: 1, n_head: 2, n_embd: 32, block_size: 48}
    batch_size: 8
    max_steps: 12
    lr: 3.0e-3
    warmup_steps: 2
    eval_every: 0
    checkpoint_every: 0
  chat_tokens: {op: tokenize, input: chats, tokenizer: bpe}
  chat_rows: {op: pack, input: chat_tokens, seq_len: 32, mode: bestfit, val_fraction: 0.1}
  sft: {op: sft, model: base, input: chat_rows, batch_size: 8, max_steps: 8, lr: 3.0e-3, warmup_steps: 1, eval_every: 0, checkpoint_every: 0}
  rm: {op: reward_model, model: sft, input: prefs, val_fraction: 0.2, batch_size: 8, max_steps: 8, lr: 1.0e-3}
  prompts: {op: prompts, input: heldout}
";

fn run(dir: &Path, extra: &str) -> common::Run {
    write_data(dir);
    let p = pipeline(dir, &format!("{BASE}{extra}"));
    kiln_in(dir, &["run", p.to_str().unwrap()])
}

fn lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn ppo_with_a_reward_model_then_eval_chat() {
    let dir = tempfile::tempdir().unwrap();
    let r = run(
        dir.path(),
        "  ppo: {op: ppo, policy: sft, reward_model: rm, prompts: prompts, steps: 3, batch_size: 4, num_minibatches: 2, ppo_epochs: 2, lr: 1.0e-4, response_length: 12, samples_every: 1}
  eval_sft: {op: eval_chat, model: sft, prompts: prompts, reward_model: rm, max_new_tokens: 12}
  eval_ppo: {op: eval_chat, model: ppo, prompts: prompts, reward_model: rm, max_new_tokens: 12}
",
    );
    r.ok();
    let wd = dir.path().join("runs");
    let steps = lines(&wd.join("ppo/metrics.jsonl"));
    assert_eq!(steps.len(), 3);
    for (i, s) in steps.iter().enumerate() {
        assert_eq!(s["step"], i as u64 + 1);
        for k in [
            "objective/kl",
            "objective/entropy",
            "objective/scores",
            "objective/rlhf_reward",
            "policy/approxkl_avg",
            "policy/clipfrac_avg",
            "loss/policy_avg",
            "loss/value_avg",
            "val/ratio",
            "val/num_eos_tokens",
            "val/response_length",
        ] {
            assert!(s[k].as_f64().is_some_and(f64::is_finite), "step {i}: {k} = {}", s[k]);
        }
        // Dropout is off and the first minibatch sees the rollout's weights.
        assert_eq!(s["first_minibatch/ratio_max_dev"].as_f64(), Some(0.0));
        assert_eq!(s["first_minibatch/approxkl"].as_f64(), Some(0.0));
    }
    // Step 1 starts at the reference: its KL is exactly 0.
    assert_eq!(steps[0]["objective/kl"].as_f64(), Some(0.0));
    let samples = lines(&wd.join("ppo/samples.jsonl"));
    assert!(samples.len() >= 3 && samples.iter().all(|s| s["prompt"].as_str().is_some_and(|p| p.contains("plus"))));
    // The policy is a model transformers can open, with its tokenizer.
    let m = manifest(&wd, "ppo");
    assert_eq!(m["kind"], "model");
    for f in [
        "model.safetensors",
        "config.json",
        "tokenizer.json",
        "metrics.jsonl",
        "samples.jsonl",
    ] {
        assert!(wd.join("ppo").join(f).is_file(), "{f}");
    }
    // The over-long prompt was counted and written with its reason.
    assert_eq!(m["rejected_rows"], 1);
    let e: Value = serde_json::from_slice(&std::fs::read(wd.join("eval_ppo/eval.json")).unwrap()).unwrap();
    assert_eq!(e["model"], "ppo");
    assert_eq!(e["rejected"], 1);
    let n = e["n"].as_u64().unwrap();
    assert_eq!(n, e["samples"].as_array().unwrap().len() as u64);
    assert!(n >= 15, "{n} held-out prompts");
    assert!(e["accuracy"].as_f64().is_some_and(|a| (0.0..=1.0).contains(&a)));
    assert!(e["mean_score"].as_f64().is_some_and(f64::is_finite));
    let s0 = &e["samples"][0];
    assert!(s0["reference"].as_str().is_some_and(|r| r.contains(" is ")), "{s0}");
    assert!(s0["correct"].is_boolean());
}

#[test]
fn ppo_with_a_verifiable_reward() {
    let dir = tempfile::tempdir().unwrap();
    let r = run(
        dir.path(),
        "  ppo: {op: ppo, policy: sft, verify: number, prompts: prompts, steps: 2, batch_size: 4, ppo_epochs: 1, response_length: 10}
",
    );
    r.ok();
    let steps = lines(&dir.path().join("runs/ppo/metrics.jsonl"));
    // Scores are exact-match rewards: a fraction of the batch in [0, 1].
    for s in &steps {
        let x = s["objective/scores"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&x) && (x * 4.0).fract() == 0.0, "{x}");
    }
}

#[test]
fn ppo_refuses_what_it_cannot_use() {
    let dir = tempfile::tempdir().unwrap();
    // A reward model made from another tokenizer: its ids mean something else.
    let r = run(
        dir.path(),
        "  bpe2: {op: train_tokenizer, input: docs, vocab_size: 280, min_frequency: 1}
  doc_tokens2: {op: tokenize, input: docs, tokenizer: bpe2}
  doc_rows2: {op: pack, input: doc_tokens2, seq_len: 32}
  other:
    op: pretrain
    input: doc_rows2
    tokenizer: bpe2
    model: {n_layer: 1, n_head: 2, n_embd: 32, block_size: 48}
    batch_size: 8
    max_steps: 1
    eval_every: 0
    checkpoint_every: 0
  ppo: {op: ppo, policy: sft, reference: other, reward_model: rm, prompts: prompts, steps: 1, batch_size: 2}
",
    );
    assert_ne!(r.code, 0);
    assert!(
        r.stderr.contains("different tokenizer") && r.stderr.contains("other"),
        "{}",
        r.stderr
    );

    // Both or neither of reward_model/verify, and a zero temperature: validation errors before anything runs.
    let y = format!(
        "{BASE}  ppo: {{op: ppo, policy: sft, prompts: prompts, temperature: 0}}\n  ppo2: {{op: ppo, policy: sft, prompts: prompts, reward_model: rm, verify: exact}}\n"
    );
    let p = pipeline(dir.path(), &y);
    let v = kiln_in(dir.path(), &["validate", p.to_str().unwrap()]);
    assert_eq!(v.code, 2, "{}", v.stderr);
    for needle in ["temperature", "reward_model", "ppo2"] {
        assert!(v.stderr.contains(needle), "{needle}: {}", v.stderr);
    }
}
