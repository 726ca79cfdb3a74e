//! Post-training end to end: `prompts`, `sft`, `reward_model` and `dpo` on
//! real data (Alpaca demo chats, Anthropic HH-RLHF pairs) and on a small
//! generated preference set whose signal a tiny model can learn.

mod common;
use common::{kiln_in, manifest, pipeline, rejected, rows, shared_data};
use serde_json::Value;
use std::path::Path;
use std::time::{Duration, Instant};

/// Base model, SFT and the data nodes; `extra` adds nodes.
fn yaml(data: &Path, sft_steps: u64, extra: &str) -> String {
    format!(
        "name: post
workdir: runs
seed: 5
nodes:
  text: {{op: read, path: {data}/text/c4-demo/c4_demo.jsonl}}
  alpaca: {{op: read, path: {data}/sft/llama-factory/alpaca_en_demo.json, format: alpaca}}
  hh: {{op: read, path: {data}/preference/hh-rlhf/harmless-base/test.jsonl.gz, format: hh-rlhf-preferences}}
  bpe: {{op: train_tokenizer, input: text, vocab_size: 512, min_frequency: 2}}
  text_tokens: {{op: tokenize, input: text, tokenizer: bpe}}
  text_rows: {{op: pack, input: text_tokens, seq_len: 128}}
  base:
    op: pretrain
    input: text_rows
    tokenizer: bpe
    model: {{n_layer: 2, n_head: 2, n_embd: 32}}
    batch_size: 4
    max_steps: 20
    lr: 3.0e-3
    warmup_steps: 2
    eval_every: 0
    checkpoint_every: 0
  chat_tokens: {{op: tokenize, input: alpaca, tokenizer: bpe}}
  chat_rows: {{op: pack, input: chat_tokens, seq_len: 128, mode: bestfit, crop: true, val_fraction: 0.1}}
  sft:
    op: sft
    model: base
    input: chat_rows
    batch_size: 4
    max_steps: {sft_steps}
    lr: 3.0e-3
    warmup_steps: 2
    eval_every: 10
    eval_batches: 4
    checkpoint_every: 4
{extra}",
        data = data.display()
    )
}

