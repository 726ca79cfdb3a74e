//! `kiln sample`: load a model directory (an HF GPT-2 checkpoint with its
//! `tokenizer.json`, e.g. a pipeline's `runs/<name>/<node>`), continue one
//! or more prompts and stream the text as it is generated.

use super::InferError;
use super::generate::{Finish, GenerateConfig, fit_prompt, generate};
use super::kv::Decoder;
use super::sample::SampleConfig;
use crate::backend::Precision;
use crate::model::hf;
use crate::tokenize::{self, Encoder, Specials};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// What `kiln sample` was asked for.
#[derive(Debug, Clone)]
pub struct SampleArgs {
    /// The model directory.
    pub model: PathBuf,
    /// Prompts; one is streamed token by token, several run as one batch.
    pub prompts: Vec<String>,
    /// Generation settings (stop tokens are filled in from the tokenizer).
    pub max_new_tokens: usize,
    /// Sampling settings.
    pub sampling: SampleConfig,
    /// Weight precision of the decoder.
    pub precision: Precision,
    /// Prepend the tokenizer's BOS token, as kiln's packing does before every document.
    pub bos: bool,
}

/// Totals of one `kiln sample` call.
#[derive(Debug, Clone, PartialEq)]
pub struct SampleSummary {
    /// Tokens generated over all prompts.
    pub new_tokens: usize,
    /// Seconds from the first decoder call to the last token.
    pub seconds: f64,
    /// Why each sequence ended.
    pub finish: Vec<Finish>,
}

/// The files a model directory must hold, checked up front so that the
/// error says what is missing and what to point at instead.
pub fn resolve_model_dir(path: &Path) -> Result<PathBuf, InferError> {
    let io = |m: String| InferError::Io(m);
    if !path.exists() {
        return Err(io(format!("{}: no such model directory", path.display())));
    }
    // A path to one of the model's files means its directory.
    let dir = if path.is_file() {
        path.parent().unwrap_or(Path::new(".")).to_path_buf()
    } else {
        path.to_path_buf()
    };
    if !dir.join(hf::CONFIG).is_file() {
        let kind = std::fs::read_to_string(dir.join("manifest.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|m| m.get("kind").and_then(|k| k.as_str()).map(String::from));
        return Err(io(match kind {
            Some(k) if k != "model" => format!(
                "{} is a `{k}` artifact, not a model: point at the node that trains or imports the model",
                dir.display()
            ),
            _ => format!(
                "{} has no {}: point at a model directory (config.json, model.safetensors, tokenizer.json), e.g. runs/<pipeline>/<node>",
                dir.display(),
                hf::CONFIG
            ),
        }));
    }
    for f in [hf::WEIGHTS, "tokenizer.json"] {
        if !dir.join(f).is_file() {
            return Err(io(format!(
                "{} has no {f}; kiln sample needs config.json, model.safetensors and tokenizer.json side by side",
                dir.display()
            )));
        }
    }
    Ok(dir)
}

/// Runs `kiln sample`: text to `out` (flushed per token when there is one
/// prompt), notes (truncation, speed) to `note`.
pub fn run(args: &SampleArgs, out: &mut dyn Write, note: &mut dyn Write) -> Result<SampleSummary, InferError> {
    args.sampling.check()?;
    if args.prompts.is_empty() {
        return Err(InferError::Config("give at least one --prompt".into()));
    }
    let dir = resolve_model_dir(&args.model)?;
    let tok_path = dir.join("tokenizer.json");
    let tok = tokenize::load(&tok_path).map_err(InferError::Io)?;
    let specials = Specials::of(&tok);
    let enc = Encoder::new(tok);
    // The decoder reads its own weight copies; the model's matmul backend is unused.
    let model = hf::load(&dir, Precision::F32)?;
    let cfg = model.config().clone();
    let w = |e: std::io::Error| InferError::Io(format!("writing the output: {e}"));
    let mut prompts = Vec::new();
    for (i, text) in args.prompts.iter().enumerate() {
        let mut ids: Vec<u32> = Vec::new();
        if args.bos
            && let Some(b) = specials.bos
        {
            ids.push(b);
        }
        ids.extend(enc.encode(text).map_err(|e| InferError::Io(format!("prompt {i}: {e}")))?);
        if ids.is_empty() {
            return Err(InferError::Config(format!(
                "prompt {i} is empty and the tokenizer has no BOS token to start from"
            )));
        }
        if let Some(&bad) = ids.iter().find(|&&t| t as usize >= cfg.vocab_size) {
            return Err(InferError::Io(format!(
                "{} does not match the model: it gives id {bad}, the model's vocab_size is {}",
                tok_path.display(),
                cfg.vocab_size
            )));
        }
        let (kept, dropped) = fit_prompt(&ids, cfg.block_size, args.max_new_tokens);
        if dropped > 0 {
            writeln!(
                note,
                "note: prompt {i} is {} tokens; kept its last {} so that the continuation fits block_size {}",
                ids.len(),
                kept.len(),
                cfg.block_size
            )
            .map_err(w)?;
        }
        prompts.push(kept.to_vec());
    }
    let gen_cfg = GenerateConfig {
        max_new_tokens: args.max_new_tokens,
        sampling: args.sampling.clone(),
        stop: specials.eos.into_iter().collect(),
    };
    let mut dec = Decoder::new(&model, prompts.len(), cfg.block_size, args.precision)?;
    let start = Instant::now();
    let results = if prompts.len() == 1 {
        write!(out, "{}", args.prompts[0]).map_err(w)?;
        out.flush().map_err(w)?;
        let mut stream = enc.hf.decode_stream(false);
        let mut failure = None;
        let r = generate(&mut dec, &prompts, &gen_cfg, |_, id| {
            let piece = stream.step(id).map_err(|e| InferError::Io(format!("decoding token {id}: {e}")));
            let wrote = piece.and_then(|p| match p {
                Some(p) => out.write_all(p.as_bytes()).and_then(|_| out.flush()).map_err(w),
                // Part of a multi-byte character: printed with the next token.
                None => Ok(()),
            });
            match wrote {
                Ok(()) => true,
                Err(e) => {
                    failure = Some(e);
                    false
                }
            }
        })?;
        if let Some(e) = failure {
            return Err(e);
        }
        writeln!(out).map_err(w)?;
        r
    } else {
        let r = generate(&mut dec, &prompts, &gen_cfg, |_, _| true)?;
        for (i, (text, g)) in args.prompts.iter().zip(&r).enumerate() {
            let cont = tokenize::decode(&enc.hf, &g.tokens).map_err(InferError::Io)?;
            writeln!(out, "=== sample {i} ===\n{text}{cont}").map_err(w)?;
        }
        r
    };
    let seconds = start.elapsed().as_secs_f64();
    let new_tokens: usize = results.iter().map(|g| g.tokens.len()).sum();
    let finish: Vec<Finish> = results.iter().map(|g| g.finish).collect();
    let why = |f: &Finish| match f {
        Finish::Stop(_) => "end of text",
        Finish::Length => "max_new_tokens",
        Finish::Context => "context full (block_size)",
        Finish::Cancelled => "cancelled",
    };
    let reasons: Vec<&str> = finish.iter().map(why).collect();
    writeln!(
        note,
        "{new_tokens} tokens in {seconds:.2} s ({:.1} tokens/s, {:?} weights); stopped: {}",
        new_tokens as f64 / seconds.max(1e-9),
        dec.precision(),
        reasons.join(", ")
    )
    .map_err(w)?;
    Ok(SampleSummary {
        new_tokens,
        seconds,
        finish,
    })
}
