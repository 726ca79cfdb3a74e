//! `pretrain`, `eval` and `import_model` end to end on real text: the
//! model artifact, metrics, resume after SIGKILL (bit-identical), a
//! diverging run stopped with its step named.

mod common;
use common::{kiln_in, manifest, pipeline, shared_data};
use serde_json::Value;
use std::path::Path;
use std::time::{Duration, Instant};

fn yaml(data: &Path, steps: u64, lr: f64) -> String {
    format!(
        "name: t
workdir: runs
seed: 3
nodes:
  text:
    op: read
    path: {data}/text/tinyshakespeare/input.txt
    text_mode: block
  bpe: {{op: train_tokenizer, input: text, vocab_size: 400, min_frequency: 2}}
  tokens: {{op: tokenize, input: text, tokenizer: bpe}}
  rows: {{op: pack, input: tokens, seq_len: 32, val_fraction: 0.05}}
  lm:
    op: pretrain
    input: rows
    tokenizer: bpe
    model: {{n_layer: 2, n_head: 2, n_embd: 32}}
    batch_size: 4
    max_steps: {steps}
    lr: {lr}
    warmup_steps: 5
    eval_every: 10
    eval_batches: 2
    checkpoint_every: 4
  wiki: {{op: read, path: {data}/text/wikitext-2/test.txt, text_mode: file}}
  ev: {{op: eval, model: lm, input: wiki, max_tokens: 2000, batch_size: 8}}
",
        data = data.display()
    )
}

