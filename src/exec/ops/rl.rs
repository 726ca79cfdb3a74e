//! `ppo` and `eval_chat`: the engine side of RLHF and of answering
//! held-out prompts.

use super::model::{finish_model, input, precision};
use super::{Ctx, NodeError, Output};
use crate::backend::Precision;
use crate::exec::sink::{SinkResult, TableSink};
use crate::exec::store::{Artifact, write_synced};
use crate::infer::{Decoder, GenerateConfig, SampleConfig, generate};
use crate::io::chat::{Turns, message_rows};
use crate::io::docs::Reject;
use crate::io::writer::FileInfo;
use crate::model::head::Scorer;
use crate::model::{Gpt, ModelError, hf};
use crate::pack::loader::{Batch, Loader};
use crate::spec::ops::{EvalChatParams, MatchMode, PpoParams, PpoSchedule};
use crate::tokenize::chat::encode_prompt;
use crate::tokenize::{Encoder, Specials, load};
use crate::train::ppo::{Ppo, PpoConfig, PtxBatch, Reward};
use crate::train::verify::matches;
use crate::train::{AdamWConfig, Schedule, ScheduleKind};
use arrow::array::{Array, AsArray};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::Ordering;

/// One row of a `prompts` artifact.
#[derive(Debug, Clone)]
pub(super) struct PromptRow {
    pub id: String,
    pub messages: Turns,
    pub reference: Option<String>,
}

impl PromptRow {
    /// The last user message: how a prompt is shown in samples.
    fn text(&self) -> &str {
        self.messages
            .iter()
            .rev()
            .find(|(r, _)| r == "user")
            .map_or("", |(_, c)| c.as_str())
    }
}

/// Reads every row of a `prompts` artifact.
pub(super) fn read_prompts(a: &Artifact) -> Result<Vec<PromptRow>, NodeError> {
    let mut out = Vec::new();
    for path in a.data_paths() {
        let bad = |what: &str| NodeError::Failed(format!("{}: {what}", path.display()));
        for batch in crate::io::table::parquet_batches(&path)? {
            let batch = batch?;
            let ids = batch
                .column_by_name("id")
                .and_then(|c| c.as_string_opt::<i32>())
                .ok_or_else(|| bad("no Utf8 `id` column"))?;
            let prompt = batch.column_by_name("prompt").ok_or_else(|| bad("no `prompt` column"))?;
            let turns = message_rows(prompt.as_ref(), "prompt").map_err(|e| bad(&e))?;
            let reference = batch.column_by_name("reference").and_then(|c| c.as_string_opt::<i32>());
            for (i, messages) in turns.into_iter().enumerate() {
                out.push(PromptRow {
                    id: ids.value(i).to_string(),
                    messages: messages.unwrap_or_default(),
                    reference: reference.filter(|r| r.is_valid(i)).map(|r| r.value(i).to_string()),
                });
            }
        }
    }
    if out.is_empty() {
        return Err(NodeError::Failed(format!(
            "the prompts artifact `{}` has no rows: nothing to generate from",
            a.manifest.node
        )));
    }
    Ok(out)
}

/// Loads a reward model directory as a [`Scorer`], its normalisation
/// offset (if any) applied to every score.
pub(super) fn load_scorer(dir: &Path, precision: Precision) -> Result<Scorer, NodeError> {
    let (mut s, offset) = hf::load_scorer(dir, precision).map_err(model_err)?;
    s.offset = offset as f32;
    Ok(s)
}

fn model_err(e: ModelError) -> NodeError {
    NodeError::Failed(e.to_string())
}

fn tokenizer_hash(dir: &Path) -> Result<blake3::Hash, NodeError> {
    let p = dir.join("tokenizer.json");
    std::fs::read(&p)
        .map(|b| blake3::hash(&b))
        .map_err(|e| NodeError::Failed(format!("{}: {e}", p.display())))
}

/// Fails unless `other` uses the same tokenizer as `base` (token ids would
/// mean different things).
fn same_tokenizer(base: &Artifact, other: &Artifact, what: &str) -> Result<(), NodeError> {
    if tokenizer_hash(&base.dir)? != tokenizer_hash(&other.dir)? {
        return Err(NodeError::Failed(format!(
            "the {what} `{}` uses a different tokenizer.json from the policy `{}`: their token ids do not mean the same; \
             train both from the same tokenizer",
            other.manifest.node, base.manifest.node
        )));
    }
    Ok(())
}

