//! `prompts` and `sft`: the post-training ops that need no new head.
//!
//! `prompts` turns chats, preference prompts or plain documents into
//! conversations that end with a user turn. `sft` is the pretrain loop on
//! packed chat rows whose loss mask keeps only the assistant's tokens.

use super::model::{LmTraining, train_lm};
use super::{Ctx, NodeError, Output};
use crate::exec::sink::TableSink;
use crate::exec::store::Artifact;
use crate::io::chat::{Message, PromptBuilder, Role, Turns, message_rows};
use crate::io::docs::Reject;
use crate::io::table::parquet_batches;
use crate::spec::Kind;
use crate::spec::ops::{PromptsParams, SftParams};
use crate::tokenize::chat::encode_prompt;
use crate::tokenize::{Encoder, Specials, load};
use arrow::array::{Array, AsArray};
use arrow::datatypes::DataType;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

pub(super) fn input<'a>(ctx: &'a Ctx, field: &str) -> Result<&'a Artifact, NodeError> {
    ctx.inputs
        .get(field)
        .ok_or_else(|| NodeError::Failed(format!("input `{field}` missing")))
}

fn role_of(name: &str) -> Option<Role> {
    match name {
        "system" => Some(Role::System),
        "user" => Some(Role::User),
        "assistant" => Some(Role::Assistant),
        _ => None,
    }
}

/// A Utf8 column's value at `i`, or `None` for a missing column or null.
fn opt_str(batch: &arrow::record_batch::RecordBatch, name: &str, i: usize) -> Option<String> {
    let c = batch.column_by_name(name).filter(|c| c.data_type() == &DataType::Utf8)?;
    c.is_valid(i).then(|| c.as_string::<i32>().value(i).to_string())
}

/// One input row as a prompt and its reference reply; `Err` is the reject reason.
fn prompt_of(
    kind: Kind,
    batch: &arrow::record_batch::RecordBatch,
    msgs: Option<&[(String, String)]>,
    i: usize,
) -> Result<(Turns, Option<String>), String> {
    match kind {
        Kind::Documents => {
            let text = opt_str(batch, "text", i).unwrap_or_default();
            if text.trim().is_empty() {
                return Err("empty text".into());
            }
            Ok((vec![("user".into(), text)], None))
        }
        Kind::Preferences => {
            // The chosen reply is the best answer the data knows.
            Ok((msgs.map(<[_]>::to_vec).unwrap_or_default(), opt_str(batch, "chosen", i)))
        }
        _ => {
            let mut m = msgs.map(<[_]>::to_vec).unwrap_or_default();
            let mut reference = None;
            if m.last().is_some_and(|(r, _)| r == "assistant") {
                reference = m.pop().map(|(_, c)| c);
            }
            // A known answer (GSM8K's `#### n`) says more than the reply's prose.
            if let Some(r) = opt_str(batch, "reference", i) {
                reference = Some(r);
            }
            Ok((m, reference))
        }
    }
}

/// Whether a prompt can be continued: known roles, a user turn last.
fn check_prompt(m: &[(String, String)]) -> Result<(), String> {
    if let Some((r, _)) = m.iter().find(|(r, _)| role_of(r).is_none()) {
        return Err(format!("unknown role `{r}` (want system, user or assistant)"));
    }
    match m.last() {
        None => Err("no messages".into()),
        Some((r, _)) if r != "user" => Err(format!("the prompt ends with a {r} turn, not a user turn")),
        Some((_, c)) if c.trim().is_empty() => Err("the last user turn is empty".into()),
        _ => Ok(()),
    }
}

fn reject(id: &str, text: String, file: &str, reason: String) -> Reject {
    Reject {
        id: id.to_string(),
        text,
        url: None,
        source: file.to_string(),
        file: file.to_string(),
        line: None,
        byte_offset: None,
        step: "prompts".into(),
        reason,
    }
}