fn metrics(dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("runs/lm/metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn pretrain_makes_a_model_that_learns_and_eval_scores_it() {
    let Some(data) = shared_data() else { return };
    let dir = tempfile::tempdir().unwrap();
    let p = pipeline(dir.path(), &yaml(&data, 40, 3e-3));
    kiln_in(dir.path(), &["run", p.to_str().unwrap()]).ok();
    let m = manifest(&dir.path().join("runs"), "lm");
    assert_eq!(m["kind"], "model");
    for f in [
        "model.safetensors",
        "config.json",
        "tokenizer.json",
        "train_state.json",
        "metrics.jsonl",
    ] {
        assert!(dir.path().join("runs/lm").join(f).is_file(), "{f} missing");
    }
    let lines = metrics(dir.path());
    let steps: Vec<&Value> = lines.iter().filter(|l| l.get("loss").is_some()).collect();
    assert_eq!(steps.len(), 40);
    let first = steps[0]["loss"].as_f64().unwrap();
    let last = steps[39]["loss"].as_f64().unwrap();
    // A 400-token vocabulary starts near ln(400) ≈ 6.0; 40 small steps reach
    // about the unigram entropy (≈ 5), which proves the updates work.
    assert!(first > 5.5 && last < first - 0.6, "loss {first} -> {last}");
    for key in ["lr", "grad_norm", "tokens_per_s", "mfu"] {
        assert!(steps[5][key].as_f64().is_some_and(f64::is_finite), "{key} missing");
    }
    let evals: Vec<&Value> = lines.iter().filter(|l| l.get("val_loss").is_some()).collect();
    assert_eq!(evals.len(), 4, "evals at 10, 20, 30, 40");
    assert!(evals[3]["val_bpb"].as_f64().is_some_and(|b| b > 0.0 && b < 8.0));
    let stats = &m["stats"]["pretrain"];
    assert_eq!(stats["steps"], 40);
    let ev = manifest(&dir.path().join("runs"), "ev");
    let e = &ev["stats"]["eval"];
    assert!(
        e["loss"].as_f64().unwrap() > 0.0 && e["bits_per_byte"].as_f64().unwrap() > 0.0,
        "{e}"
    );
    assert_eq!(e["tokens"].as_u64().unwrap() % 32, 0);
    // No checkpoints are left behind once the model is committed.
    let ckpts = std::fs::read_dir(dir.path().join("runs/.ckpt")).map(|d| d.count()).unwrap_or(0);
    assert_eq!(ckpts, 0);

    // The model imports back (HF directory in, identical weights out).
    let lm = dir.path().join("runs/lm");
    let imp = pipeline(
        dir.path(),
        &format!(
            "name: i\nworkdir: runs2\nnodes:\n  m: {{op: import_model, path: {}}}\n",
            lm.display()
        ),
    );
    kiln_in(dir.path(), &["run", imp.to_str().unwrap()]).ok();
    let a = std::fs::read(lm.join("model.safetensors")).unwrap();
    let b = std::fs::read(dir.path().join("runs2/m/model.safetensors")).unwrap();
    assert!(a == b, "import_model changed the weights");
}

#[test]
fn a_run_killed_at_any_step_resumes_bit_identical() {
    let Some(data) = shared_data() else { return };
    let clean = tempfile::tempdir().unwrap();
    let p = pipeline(clean.path(), &yaml(&data, 48, 3e-3));
    kiln_in(clean.path(), &["run", p.to_str().unwrap(), "--until", "lm", "--threads", "2"]).ok();
    let want = std::fs::read(clean.path().join("runs/lm/model.safetensors")).unwrap();
    let want_losses: Vec<Value> = metrics(clean.path()).iter().map(|l| l["loss"].clone()).collect();

    let dir = tempfile::tempdir().unwrap();
    let p = pipeline(dir.path(), &yaml(&data, 48, 3e-3));
    // Everything up to the packed rows first, so the kill lands in training.
    kiln_in(dir.path(), &["run", p.to_str().unwrap(), "--until", "rows"]).ok();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(["run", p.to_str().unwrap(), "--until", "lm", "--threads", "2"])
        .current_dir(dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let ckpt = dir.path().join("runs/.ckpt");
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut killed_after = None;
    while Instant::now() < deadline {
        let newest = std::fs::read_dir(&ckpt)
            .into_iter()
            .flatten()
            .flatten()
            .flat_map(|d| std::fs::read_dir(d.path()).into_iter().flatten().flatten())
            .filter_map(|e| e.file_name().to_str()?.strip_prefix("step-")?.parse::<u64>().ok())
            .max();
        if let Some(s) = newest.filter(|&s| s >= 8) {
            child.kill().unwrap(); // SIGKILL, mid-run
            killed_after = Some(s);
            break;
        }
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let _ = child.wait();
    let killed_after = killed_after.expect("training finished before it could be killed");
    assert!(!dir.path().join("runs/lm/manifest.json").exists());
    kiln_in(dir.path(), &["run", p.to_str().unwrap(), "--until", "lm", "--threads", "2"]).ok();
    let got = std::fs::read(dir.path().join("runs/lm/model.safetensors")).unwrap();
    assert!(
        got == want,
        "resumed after step {killed_after}: the weights differ from an uninterrupted run"
    );
    let losses: Vec<Value> = metrics(dir.path()).iter().map(|l| l["loss"].clone()).collect();
    assert_eq!(losses, want_losses, "the metrics of a resumed run must read like one run");
    let m = manifest(&dir.path().join("runs"), "lm");
    assert!(m["stats"]["pretrain"]["steps_run"].as_u64().unwrap() < 48);
}

#[test]
fn a_diverging_run_stops_naming_the_step() {
    let Some(data) = shared_data() else { return };
    let dir = tempfile::tempdir().unwrap();
    let p = pipeline(dir.path(), &yaml(&data, 30, 1e30));
    let r = kiln_in(dir.path(), &["run", p.to_str().unwrap(), "--until", "lm"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("training diverged") && r.stderr.contains("at step"),
        "{}",
        r.stderr
    );
    assert!(!dir.path().join("runs/lm/manifest.json").exists());
    // The last good checkpoint is kept.
    let kept = std::fs::read_dir(dir.path().join("runs/.ckpt")).map(|d| d.count()).unwrap_or(0);
    assert_eq!(kept, 1);
}
