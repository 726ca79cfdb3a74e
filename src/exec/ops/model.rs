//! `pretrain`, `eval` and `import_model`: the engine side of the model
//! artifacts. A `model` artifact is a directory a `transformers` user can
//! open (`model.safetensors`, `config.json`, `tokenizer.json`) plus kiln's
//! `train_state.json` and `metrics.jsonl`.

use super::{Ctx, EngineProgress, NodeError, Output};
use crate::backend::Precision;
use crate::exec::sink::SinkResult;
use crate::io::writer::FileInfo;
use crate::model::{Gpt, GptConfig, hf};
use crate::pack::loader::Loader;
use crate::spec::ops::{ArchSpec, BackendName, EvalParams, ImportModelParams, PrecisionName, PretrainParams, ScheduleName};
use crate::tokenize::{Encoder, Specials, load};
use crate::train::pretrain::{self, Hooks, LoopConfig, TrainError};
use crate::train::{AdamWConfig, Schedule, ScheduleKind};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

pub(super) fn input<'a>(ctx: &'a Ctx, field: &str) -> Result<&'a crate::exec::store::Artifact, NodeError> {
    ctx.inputs
        .get(field)
        .ok_or_else(|| NodeError::Failed(format!("input `{field}` missing")))
}

pub(super) fn precision(p: PrecisionName) -> Precision {
    match p {
        PrecisionName::F32 => Precision::F32,
        PrecisionName::Bf16 => Precision::Bf16,
    }
}

pub(super) fn model_err(e: crate::model::ModelError) -> NodeError {
    NodeError::Failed(e.to_string())
}

impl Hooks for EngineProgress<'_, '_> {
    fn step(&self, step: u64, loss: f32, tokens_per_s: f64) {
        self.0.bar.set_position(step);
        self.0.bar.set_message(format!("loss {loss:.4} · {tokens_per_s:.0} tok/s"));
    }
}

/// The files of a model directory, as the manifest lists them.
pub(super) fn model_files(dir: &Path) -> Result<(Vec<FileInfo>, String), NodeError> {
    let mut files = Vec::new();
    for name in [hf::WEIGHTS, hf::CONFIG, "tokenizer.json", "train_state.json", "metrics.jsonl"] {
        if let Ok(m) = std::fs::metadata(dir.join(name)) {
            files.push(FileInfo {
                name: name.into(),
                rows: 0,
                bytes: m.len(),
            });
        }
    }
    let weights = std::fs::read(dir.join(hf::WEIGHTS)).map_err(|e| format!("{}: {e}", dir.join(hf::WEIGHTS).display()))?;
    Ok((files, blake3::hash(&weights).to_hex().to_string()))
}

/// Writes the model, its tokenizer and state into `out`, and the output record.
pub(super) fn finish_model(ctx: &Ctx, model: &Gpt, tokenizer: &Path, stats: Value, extra: Value) -> Result<Output, NodeError> {
    let tok = load(tokenizer)?;
    let sp = Specials::of(&tok);
    hf::save(model, ctx.out, sp.bos, sp.eos).map_err(model_err)?;
    std::fs::copy(tokenizer, ctx.out.join("tokenizer.json")).map_err(|e| format!("copying {}: {e}", tokenizer.display()))?;
    let (files, hash) = model_files(ctx.out)?;
    let mut extra = extra;
    extra["config"] = serde_json::to_value(model.config()).unwrap_or(Value::Null);
    extra["params"] = json!(model.params.len());
    extra["bos_id"] = json!(sp.bos);
    extra["eos_id"] = json!(sp.eos);
    extra["end_id"] = json!(sp.end);
    extra["pad_id"] = json!(sp.pad);
    Ok(Output {
        table: SinkResult {
            files,
            ..Default::default()
        },
        stats,
        extra,
        content_hash: Some(hash),
        ..Default::default()
    })
}

/// Where a node's training checkpoints live: keyed by its fingerprint, so
/// only an identical configuration resumes from them.
pub(super) fn ckpt_dir(ctx: &Ctx) -> PathBuf {
    let fp: String = ctx.fingerprint.chars().take(16).collect();
    ctx.pipeline.workdir.join(".ckpt").join(format!("{}-{fp}", ctx.node.id))
}

