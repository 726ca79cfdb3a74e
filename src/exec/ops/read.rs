//! `read`: input files → documents (or chat / preferences through a
//! converter `format`). Units are files, or the row groups of a
//! single Parquet file, so `--shard` splits even one large file.

use super::{Ctx, NodeError, Output, Unit};
use crate::exec::sink::TableSink;
use crate::io::files::{InputFile, expand, format_of};
use crate::io::parquet_in::{read_parquet, row_groups};
use crate::io::parse::{FieldMap, Parsed};
use crate::io::reader::{ReadConfig, file_reject, is_compressed, read_file};
use crate::io::warc::{Skips, read_warc};
use crate::spec::ops::{Format, Kind, ReadParams};
use rayon::prelude::*;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::ops::Range;

/// A unit of `read`: file index, and a row group for a single Parquet input.
type FileUnit = (usize, Option<usize>);

/// The input files and the units they split into.
fn plan(p: &ReadParams) -> Result<(Vec<InputFile>, Vec<FileUnit>), NodeError> {
    let files = expand(&p.path).map_err(|e| NodeError::Failed(format!("path `{}`: {e}", p.path)))?;
    let single_parquet = files.len() == 1 && resolve_format(p, &files[0]) == Some(Format::Parquet);
    if single_parquet {
        // A file that is not Parquet yields one unit that records the error.
        let n = row_groups(&files[0]).unwrap_or(1).max(1);
        return Ok((files, (0..n).map(|g| (0, Some(g))).collect()));
    }
    let units = (0..files.len()).map(|i| (i, None)).collect();
    Ok((files, units))
}

fn resolve_format(p: &ReadParams, f: &InputFile) -> Option<Format> {
    p.format.or_else(|| format_of(&f.rel))
}

pub(super) fn units(p: &ReadParams) -> Result<Vec<Unit>, NodeError> {
    let (files, units) = plan(p)?;
    let unknown: Vec<&str> = files
        .iter()
        .filter(|f| resolve_format(p, f).is_none())
        .map(|f| f.rel.as_str())
        .collect();
    if !unknown.is_empty() {
        let shown: Vec<&str> = unknown.iter().take(5).copied().collect();
        return Err(NodeError::Failed(format!(
            "cannot tell the format of {} file(s) under `{}` ({}{}); set `format:` or narrow `path` with a glob",
            unknown.len(),
            p.path,
            shown.join(", "),
            if unknown.len() > 5 { ", ..." } else { "" }
        )));
    }
    if let Some(f) = p.format.filter(|f| f.is_converter()) {
        let pq: Vec<&str> = files
            .iter()
            .filter(|x| format_of(&x.rel) == Some(Format::Parquet))
            .map(|x| x.rel.as_str())
            .collect();
        if !pq.is_empty() {
            return Err(NodeError::Failed(format!(
                "`format: {}` reads JSON arrays (.json) or JSON lines (.jsonl, .gz, .zst), not Parquet ({}{}); \
                 export the Parquet to JSONL first, or read it with `format: parquet`",
                f.name(),
                pq.iter().take(5).copied().collect::<Vec<_>>().join(", "),
                if pq.len() > 5 { ", ..." } else { "" }
            )));
        }
    }
    let parquet = files.iter().any(|f| resolve_format(p, f) == Some(Format::Parquet));
    if parquet && files.iter().any(|f| resolve_format(p, f) != Some(Format::Parquet)) {
        return Err(NodeError::Failed(format!(
            "`{}` mixes Parquet with other formats; Parquet keeps its own columns, so read them in separate nodes",
            p.path
        )));
    }
    let n_groups = units.len() as u64;
    Ok(units
        .iter()
        .map(|(i, g)| match g {
            Some(g) => Unit {
                label: format!("{}#rg{g}", files[*i].rel),
                bytes: files[*i].size / n_groups.max(1),
            },
            None => Unit {
                label: files[*i].rel.clone(),
                bytes: files[*i].size,
            },
        })
        .collect())
}

