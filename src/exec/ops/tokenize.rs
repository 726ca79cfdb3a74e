//! `tokenize`: documents or chats → token ids. Units are the input's files,
//! so the op shards; rows within a batch are encoded in parallel.

use super::{Ctx, NodeError, Output};
use crate::exec::sink::TableSink;
use crate::io::docs::Reject;
use crate::io::table::parquet_batches;
use crate::spec::Kind;
use crate::spec::ops::{LongDocs, TokenizeParams};
use crate::tokenize::chat::{Encoded, encode_chat, encode_document};
use crate::tokenize::{Encoder, Specials, load};
use arrow::array::{Array, ArrayRef, AsArray, ListBuilder, StringBuilder, UInt8Builder, UInt32Builder, UInt64Builder};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use rayon::prelude::*;
use serde_json::json;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// `id, input_ids, [loss_mask], n_bytes` (DESIGN.md, data contracts).
pub fn tokens_schema(with_mask: bool) -> SchemaRef {
    let mut fields = vec![
        Field::new("id", DataType::Utf8, false),
        Field::new(
            "input_ids",
            DataType::List(Arc::new(Field::new("item", DataType::UInt32, false))),
            false,
        ),
    ];
    if with_mask {
        fields.push(Field::new(
            "loss_mask",
            DataType::List(Arc::new(Field::new("item", DataType::UInt8, false))),
            false,
        ));
    }
    fields.push(Field::new("n_bytes", DataType::UInt64, false));
    Arc::new(Schema::new(fields))
}

/// One input row, ready to encode.
enum Row<'a> {
    Doc(&'a str),
    Chat(Vec<(&'a str, &'a str)>),
}

impl Row<'_> {
    fn bytes(&self) -> u64 {
        match self {
            Row::Doc(t) => t.len() as u64,
            Row::Chat(m) => m.iter().map(|(_, c)| c.len() as u64).sum(),
        }
    }

    fn as_text(&self) -> String {
        match self {
            Row::Doc(t) => t.to_string(),
            Row::Chat(m) => {
                serde_json::to_string(&m.iter().map(|(r, c)| json!({"role": r, "content": c})).collect::<Vec<_>>()).unwrap_or_default()
            }
        }
    }
}

#[derive(Default)]
struct Counts {
    docs: u64,
    rows: u64,
    tokens: u64,
    bytes: u64,
    split: u64,
}

/// Output columns being built.
struct Out {
    id: StringBuilder,
    ids: ListBuilder<UInt32Builder>,
    mask: Option<ListBuilder<UInt8Builder>>,
    n_bytes: UInt64Builder,
}

impl Out {
    fn new(chat: bool) -> Self {
        let item = |t| Arc::new(Field::new("item", t, false));
        Out {
            id: StringBuilder::new(),
            ids: ListBuilder::new(UInt32Builder::new()).with_field(item(DataType::UInt32)),
            mask: chat.then(|| ListBuilder::new(UInt8Builder::new()).with_field(item(DataType::UInt8))),
            n_bytes: UInt64Builder::new(),
        }
    }

    fn push(&mut self, id: &str, ids: &[u32], mask: Option<&[u8]>, n_bytes: u64) {
        self.id.append_value(id);
        self.ids.values().append_slice(ids);
        self.ids.append(true);
        if let (Some(b), Some(m)) = (self.mask.as_mut(), mask) {
            b.values().append_slice(m);
            b.append(true);
        }
        self.n_bytes.append_value(n_bytes);
    }

    fn finish(mut self) -> Result<RecordBatch, String> {
        let chat = self.mask.is_some();
        let mut cols: Vec<ArrayRef> = vec![Arc::new(self.id.finish()), Arc::new(self.ids.finish())];
        if let Some(mut m) = self.mask.take() {
            cols.push(Arc::new(m.finish()));
        }
        cols.push(Arc::new(self.n_bytes.finish()));
        RecordBatch::try_new(tokens_schema(chat), cols).map_err(|e| e.to_string())
    }
}

fn rows_of<'a>(batch: &'a RecordBatch, chat: bool) -> Result<Vec<Option<Row<'a>>>, String> {
    if !chat {
        let text = batch.column_by_name("text").ok_or("the input has no `text` column")?;
        let text = text.as_string_opt::<i32>().ok_or("`text` is not a Utf8 column")?;
        return Ok((0..text.len()).map(|i| text.is_valid(i).then(|| Row::Doc(text.value(i)))).collect());
    }
    let msgs = batch.column_by_name("messages").ok_or("the input has no `messages` column")?;
    let msgs = msgs.as_list_opt::<i32>().ok_or("`messages` is not a list column")?;
    let structs = msgs.values().as_struct_opt().ok_or("`messages` items are not structs")?;
    let role = structs
        .column_by_name("role")
        .and_then(|c| c.as_string_opt::<i32>())
        .ok_or("`messages` items have no Utf8 `role`")?;
    let content = structs
        .column_by_name("content")
        .and_then(|c| c.as_string_opt::<i32>())
        .ok_or("`messages` items have no Utf8 `content`")?;
    let offsets = msgs.value_offsets();
    Ok((0..msgs.len())
        .map(|i| {
            msgs.is_valid(i).then(|| {
                let (s, e) = (offsets[i] as usize, offsets[i + 1] as usize);
                Row::Chat((s..e).map(|j| (role.value(j), content.value(j))).collect())
            })
        })
        .collect())
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
        step: "tokenize".into(),
        reason,
    }
}