/// Encodes prompts; those that leave less than `room` tokens of context are rejected.
fn encode_prompts(
    rows: &[PromptRow],
    enc: &Encoder,
    sp: &Specials,
    block: usize,
    room: usize,
    node: &str,
) -> (Vec<(usize, Vec<u32>)>, Vec<Reject>) {
    let mut ok = Vec::new();
    let mut rejects = Vec::new();
    for (i, r) in rows.iter().enumerate() {
        let msgs: Vec<(&str, &str)> = r.messages.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        let why = match encode_prompt(enc, sp, &msgs, true) {
            Err(e) => Some(e),
            Ok(_) if r.messages.last().is_none_or(|(role, _)| role != "user") => Some("the prompt does not end with a user turn".into()),
            Ok(ids) if ids.len() + room > block => Some(format!(
                "prompt of {} tokens + {room} response tokens exceeds the context of {block}",
                ids.len()
            )),
            Ok(ids) => {
                ok.push((i, ids));
                None
            }
        };
        if let Some(reason) = why {
            rejects.push(Reject {
                id: r.id.clone(),
                text: r.text().to_string(),
                url: None,
                source: "prompts".into(),
                file: String::new(),
                line: None,
                byte_offset: None,
                step: node.to_string(),
                reason,
            });
        }
    }
    (ok, rejects)
}

/// Writes `rejects` to the node's `rejected/` output.
fn write_rejects(ctx: &Ctx, rejects: Vec<Reject>) -> Result<SinkResult, NodeError> {
    let sink = TableSink::start(ctx.out, 64 << 20);
    if !rejects.is_empty() {
        ctx.log
            .line(format!("{} prompts rejected (see rejected/): {}", rejects.len(), rejects[0].reason));
        sink.rejects(rejects)?;
    }
    Ok(sink.finish()?)
}

fn decode(enc: &Encoder, ids: &[u32]) -> String {
    enc.hf.decode(ids, true).unwrap_or_default()
}