/// The optimizer side of a language-model training node, shared by
/// `pretrain` and `sft` (each fills it from its own params and defaults).
pub(super) struct LmTraining {
    pub batch_size: usize,
    pub grad_accum: usize,
    pub max_steps: u64,
    pub lr: f32,
    pub min_lr_ratio: f32,
    pub warmup_steps: u64,
    pub schedule: ScheduleName,
    pub decay_fraction: f32,
    pub weight_decay: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    pub grad_clip: f32,
    pub eval_every: u64,
    pub eval_batches: u64,
    pub checkpoint_every: u64,
    pub precision: PrecisionName,
    pub backend: BackendName,
    pub peak_gflops: Option<f64>,
    /// The key of the node's stats (`pretrain`, `sft`).
    pub stats_key: &'static str,
}

/// The schedule of a training node.
pub(super) fn schedule(name: ScheduleName, lr: f32, min_lr_ratio: f32, warmup: u64, total: u64, decay_fraction: f32) -> Schedule {
    Schedule {
        max_lr: lr,
        min_lr_ratio,
        warmup,
        total,
        kind: match name {
            ScheduleName::Cosine => ScheduleKind::Cosine,
            ScheduleName::Linear => ScheduleKind::Linear,
            ScheduleName::Constant => ScheduleKind::Constant,
            ScheduleName::Wsd => ScheduleKind::Wsd { decay_fraction },
        },
    }
}

pub(super) fn pretrain(ctx: &Ctx, p: &PretrainParams) -> Result<Output, NodeError> {
    let packed = input(ctx, "input")?;
    let tokenizer = input(ctx, "tokenizer")?.dir.join("tokenizer.json");
    let seq_len = packed.manifest.extra.get("seq_len").and_then(Value::as_u64).unwrap_or(0) as usize;
    let grad_accum = match p.tokens_per_step {
        None => p.grad_accum,
        Some(tps) => {
            let per = (p.batch_size * seq_len.max(1)) as u64;
            if tps % per != 0 {
                return Err(NodeError::Failed(format!(
                    "tokens_per_step {tps} is not a multiple of batch_size × seq_len = {per}"
                )));
            }
            (tps / per) as usize
        }
    };
    let settings = LmTraining {
        batch_size: p.batch_size,
        grad_accum,
        max_steps: p.max_steps,
        lr: p.lr,
        min_lr_ratio: p.min_lr_ratio,
        warmup_steps: p.warmup_steps,
        schedule: p.schedule,
        decay_fraction: p.decay_fraction,
        weight_decay: p.weight_decay,
        beta1: p.beta1,
        beta2: p.beta2,
        eps: p.eps,
        grad_clip: p.grad_clip,
        eval_every: p.eval_every,
        eval_batches: p.eval_batches,
        checkpoint_every: p.checkpoint_every,
        precision: p.precision,
        backend: p.backend,
        peak_gflops: p.peak_gflops,
        stats_key: "pretrain",
    };
    train_lm(ctx, ctx.inputs.get("init"), Some(&p.model), &tokenizer, &settings)
}