fn encode_row(tok: &Encoder, sp: &Specials, p: &TokenizeParams, row: &Row) -> Result<Encoded, String> {
    match row {
        Row::Doc(t) if t.trim().is_empty() => Err("empty document".into()),
        Row::Doc(t) => encode_document(tok, sp, t, p.bos, p.eos),
        Row::Chat(m) => encode_chat(tok, sp, m, p.bos),
    }
}

pub(super) fn run(ctx: &Ctx, p: &TokenizeParams, range: Range<usize>) -> Result<Output, NodeError> {
    let a = ctx
        .inputs
        .get("input")
        .ok_or_else(|| NodeError::Failed("input artifact missing".into()))?;
    let t = ctx
        .inputs
        .get("tokenizer")
        .ok_or_else(|| NodeError::Failed("tokenizer artifact missing".into()))?;
    let hf = load(&t.dir.join("tokenizer.json"))?;
    let sp = Specials::of(&hf);
    let tok = Encoder::new(hf);
    match &tok.slow_because {
        None => ctx.log.line("encoder: kiln's fast byte-level BPE"),
        Some(why) => ctx.log.line(format!("encoder: HF tokenizers ({why})")),
    }
    let chat = a.manifest.kind == Kind::Chat;
    let files: Vec<_> = range
        .clone()
        .map(|i| (a.manifest.files[i].name.clone(), a.dir.join(&a.manifest.files[i].name)))
        .collect();
    ctx.bar.set_length(range.clone().map(|i| a.manifest.files[i].rows).sum());
    let sink = TableSink::start(ctx.out, p.shard_bytes);
    let mut c = Counts::default();
    for (name, path) in &files {
        for batch in parquet_batches(path)? {
            if ctx.cancel.load(Ordering::Relaxed) {
                return Err(NodeError::Cancelled);
            }
            let batch = batch?;
            let ids = batch.column_by_name("id").and_then(|c| c.as_string_opt::<i32>().cloned());
            let rows = rows_of(&batch, chat)?;
            let encoded: Vec<Option<Result<Encoded, String>>> =
                rows.par_iter().map(|r| r.as_ref().map(|r| encode_row(&tok, &sp, p, r))).collect();
            let mut out = Out::new(chat);
            let mut rejects = Vec::new();
            for (i, (row, enc)) in rows.iter().zip(encoded).enumerate() {
                c.docs += 1;
                let id = ids
                    .as_ref()
                    .filter(|a| a.is_valid(i))
                    .map(|a| a.value(i).to_string())
                    .unwrap_or_else(|| format!("{name}:{i}"));
                let (Some(row), Some(enc)) = (row, enc) else {
                    rejects.push(reject(&id, String::new(), name, "null row".into()));
                    continue;
                };
                let e = match enc {
                    Ok(e) => e,
                    Err(reason) => {
                        rejects.push(reject(&id, row.as_text(), name, reason));
                        continue;
                    }
                };
                let n_bytes = row.bytes();
                let max = p.max_doc_tokens.map_or(usize::MAX, |m| m as usize);
                if e.ids.len() > max && p.long_docs == LongDocs::Drop {
                    rejects.push(reject(
                        &id,
                        row.as_text(),
                        name,
                        format!("{} tokens exceed max_doc_tokens ({max})", e.ids.len()),
                    ));
                    continue;
                }
                // Long documents split into pieces `<id>#k`; the first carries all
                // the bytes, so bytes per token stay right over the artifact.
                for (k, start) in (0..e.ids.len()).step_by(max.max(1)).enumerate() {
                    let end = (start + max).min(e.ids.len());
                    let piece_id = if e.ids.len() > max { format!("{id}#{k}") } else { id.clone() };
                    out.push(
                        &piece_id,
                        &e.ids[start..end],
                        e.mask.as_ref().map(|m| &m[start..end]),
                        if k == 0 { n_bytes } else { 0 },
                    );
                    c.rows += 1;
                    c.split += u64::from(k > 0);
                }
                c.tokens += e.ids.len() as u64;
                c.bytes += n_bytes;
            }
            ctx.bar.inc(batch.num_rows() as u64);
            sink.rejects(rejects)?;
            sink.rows(out.finish()?)?;
        }
        ctx.log.line(format!("tokenized {name}"));
    }
    let table = sink.finish()?;
    let stats = json!({ "tokenize": {
        "docs_in": c.docs, "rows_out": c.rows, "pieces_split_off": c.split, "rejected": table.rejected_rows,
        "reasons": table.reasons, "tokens": c.tokens, "bytes": c.bytes,
        "bytes_per_token": if c.tokens > 0 { c.bytes as f64 / c.tokens as f64 } else { 0.0 },
    }});
    let extra = json!({
        "vocab_size": tok.hf.get_vocab_size(true), "fast_encoder": tok.slow_because.is_none(), "bos_id": sp.bos, "eos_id": sp.eos, "pad_id": sp.pad, "end_id": sp.end,
        "tokens": c.tokens, "tokenizer": t.manifest.fingerprint,
    });
    Ok(Output {
        table,
        stats,
        extra,
        schema_hint: crate::exec::store::columns_of(&tokens_schema(chat)),
        content_hash: None,
    })
}
