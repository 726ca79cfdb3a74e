//! `clean`: documents → documents through the fused step chain of
//! [`crate::clean::chain`]. Units are the input's files (or, with `read:`,
//! the files it reads), so the op shards; each batch goes through every
//! step before the next is read, and batches are sized in bytes rather than
//! rows, so memory stays flat whatever the input size. With `read:` the
//! batches come from the `read` op's reader ([`super::read::drive`]) instead
//! of an artifact: for crawl that skips writing and reading back every
//! page's HTML, about a quarter of `read` + `clean`'s time on the
//! benchmark WARC (BENCHMARKS.md).

use super::{Ctx, NodeError, Output, Unit, read};
use crate::clean::chain::{self, Doc, RowStep, Stage, StepCount};
use crate::clean::expr::ExprFilter;
use crate::clean::filters::{C4BadWords, C4Quality, FineWebQuality, GopherQuality, GopherRepetition, Length, UrlFilter};
use crate::clean::langid::LangId;
use crate::clean::normalize::Normalize;
use crate::clean::pii::Pii;
use crate::clean::steps::Extract;
use crate::exec::sink::TableSink;
use crate::exec::store::{Column, columns_of};
use crate::io::docs::{Reject, documents_schema};
use crate::spec::ops::{CleanParams, Step as StepSpec};
use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, Float64Array, StringArray, UInt32Array};
use arrow::compute::{filter_record_batch, take};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// Builds the chain of a node's steps (lists loaded, expressions parsed).
pub fn compile(steps: &[StepSpec]) -> Result<Vec<chain::Step>, String> {
    let mut out = Vec::with_capacity(steps.len());
    for (i, s) in steps.iter().enumerate() {
        let stage = match s {
            StepSpec::Expr(p) => Ok(Stage::Expr(ExprFilter::new(&p.sql)?)),
            StepSpec::UrlFilter(p) => row(UrlFilter::new(p)),
            StepSpec::Extract(p) => Ok(Stage::Row(Box::new(Extract(p.clone())))),
            StepSpec::Langid(p) => row(LangId::new(p)),
            StepSpec::GopherRepetition(p) => row(GopherRepetition::new(p)),
            StepSpec::GopherQuality(p) => row(GopherQuality::new(p)),
            StepSpec::C4(p) => row(C4Quality::new(p)),
            StepSpec::C4Badwords(p) => row(C4BadWords::new(p)),
            StepSpec::Fineweb(p) => row(FineWebQuality::new(p)),
            StepSpec::Length(p) => row(Length::new(p)),
            StepSpec::Pii(p) => row(Pii::new(p)),
            StepSpec::Normalize(p) => row(Normalize::new(p)),
        }
        .map_err(|e| format!("steps[{i}].{}: {e}", s.name()))?;
        out.push(chain::Step { name: s.name(), stage });
    }
    Ok(out)
}

/// A compiled rule as a row-wise stage.
fn row<T: RowStep + 'static>(r: Result<T, String>) -> Result<Stage, String> {
    r.map(|x| Stage::Row(Box::new(x)))
}

/// The columns the steps add (or overwrite) after the input's own.
fn added_fields(steps: &[StepSpec]) -> Vec<Field> {
    let mut f = Vec::new();
    let has = |n: &str| steps.iter().any(|s| s.name() == n);
    if has("extract") {
        f.push(Field::new("title", DataType::Utf8, true));
    }
    if has("langid") {
        f.push(Field::new("lang", DataType::Utf8, true));
        f.push(Field::new("lang_score", DataType::Float64, true));
    }
    f
}

/// Row `i` of a string column, `None` where null.
type StrAt<'b> = Box<dyn Fn(usize) -> Option<&'b str> + 'b>;

/// A string column by name (`Utf8` or `LargeUtf8`).
fn str_col<'b>(batch: &'b RecordBatch, name: &str) -> Result<Option<StrAt<'b>>, String> {
    let Some(c) = batch.column_by_name(name) else { return Ok(None) };
    Ok(Some(match c.data_type() {
        DataType::Utf8 => {
            let a = c.as_string::<i32>();
            Box::new(move |i| a.is_valid(i).then(|| a.value(i)))
        }
        DataType::LargeUtf8 => {
            let a = c.as_string::<i64>();
            Box::new(move |i| a.is_valid(i).then(|| a.value(i)))
        }
        t => return Err(format!("column `{name}` is {t}, not text")),
    }))
}

