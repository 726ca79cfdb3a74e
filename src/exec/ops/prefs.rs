//! `reward_model` and `dpo`: preference rows read, rendered with the
//! model's chat template, split, trained on, and saved as model artifacts.
//!
//! Every reply becomes `[<|bos|>] prompt <|assistant|> reply <|end|>`, the
//! rendering SFT trained on; a sequence longer than the model's
//! `block_size` is not cut (a cut prompt changes what the reply answers) but
//! rejected with its length, counted and kept under `rejected/`.

use super::model::{ckpt_dir, finish_model, model_err, model_files, precision, schedule};
use super::post::{input, same_tokenizer};
use super::{Ctx, EngineProgress, NodeError, Output};
use crate::exec::sink::{SinkResult, TableSink};
use crate::exec::store::Artifact;
use crate::io::chat::message_rows;
use crate::io::docs::Reject;
use crate::io::table::parquet_batches;
use crate::io::writer::FileInfo;
use crate::model::head::Scorer;
use crate::model::hf;
use crate::spec::ops::{DpoParams, RewardModelParams};
use crate::tokenize::chat::{encode_chat, encode_reply};
use crate::tokenize::{Encoder, Specials, load};
use crate::train::AdamWConfig;
use crate::train::dpo::{self, DpoTrainer};
use crate::train::prefs::{self, Metrics, PairLoop};
use crate::train::reward::{self, Ranked, RewardTrainer};
use arrow::array::{Array, AsArray};
use arrow::datatypes::DataType;
use serde_json::{Value, json};
use std::path::Path;

/// One preference record as token ids: each reply's full sequence (best
/// first) and where its reply starts.
struct Record {
    id: String,
    seqs: Vec<(Vec<u32>, usize)>,
    margin: f32,
}

/// The model's tokenizer, its specials, and the padding id (which must
/// exist and differ from `<|end|>`, the token scores are read at).
fn tokenizer(model: &Artifact) -> Result<(Encoder, Specials, u32), NodeError> {
    let hf = load(&model.dir.join("tokenizer.json"))?;
    let sp = Specials::of(&hf);
    let pad = sp.pad.filter(|p| Some(*p) != sp.end).ok_or_else(|| {
        NodeError::Failed(format!(
            "{}: the tokenizer has no `<|pad|>` token distinct from `<|end|>`; train it with kiln's default special_tokens",
            model.dir.join("tokenizer.json").display()
        ))
    })?;
    Ok((Encoder::new(hf), sp, pad))
}

/// Reads and renders a preferences artifact; records with a sequence over
/// `block` tokens become rejects.
fn read_prefs(a: &Artifact, enc: &Encoder, sp: &Specials, block: usize, rejects: &mut Vec<Reject>) -> Result<Vec<Record>, NodeError> {
    let mut out = Vec::new();
    for path in a.data_paths() {
        let file = path.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
        for batch in parquet_batches(&path)? {
            let batch = batch?;
            let col = |n: &str| {
                batch
                    .column_by_name(n)
                    .ok_or_else(|| format!("{}: no `{n}` column", path.display()))
            };
            let prompts = message_rows(col("prompt")?, "prompt")?;
            let strs = |n: &str| -> Result<Vec<Option<String>>, String> {
                let c = col(n)?;
                let c = c
                    .as_string_opt::<i32>()
                    .ok_or_else(|| format!("{}: `{n}` is not Utf8", path.display()))?;
                Ok((0..c.len()).map(|i| c.is_valid(i).then(|| c.value(i).to_string())).collect())
            };
            let (ids, chosen, rejected) = (strs("id")?, strs("chosen")?, strs("rejected")?);
            let responses = batch.column_by_name("responses").and_then(|c| c.as_list_opt::<i32>());
            let margin = batch
                .column_by_name("margin")
                .filter(|c| c.data_type() == &DataType::Float64)
                .map(|c| c.as_primitive::<arrow::datatypes::Float64Type>());
            for i in 0..batch.num_rows() {
                let id = ids[i].clone().unwrap_or_else(|| format!("{file}:{i}"));
                let prompt: Vec<(&str, &str)> = prompts[i].iter().flatten().map(|(r, c)| (r.as_str(), c.as_str())).collect();
                let replies: Vec<String> = match responses.filter(|r| r.is_valid(i)) {
                    Some(r) => {
                        let v = r.value(i);
                        let v = v.as_string::<i32>();
                        (0..v.len()).map(|k| v.value(k).to_string()).collect()
                    }
                    None => vec![chosen[i].clone().unwrap_or_default(), rejected[i].clone().unwrap_or_default()],
                };
                let mut seqs = Vec::with_capacity(replies.len());
                let mut reason = None;
                for (k, reply) in replies.iter().enumerate() {
                    let (s, start) = encode_reply(enc, sp, &prompt, reply, sp.bos.is_some())?;
                    if s.len() > block {
                        reason = Some(format!(
                            "reply {k} makes a sequence of {} tokens, longer than the model's block_size {block}",
                            s.len()
                        ));
                        break;
                    }
                    seqs.push((s, start));
                }
                match reason {
                    Some(reason) => rejects.push(Reject {
                        id,
                        text: serde_json::to_string(&json!({"prompt": prompts[i], "responses": replies})).unwrap_or_default(),
                        url: None,
                        source: file.clone(),
                        file: file.clone(),
                        line: None,
                        byte_offset: None,
                        step: "length".into(),
                        reason,
                    }),
                    None => out.push(Record {
                        id,
                        seqs,
                        margin: margin.filter(|m| m.is_valid(i)).map_or(0.0, |m| m.value(i) as f32),
                    }),
                }
            }
        }
    }
    Ok(out)
}