pub(super) fn ppo(ctx: &Ctx, p: &PpoParams) -> Result<Output, NodeError> {
    let pol = input(ctx, "policy")?;
    let prompts_art = input(ctx, "prompts")?;
    let enc = Encoder::new(load(&pol.dir.join("tokenizer.json"))?);
    let sp = Specials::of(&enc.hf);
    let (Some(eos), Some(pad)) = (sp.end, sp.pad) else {
        return Err(NodeError::Failed(
            "the policy's tokenizer lacks `<|end|>` or `<|pad|>`: PPO needs kiln's chat special tokens".into(),
        ));
    };
    if eos == pad {
        return Err(NodeError::Failed(
            "the tokenizer's end and pad tokens are the same id; PPO needs them apart".into(),
        ));
    }
    let prec = precision(p.precision);
    let policy = hf::load(&pol.dir, prec).map_err(model_err)?;
    let reference = match ctx.inputs.get("reference") {
        Some(r) => {
            same_tokenizer(pol, r, "reference")?;
            hf::load(&r.dir, prec).map_err(model_err)?
        }
        None => policy.clone(),
    };
    let rows = read_prompts(prompts_art)?;
    let rm = match ctx.inputs.get("reward_model") {
        Some(a) => {
            same_tokenizer(pol, a, "reward model")?;
            Some(load_scorer(&a.dir, prec)?)
        }
        None => None,
    };
    // The value model starts as the reward model unless told otherwise.
    let value = match (ctx.inputs.get("value_model"), &rm) {
        (Some(v), _) => {
            same_tokenizer(pol, v, "value model")?;
            load_scorer(&v.dir, prec)?
        }
        (None, Some(rm)) => rm.clone(),
        (None, None) => Scorer::new(policy.clone(), ctx.pipeline.seed),
    };
    let reward = match (rm, p.verify) {
        (Some(rm), _) => Reward::Model(Box::new(rm)),
        (None, Some(mode)) => verify_reward(&rows, &enc, &sp, mode)?,
        (None, None) => return Err(NodeError::Failed("set `reward_model` or `verify`".into())),
    };
    let block = policy.config().block_size;
    let (ok, rejects) = encode_prompts(&rows, &enc, &sp, block, p.response_length, &ctx.node.id);
    if ok.is_empty() {
        return Err(NodeError::Failed(format!(
            "none of the {} prompts fits the context of {block} with response_length {}: {}",
            rows.len(),
            p.response_length,
            rejects.first().map_or("", |r| r.reason.as_str())
        )));
    }
    let cfg = PpoConfig {
        temperature: p.temperature,
        response_length: p.response_length,
        missing_eos_penalty: p.missing_eos_penalty,
        kl_estimator: p.kl_estimator,
        kl_coef: p.kl_coef,
        kl_target: p.kl_target.map(|t| (t, p.kl_horizon)),
        gamma: p.gamma,
        lam: p.lam,
        cliprange: p.cliprange,
        cliprange_value: p.cliprange_value,
        vf_coef: p.vf_coef,
        ppo_epochs: p.ppo_epochs,
        num_minibatches: p.num_minibatches,
        schedule: Schedule {
            max_lr: p.lr,
            min_lr_ratio: if p.schedule == PpoSchedule::Constant { 1.0 } else { 0.0 },
            warmup: 0,
            total: p.steps,
            kind: match p.schedule {
                PpoSchedule::Linear => ScheduleKind::Linear,
                PpoSchedule::Constant => ScheduleKind::Constant,
            },
        },
        adam: AdamWConfig {
            beta1: 0.9,
            beta2: 0.999,
            eps: p.adam_eps,
            weight_decay: 0.0,
        },
        max_grad_norm: p.max_grad_norm,
        ptx_coef: if ctx.inputs.contains_key("ptx") { p.ptx_coef } else { 0.0 },
        seed: ctx.pipeline.seed,
    };
    let mut ptx_loader = match ctx.inputs.get("ptx") {
        Some(a) => Some(
            Loader::open(&a.dir, "train", p.batch_size.div_ceil(p.num_minibatches), 0, 1, ctx.pipeline.seed).map_err(|e| e.to_string())?,
        ),
        None => None,
    };
    if let Some(l) = &ptx_loader
        && l.row_len() - 1 > block
    {
        return Err(NodeError::Failed(format!(
            "the ptx rows hold {} tokens, more than block_size {block}",
            l.row_len() - 1
        )));
    }
    let mut trainer = Ppo::new(policy, reference, value, reward, cfg, eos, pad).map_err(NodeError::Failed)?;
    ctx.bar.set_length(p.steps);
    ctx.log.line(format!(
        "PPO: {} prompts ({} rejected), {} steps × {} rollouts, {} epochs × {} minibatches",
        ok.len(),
        rejects.len(),
        p.steps,
        p.batch_size,
        p.ppo_epochs,
        p.num_minibatches
    ));
    let sink = write_rejects(ctx, rejects)?;
    let metrics_path = ctx.out.join("metrics.jsonl");
    let samples_path = ctx.out.join("samples.jsonl");
    let open = |path: &Path| std::fs::File::create(path).map_err(|e| NodeError::Failed(format!("{}: {e}", path.display())));
    let (mut metrics, mut samples) = (open(&metrics_path)?, open(&samples_path)?);
    let mut order: Vec<usize> = (0..ok.len()).collect();
    let mut rng = crate::model::rng::Rng::new(ctx.pipeline.seed ^ 0x990);
    let mut cursor = order.len();
    let mut last = serde_json::Map::new();
    let t0 = std::time::Instant::now();
    for step in 1..=p.steps {
        if ctx.cancel.load(Ordering::Relaxed) {
            return Err(NodeError::Cancelled);
        }
        // Prompts in seeded epochs: every prompt once before any repeats.
        let mut batch = Vec::with_capacity(p.batch_size);
        while batch.len() < p.batch_size {
            if cursor == order.len() {
                for i in (1..order.len()).rev() {
                    order.swap(i, (rng.next_u64() % (i as u64 + 1)) as usize);
                }
                cursor = 0;
            }
            batch.push(ok[order[cursor]].1.clone());
            cursor += 1;
        }
        let mut next_ptx = ptx_loader.as_mut().map(|l| {
            move || {
                let mut b = Batch::default();
                l.next_into(&mut b);
                ptx_batch(&b, l.row_len() - 1)
            }
        });
        let rep = trainer
            .step(&batch, next_ptx.as_mut().map(|f| f as &mut dyn FnMut() -> PtxBatch))
            .map_err(NodeError::Failed)?;
        let mut line = rep.metrics.clone();
        line.insert("step".into(), json!(step));
        writeln!(metrics, "{}", Value::Object(line)).map_err(|e| format!("{}: {e}", metrics_path.display()))?;
        if step == 1 || step % p.samples_every.max(1) == 0 || step == p.steps {
            for e in rep.episodes.iter().take(3) {
                let s = json!({"step": step, "prompt": decode(&enc, &e.query), "response": decode(&enc, &e.response), "score": e.score, "has_eos": e.has_eos});
                writeln!(samples, "{s}").map_err(|e| format!("{}: {e}", samples_path.display()))?;
            }
        }
        let m = |k: &str| rep.metrics.get(k).and_then(Value::as_f64).unwrap_or(f64::NAN);
        ctx.bar.set_position(step);
        ctx.bar
            .set_message(format!("score {:.3} · kl {:.3}", m("objective/scores"), m("objective/kl")));
        last = rep.metrics;
    }
    let secs = t0.elapsed().as_secs_f64();
    for f in [&metrics, &samples] {
        f.sync_all().map_err(|e| e.to_string())?;
    }
    let m = |k: &str| last.get(k).cloned().unwrap_or(Value::Null);
    ctx.log.line(format!(
        "last step: score {}, kl {}, response length {}",
        m("objective/scores"),
        m("objective/kl"),
        m("val/response_length")
    ));
    let stats = json!({ "ppo": {
        "steps": p.steps, "prompts": ok.len(), "rejected_prompts": sink.rejected_rows, "seconds": secs,
        "final": Value::Object(last),
    }});
    let mut out = finish_model(ctx, &trainer.policy, &pol.dir.join("tokenizer.json"), stats, json!({}))?;
    if let Ok(meta) = std::fs::metadata(&samples_path) {
        out.table.files.push(FileInfo {
            name: "samples.jsonl".into(),
            rows: 0,
            bytes: meta.len(),
        });
    }
    out.table.rejected_files = sink.rejected_files;
    out.table.rejected_rows = sink.rejected_rows;
    out.table.reasons = sink.reasons;
    Ok(out)
}