fn metrics(dir: &Path, node: &str) -> Vec<Value> {
    std::fs::read_to_string(dir.join("runs").join(node).join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn json_rows(wd: &Path, node: &str) -> Vec<Value> {
    rows(wd, node).iter().map(|l| serde_json::from_str(l).unwrap()).collect()
}

const PROMPT_NODES: &str = "  p_chat: {op: prompts, input: alpaca}
  p_hh: {op: prompts, input: hh}
  p_docs: {op: prompts, input: text}
  p_short: {op: prompts, input: alpaca, tokenizer: bpe, max_tokens: 24}
";

#[test]
fn prompts_come_from_chats_preferences_and_documents() {
    let Some(data) = shared_data() else { return };
    let dir = tempfile::tempdir().unwrap();
    // The data nodes of the shared pipeline, then the prompts nodes.
    let y = yaml(&data, 10, "");
    let y = y.split("  text_tokens:").next().unwrap().to_string() + PROMPT_NODES;
    let p = pipeline(dir.path(), &y);
    kiln_in(dir.path(), &["run", p.to_str().unwrap()]).ok();
    let wd = dir.path().join("runs");
    let chats = json_rows(&wd, "alpaca");
    let prompts = json_rows(&wd, "p_chat");
    assert_eq!(manifest(&wd, "p_chat")["kind"], "prompts");
    assert_eq!(prompts.len(), chats.len());
    for (c, p) in chats.iter().zip(&prompts) {
        let m = c["messages"].as_array().unwrap();
        // The conversation minus its last assistant turn, which becomes the reference.
        assert_eq!(p["prompt"].as_array().unwrap()[..], m[..m.len() - 1]);
        assert_eq!(p["reference"], m[m.len() - 1]["content"]);
        assert_eq!(p["id"], c["id"]);
    }
    let pairs = json_rows(&wd, "hh");
    let hp = json_rows(&wd, "p_hh");
    assert_eq!(hp.len(), pairs.len());
    assert_eq!(hp[0]["prompt"], pairs[0]["prompt"]);
    assert_eq!(hp[0]["reference"], pairs[0]["chosen"]);
    assert!(hp.iter().all(|p| p["prompt"].as_array().unwrap().last().unwrap()["role"] == "user"));
    let docs = json_rows(&wd, "text");
    let dp = json_rows(&wd, "p_docs");
    assert_eq!(dp.len(), docs.len());
    assert_eq!(dp[3]["prompt"][0]["content"], docs[3]["text"]);
    assert!(dp[3]["reference"].is_null());
    // A token limit rejects long prompts, counted with their length.
    let m = manifest(&wd, "p_short");
    let kept = m["rows"].as_u64().unwrap();
    let dropped = m["rejected_rows"].as_u64().unwrap();
    assert_eq!(kept + dropped, chats.len() as u64);
    assert!(kept > 0 && dropped > 0, "{kept} kept, {dropped} dropped");
    let r: Value = serde_json::from_str(&rejected(&wd, "p_short")[0]).unwrap();
    assert!(r["reason"].as_str().unwrap().contains("more than max_tokens 24"), "{r}");
}

/// A generated set whose preference is learnable by a tiny model in a few
/// steps: the chosen reply states the sum, the rejected one declines.
fn easy_prefs(path: &Path, n: usize) {
    let mut out = String::new();
    for i in 0..n {
        let (a, b) = (i % 17 + 2, i % 11 + 3);
        let rec = serde_json::json!({
            "id": format!("sum{i}"),
            "prompt": format!("What is {a} plus {b}?"),
            "chosen": format!("{a} plus {b} is {}.", a + b),
            "rejected": "I do not know, sorry.",
        });
        out.push_str(&rec.to_string());
        out.push('\n');
    }
    std::fs::write(path, out).unwrap();
}

#[test]
fn sft_then_reward_model_and_dpo_learn_and_export() {
    let Some(data) = shared_data() else { return };
    let dir = tempfile::tempdir().unwrap();
    easy_prefs(&dir.path().join("easy.jsonl"), 240);
    let extra = format!(
        "  easy: {{op: read, path: {}, format: preferences}}
  hh_small: {{op: sample, input: hh, n: 200}}
  rm_hh: {{op: reward_model, model: sft, input: hh_small, batch_size: 4, max_steps: 6, lr: 1.0e-3, eval_every: 0, val_fraction: 0.2}}
  rm:
    op: reward_model
    model: sft
    input: easy
    normalize: alpaca
    batch_size: 8
    max_steps: 25
    lr: 2.0e-3
    warmup_steps: 2
    eval_every: 0
  dpo: {{op: dpo, model: sft, input: easy, batch_size: 8, max_steps: 25, lr: 2.0e-3, warmup_steps: 2, eval_every: 0}}
",
        dir.path().join("easy.jsonl").display()
    );
    let p = pipeline(dir.path(), &yaml(&data, 60, &extra));
    kiln_in(dir.path(), &["run", p.to_str().unwrap()]).ok();
    let wd = dir.path().join("runs");

    // SFT: loss down, evaluated on held-out chats, a model artifact.
    let lines = metrics(dir.path(), "sft");
    let steps: Vec<f64> = lines.iter().filter_map(|l| l["loss"].as_f64()).collect();
    assert_eq!(steps.len(), 60);
    // Means of five steps: single batches of four rows are noisy.
    let head: f64 = steps[..5].iter().sum::<f64>() / 5.0;
    let tail: f64 = steps[55..].iter().sum::<f64>() / 5.0;
    eprintln!("sft loss {head:.3} -> {tail:.3}");
    assert!(tail < head - 0.15, "sft loss {head} -> {tail}");
    let vals: Vec<f64> = lines.iter().filter_map(|l| l["val_loss"].as_f64()).collect();
    assert_eq!(vals.len(), 6);
    assert!(vals[5] < vals[0], "val loss {vals:?}");
    assert_eq!(manifest(&wd, "sft")["stats"]["sft"]["steps"], 60);

    // Only assistant tokens are in the loss: on real packed chat rows,
    // changing the targets where the mask is 0 leaves the loss as it was.
    let mut model = kiln::model::hf::load(&wd.join("sft"), kiln::backend::Precision::F32).unwrap();
    let mut loader = kiln::pack::loader::Loader::open(&wd.join("chat_rows"), "val", 2, 0, 1, 0).unwrap();
    let b = loader.next_batch();
    let t = 128;
    let mask_full = b.loss_mask.clone().unwrap();
    let (mut inputs, mut targets, mut mask) = (vec![], vec![], vec![]);
    for i in 0..2 {
        inputs.extend_from_slice(&b.tokens[i * (t + 1)..i * (t + 1) + t]);
        targets.extend_from_slice(&b.tokens[i * (t + 1) + 1..(i + 1) * (t + 1)]);
        mask.extend_from_slice(&mask_full[i * (t + 1) + 1..(i + 1) * (t + 1)]);
    }
    assert!(mask.contains(&0) && mask.contains(&1));
    let loss = |m: &mut kiln::model::Gpt, tg: &[u32]| m.forward(&inputs, Some(tg), Some(&mask), 2, t).unwrap().unwrap();
    let base = loss(&mut model, &targets);
    let user: Vec<u32> = targets
        .iter()
        .zip(&mask)
        .map(|(&x, &m)| if m == 0 { (x + 7) % 500 } else { x })
        .collect();
    assert_eq!(loss(&mut model, &user), base);
    let asst: Vec<u32> = targets
        .iter()
        .zip(&mask)
        .map(|(&x, &m)| if m == 1 { (x + 7) % 500 } else { x })
        .collect();
    assert!((loss(&mut model, &asst) - base).abs() > 1e-3);

    // Reward model on HH-RLHF: held-out accuracy and margin are reported.
    let hh = manifest(&wd, "rm_hh");
    let val = &hh["stats"]["reward_model"]["val"];
    let acc = val["accuracy"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&acc) && val["margin"].as_f64().is_some(), "{val}");
    // Long dialogues do not fit the 128-token context: counted rejects.
    assert!(hh["rejected_rows"].as_u64().unwrap() > 0);
    let r: Value = serde_json::from_str(&rejected(&wd, "rm_hh")[0]).unwrap();
    assert!(
        r["reason"].as_str().unwrap().contains("longer than the model's block_size 128"),
        "{r}"
    );

    // Reward model on the learnable set: held-out accuracy rises.
    let rm = manifest(&wd, "rm");
    let s = &rm["stats"]["reward_model"];
    assert!(s["val"]["accuracy"].as_f64().unwrap() >= 0.9, "{s}");
    assert!(
        s["val"]["accuracy"].as_f64() > s["val_first"]["accuracy"].as_f64().map(|a| a.min(0.8)),
        "{s}"
    );
    let lines = metrics(dir.path(), "rm");
    for key in ["loss", "accuracy", "margin"] {
        assert!(lines[1][key].as_f64().is_some(), "{key}");
    }
    assert!(lines.last().unwrap()["val_accuracy"].as_f64().is_some());
    let cfg: Value = serde_json::from_str(&std::fs::read_to_string(wd.join("rm/config.json")).unwrap()).unwrap();
    assert_eq!(cfg["architectures"][0], "GPT2ForSequenceClassification");
    assert_eq!(cfg["num_labels"], 1);
    assert!(cfg["kiln_score_offset"].as_f64().is_some());
    // The held-out scores it writes give the accuracy it reports.
    let scored: Vec<Value> = std::fs::read_to_string(wd.join("rm/val_scores.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(scored.len() as u64, s["val_records"].as_u64().unwrap());
    let right = scored.iter().filter(|r| r["scores"][0].as_f64() > r["scores"][1].as_f64()).count();
    let acc = right as f64 / scored.len() as f64;
    assert!((acc - s["val"]["accuracy"].as_f64().unwrap()).abs() < 1e-9, "{acc} vs {s}");
    parity_with_transformers(&wd.join("rm"));

    // DPO: ln 2 before any update, TRL's metric names, held-out accuracy up.
    let lines = metrics(dir.path(), "dpo");
    let first = &lines[0];
    assert_eq!(first["step"], 0);
    assert!(
        (first["val_loss"].as_f64().unwrap() - std::f64::consts::LN_2).abs() < 1e-9,
        "{first}"
    );
    let last = lines.last().unwrap();
    for key in ["rewards/chosen", "rewards/rejected", "rewards/accuracies", "rewards/margins"] {
        assert!(lines[1][key].as_f64().is_some(), "{key}");
        assert!(last[format!("val_{key}")].as_f64().is_some(), "val_{key}");
    }
    assert!(last["val_rewards/accuracies"].as_f64().unwrap() >= 0.9, "{last}");
    assert!(last["val_loss"].as_f64().unwrap() < std::f64::consts::LN_2, "{last}");
    assert_eq!(manifest(&wd, "dpo")["kind"], "model");
}

/// Scores the same token ids with kiln and with transformers'
/// `GPT2ForSequenceClassification`; skipped without torch + transformers.
fn parity_with_transformers(rm: &Path) {
    let python = std::env::var("KILN_PYTHON").unwrap_or_else(|_| "python3".into());
    let probe = std::process::Command::new(&python)
        .args(["-c", "import torch, transformers"])
        .output();
    if !probe.is_ok_and(|o| o.status.success()) {
        eprintln!("SKIP: transformers parity needs Python with torch and transformers (set KILN_PYTHON)");
        return;
    }
    let (mut scorer, offset) = kiln::model::hf::load_scorer(rm, kiln::backend::Precision::F32).unwrap();
    let cfg: Value = serde_json::from_str(&std::fs::read_to_string(rm.join("config.json")).unwrap()).unwrap();
    let pad = cfg["pad_token_id"].as_u64().unwrap() as u32;
    let seqs: Vec<Vec<u32>> = vec![(5..40).collect(), (100..112).collect(), (200..260).map(|x| x % 500).collect()];
    let refs: Vec<&[u32]> = seqs.iter().map(Vec::as_slice).collect();
    let batch = kiln::train::seq::SeqBatch::tight(&refs, pad).unwrap();
    scorer.forward(&batch.inputs, batch.b, batch.t).unwrap();
    let ours: Vec<f32> = (0..batch.b).map(|i| scorer.score_at(batch.last(i))).collect();
    let script = format!(
        "import torch, json, sys\nfrom transformers import GPT2ForSequenceClassification\n\
         m = GPT2ForSequenceClassification.from_pretrained(sys.argv[1]).eval()\n\
         ids = torch.tensor({ids:?}).view({b}, {t})\n\
         with torch.no_grad(): print(json.dumps(m(input_ids=ids).logits[:, 0].tolist()))\n",
        ids = batch.inputs,
        b = batch.b,
        t = batch.t
    );
    let out = std::process::Command::new(&python)
        .args(["-c", &script, rm.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let theirs: Vec<f64> = serde_json::from_slice(&out.stdout).unwrap();
    let diff = ours.iter().zip(&theirs).map(|(a, b)| (*a as f64 - b).abs()).fold(0.0, f64::max);
    eprintln!(
        "transformers parity: max |diff| {diff:.2e} over {} sequences (offset {offset})",
        ours.len()
    );
    assert!(diff < 1e-4, "kiln {ours:?} vs transformers {theirs:?}");
}

#[test]
fn sft_killed_mid_run_resumes_bit_identical() {
    let Some(data) = shared_data() else { return };
    let clean = tempfile::tempdir().unwrap();
    let p = pipeline(clean.path(), &yaml(&data, 24, ""));
    kiln_in(clean.path(), &["run", p.to_str().unwrap(), "--threads", "2"]).ok();
    let want = std::fs::read(clean.path().join("runs/sft/model.safetensors")).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let p = pipeline(dir.path(), &yaml(&data, 24, ""));
    kiln_in(dir.path(), &["run", p.to_str().unwrap(), "--until", "chat_rows", "--threads", "2"]).ok();
    kiln_in(dir.path(), &["run", p.to_str().unwrap(), "--until", "base", "--threads", "2"]).ok();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(["run", p.to_str().unwrap(), "--threads", "2"])
        .current_dir(dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let ckpt = dir.path().join("runs/.ckpt");
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut killed = false;
    while Instant::now() < deadline {
        let newest = std::fs::read_dir(&ckpt)
            .into_iter()
            .flatten()
            .flatten()
            .flat_map(|d| std::fs::read_dir(d.path()).into_iter().flatten().flatten())
            .filter_map(|e| e.file_name().to_str()?.strip_prefix("step-")?.parse::<u64>().ok())
            .max();
        if newest.is_some_and(|s| s >= 8) {
            child.kill().unwrap();
            killed = true;
            break;
        }
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let _ = child.wait();
    assert!(killed, "sft finished before it could be killed");
    kiln_in(dir.path(), &["run", p.to_str().unwrap(), "--threads", "2"]).ok();
    let got = std::fs::read(dir.path().join("runs/sft/model.safetensors")).unwrap();
    assert!(got == want, "a resumed sft differs from an uninterrupted one");
    assert!(
        manifest(&dir.path().join("runs"), "sft")["stats"]["sft"]["steps_run"]
            .as_u64()
            .unwrap()
            < 24
    );
}

#[test]
fn bad_post_training_inputs_fail_with_clear_messages() {
    let Some(data) = shared_data() else { return };
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("assistant_last.jsonl"),
        "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}, {\"role\": \"assistant\", \"content\": \"hello\"}, {\"role\": \"assistant\", \"content\": \"yo\"}]}\n",
    )
    .unwrap();
    let base = yaml(&data, 4, "");
    let base = base.split("  sft:").next().unwrap();
    let cases: Vec<(String, &str)> = vec![
        // SFT on rows made from plain text: no assistant-only mask.
        (
            "  bad: {op: sft, model: base, input: text_rows, max_steps: 2}\n".into(),
            "has no assistant-only loss mask",
        ),
        // A prompts node whose every row is rejected.
        (
            format!(
                "  odd: {{op: read, path: {}, format: chat}}\n  bad: {{op: prompts, input: odd}}\n",
                dir.path().join("assistant_last.jsonl").display()
            ),
            "no prompts",
        ),
        // DPO against a reference with another tokenizer.
        (
            "  bpe2: {op: train_tokenizer, input: text, vocab_size: 300}\n  t2: {op: tokenize, input: text, tokenizer: bpe2}\n  r2: {op: pack, input: t2, seq_len: 128}\n  other: {op: pretrain, input: r2, tokenizer: bpe2, model: {n_layer: 1, n_head: 2, n_embd: 16}, max_steps: 1, batch_size: 2}\n  hh2: {op: sample, input: hh, n: 40}\n  bad: {op: dpo, model: base, ref: other, input: hh2, max_steps: 1, batch_size: 2}\n".into(),
            "are different tokenizers",
        ),
    ];
    for (extra, want) in cases {
        let d = tempfile::tempdir().unwrap();
        let p = pipeline(d.path(), &format!("{base}{extra}"));
        let r = kiln_in(d.path(), &["run", p.to_str().unwrap()]);
        assert_eq!(r.code, 1, "{extra}: {}", r.stderr);
        assert!(r.stderr.contains(want), "{extra}: want `{want}` in\n{}", r.stderr);
    }
}

/// The bundled sample world (`data/world`, made by `kiln synth`): its pairs
/// and rankings train a reward model and DPO whose held-out accuracy rises.
#[test]
fn world_preferences_and_rankings_are_learned() {
    let world = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/world");
    if !world.join("prefs.jsonl").is_file() || !world.join("ranked.jsonl").is_file() {
        eprintln!("SKIP: data/world/prefs.jsonl or ranked.jsonl is absent (regenerate with `kiln synth --out data/world --seed 7`)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let y = format!(
        "name: world
workdir: runs
seed: 3
nodes:
  answers: {{op: read, path: {w}/prefs.jsonl, text_field: chosen}}
  chats: {{op: read, path: {w}/sft.jsonl, format: chat}}
  prefs: {{op: read, path: {w}/prefs.jsonl, format: preferences}}
  ranked: {{op: read, path: {w}/ranked.jsonl, format: preferences}}
  bpe: {{op: train_tokenizer, input: answers, vocab_size: 400, min_frequency: 2}}
  chat_tokens: {{op: tokenize, input: chats, tokenizer: bpe}}
  chat_rows: {{op: pack, input: chat_tokens, seq_len: 64, mode: bestfit, crop: true, val_fraction: 0.05}}
  base:
    op: pretrain
    input: chat_rows
    tokenizer: bpe
    model: {{n_layer: 2, n_head: 2, n_embd: 32}}
    batch_size: 8
    max_steps: 30
    lr: 3.0e-3
    warmup_steps: 2
    eval_every: 0
    checkpoint_every: 0
  sft: {{op: sft, model: base, input: chat_rows, batch_size: 8, max_steps: 30, lr: 3.0e-3, warmup_steps: 2, eval_every: 0, checkpoint_every: 0}}
  rm: {{op: reward_model, model: sft, input: prefs, batch_size: 16, max_steps: 80, lr: 2.0e-3, warmup_steps: 2, eval_every: 0}}
  rm_ranked: {{op: reward_model, model: sft, input: ranked, val_fraction: 0.2, batch_size: 8, max_steps: 30, lr: 2.0e-3, warmup_steps: 2, eval_every: 0}}
  dpo: {{op: dpo, model: sft, input: prefs, batch_size: 16, max_steps: 100, lr: 2.0e-3, warmup_steps: 2, eval_every: 0}}
",
        w = world.display()
    );
    let p = pipeline(dir.path(), &y);
    kiln_in(dir.path(), &["run", p.to_str().unwrap()]).ok();
    let wd = dir.path().join("runs");
    for (node, key) in [("rm", "reward_model"), ("rm_ranked", "reward_model"), ("dpo", "dpo")] {
        let s = &manifest(&wd, node)["stats"][key];
        let acc = |v: &Value| v["accuracy"].as_f64().or(v["rewards/accuracies"].as_f64()).unwrap();
        let (before, after) = (acc(&s["val_first"]), acc(&s["val"]));
        eprintln!("{node}: held-out accuracy {before:.3} -> {after:.3}");
        // A 2-layer, 32-wide model on pairs where most rejected replies are
        // wrong facts, sums, off-topic sentences or answers about another
        // subject reaches about 0.60–0.78 (DPO starts at 0: every pair ties
        // at ln 2; it needs 100 steps since the other-subject pairs came);
        // chance is 0.5.
        assert!(after > before + 0.1 && after > 0.58, "{node}: {s}");
    }
    // A ranking of K replies trains as K(K−1)/2 pairs: 3 or 4 replies give 3 or 6.
    let ranked = json_rows(&wd, "ranked");
    assert!(ranked.iter().all(|r| r["responses"].as_array().is_some_and(|x| x.len() >= 3)));
    assert_eq!(ranked[0]["chosen"], ranked[0]["responses"][0]);
}