/// Train and held-out records: the `val` input, or a seeded `fraction` of
/// `input` chosen by a hash of each record's id (stable across runs).
fn split(
    ctx: &Ctx,
    enc: &Encoder,
    sp: &Specials,
    block: usize,
    fraction: f64,
) -> Result<(Vec<Record>, Vec<Record>, SinkResult), NodeError> {
    let sink = TableSink::start(ctx.out, 64 << 20);
    let mut rejects = Vec::new();
    let all = read_prefs(input(ctx, "input")?, enc, sp, block, &mut rejects)?;
    let (train, val) = match ctx.inputs.get("val") {
        Some(v) => (all, read_prefs(v, enc, sp, block, &mut rejects)?),
        None => all
            .into_iter()
            .partition(|r| !super::sample::keep(ctx.pipeline.seed, &r.id, fraction)),
    };
    sink.rejects(rejects)?;
    let table = sink.finish()?;
    if train.is_empty() {
        return Err(NodeError::Failed(format!(
            "no preference records left to train on ({} rejected; see rejected/)",
            table.rejected_rows
        )));
    }
    ctx.log.line(format!(
        "{} training and {} held-out records; {} rejected",
        train.len(),
        val.len(),
        table.rejected_rows
    ));
    Ok((train, val, table))
}

fn run_loop(ctx: &Ctx, t: &mut dyn prefs::PairTrainer, cfg: &PairLoop) -> Result<prefs::PairOutcome, NodeError> {
    let dir = ckpt_dir(ctx);
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    ctx.bar.set_length(cfg.max_steps);
    let out = prefs::train(t, cfg, &dir.join("metrics.jsonl"), &EngineProgress(ctx)).map_err(|e| {
        if e == "cancelled" {
            NodeError::Cancelled
        } else {
            NodeError::Failed(e)
        }
    })?;
    std::fs::copy(dir.join("metrics.jsonl"), ctx.out.join("metrics.jsonl")).map_err(|e| format!("metrics.jsonl: {e}"))?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(out)
}

fn as_json(m: &Option<Metrics>) -> Value {
    m.as_ref()
        .map(|m| {
            m.iter()
                .map(|(k, v)| ((*k).to_string(), json!(v)))
                .collect::<serde_json::Map<_, _>>()
                .into()
        })
        .unwrap_or(Value::Null)
}

#[allow(clippy::too_many_arguments)] // one per PairLoop field the params carry
fn pair_loop(
    ctx: &Ctx,
    batch: usize,
    steps: u64,
    lr: f32,
    min: f32,
    warmup: u64,
    sched: crate::spec::ops::ScheduleName,
    wd: f32,
    clip: f32,
    eval_every: u64,
) -> PairLoop {
    PairLoop {
        batch_size: batch,
        max_steps: steps,
        schedule: schedule(sched, lr, min, warmup, steps, 0.2),
        adamw: AdamWConfig {
            beta1: 0.9,
            beta2: 0.95,
            eps: 1e-8,
            weight_decay: wd,
        },
        grad_clip: clip,
        eval_every,
        seed: ctx.pipeline.seed,
    }
}