/// Decoded input bytes a batch aims at. A batch is what the steps share out
/// between the threads and what the sink queues (up to 4 in flight), so its
/// size bounds the node's memory. The Parquet reader fills a batch across
/// row groups, so the reader's usual 8,192 rows of 145 KB HTML pages would
/// be 1.2 GB: an input of fewer rows than that was held whole, and the peak
/// RSS grew with the input (measured: benches/clean_rss.sh).
const BATCH_BYTES: u64 = 32 << 20;
/// Most rows in a batch (small documents: the reader's usual batch size).
const MAX_BATCH_ROWS: usize = 8192;
/// Fewest rows in a batch, so that both threads get documents to share even
/// when documents are megabytes each.
const MIN_BATCH_ROWS: usize = 16;

/// Rows per batch for a file of `rows` rows and `bytes` uncompressed bytes,
/// so that an average batch holds about `target` bytes.
fn batch_rows(rows: u64, bytes: u64, target: u64) -> usize {
    if rows == 0 {
        return MAX_BATCH_ROWS;
    }
    let per_row = (bytes / rows).max(1);
    usize::try_from(target / per_row)
        .unwrap_or(usize::MAX)
        .clamp(MIN_BATCH_ROWS, MAX_BATCH_ROWS)
}

/// The batches of one input file, each about `target` bytes once decoded
/// (from the row groups' uncompressed sizes in the footer).
fn input_batches(path: &Path, target: u64) -> Result<impl Iterator<Item = Result<RecordBatch, String>> + use<>, String> {
    let shown = path.display().to_string();
    let f = std::fs::File::open(path).map_err(|e| format!("cannot open {shown}: {e}"))?;
    let b = ParquetRecordBatchReaderBuilder::try_new(f).map_err(|e| format!("cannot read {shown}: {e}"))?;
    let groups = b.metadata().row_groups();
    let rows = groups.iter().map(|g| g.num_rows().max(0) as u64).sum();
    let bytes = groups.iter().map(|g| g.total_byte_size().max(0) as u64).sum();
    let r = b
        .with_batch_size(batch_rows(rows, bytes, target))
        .build()
        .map_err(|e| format!("cannot read {shown}: {e}"))?;
    Ok(r.map(move |b| b.map_err(|e| format!("cannot read {shown}: {e}"))))
}

/// Per-node running totals.
#[derive(Default)]
struct Totals {
    docs_in: u64,
    bytes_in: u64,
    kept: u64,
    bytes_out: u64,
    null_text: u64,
}

/// One `clean` pass: the compiled steps, the output and the running counts.
struct Pass<'a> {
    steps: Vec<chain::Step>,
    added: Vec<Field>,
    funnel: Vec<StepCount>,
    t: Totals,
    sink: &'a TableSink,
    /// The columns of the first batch in, for the manifest of a run that keeps nothing.
    first_schema: Option<arrow::datatypes::SchemaRef>,
}

impl<'a> Pass<'a> {
    fn new(steps: Vec<chain::Step>, spec: &[StepSpec], sink: &'a TableSink) -> Self {
        let funnel = steps
            .iter()
            .map(|s| StepCount {
                step: s.name.to_string(),
                ..Default::default()
            })
            .collect();
        Pass {
            steps,
            added: added_fields(spec),
            funnel,
            t: Totals::default(),
            sink,
            first_schema: None,
        }
    }

    /// Cleans one batch of `file` and queues what it keeps and drops.
    fn batch(&mut self, batch: &RecordBatch, file: &str) -> Result<(), String> {
        self.first_schema.get_or_insert_with(|| batch.schema());
        let (kept, rejects) =
            clean_batch(&self.steps, &self.added, batch, file, &mut self.funnel, &mut self.t).map_err(|e| format!("{file}: {e}"))?;
        self.sink.rejects(rejects)?;
        if let Some(k) = kept {
            self.sink.rows(k)?;
        }
        Ok(())
    }

    /// The `clean` stats: totals and the funnel by step.
    fn stats(&self) -> Value {
        let mut per_step = Map::new();
        for (k, c) in self.funnel.iter().enumerate() {
            let repeat = self.funnel[..k].iter().filter(|x| x.step == c.step).count();
            let key = if repeat == 0 {
                c.step.clone()
            } else {
                format!("{}#{}", c.step, repeat + 1)
            };
            per_step.insert(key, serde_json::to_value(c).unwrap_or(Value::Null));
        }
        let t = &self.t;
        json!({
            "docs_in": t.docs_in, "bytes_in": t.bytes_in, "kept": t.kept, "bytes_out": t.bytes_out,
            "dropped": t.docs_in - t.kept, "null_text": t.null_text, "steps": per_step,
        })
    }