/// Trains a language model on the node's `input` packed rows: continues
/// `init` when given, else builds `arch`; saves it with `tokenizer`.
pub(super) fn train_lm(
    ctx: &Ctx,
    init: Option<&crate::exec::store::Artifact>,
    arch: Option<&ArchSpec>,
    tokenizer: &Path,
    p: &LmTraining,
) -> Result<Output, NodeError> {
    // Open the GPU before reading any data, so a missing GPU fails at once.
    let gpu = if p.backend == BackendName::Cuda {
        Some(super::gpu::open(ctx)?)
    } else {
        None
    };
    let packed = input(ctx, "input")?;
    let vocab = load(tokenizer)?.get_vocab_size(true);
    let seq_len = packed.manifest.extra.get("seq_len").and_then(Value::as_u64).unwrap_or(0) as usize;
    let seed = ctx.pipeline.seed;
    let mut model = match (init, arch) {
        (Some(a), _) => {
            let m = hf::load(&a.dir, precision(p.precision)).map_err(model_err)?;
            ctx.log
                .line(format!("continuing from `{}` ({} parameters)", a.dir.display(), m.params.len()));
            m
        }
        (None, Some(arch)) => {
            let cfg = GptConfig {
                n_layer: arch.n_layer,
                n_head: arch.n_head,
                n_embd: arch.n_embd,
                block_size: arch.block_size.unwrap_or(seq_len),
                vocab_size: arch.vocab_size.unwrap_or(vocab),
                dropout: arch.dropout,
            };
            Gpt::new(cfg, precision(p.precision), seed).map_err(model_err)?
        }
        (None, None) => return Err(NodeError::Failed("no model to train: give `init` or `model`".into())),
    };
    let cfg = model.config().clone();
    if cfg.vocab_size < vocab {
        return Err(NodeError::Failed(format!(
            "the model's vocab_size {} is smaller than the tokenizer's {vocab}",
            cfg.vocab_size
        )));
    }
    if seq_len == 0 || seq_len > cfg.block_size {
        return Err(NodeError::Failed(format!(
            "the packed rows hold {seq_len} tokens, which does not fit block_size {} (set model.block_size or pack's seq_len)",
            cfg.block_size
        )));
    }
    let mut train = Loader::open(&packed.dir, "train", p.batch_size, 0, 1, seed).map_err(|e| e.to_string())?;
    if train.steps_per_epoch() == 0 {
        return Err(NodeError::Failed(format!(
            "the train split has {} rows, fewer than batch_size {}",
            train.rows(),
            p.batch_size
        )));
    }
    let grad_accum = p.grad_accum;
    let packed_dir = packed.dir.clone();
    let batch = p.batch_size;
    let val = move || -> Option<Loader> {
        let probe = Loader::open(&packed_dir, "val", 1, 0, 1, 0).ok()?;
        let b = (probe.rows() as usize).min(batch);
        (b > 0)
            .then(|| Loader::open(&packed_dir, "val", b, 0, 1, 0).ok().map(Loader::in_order))
            .flatten()
    };
    let bf16 = p.precision == PrecisionName::Bf16;
    let peak = p.peak_gflops.unwrap_or_else(|| match &gpu {
        Some(g) => super::gpu::peak_gflops(g, bf16),
        None => 113.6 * if bf16 { 2.0 } else { 1.0 } * rayon::current_num_threads() as f64,
    });
    let loop_cfg = LoopConfig {
        grad_accum,
        max_steps: p.max_steps,
        schedule: schedule(p.schedule, p.lr, p.min_lr_ratio, p.warmup_steps, p.max_steps, p.decay_fraction),
        adamw: AdamWConfig {
            beta1: p.beta1,
            beta2: p.beta2,
            eps: p.eps,
            weight_decay: p.weight_decay,
        },
        grad_clip: p.grad_clip,
        eval_every: p.eval_every,
        eval_batches: p.eval_batches,
        checkpoint_every: p.checkpoint_every,
        bytes_per_token: packed.manifest.extra.get("bytes_per_token").and_then(Value::as_f64),
        peak_flops: peak * 1e9,
    };
    ctx.bar.set_length(p.max_steps);
    ctx.log.line(format!(
        "model {} layers × {} heads × {} dim, vocab {}, block {}; {} parameters; batch {} × {} tokens × {} accumulation",
        cfg.n_layer,
        cfg.n_head,
        cfg.n_embd,
        cfg.vocab_size,
        cfg.block_size,
        model.params.len(),
        p.batch_size,
        seq_len,
        grad_accum
    ));
    let ckpt = ckpt_dir(ctx);
    let t0 = std::time::Instant::now();
    let hooks = EngineProgress(ctx);
    let out = match gpu {
        Some(g) => super::gpu::train(g, &mut model, bf16, &mut train, &val, &loop_cfg, &ckpt, &hooks),
        None => pretrain::train(&mut model, &mut train, &val, &loop_cfg, &ckpt, &hooks),
    }
    .map_err(|e| match e {
        TrainError::Cancelled => NodeError::Cancelled,
        TrainError::Failed(m) => NodeError::Failed(m),
    })?;
    let secs = t0.elapsed().as_secs_f64();
    std::fs::copy(ckpt.join("metrics.jsonl"), ctx.out.join("metrics.jsonl")).map_err(|e| format!("metrics.jsonl: {e}"))?;
    let state = json!({
        "steps": out.steps, "tokens": out.tokens, "loss": out.loss,
        "val_loss": out.val.map(|v| v.0), "val_bpb": out.val.and_then(|v| v.1),
    });
    crate::exec::store::write_synced(&ctx.out.join("train_state.json"), state.to_string().as_bytes())?;
    let stats = json!({ (p.stats_key): {
        "steps": out.steps, "steps_run": out.steps_run, "tokens": out.tokens, "loss": out.loss,
        "val_loss": out.val.map(|v| v.0), "val_bpb": out.val.and_then(|v| v.1),
        "seconds": secs, "tokens_per_s": if secs > 0.0 { (out.steps_run as f64 * (grad_accum * p.batch_size * seq_len) as f64) / secs } else { 0.0 },
    }});
    let result = finish_model(ctx, &model, tokenizer, stats, json!({ "precision": p.precision }))?;
    // The finished model is in the scratch directory, about to be committed.
    let _ = std::fs::remove_dir_all(&ckpt);
    Ok(result)
}