pub(super) fn prompts(ctx: &Ctx, p: &PromptsParams) -> Result<Output, NodeError> {
    let a = input(ctx, "input")?;
    let kind = a.manifest.kind;
    let limit = match (ctx.inputs.get("tokenizer"), p.max_tokens) {
        (Some(t), Some(max)) => {
            let hf = load(&t.dir.join("tokenizer.json"))?;
            let sp = Specials::of(&hf);
            Some((Encoder::new(hf), sp, max as usize))
        }
        _ => None,
    };
    let sink = TableSink::start(ctx.out, 256 << 20);
    let (mut rows_in, mut kept) = (0u64, 0u64);
    ctx.bar.set_length(a.manifest.rows);
    for path in a.data_paths() {
        let file = path.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
        for batch in parquet_batches(&path)? {
            if ctx.cancel.load(Ordering::Relaxed) {
                return Err(NodeError::Cancelled);
            }
            let batch = batch?;
            let msgs = match kind {
                Kind::Documents => None,
                Kind::Preferences => Some(message_rows(
                    batch
                        .column_by_name("prompt")
                        .ok_or_else(|| "the preferences have no `prompt` column".to_string())?,
                    "prompt",
                )?),
                _ => Some(message_rows(
                    batch
                        .column_by_name("messages")
                        .ok_or_else(|| "the chats have no `messages` column".to_string())?,
                    "messages",
                )?),
            };
            let mut b = PromptBuilder::with_capacity(batch.num_rows(), 0);
            let mut rejects = Vec::new();
            for i in 0..batch.num_rows() {
                rows_in += 1;
                let id = opt_str(&batch, "id", i).unwrap_or_else(|| format!("{file}:{i}"));
                let source = opt_str(&batch, "source", i).unwrap_or_else(|| file.clone());
                let row = msgs.as_ref().and_then(|m| m[i].as_deref());
                let result = prompt_of(kind, &batch, row, i).and_then(|(m, r)| {
                    check_prompt(&m)?;
                    if let Some((enc, sp, max)) = &limit {
                        let pairs: Vec<(&str, &str)> = m.iter().map(|(r, c)| (r.as_str(), c.as_str())).collect();
                        let n = encode_prompt(enc, sp, &pairs, sp.bos.is_some())?.len();
                        if n > *max {
                            return Err(format!("the prompt is {n} tokens, more than max_tokens {max}"));
                        }
                    }
                    Ok((m, r))
                });
                match result {
                    Ok((m, r)) => {
                        let m: Vec<Message> = m.iter().filter_map(|(r, c)| Some(Message::new(role_of(r)?, c.as_str()))).collect();
                        b.push(&id, &m, r.as_deref(), &source);
                    }
                    Err(reason) => {
                        let text = row.map(|m| serde_json::to_string(m).unwrap_or_default()).unwrap_or_default();
                        rejects.push(reject(&id, text, &file, reason));
                    }
                }
            }
            kept += b.len() as u64;
            if !b.is_empty() {
                sink.rows(b.finish())?;
            }
            sink.rejects(rejects)?;
            ctx.bar.inc(batch.num_rows() as u64);
        }
    }
    let table = sink.finish()?;
    if kept == 0 {
        return Err(NodeError::Failed(format!(
            "no prompts: all {rows_in} rows of `{}` were rejected or it is empty (see the reasons under rejected/); \
             a prompt needs a user turn last",
            a.manifest.node
        )));
    }
    let stats = json!({ "prompts": { "rows_in": rows_in, "rows_out": kept, "rejected": rows_in - kept, "from": kind.name() } });
    Ok(Output {
        table,
        stats,
        extra: serde_json::Value::Null,
        schema_hint: crate::exec::store::columns_of(&crate::io::chat::prompts_schema()),
        content_hash: None,
    })
}

/// The `tokenizer.json` an artifact was made with, following `packed` →
/// `tokens` → `tokenizer` through the workdir; `None` when the chain is
/// not there to follow (an artifact made outside this pipeline).
pub(super) fn tokenizer_of(workdir: &Path, a: &Artifact) -> Option<PathBuf> {
    let own = a.dir.join("tokenizer.json");
    if own.is_file() {
        return Some(own);
    }
    if let Some(t) = a.manifest.inputs.get("tokenizer") {
        return Some(workdir.join(&t.node).join("tokenizer.json")).filter(|p| p.is_file());
    }
    let up = crate::exec::store::load(&workdir.join(&a.manifest.inputs.get("input")?.node))?;
    tokenizer_of(workdir, &up)
}

/// Fails unless two `tokenizer.json` files are byte-identical (compared by
/// hash): token ids from one mean nothing to a model of the other.
pub(super) fn same_tokenizer(a: &Path, b: &Path, what: &str) -> Result<(), NodeError> {
    let hash = |p: &Path| {
        std::fs::read(p)
            .map(|x| blake3::hash(&x))
            .map_err(|e| format!("{}: {e}", p.display()))
    };
    if hash(a)? != hash(b)? {
        return Err(NodeError::Failed(format!(
            "{what}: {} and {} are different tokenizers; tokenize the data with the model's tokenizer \
             (use the model node, or the tokenizer node it was trained with)",
            a.display(),
            b.display()
        )));
    }
    Ok(())
}

pub(super) fn sft(ctx: &Ctx, p: &SftParams) -> Result<Output, NodeError> {
    let model = input(ctx, "model")?;
    let packed = input(ctx, "input")?;
    let has_mask = packed.manifest.extra.get("has_loss_mask").and_then(serde_json::Value::as_bool) == Some(true);
    // `bestfit` gives documents a mask too (padding off): only tokens made
    // from chats carry the assistant-only mask SFT is about.
    let tokens = packed
        .manifest
        .inputs
        .get("input")
        .and_then(|i| crate::exec::store::load(&ctx.pipeline.workdir.join(&i.node)));
    let from_chat = tokens.as_ref().map(|t| t.manifest.schema.iter().any(|c| c.name == "loss_mask"));
    if !has_mask || from_chat == Some(false) {
        return Err(NodeError::Failed(format!(
            "`{}` has no assistant-only loss mask: sft needs packed rows made from `chat` (read with a chat format, \
             tokenize, then pack with `mode: bestfit`); for plain text use `pretrain` with `init:`",
            packed.manifest.node
        )));
    }
    let model_tok = model.dir.join("tokenizer.json");
    if let Some(data_tok) = tokenizer_of(&ctx.pipeline.workdir, packed) {
        same_tokenizer(&model_tok, &data_tok, "sft")?;
    }
    let settings = LmTraining {
        batch_size: p.batch_size,
        grad_accum: p.grad_accum,
        max_steps: p.max_steps,
        lr: p.lr,
        min_lr_ratio: p.min_lr_ratio,
        warmup_steps: p.warmup_steps,
        schedule: p.schedule,
        decay_fraction: 0.2,
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
        peak_gflops: None,
        stats_key: "sft",
    };
    train_lm(ctx, Some(model), None, &model_tok, &settings)
}
