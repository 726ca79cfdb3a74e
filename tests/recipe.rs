// ok: test module
//! The real-scale recipe `pipelines/chatgpt.yaml`: it validates as shipped,
//! its pretraining node is GPT-2 (124M) with llm.c's settings on CUDA, its
//! cleaning is clean-crawl.yaml's FineWeb order, and on a build without the
//! CUDA backend it stops at the first CUDA node with a clear message instead
//! of training on the CPU.

mod common;
use common::{kiln_in, shared_data};
use kiln::spec::ops::{BackendName, PrecisionName, ScheduleName};
use kiln::spec::{Op, Pipeline};
use std::path::{Path, PathBuf};

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn recipe() -> PathBuf {
    repo().join("pipelines/chatgpt.yaml")
}

fn load(path: &Path) -> Pipeline {
    kiln::spec::load(path, &[]).unwrap_or_else(|e| panic!("{} does not load: {e:?}", path.display()))
}

fn op<'a>(p: &'a Pipeline, id: &str) -> &'a Op {
    &p.node(id).unwrap_or_else(|| panic!("no node `{id}` in the recipe")).op
}

#[test]
fn kiln_validate_accepts_the_recipe() {
    // The recipe reads ../shared/data, and loading it checks its inputs exist.
    if shared_data().is_none() {
        return;
    }
    // From the repository root, as the README says to run it.
    let r = kiln_in(repo(), &["validate", "pipelines/chatgpt.yaml"]);
    assert_eq!(r.code, 0, "validate failed:\n{}", r.stderr);
    assert!(r.stdout.contains("ok"), "{}", r.stdout);
}

#[test]
fn pretraining_is_gpt2_124m_with_llm_c_settings_on_cuda() {
    // The recipe reads ../shared/data, and loading it checks its inputs exist.
    if shared_data().is_none() {
        return;
    }
    let p = load(&recipe());
    let Op::TrainTokenizer(bpe) = op(&p, "bpe") else {
        panic!("`bpe` is not train_tokenizer")
    };
    assert_eq!(bpe.vocab_size, 50257, "GPT-2's vocabulary size");
    assert_eq!(bpe.split, "gpt2");

    let Op::Pack(rows) = op(&p, "text_rows") else {
        panic!("`text_rows` is not pack")
    };
    assert_eq!(rows.seq_len, 1024);
    assert!(rows.val_fraction > 0.0, "pretraining needs a val split");

    let Op::Pretrain(lm) = op(&p, "gpt2") else {
        panic!("`gpt2` is not pretrain")
    };
    let m = &lm.model;
    assert_eq!((m.n_layer, m.n_head, m.n_embd), (12, 12, 768));
    assert_eq!(m.block_size, Some(1024));
    assert_eq!(m.vocab_size, Some(50257));
    assert_eq!(lm.backend, BackendName::Cuda);
    assert_eq!(lm.precision, PrecisionName::Bf16);
    assert_eq!(lm.schedule, ScheduleName::Cosine);
    let tokens = lm.tokens_per_step.expect("tokens_per_step is set");
    assert_eq!(tokens, 1 << 19, "~0.5M tokens per step");
    let row_tokens = (lm.batch_size * 1024) as u64;
    assert_eq!(
        tokens % row_tokens,
        0,
        "tokens_per_step must divide into micro-batches of batch_size × 1024"
    );
    // One pass over ~10B tokens.
    let seen = lm.max_steps * tokens;
    assert!((9_900_000_000..10_100_000_000).contains(&seen), "{seen} tokens");
    assert_eq!((lm.lr, lm.min_lr_ratio, lm.warmup_steps), (6.0e-4, 0.1, 715));
    assert_eq!((lm.beta1, lm.beta2, lm.weight_decay), (0.9, 0.95, 0.1));

    let Op::Sft(sft) = op(&p, "sft") else { panic!("`sft` is not sft") };
    assert_eq!(sft.model, "gpt2");
    assert_eq!(sft.backend, BackendName::Cuda);
}