    /// The columns to record when no rows were written: the input's, then
    /// the steps' own.
    fn schema_hint(&self, input: Vec<Column>) -> Vec<Column> {
        let mut hint = input;
        if !hint.is_empty() {
            hint.retain(|c| !self.added.iter().any(|f| f.name() == &c.name));
            hint.extend(columns_of(&Schema::new(self.added.clone())));
        }
        hint
    }
}

/// Input read ahead while the steps still compile, at most (decoded bytes).
const AHEAD_BYTES: u64 = 3 * BATCH_BYTES;

/// The pass, made once the steps compile. They compile on a thread of their
/// own (`LangId::new` loads lingua's models and its trigram table: 0.1–0.2 s
/// of wall time) while the input is read, and the batches read meanwhile
/// wait here, up to [`AHEAD_BYTES`]. Without the queue the reader stops at
/// its channel's few batches, and on the benchmark WARC reading (gzip
/// inflate above all) then waits for the models instead of overlapping them.
struct Lazy<'s, 'k> {
    compiling: Option<std::thread::ScopedJoinHandle<'s, Result<Vec<chain::Step>, String>>>,
    pass: Option<Pass<'k>>,
    ahead: Vec<(RecordBatch, String)>,
    ahead_bytes: u64,
    spec: &'k [StepSpec],
    sink: &'k TableSink,
}

impl<'s, 'k: 's> Lazy<'s, 'k> {
    fn new(scope: &'s std::thread::Scope<'s, '_>, spec: &'k [StepSpec], sink: &'k TableSink) -> Self {
        Lazy {
            compiling: Some(scope.spawn(move || compile(spec))),
            pass: None,
            ahead: Vec::new(),
            ahead_bytes: 0,
            spec,
            sink,
        }
    }

    /// Cleans `batch` of `file`, or queues it while the steps compile.
    fn batch(&mut self, batch: RecordBatch, file: &str) -> Result<(), NodeError> {
        let compiled = self.compiling.as_ref().is_none_or(|h| h.is_finished());
        if self.pass.is_none() && !compiled && self.ahead_bytes < AHEAD_BYTES {
            self.ahead_bytes += batch.get_array_memory_size() as u64;
            self.ahead.push((batch, file.to_string()));
            return Ok(());
        }
        self.pass()?.batch(&batch, file)?;
        Ok(())
    }

    /// The pass, once the steps have compiled and the queue is cleaned.
    fn pass(&mut self) -> Result<&mut Pass<'k>, NodeError> {
        if self.pass.is_none() {
            let steps = match self.compiling.take().map(|h| h.join()) {
                Some(Ok(r)) => r?,
                Some(Err(_)) => return Err(NodeError::Failed("compiling the steps panicked".into())),
                None => return Err(NodeError::Failed("the steps were compiled already".into())),
            };
            let mut pass = Pass::new(steps, self.spec, self.sink);
            for (b, f) in self.ahead.drain(..) {
                pass.batch(&b, &f)?;
            }
            self.ahead_bytes = 0;
            self.pass = Some(pass);
        }
        self.pass.as_mut().ok_or_else(|| NodeError::Failed("no pass".into()))
    }

    /// The finished pass. A step that fails to compile (a missing word
    /// list) fails the node here even when no batch came.
    fn finish(mut self) -> Result<Pass<'k>, NodeError> {
        self.pass()?;
        self.pass.ok_or_else(|| NodeError::Failed("no pass".into()))
    }
}