pub(super) fn reward_model(ctx: &Ctx, p: &RewardModelParams) -> Result<Output, NodeError> {
    let model = input(ctx, "model")?;
    let (enc, sp, pad) = tokenizer(model)?;
    let gpt = hf::load(&model.dir, precision(p.precision)).map_err(model_err)?;
    let block = gpt.config().block_size;
    let (train, val, rejected) = split(ctx, &enc, &sp, block, p.val_fraction)?;
    let val_ids: Vec<String> = val.iter().map(|r| r.id.clone()).collect();
    let ranked = |r: Vec<Record>| -> Vec<Ranked> {
        r.into_iter()
            .map(|r| Ranked {
                seqs: r.seqs.into_iter().map(|(s, _)| s).collect(),
                margin: r.margin,
            })
            .collect()
    };
    let mut t = RewardTrainer {
        scorer: Scorer::new(gpt, ctx.pipeline.seed),
        train: ranked(train),
        val: ranked(val),
        pad,
        center_coef: p.center_coef,
        eval_batch: p.batch_size.max(8),
    };
    let cfg = pair_loop(
        ctx,
        p.batch_size,
        p.max_steps,
        p.lr,
        p.min_lr_ratio,
        p.warmup_steps,
        p.schedule,
        p.weight_decay,
        p.grad_clip,
        p.eval_every,
    );
    let out = run_loop(ctx, &mut t, &cfg)?;
    // Normalise: the mean score of the SFT demonstrations becomes the zero.
    let offset = match ctx.inputs.get("normalize") {
        None => None,
        Some(chats) => {
            let mut seqs = Vec::new();
            for path in chats.data_paths() {
                for batch in parquet_batches(&path)? {
                    let batch = batch?;
                    let col = batch
                        .column_by_name("messages")
                        .ok_or_else(|| format!("{}: no `messages` column", path.display()))?;
                    for m in message_rows(col, "messages")?.into_iter().flatten() {
                        let pairs: Vec<(&str, &str)> = m.iter().map(|(r, c)| (r.as_str(), c.as_str())).collect();
                        if let Ok(e) = encode_chat(&enc, &sp, &pairs, sp.bos.is_some())
                            && e.ids.len() <= block
                        {
                            seqs.push(e.ids);
                        }
                    }
                }
            }
            if seqs.is_empty() {
                return Err(NodeError::Failed(format!(
                    "normalize: no conversation of `{}` fits block_size {block}",
                    chats.manifest.node
                )));
            }
            let mean = reward::mean_score(&mut t.scorer, &seqs, pad, 8)?;
            ctx.log.line(format!(
                "normalize: mean score {mean:.4} over {} demonstrations is the new zero",
                seqs.len()
            ));
            Some(mean)
        }
    };
    hf::save_scorer(&t.scorer, ctx.out, (sp.bos, sp.eos, Some(pad)), offset).map_err(model_err)?;
    std::fs::copy(model.dir.join("tokenizer.json"), ctx.out.join("tokenizer.json")).map_err(|e| format!("tokenizer.json: {e}"))?;
    let (mut files, hash) = model_files(ctx.out)?;
    files.push(write_val_scores(ctx.out, &mut t, &val_ids)?);
    let stats = json!({ "reward_model": {
        "steps": out.steps, "train_records": t.train.len(), "val_records": t.val.len(), "rejected": rejected.rejected_rows,
        "last": as_json(&Some(out.last.clone())), "val_first": as_json(&out.val_first), "val": as_json(&out.val_last),
        "score_offset": offset,
    }});
    Ok(Output {
        table: SinkResult {
            files,
            rejected_files: rejected.rejected_files,
            rejected_rows: rejected.rejected_rows,
            reasons: rejected.reasons,
            ..Default::default()
        },
        stats,
        extra: json!({ "reward_model": true, "pad_id": pad, "end_id": sp.end, "score_offset": offset, "config": t.scorer.gpt.config() }),
        content_hash: Some(hash),
        ..Default::default()
    })
}