fn config(p: &ReadParams, format: Format) -> ReadConfig {
    ReadConfig {
        format,
        fields: FieldMap::new(&p.text_field, Some(&p.id_field), &p.url_field, p.keep_metadata),
        source: p.source.clone(),
        text_mode: p.text_mode,
        batch_bytes: p.batch_bytes as usize,
        max_record_bytes: p.max_record_bytes as usize,
    }
}

/// Reads one unit fully into memory (small files, read side by side).
fn read_unit_to_vec(ctx: &Ctx, p: &ReadParams, file: &InputFile, group: Option<usize>) -> Result<(Vec<Parsed>, Skips), NodeError> {
    let mut out = Vec::new();
    let skips = read_unit(ctx, p, file, group, &mut |x| {
        out.push(x);
        Ok(())
    })?;
    Ok((out, skips))
}

fn read_unit(
    ctx: &Ctx,
    p: &ReadParams,
    file: &InputFile,
    group: Option<usize>,
    sink: &mut dyn FnMut(Parsed) -> Result<(), String>,
) -> Result<Skips, NodeError> {
    let Some(format) = resolve_format(p, file) else {
        let src = p.source.clone().unwrap_or_else(|| file.rel.clone());
        sink(Parsed {
            docs: None,
            rejects: vec![file_reject(file, &src, "unknown format".into())],
            bytes: file.size,
            row_digests: None,
        })?;
        return Ok(Skips::new());
    };
    let cfg = config(p, format);
    match format {
        Format::Parquet => read_parquet(file, &cfg, group.map(|g| vec![g]), ctx.cancel, sink)?,
        Format::Warc | Format::Wet => return Ok(read_warc(file, &cfg, ctx.cancel, sink)?),
        _ => read_file(file, &cfg, ctx.cancel, sink)?,
    }
    Ok(Skips::new())
}

/// Reads units `range` in order, handing every parsed batch (documents and
/// rejects) to `emit` with its unit's label, and moving the progress bar by input bytes; returns
/// the records that were not documents, by reason. `read` writes what it is
/// handed; `clean` with `read:` cleans it first.
pub(super) fn drive(
    ctx: &Ctx,
    p: &ReadParams,
    units: &[Unit],
    range: Range<usize>,
    emit: &mut dyn FnMut(Parsed, &str) -> Result<(), String>,
) -> Result<Skips, NodeError> {
    let (files, plan_units) = plan(p)?;
    // Records that are not documents (WARC requests, non-HTML payloads...).
    let mut skipped = Skips::new();
    let mut add_skips = |s: Skips| {
        for (k, v) in s {
            *skipped.entry(k).or_default() += v;
        }
    };
    let mut each = |parsed: Parsed, unit: &str, count_bytes: bool| -> Result<(), String> {
        if count_bytes {
            ctx.bar.inc(parsed.bytes);
        }
        emit(parsed, unit)
    };
    // Small files are read side by side (each one a whole), large ones one at
    // a time with their chunks parsed in parallel; output order is the same.
    let mut u = range.start;
    while u < range.end {
        let small = |i: usize| units[i].bytes < p.batch_bytes && plan_units[i].1.is_none();
        if small(u) {
            let mut end = u;
            let mut bytes = 0;
            while end < range.end && small(end) && bytes < 8 * p.batch_bytes && end - u < 256 {
                bytes += units[end].bytes;
                end += 1;
            }
            let results: Vec<Result<(Vec<Parsed>, Skips), NodeError>> = (u..end)
                .into_par_iter()
                .map(|i| read_unit_to_vec(ctx, p, &files[plan_units[i].0], None))
                .collect();
            for (i, r) in (u..end).zip(results) {
                let (parsed_all, skips) = r?;
                add_skips(skips);
                for parsed in parsed_all {
                    each(parsed, &units[i].label, false)?;
                }
                ctx.bar.inc(units[i].bytes);
                ctx.log.line(format!("read {}", units[i].label));
            }
            u = end;
        } else {
            let (fi, group) = plan_units[u];
            let file = &files[fi];
            let by_chunk = !is_compressed(file) && group.is_none();
            let label = &units[u].label;
            add_skips(read_unit(ctx, p, file, group, &mut |parsed| each(parsed, label, by_chunk))?);
            if !by_chunk {
                ctx.bar.inc(units[u].bytes);
            }
            ctx.log.line(format!("read {}", units[u].label));
            u += 1;
        }
    }
    Ok(skipped)
}