pub(super) fn import(ctx: &Ctx, p: &ImportModelParams) -> Result<Output, NodeError> {
    let dir = Path::new(&p.path);
    let tokenizer = dir.join("tokenizer.json");
    if !tokenizer.is_file() {
        return Err(NodeError::Failed(format!(
            "{} is missing: kiln keeps the tokenizer with the model (save it with `tokenizer.save_pretrained`)",
            tokenizer.display()
        )));
    }
    let model = hf::load(dir, Precision::F32).map_err(model_err)?;
    let stats = json!({ "import_model": { "from": p.path, "params": model.params.len() } });
    finish_model(ctx, &model, &tokenizer, stats, json!({}))
}

pub(super) fn eval(ctx: &Ctx, p: &EvalParams) -> Result<Output, NodeError> {
    let m = input(ctx, "model")?;
    let docs = input(ctx, "input")?;
    let mut model = hf::load(&m.dir, precision(p.precision)).map_err(model_err)?;
    let enc = Encoder::new(load(&m.dir.join("tokenizer.json"))?);
    let sp = Specials::of(&enc.hf);
    let t = p.seq_len.unwrap_or(model.config().block_size).min(model.config().block_size);
    // The documents are joined with the end-of-text token into one stream,
    // cut into windows of T+1 that overlap by one token, so every token but
    // the first is predicted exactly once.
    let mut stream: Vec<u32> = Vec::new();
    let mut bytes = 0u64;
    for path in docs.data_paths() {
        for batch in crate::io::table::parquet_batches(&path)? {
            let batch = batch?;
            let text = batch
                .column_by_name("text")
                .ok_or_else(|| NodeError::Failed("the input has no `text` column".into()))?;
            let text = arrow::compute::cast(text, &arrow::datatypes::DataType::Utf8).map_err(|e| e.to_string())?;
            let text = arrow::array::AsArray::as_string::<i32>(&text);
            for s in text.iter().flatten() {
                bytes += s.len() as u64;
                stream.extend(enc.encode(s)?);
                stream.extend(sp.eos);
            }
        }
    }
    if p.max_tokens > 0 {
        stream.truncate(p.max_tokens as usize + 1);
    }
    let windows = stream.len().saturating_sub(1) / t;
    if windows == 0 {
        return Err(NodeError::Failed(format!(
            "{} tokens are fewer than one window of {t}",
            stream.len()
        )));
    }
    ctx.bar.set_length(windows as u64);
    let (mut nats, mut count) = (0f64, 0u64);
    let mut w = 0;
    while w < windows {
        if ctx.cancel.load(Ordering::Relaxed) {
            return Err(NodeError::Cancelled);
        }
        let b = p.batch_size.min(windows - w);
        let mut inputs = Vec::with_capacity(b * t);
        let mut targets = Vec::with_capacity(b * t);
        for k in w..w + b {
            inputs.extend_from_slice(&stream[k * t..k * t + t]);
            targets.extend_from_slice(&stream[k * t + 1..k * t + t + 1]);
        }
        let loss = model
            .forward(&inputs, Some(&targets), None, b, t)
            .map_err(model_err)?
            .unwrap_or(f32::NAN);
        nats += loss as f64 * (b * t) as f64;
        count += (b * t) as u64;
        w += b;
        ctx.bar.inc(b as u64);
    }
    let loss = nats / count as f64;
    // Bytes of the evaluated tokens, pro rata when `max_tokens` cut the stream.
    let total_tokens = stream.len().max(1) as f64;
    let eval_bytes = bytes as f64 * (count as f64 / total_tokens).min(1.0);
    let bpb = nats / std::f64::consts::LN_2 / eval_bytes.max(1.0);
    ctx.log.line(format!(
        "loss {loss:.4}, perplexity {:.2}, {bpb:.4} bits/byte over {count} tokens",
        loss.exp()
    ));
    let result = json!({ "loss": loss, "perplexity": loss.exp(), "bits_per_byte": bpb, "tokens": count, "bytes": eval_bytes.round() as u64, "seq_len": t });
    let path = ctx.out.join("eval.json");
    let text = serde_json::to_vec_pretty(&result).map_err(|e| e.to_string())?;
    crate::exec::store::write_synced(&path, &text)?;
    Ok(Output {
        table: SinkResult {
            files: vec![FileInfo {
                name: "eval.json".into(),
                rows: 0,
                bytes: text.len() as u64,
            }],
            ..Default::default()
        },
        stats: json!({ "eval": result }),
        extra: result,
        content_hash: Some(blake3::hash(&text).to_hex().to_string()),
        ..Default::default()
    })
}
