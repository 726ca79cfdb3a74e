//! `pack`: a `tokens` artifact into rows of `seq_len + 1` tokens in Arrow
//! IPC files (kind `packed`). The work is in [`crate::pack`]; this adapts it
//! to the engine (parameters, progress, Ctrl-C, the node's log).

use super::{Ctx, EngineProgress, NodeError, Output};
use crate::exec::sink::SinkResult;
use crate::pack::{self, Mode, PackConfig, PackError, TokensInput, ValSplit};
use crate::spec::ops::{PackMode, PackParams};
use serde_json::json;

/// The packing configuration of a node.
pub(super) fn config(p: &PackParams, seed: u64) -> PackConfig {
    PackConfig {
        seq_len: p.seq_len,
        mode: match p.mode {
            PackMode::Concat => Mode::Concat,
            PackMode::Bestfit => Mode::Bestfit,
        },
        crop: p.crop,
        val: match p.val_docs {
            Some(n) => ValSplit::Docs(n),
            None if p.val_fraction > 0.0 => ValSplit::Fraction(p.val_fraction),
            None => ValSplit::None,
        },
        shuffle: p.shuffle,
        rows_per_file: p.rows_per_file,
        seed,
    }
}

pub(super) fn run(ctx: &Ctx, p: &PackParams) -> Result<Output, NodeError> {
    let a = ctx
        .inputs
        .get("input")
        .ok_or_else(|| NodeError::Failed("input artifact missing".into()))?;
    let input = TokensInput::from_artifact(a).map_err(failed)?;
    let cfg = config(p, ctx.pipeline.seed);
    let o = pack::pack(&input, ctx.out, &cfg, &EngineProgress(ctx)).map_err(failed)?;
    ctx.log.line(format!(
        "packed {} rows of {} tokens: {}",
        o.rows,
        o.row_len,
        serde_json::to_string(&o.stats()).unwrap_or_default()
    ));
    let stats = json!({ "pack": o.stats() });
    let mut extra = o.extra(&cfg, &input.meta);
    // Training reports bits per byte with the corpus's mean bytes per token.
    extra["bytes_per_token"] = a.manifest.stats["tokenize"]["bytes_per_token"].clone();
    Ok(Output {
        table: SinkResult {
            files: o.files,
            rows: o.rows,
            schema: Some(o.schema),
            rows_hash: o.rows_hash,
            ..Default::default()
        },
        stats,
        extra,
        schema_hint: vec![],
        content_hash: None,
    })
}

fn failed(e: PackError) -> NodeError {
    match e {
        PackError::Cancelled => NodeError::Cancelled,
        PackError::Failed(m) => NodeError::Failed(m),
    }
}