/// A packed batch as the model's inputs, targets and mask.
fn ptx_batch(b: &Batch, t: usize) -> PtxBatch {
    let rows = b.rows.len();
    let mut out = PtxBatch {
        b: rows,
        t,
        mask: b.loss_mask.as_ref().map(|_| Vec::with_capacity(rows * t)),
        ..Default::default()
    };
    for i in 0..rows {
        let row = b.row(i);
        out.inputs.extend_from_slice(&row[..t]);
        out.targets.extend_from_slice(&row[1..=t]);
        if let (Some(m), Some(src)) = (out.mask.as_mut(), &b.loss_mask) {
            m.extend_from_slice(&src[i * (t + 1) + 1..(i + 1) * (t + 1)]);
        }
    }
    out
}

/// A verifiable reward: 1 when the decoded response matches the prompt's
/// reference, else 0. Prompts are told apart by their token ids.
fn verify_reward(rows: &[PromptRow], enc: &Encoder, sp: &Specials, mode: MatchMode) -> Result<Reward, NodeError> {
    let mut refs: HashMap<Vec<u32>, String> = HashMap::new();
    for r in rows {
        let Some(reference) = &r.reference else { continue };
        let msgs: Vec<(&str, &str)> = r.messages.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        if let Ok(ids) = encode_prompt(enc, sp, &msgs, true) {
            refs.insert(ids, reference.clone());
        }
    }
    if refs.is_empty() {
        return Err(NodeError::Failed("`verify` needs prompts with a `reference`; none has one".into()));
    }
    let dec = enc.hf.clone();
    Ok(Reward::Rule(Box::new(move |q: &[u32], r: &[u32]| {
        let answer = dec.decode(r, true).unwrap_or_default();
        refs.get(q)
            .map_or(0.0, |reference| f32::from(u8::from(matches(&answer, reference, mode))))
    })))
}

/// One evaluated prompt.
#[derive(Debug, Clone, serde::Serialize)]
struct Sample {
    id: String,
    prompt: String,
    reference: Option<String>,
    answer: String,
    correct: Option<bool>,
    score: Option<f32>,
    finished: bool,
}