pub(super) fn run(ctx: &Ctx, p: &CleanParams, units: &[Unit], range: Range<usize>) -> Result<Output, NodeError> {
    let sink = TableSink::start(ctx.out, p.shard_bytes);
    let (pass, read_stats, input_schema) = std::thread::scope(|s| -> Result<_, NodeError> {
        let mut lazy = Lazy::new(s, &p.steps, &sink);
        let (read_stats, input_schema) = match &p.read {
            Some(r) => {
                let total: u64 = units[range.clone()].iter().map(|u| u.bytes).sum();
                ctx.bar.set_length(total);
                let (mut records_in, mut docs, mut rejected) = (0u64, 0u64, 0u64);
                let mut reasons: BTreeMap<String, u64> = BTreeMap::new();
                let skipped = read::drive(ctx, r, units, range.clone(), &mut |parsed, file| {
                    records_in += read::records_of(&parsed);
                    rejected += parsed.rejects.len() as u64;
                    for x in &parsed.rejects {
                        *reasons.entry(x.reason_key()).or_default() += 1;
                    }
                    sink.rejects(parsed.rejects)?;
                    if let Some(d) = parsed.docs {
                        docs += d.num_rows() as u64;
                        lazy.batch(d, file).map_err(|e| e.to_string())?;
                    }
                    Ok(())
                })?;
                if range.len() == units.len()
                    && let Some(e) = read::nothing_read(r, docs, rejected, &reasons, &skipped)
                {
                    return Err(NodeError::Failed(e));
                }
                let stats = read::read_stats(range.len(), total, records_in, docs, rejected, &reasons, &skipped);
                (Some(stats), None)
            }
            None => {
                let a = ctx
                    .inputs
                    .get("input")
                    .ok_or_else(|| NodeError::Failed("input artifact missing".into()))?;
                ctx.bar.set_length(range.clone().map(|i| a.manifest.files[i].rows).sum());
                for i in range {
                    let name = &a.manifest.files[i].name;
                    for batch in input_batches(&a.dir.join(name), BATCH_BYTES)? {
                        if ctx.cancel.load(Ordering::Relaxed) {
                            return Err(NodeError::Cancelled);
                        }
                        let batch = batch?;
                        let rows = batch.num_rows() as u64;
                        lazy.batch(batch, name)?;
                        ctx.bar.inc(rows);
                    }
                    ctx.log.line(format!("cleaned {name}"));
                }
                (None, Some(a.manifest.schema.clone()))
            }
        };
        Ok((lazy.finish()?, read_stats, input_schema))
    })?;
    let t = &pass.t;
    ctx.log.line(format!(
        "kept {} of {} documents ({} of {} bytes)",
        t.kept, t.docs_in, t.bytes_out, t.bytes_in
    ));
    let mut stats = json!({ "clean": pass.stats() });
    if let Some(r) = read_stats {
        stats["read"] = r;
    }
    // A `read:` source's columns are the reader's: the first batch's, or
    // the documents schema when none came.
    let input_cols = input_schema.unwrap_or_else(|| match &pass.first_schema {
        Some(s) => columns_of(s),
        None => columns_of(&documents_schema()),
    });
    let schema_hint = pass.schema_hint(input_cols);
    drop(pass);
    let table = sink.finish()?;
    Ok(Output {
        table,
        stats,
        extra: Value::Null,
        schema_hint,
        content_hash: None,
    })
}

/// One batch through the chain: the kept rows (input columns, `text`
/// rewritten, step columns added) and the rejects.
fn clean_batch(
    steps: &[chain::Step],
    added: &[Field],
    batch: &RecordBatch,
    file: &str,
    funnel: &mut [StepCount],
    t: &mut Totals,
) -> Result<(Option<RecordBatch>, Vec<Reject>), String> {
    let n = batch.num_rows();
    let text = str_col(batch, "text")?.ok_or("the input has no `text` column")?;
    let id = str_col(batch, "id")?;
    let url = str_col(batch, "url")?;
    let source = str_col(batch, "source")?;
    let id_of = |i: usize| {
        id.as_ref()
            .and_then(|f| f(i))
            .map(str::to_string)
            .unwrap_or_else(|| format!("{file}:{i}"))
    };
    let reject = |i: usize, text: String, step: &str, reason: String| Reject {
        id: id_of(i),
        text,
        url: url.as_ref().and_then(|f| f(i)).map(str::to_string),
        source: source.as_ref().and_then(|f| f(i)).unwrap_or("").to_string(),
        file: file.to_string(),
        line: None,
        byte_offset: None,
        step: step.to_string(),
        reason,
    };
    let mut rejects = Vec::new();
    // Rows with a null text never enter the chain.
    let mut rows: Vec<usize> = Vec::with_capacity(n);
    let mut docs: Vec<Doc> = Vec::with_capacity(n);
    let ids: Vec<String> = (0..n).map(id_of).collect();
    for (i, row_id) in ids.iter().enumerate() {
        t.docs_in += 1;
        match text(i) {
            Some(s) => {
                t.bytes_in += s.len() as u64;
                rows.push(i);
                docs.push(Doc::new(row_id, url.as_ref().and_then(|f| f(i)), s));
            }
            None => {
                t.null_text += 1;
                rejects.push(reject(i, String::new(), "clean", "null_text: the text is null".into()));
            }
        }
    }
    let input_col = |name: &str, live: &[usize]| -> Option<ArrayRef> {
        let c = batch.column_by_name(name)?;
        let idx = UInt32Array::from_iter_values(live.iter().map(|&k| rows[k] as u32));
        take(c.as_ref(), &idx, None).ok()
    };
    let deaths = chain::run(steps, &mut docs, &input_col)?;
    chain::tally(funnel, &docs, &deaths);
    let mut keep = vec![false; n];
    for ((doc, death), &row) in docs.iter().zip(&deaths).zip(&rows) {
        match death {
            Some(d) => rejects.push(reject(row, doc.text.to_string(), steps[d.step].name, d.reason.clone())),
            None => {
                keep[row] = true;
                t.kept += 1;
                t.bytes_out += doc.text.len() as u64;
            }
        }
    }
    let survivors: Vec<&Doc> = docs.iter().zip(&deaths).filter(|(_, d)| d.is_none()).map(|(d, _)| d).collect();
    if survivors.is_empty() {
        return Ok((None, rejects));
    }
    let kept = filter_record_batch(batch, &BooleanArray::from(keep)).map_err(|e| e.to_string())?;
    let mut fields: Vec<Field> = Vec::new();
    let mut cols: Vec<ArrayRef> = Vec::new();
    for (f, c) in kept.schema().fields().iter().zip(kept.columns()) {
        if added.iter().any(|a| a.name() == f.name()) {
            continue; // a step's column replaces the input's
        }
        if f.name() == "text" {
            let new: ArrayRef = match f.data_type() {
                DataType::LargeUtf8 => Arc::new(arrow::array::LargeStringArray::from_iter_values(
                    survivors.iter().map(|d| d.text.as_ref()),
                )),
                _ => Arc::new(StringArray::from_iter_values(survivors.iter().map(|d| d.text.as_ref()))),
            };
            fields.push(f.as_ref().clone());
            cols.push(new);
        } else {
            fields.push(f.as_ref().clone());
            cols.push(c.clone());
        }
    }
    for f in added {
        let col: ArrayRef = match f.name().as_str() {
            "title" => Arc::new(survivors.iter().map(|d| d.title.as_deref()).collect::<StringArray>()),
            "lang" => Arc::new(survivors.iter().map(|d| d.lang).collect::<StringArray>()),
            _ => Arc::new(survivors.iter().map(|d| d.lang_score).collect::<Float64Array>()),
        };
        fields.push(f.clone());
        cols.push(col);
    }
    let out = RecordBatch::try_new(Arc::new(Schema::new(fields)), cols).map_err(|e| e.to_string())?;
    Ok((Some(out), rejects))
}

