//! `train_tokenizer` and `tokenizer`: a `tokenizer` artifact is a directory
//! holding an HF-loadable `tokenizer.json`.

use super::{Ctx, NodeError, Output};
use crate::exec::sink::SinkResult;
use crate::io::table::parquet_batches;
use crate::io::writer::FileInfo;
use crate::spec::ops::{TokenizerParams, TrainTokenizerParams};
use crate::tokenize::train::{TrainConfig, cap_chars, train as train_bpe};
use crate::tokenize::{Specials, Tokenizer, load};
use arrow::array::{Array, AsArray};
use arrow::datatypes::DataType;
use serde_json::json;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// Streams capped document texts from Parquet files until the budget is spent.
struct Corpus<'a> {
    paths: std::vec::IntoIter<PathBuf>,
    batches: Option<Box<dyn Iterator<Item = Result<arrow::record_batch::RecordBatch, String>> + Send + 'a>>,
    texts: Vec<String>,
    chars_left: u64,
    doc_cap: usize,
    docs: Arc<Mutex<(u64, u64)>>,
    error: Arc<Mutex<Option<String>>>,
    cancel: &'a AtomicBool,
    bar: &'a indicatif::ProgressBar,
}

impl Iterator for Corpus<'_> {
    type Item = String;

    fn next(&mut self) -> Option<String> {
        loop {
            if self.chars_left == 0 || self.cancel.load(Ordering::Relaxed) {
                return None;
            }
            if let Some(t) = self.texts.pop() {
                let capped = cap_chars(&t, self.doc_cap.min(self.chars_left as usize));
                let n = capped.chars().count() as u64;
                self.chars_left -= n;
                if let Ok(mut d) = self.docs.lock() {
                    d.0 += 1;
                    d.1 += n;
                }
                self.bar.inc(1);
                return Some(capped.to_string());
            }
            match self.batches.as_mut().and_then(Iterator::next) {
                Some(Ok(b)) => {
                    let Some(col) = b.column_by_name("text") else {
                        *self.error.lock().ok()? = Some("the input has no `text` column".into());
                        return None;
                    };
                    let col = match arrow::compute::cast(col, &DataType::Utf8) {
                        Ok(c) => c,
                        Err(e) => {
                            *self.error.lock().ok()? = Some(format!("`text` is not text: {e}"));
                            return None;
                        }
                    };
                    let s = col.as_string::<i32>();
                    // Reversed, so pop() yields documents in order.
                    self.texts = (0..s.len())
                        .rev()
                        .filter(|i| s.is_valid(*i))
                        .map(|i| s.value(i).to_string())
                        .collect();
                }
                Some(Err(e)) => {
                    *self.error.lock().ok()? = Some(e);
                    return None;
                }
                None => {
                    let path = self.paths.next()?;
                    match parquet_batches(&path) {
                        Ok(it) => self.batches = Some(Box::new(it)),
                        Err(e) => {
                            *self.error.lock().ok()? = Some(e);
                            return None;
                        }
                    }
                }
            }
        }
    }
}

fn artifact(ctx: &Ctx, tok: &Tokenizer, stats: serde_json::Value) -> Result<Output, NodeError> {
    let path = ctx.out.join("tokenizer.json");
    tok.save(&path, false)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    let bytes = std::fs::read(&path).map_err(|e| e.to_string())?;
    let sp = Specials::of(tok);
    let vocab = tok.get_vocab_size(true);
    ctx.log.line(format!("tokenizer: vocab {vocab}, specials {sp:?}"));
    Ok(Output {
        table: SinkResult {
            files: vec![FileInfo {
                name: "tokenizer.json".into(),
                rows: 0,
                bytes: bytes.len() as u64,
            }],
            ..Default::default()
        },
        stats,
        extra: json!({ "vocab_size": vocab, "specials": sp }),
        content_hash: Some(blake3::hash(&bytes).to_hex().to_string()),
        ..Default::default()
    })
}

pub(super) fn train(ctx: &Ctx, p: &TrainTokenizerParams) -> Result<Output, NodeError> {
    let a = ctx
        .inputs
        .get("input")
        .ok_or_else(|| NodeError::Failed("input artifact missing".into()))?;
    ctx.bar.set_length(a.manifest.rows);
    let docs = Arc::new(Mutex::new((0u64, 0u64)));
    let error = Arc::new(Mutex::new(None));
    let corpus = Corpus {
        paths: a.data_paths().into_iter(),
        batches: None,
        texts: Vec::new(),
        chars_left: p.max_chars,
        doc_cap: p.doc_cap as usize,
        docs: docs.clone(),
        error: error.clone(),
        cancel: ctx.cancel,
        bar: ctx.bar,
    };
    let cfg = TrainConfig {
        vocab_size: p.vocab_size,
        split: p.split.clone(),
        special_tokens: p.special_tokens.clone(),
        min_frequency: p.min_frequency,
    };
    let t0 = std::time::Instant::now();
    let tok = train_bpe(&cfg, corpus)?;
    if ctx.cancel.load(Ordering::Relaxed) {
        return Err(NodeError::Cancelled);
    }
    if let Some(e) = error.lock().ok().and_then(|mut e| e.take()) {
        return Err(NodeError::Failed(e));
    }
    let (n_docs, n_chars) = docs.lock().map(|d| *d).unwrap_or_default();
    if n_chars == 0 {
        return Err(NodeError::Failed("no text to train on: the input documents are empty".into()));
    }
    let stats = json!({ "train_tokenizer": {
        "docs": n_docs, "chars": n_chars, "train_seconds": t0.elapsed().as_secs_f64(),
        "vocab_size": tok.get_vocab_size(true),
    }});
    artifact(ctx, &tok, stats)
}

pub(super) fn import(ctx: &Ctx, p: &TokenizerParams) -> Result<Output, NodeError> {
    let tok = load(std::path::Path::new(&p.path))?;
    let stats = json!({ "tokenizer": { "imported_from": p.path, "vocab_size": tok.get_vocab_size(true) } });
    artifact(ctx, &tok, stats)
}