#[test]
fn the_post_training_graph_is_wired_sft_first() {
    // The recipe reads ../shared/data, and loading it checks its inputs exist.
    if shared_data().is_none() {
        return;
    }
    let p = load(&recipe());
    let Op::RewardModel(rm) = op(&p, "rm") else {
        panic!("`rm` is not reward_model")
    };
    assert_eq!(rm.model, "sft", "the reward model starts from the SFT model (InstructGPT)");
    let Op::Ppo(ppo) = op(&p, "ppo") else { panic!("`ppo` is not ppo") };
    assert_eq!(ppo.policy, "sft");
    assert_eq!(ppo.reward_model.as_deref(), Some("rm"));
    assert_eq!(ppo.batch_size % ppo.num_minibatches, 0, "minibatches must split the rollout batch");
    let Op::Dpo(dpo) = op(&p, "dpo") else { panic!("`dpo` is not dpo") };
    assert_eq!(dpo.model, "sft");
    // SFT, PPO and DPO are compared on the same held-out prompts.
    for (node, model) in [("eval_sft", "sft"), ("eval_ppo", "ppo"), ("eval_dpo", "dpo")] {
        let Op::EvalChat(e) = op(&p, node) else {
            panic!("`{node}` is not eval_chat")
        };
        assert_eq!(e.model, model);
        assert_eq!(e.prompts, "heldout_prompts");
    }
}

#[test]
fn cleaning_is_clean_crawls_fineweb_order() {
    // The recipe reads ../shared/data, and loading it checks its inputs exist.
    if shared_data().is_none() {
        return;
    }
    let p = load(&recipe());
    let crawl = load(&repo().join("pipelines/clean-crawl.yaml"));
    let (Op::Clean(ours), Op::Clean(theirs)) = (op(&p, "clean"), op(&crawl, "clean")) else {
        panic!("`clean` is not a clean node in both recipes")
    };
    assert_eq!(ours.steps, theirs.steps);
    let Op::Dedup(d) = op(&p, "dedup") else {
        panic!("`dedup` is not dedup")
    };
    assert_eq!(d.input, "clean");
    let Op::Clean(pii) = op(&p, "text") else {
        panic!("`text` is not clean")
    };
    assert_eq!(pii.input.as_deref(), Some("dedup"));
    assert_eq!(pii.steps.len(), 1, "PII alone, after dedup");
}

#[test]
fn without_the_cuda_backend_it_stops_at_pretraining_with_a_clear_message() {
    let Some(data) = shared_data() else { return };
    let dir = tempfile::tempdir().unwrap();
    // Only the shapes shrink (two small WARC files, a small vocabulary, short
    // rows); `backend: cuda` stays as shipped.
    let sets = [
        format!("vars.data={}", data.display()),
        format!("vars.warc={}", data.join("crawl/dolma").display()),
        "nodes.bpe.vocab_size=512".to_string(),
        "nodes.text_rows.seq_len=64".to_string(),
    ];
    let path = recipe();
    let mut args = vec!["run", path.to_str().unwrap(), "--until", "gpt2", "-q"];
    for s in &sets {
        args.extend(["--set", s.as_str()]);
    }
    let r = kiln_in(dir.path(), &args);
    assert_ne!(r.code, 0, "a CUDA node must not succeed without the CUDA backend:\n{}", r.stderr);
    let all = format!("{}{}", r.stdout, r.stderr);
    assert!(all.contains("needs a kiln built with the CUDA backend"), "{all}");
    assert!(
        all.contains("--features cuda") && all.contains("`backend: cpu`"),
        "the message says what to do:\n{all}"
    );
    let work = dir.path().join("runs/chatgpt");
    // Everything before pretraining was built; pretraining left no artifact.
    let rows = common::manifest(&work, "text_rows");
    assert!(rows["rows"].as_u64().unwrap() > 0, "{rows}");
    assert!(!work.join("gpt2/manifest.json").exists());
}