pub(super) fn eval_chat(ctx: &Ctx, p: &EvalChatParams) -> Result<Output, NodeError> {
    let m = input(ctx, "model")?;
    let mut rows = read_prompts(input(ctx, "prompts")?)?;
    if p.limit > 0 {
        rows.truncate(p.limit);
    }
    let enc = Encoder::new(load(&m.dir.join("tokenizer.json"))?);
    let sp = Specials::of(&enc.hf);
    let end = sp
        .end
        .ok_or_else(|| NodeError::Failed("the model's tokenizer has no `<|end|>` token".into()))?;
    let prec = precision(p.precision);
    let model = hf::load(&m.dir, prec).map_err(model_err)?;
    let mut rm = match ctx.inputs.get("reward_model") {
        Some(r) => {
            same_tokenizer(m, r, "reward model")?;
            Some(load_scorer(&r.dir, prec)?)
        }
        None => None,
    };
    let block = model.config().block_size;
    let (ok, rejects) = encode_prompts(&rows, &enc, &sp, block, 1, &ctx.node.id);
    ctx.bar.set_length(ok.len() as u64);
    let mut samples = Vec::with_capacity(ok.len());
    for chunk in ok.chunks(p.batch_size) {
        if ctx.cancel.load(Ordering::Relaxed) {
            return Err(NodeError::Cancelled);
        }
        let prompts: Vec<Vec<u32>> = chunk.iter().map(|(_, ids)| ids.clone()).collect();
        let gens = answer(&model, &prompts, p, end, ctx.pipeline.seed)?;
        for ((i, ids), g) in chunk.iter().zip(gens) {
            let row = &rows[*i];
            let text = decode(&enc, &g.tokens);
            let score = match rm.as_mut() {
                Some(rm) => {
                    let mut seq = ids.clone();
                    seq.extend(&g.tokens);
                    seq.push(end);
                    seq.truncate(block);
                    rm.forward(&seq, 1, seq.len()).map_err(model_err)?;
                    Some(rm.score_at(seq.len() - 1))
                }
                None => None,
            };
            samples.push(Sample {
                id: row.id.clone(),
                prompt: row.text().to_string(),
                reference: row.reference.clone(),
                correct: row.reference.as_ref().map(|r| matches(&text, r, p.match_mode)),
                answer: text,
                score,
                finished: matches!(g.finish, crate::infer::Finish::Stop(_)),
            });
        }
        ctx.bar.inc(chunk.len() as u64);
    }
    let judged: Vec<bool> = samples.iter().filter_map(|s| s.correct).collect();
    let accuracy = (!judged.is_empty()).then(|| judged.iter().filter(|&&c| c).count() as f64 / judged.len() as f64);
    let scores: Vec<f64> = samples.iter().filter_map(|s| s.score.map(f64::from)).collect();
    let mean_score = (!scores.is_empty()).then(|| scores.iter().sum::<f64>() / scores.len() as f64);
    let finished = samples.iter().filter(|s| s.finished).count();
    ctx.log.line(format!(
        "{} prompts: accuracy {}, mean score {}, {finished} answers ended with <|end|>",
        samples.len(),
        accuracy.map_or("n/a".into(), |a| format!("{:.1}%", a * 100.0)),
        mean_score.map_or("n/a".into(), |s| format!("{s:.3}")),
    ));
    let result = json!({
        "model": m.manifest.node, "accuracy": accuracy, "mean_score": mean_score, "n": samples.len(),
        "judged": judged.len(), "finished": finished, "match": p.match_mode, "rejected": rejects.len(),
        "samples": samples,
    });
    let path = ctx.out.join("eval.json");
    let text = serde_json::to_vec_pretty(&result).map_err(|e| e.to_string())?;
    write_synced(&path, &text)?;
    let mut table = write_rejects(ctx, rejects)?;
    table.files = vec![FileInfo {
        name: "eval.json".into(),
        rows: 0,
        bytes: text.len() as u64,
    }];
    let mut summary = result.clone();
    if let Some(o) = summary.as_object_mut() {
        o.remove("samples");
    }
    Ok(Output {
        table,
        stats: json!({ "eval_chat": summary }),
        extra: summary,
        content_hash: Some(blake3::hash(&text).to_hex().to_string()),
        ..Default::default()
    })
}

/// Generates answers to `prompts` (greedy unless a temperature is set),
/// stopping at `<|end|>`.
fn answer(model: &Gpt, prompts: &[Vec<u32>], p: &EvalChatParams, end: u32, seed: u64) -> Result<Vec<crate::infer::Generation>, NodeError> {
    let block = model.config().block_size;
    let mut dec = Decoder::new(model, prompts.len(), block, model.precision()).map_err(|e| e.to_string())?;
    let cfg = GenerateConfig {
        max_new_tokens: p.max_new_tokens,
        sampling: SampleConfig {
            temperature: p.temperature,
            top_k: 0,
            top_p: 1.0,
            seed,
        },
        stop: vec![end],
    };
    generate(&mut dec, prompts, &cfg, |_, _| true).map_err(|e| NodeError::Failed(e.to_string()))
}
