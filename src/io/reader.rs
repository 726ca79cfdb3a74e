//! Streams one input file as parsed batches: a thread cuts records into
//! chunks while rayon parses a window of chunks at a time; results come out
//! in input order, so ids, offsets and output are the same for any thread
//! count. Memory is bounded by `batch_bytes` × the window, not the file.

use super::chunker::{Chunk, Chunker, Shape};
use super::convert::parse_chunk;
use super::docs::Reject;
use super::files::{InputFile, format_of};
use super::parse::{FieldMap, Origin, Parsed, parse_json, parse_text};
use crate::spec::ops::{Format, TextMode};
use rayon::prelude::*;
use std::sync::atomic::{AtomicBool, Ordering};

/// How to read files.
#[derive(Debug, Clone)]
pub struct ReadConfig {
    /// The format (resolved per file before calling).
    pub format: Format,
    /// JSON field mapping.
    pub fields: FieldMap,
    /// `source` column value; `None` uses the file's relative name.
    pub source: Option<String>,
    /// How text files split.
    pub text_mode: TextMode,
    /// Bytes per chunk.
    pub batch_bytes: usize,
    /// Largest record buffered.
    pub max_record_bytes: usize,
}

/// Why reading stopped early.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// Ctrl-C.
    #[error("cancelled")]
    Cancelled,
    /// The consumer failed (e.g. the output disk is full).
    #[error("{0}")]
    Sink(String),
}

/// A reject for a whole file that could not be read at all.
pub fn file_reject(file: &InputFile, source: &str, reason: String) -> Reject {
    Reject {
        id: file.rel.clone(),
        text: String::new(),
        url: None,
        source: source.to_string(),
        file: file.rel.clone(),
        line: None,
        byte_offset: None,
        step: "read".into(),
        reason,
    }
}

/// Reads a JSON or text file (or JSON records through a converter), calling
/// `sink` with each parsed chunk in order.
pub fn read_file(
    file: &InputFile,
    cfg: &ReadConfig,
    cancel: &AtomicBool,
    sink: &mut dyn FnMut(Parsed) -> Result<(), String>,
) -> Result<(), ReadError> {
    let source = cfg.source.clone().unwrap_or_else(|| file.rel.clone());
    // A converter names the record shape; the file's extension names the
    // container (a `.json` array, else JSON lines).
    let container = match cfg.format {
        f if f.is_converter() && format_of(&file.rel) == Some(Format::Json) => Format::Json,
        f if f.is_converter() => Format::Jsonl,
        f => f,
    };
    let origin = Origin {
        rel: &file.rel,
        source: &source,
        json_values: container == Format::Json,
        source_fixed: cfg.source.is_some(),
    };
    let reader = match super::decompress::open(&file.path) {
        Ok(r) => r,
        Err(reason) => {
            let parsed = Parsed {
                docs: None,
                rejects: vec![file_reject(file, &source, reason)],
                bytes: file.size,
                row_digests: None,
            };
            return sink(parsed).map_err(ReadError::Sink);
        }
    };
    let shape = match (container, cfg.text_mode) {
        (Format::Json, _) => Shape::JsonValues,
        (Format::Text, TextMode::Line) => Shape::Lines,
        (Format::Text, TextMode::Block) => Shape::Blocks,
        (Format::Text, TextMode::File) => Shape::Whole,
        _ => Shape::Lines,
    };
    let parse = |c: &Chunk| match cfg.format {
        f if f.is_converter() => parse_chunk(c, &origin, f, &cfg.fields),
        Format::Jsonl | Format::Json => parse_json(c, &origin, &cfg.fields),
        _ => parse_text(c, &origin),
    };
    let window = rayon::current_num_threads().max(1) * 2;
    let (tx, rx) = crossbeam_channel::bounded::<Chunk>(window);
    std::thread::scope(|s| {
        // Owned here so that returning early drops it and unblocks the chunker.
        let rx = rx;
        let (batch_bytes, max_record) = (cfg.batch_bytes, cfg.max_record_bytes);
        s.spawn(move || {
            let mut chunker = Chunker::new(reader, shape, batch_bytes, max_record);
            while let Some(chunk) = chunker.next_chunk() {
                if tx.send(chunk).is_err() {
                    break; // the consumer stopped (cancel or error)
                }
            }
        });
        let mut pending: Vec<Chunk> = Vec::with_capacity(window);
        loop {
            if cancel.load(Ordering::Relaxed) {
                return Err(ReadError::Cancelled);
            }
            pending.clear();
            match rx.recv() {
                Ok(c) => pending.push(c),
                Err(_) => return Ok(()),
            }
            while pending.len() < window {
                match rx.recv() {
                    Ok(c) => pending.push(c),
                    Err(_) => break,
                }
            }
            let parsed: Vec<Parsed> = pending.par_iter().map(parse).collect();
            for p in parsed {
                sink(p).map_err(ReadError::Sink)?;
            }
        }
    })
}

/// Bytes a decompressed-by-name file will yield (progress totals use
/// on-disk sizes; compressed files just finish early).
pub fn is_compressed(file: &InputFile) -> bool {
    let n = file.rel.to_ascii_lowercase();
    n.ends_with(".gz") || n.ends_with(".zst") || n.ends_with(".zstd")
}