#[cfg(test)]
mod tests {
    use super::*;
    use parquet::arrow::ArrowWriter;
    use parquet::file::properties::WriterProperties;

    #[test]
    fn batch_rows_follow_the_byte_target_within_bounds() {
        let t = 32 << 20;
        // 4,096 bytes a row is exactly 8,192 rows to the target; one byte
        // more and the target, not the cap, sets the rows (32 MiB / 4,097).
        assert_eq!(batch_rows(1000, 1000 * 4096, t), 8192);
        assert_eq!(batch_rows(1000, 1000 * 4097, t), 8190);
        assert_eq!(batch_rows(1000, 1000 * 100, t), 8192);
        // The trafilatura pages average about 145 KB.
        assert_eq!(batch_rows(990, 143_127_046, t), 232);
        // 2 MiB is the last size the target divides into 16 rows; bigger rows stay at 16.
        assert_eq!(batch_rows(10, 10 * (2 << 20), t), 16);
        assert_eq!(batch_rows(10, 10 * (3 << 20), t), 16);
        assert_eq!(batch_rows(0, 0, t), 8192);
        assert_eq!(batch_rows(5, 0, t), 8192);
    }

    #[test]
    fn input_batches_stay_under_the_byte_target_across_row_groups() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("part.parquet");
        let texts: Vec<String> = (0..100).map(|i| format!("{i:04}").repeat(256)).collect();
        let schema = Arc::new(Schema::new(vec![Field::new("text", DataType::Utf8, false)]));
        let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(StringArray::from(texts.clone()))]).unwrap();
        let props = WriterProperties::builder().set_max_row_group_row_count(Some(30)).build();
        let mut w = ArrowWriter::try_new(std::fs::File::create(&path).unwrap(), schema, Some(props)).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
        // 1 KiB texts and a 24 KiB target: just under 24 rows a batch (the
        // footer's sizes count a length prefix per row too), read across the
        // 30-row groups rather than one group at a time.
        let mut got = Vec::new();
        let mut sizes = Vec::new();
        for b in input_batches(&path, 24 << 10).unwrap() {
            let b = b.unwrap();
            sizes.push(b.num_rows());
            got.extend(b.column(0).as_string::<i32>().iter().map(|s| s.unwrap().to_string()));
        }
        let n = sizes[0];
        assert!((20..24).contains(&n), "{sizes:?}");
        assert!(sizes[..sizes.len() - 1].iter().all(|&k| k == n), "{sizes:?}");
        assert_eq!(sizes.iter().sum::<usize>(), 100);
        assert_eq!(got, texts);
    }
}