/// Records handed on by [`drive`]: documents plus rejects.
pub(super) fn records_of(parsed: &Parsed) -> u64 {
    parsed.docs.as_ref().map_or(0, |d| d.num_rows() as u64) + parsed.rejects.len() as u64
}

/// The error for a whole read that found no documents: every record
/// skipped, the input empty, or every record rejected (`reasons`).
pub(super) fn nothing_read(p: &ReadParams, docs: u64, rejected: u64, reasons: &BTreeMap<String, u64>, skipped: &Skips) -> Option<String> {
    if docs > 0 {
        return None;
    }
    let n_skipped: u64 = skipped.values().sum();
    if rejected == 0 && n_skipped > 0 {
        let reasons: Vec<String> = skipped.iter().map(|(r, n)| format!("{r} ×{n}")).collect();
        return Some(format!(
            "`{}` holds no documents: all {n_skipped} record(s) were skipped ({}); \
             `format: warc` keeps HTML responses, `format: wet` conversion records",
            p.path,
            reasons.join(", ")
        ));
    }
    if rejected == 0 {
        return Some(format!("`{}` holds no records (the input is empty)", p.path));
    }
    let reasons: Vec<String> = reasons.iter().map(|(r, n)| format!("{r} ×{n}")).collect();
    let what = match p.output_kind() {
        Kind::Chat => "conversation",
        Kind::Preferences => "preference pair",
        _ => "document",
    };
    Some(format!(
        "no {what} could be read from `{}`: {rejected} record(s) rejected ({}); see the reasons above",
        p.path,
        reasons.join(", ")
    ))
}

/// The `read` entry of a manifest's stats (the report's funnel reads it).
pub(super) fn read_stats(
    units: usize,
    bytes_in: u64,
    records_in: u64,
    docs: u64,
    rejected: u64,
    reasons: &BTreeMap<String, u64>,
    skipped: &Skips,
) -> Value {
    let n_skipped: u64 = skipped.values().sum();
    json!({
        "units": units,
        "bytes_in": bytes_in,
        // Skipped WARC records were read too: rows + rejected + skipped.
        "records_in": records_in + n_skipped,
        "rows_out": docs,
        "rejected": rejected,
        "reasons": reasons,
        "skipped": skipped,
    })
}

pub(super) fn run(ctx: &Ctx, p: &ReadParams, units: &[Unit], range: Range<usize>) -> Result<Output, NodeError> {
    let total: u64 = units[range.clone()].iter().map(|u| u.bytes).sum();
    ctx.bar.set_length(total);
    let sink = TableSink::start(ctx.out, p.shard_bytes);
    let mut records_in = 0u64;
    let skipped = drive(ctx, p, units, range.clone(), &mut |parsed, _| {
        records_in += records_of(&parsed);
        ctx.bar.set_message(format!("{records_in} records"));
        sink.rejects(parsed.rejects)?;
        if let Some(d) = parsed.docs {
            sink.rows_hashed(d, parsed.row_digests)?;
        }
        Ok(())
    })?;
    let table = sink.finish()?;
    if range.len() == units.len()
        && let Some(e) = nothing_read(p, table.rows, table.rejected_rows, &table.reasons, &skipped)
    {
        return Err(NodeError::Failed(e));
    }
    let stats = json!({ "read": read_stats(range.len(), total, records_in, table.rows, table.rejected_rows, &table.reasons, &skipped) });
    Ok(Output {
        table,
        stats,
        extra: serde_json::Value::Null,
        schema_hint: Vec::new(),
        content_hash: None,
    })
}
