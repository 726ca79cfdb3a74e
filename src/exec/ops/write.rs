//! `write`: exports an artifact's rows to a user path (JSONL, optionally
//! compressed, or Parquet), through a temporary file renamed when complete.

use super::{Ctx, NodeError, Output};
use crate::io::table::{parquet_batches, write_jsonl};
use crate::io::writer::writer_props;
use crate::spec::ops::{ExportFormat, WriteParams};
use parquet::arrow::ArrowWriter;
use serde_json::json;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::atomic::Ordering;

pub(super) fn run(ctx: &Ctx, p: &WriteParams) -> Result<Output, NodeError> {
    let a = ctx
        .inputs
        .get("input")
        .ok_or_else(|| NodeError::Failed("input artifact missing".into()))?;
    let dest = Path::new(&p.path);
    if let Some(parent) = dest.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    }
    let tmp = dest.with_file_name(format!(
        ".{}.kiln-tmp-{}",
        dest.file_name().map(|n| n.to_string_lossy()).unwrap_or_default(),
        std::process::id()
    ));
    let result = export(ctx, p, a.data_paths(), &tmp);
    let rows = match result {
        Ok(rows) => rows,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
    };
    std::fs::rename(&tmp, dest).map_err(|e| format!("cannot move the export into place at {}: {e}", dest.display()))?;
    let bytes = std::fs::metadata(dest).map(|m| m.len()).unwrap_or(0);
    ctx.log.line(format!("exported {rows} rows to {} ({bytes} bytes)", dest.display()));
    let format = match p.resolved_format() {
        Some(ExportFormat::Parquet) => "parquet",
        _ => "jsonl",
    };
    Ok(Output {
        stats: json!({ "write": { "rows": rows } }),
        extra: json!({ "export": p.path, "export_format": format, "export_rows": rows, "export_bytes": bytes }),
        ..Default::default()
    })
}

fn export(ctx: &Ctx, p: &WriteParams, paths: Vec<std::path::PathBuf>, tmp: &Path) -> Result<u64, NodeError> {
    let file = std::fs::File::create(tmp).map_err(|e| format!("cannot create {}: {e}", tmp.display()))?;
    let mut rows = 0u64;
    let cancelled = || ctx.cancel.load(Ordering::Relaxed);
    match p.resolved_format() {
        Some(ExportFormat::Parquet) => {
            let sync = file.try_clone().map_err(|e| e.to_string())?;
            let mut w: Option<ArrowWriter<std::fs::File>> = None;
            let mut file = Some(file);
            for path in &paths {
                for b in parquet_batches(path)? {
                    if cancelled() {
                        return Err(NodeError::Cancelled);
                    }
                    let b = b?;
                    if w.is_none() {
                        let f = file.take().ok_or_else(|| "writer state".to_string())?;
                        w = Some(ArrowWriter::try_new(f, b.schema(), Some(writer_props())).map_err(|e| e.to_string())?);
                    }
                    if let Some(w) = w.as_mut() {
                        w.write(&b).map_err(|e| format!("cannot write {}: {e}", p.path))?;
                    }
                    rows += b.num_rows() as u64;
                    ctx.bar.inc(b.num_rows() as u64);
                }
            }
            if let Some(w) = w {
                w.close().map_err(|e| format!("cannot finish {}: {e}", p.path))?;
            }
            sync.sync_all().map_err(|e| e.to_string())?;
        }
        _ => {
            let lower = p.path.to_ascii_lowercase();
            let sync = file.try_clone().map_err(|e| e.to_string())?;
            let buf = BufWriter::with_capacity(1 << 20, file);
            let mut out = if lower.ends_with(".gz") {
                Compressed::Gz(flate2::write::GzEncoder::new(buf, flate2::Compression::default()))
            } else if lower.ends_with(".zst") {
                Compressed::Zstd(zstd::stream::write::Encoder::new(buf, 3).map_err(|e| e.to_string())?)
            } else {
                Compressed::Plain(buf)
            };
            for path in &paths {
                for b in parquet_batches(path)? {
                    if cancelled() {
                        return Err(NodeError::Cancelled);
                    }
                    let b = b?;
                    write_jsonl(&b, &mut out).map_err(|e| format!("cannot write {}: {e}", p.path))?;
                    rows += b.num_rows() as u64;
                    ctx.bar.inc(b.num_rows() as u64);
                }
            }
            out.finish().map_err(|e| format!("cannot write {}: {e}", p.path))?;
            sync.sync_all().map_err(|e| e.to_string())?;
        }
    }
    Ok(rows)
}

/// The export stream; finishing it writes the compressed trailer, with any
/// error reported rather than lost in a drop.
enum Compressed {
    Plain(BufWriter<std::fs::File>),
    Gz(flate2::write::GzEncoder<BufWriter<std::fs::File>>),
    Zstd(zstd::stream::write::Encoder<'static, BufWriter<std::fs::File>>),
}

impl Compressed {
    fn finish(self) -> std::io::Result<()> {
        let mut inner = match self {
            Compressed::Plain(w) => w,
            Compressed::Gz(w) => w.finish()?,
            Compressed::Zstd(w) => w.finish()?,
        };
        inner.flush()
    }
}

impl Write for Compressed {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Compressed::Plain(w) => w.write(buf),
            Compressed::Gz(w) => w.write(buf),
            Compressed::Zstd(w) => w.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Compressed::Plain(w) => w.flush(),
            Compressed::Gz(w) => w.flush(),
            Compressed::Zstd(w) => w.flush(),
        }
    }
}