/// `val_scores.jsonl`: each held-out record's id, token ids (best reply
/// first) and raw scores (before `kiln_score_offset`), so anyone can
/// re-score the exact sequences, with transformers say, and compare.
fn write_val_scores(dir: &Path, t: &mut RewardTrainer, ids: &[String]) -> Result<FileInfo, NodeError> {
    let mut text = String::new();
    for (k, chunk) in t.val.chunks(8).enumerate() {
        let recs: Vec<&Ranked> = chunk.iter().collect();
        let (batch, spans) = reward::forward(&mut t.scorer, &recs, t.pad)?;
        for (j, (r, span)) in recs.iter().zip(spans).enumerate() {
            let scores: Vec<f32> = span.map(|i| t.scorer.score_at(batch.last(i))).collect();
            let line = json!({ "id": ids.get(k * 8 + j), "scores": scores, "input_ids": r.seqs });
            text.push_str(&line.to_string());
            text.push('\n');
        }
    }
    let path = dir.join("val_scores.jsonl");
    crate::exec::store::write_synced(&path, text.as_bytes())?;
    Ok(FileInfo {
        name: "val_scores.jsonl".into(),
        rows: t.val.len() as u64,
        bytes: text.len() as u64,
    })
}

pub(super) fn dpo(ctx: &Ctx, p: &DpoParams) -> Result<Output, NodeError> {
    let model = input(ctx, "model")?;
    let (enc, sp, pad) = tokenizer(model)?;
    let policy = hf::load(&model.dir, precision(p.precision)).map_err(model_err)?;
    let block = policy.config().block_size;
    let (train, val, rejected) = split(ctx, &enc, &sp, block, p.val_fraction)?;
    let pairs = |r: Vec<Record>| -> Vec<dpo::Pair> {
        r.into_iter()
            .filter_map(|r| {
                // A ranking trains DPO on its best and worst reply.
                let (c, rj) = (r.seqs.first()?.clone(), r.seqs.last()?.clone());
                Some(dpo::Pair {
                    chosen: c.0,
                    chosen_start: c.1,
                    rejected: rj.0,
                    rejected_start: rj.1,
                })
            })
            .collect()
    };
    let (train, val) = (pairs(train), pairs(val));
    let mut reference = match ctx.inputs.get("ref") {
        Some(r) => {
            same_tokenizer(&model.dir.join("tokenizer.json"), &r.dir.join("tokenizer.json"), "dpo `ref`")?;
            hf::load(&r.dir, precision(p.precision)).map_err(model_err)?
        }
        None => hf::load(&model.dir, precision(p.precision)).map_err(model_err)?,
    };
    ctx.log
        .line(format!("reference log-probabilities of {} pairs", train.len() + val.len()));
    let train_ref = dpo::reference_logps(&mut reference, &train, pad, 8)?;
    let val_ref = dpo::reference_logps(&mut reference, &val, pad, 8)?;
    drop(reference);
    let mut t = DpoTrainer {
        policy,
        train,
        train_ref,
        val,
        val_ref,
        beta: p.beta as f64,
        pad,
        eval_batch: p.batch_size.max(8),
    };
    let cfg = pair_loop(
        ctx,
        p.batch_size,
        p.max_steps,
        p.lr,
        p.min_lr_ratio,
        p.warmup_steps,
        p.schedule,
        p.weight_decay,
        p.grad_clip,
        p.eval_every,
    );
    let out = run_loop(ctx, &mut t, &cfg)?;
    let stats = json!({ "dpo": {
        "steps": out.steps, "train_pairs": t.train.len(), "val_pairs": t.val.len(), "rejected": rejected.rejected_rows,
        "last": as_json(&Some(out.last.clone())), "val_first": as_json(&out.val_first), "val": as_json(&out.val_last),
    }});
    let mut result = finish_model(ctx, &t.policy, &model.dir.join("tokenizer.json"), stats, json!({ "beta": p.beta }))?;
    result.table.rejected_files = rejected.rejected_files;
    result.table.rejected_rows = rejected.rejected_rows;
    result.table.reasons = rejected.reasons;
    Ok(result)
}
