//! Parquet output split into files of a target size, written in order.
//!
//! Compression dominates writing (zstd is over half of a `read`), so row
//! groups are encoded on the rayon pool side by side and appended to the file
//! in order: the bytes are the same as a one-thread writer's, but all cores
//! share the work. At most one row group per thread is in flight, which with
//! 16 MiB row groups keeps memory bounded.

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use crossbeam_channel::{Receiver, bounded};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_writer::{ArrowColumnChunk, ArrowRowGroupWriterFactory, compute_leaves};
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::ColumnPath;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::fs::File;
use std::path::{Path, PathBuf};

/// One written file of an artifact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileInfo {
    /// Path relative to the artifact directory (`data/part-00000.parquet`).
    pub name: String,
    /// Rows in it.
    pub rows: u64,
    /// Bytes on disk.
    pub bytes: u64,
}

/// Writer properties for every kiln Parquet file: zstd, no dictionaries or
/// statistics on long text columns (both cost time and buy nothing there).
///
/// zstd runs at level 1, Arrow C++'s default, not 3: artifacts are
/// intermediate files that the next node reads right away, and on the
/// clean-crawl bench level 1 took 10% less CPU and 22% less `read` time for
/// 11% more bytes on disk (BENCHMARKS.md, "zstd level 1 for artifacts").
pub fn writer_props() -> WriterProperties {
    let mut b = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(1).unwrap_or_default()))
        .set_max_row_group_row_count(Some(64 * 1024))
        .set_max_row_group_bytes(Some(64 << 20));
    // Message contents are leaves of `List<Struct>` columns: `<col>.list.item.content`.
    for col in [
        "text",
        "metadata",
        "id",
        "url",
        "chosen",
        "rejected",
        "messages.list.item.content",
        "prompt.list.item.content",
    ] {
        let path = ColumnPath::new(col.split('.').map(str::to_string).collect());
        b = b
            .set_column_dictionary_enabled(path.clone(), false)
            .set_column_statistics_enabled(path, EnabledStatistics::None);
    }
    b.build()
}

/// Uncompressed bytes buffered before a row group is encoded.
const ROW_GROUP_BYTES: usize = 16 << 20;
/// Rows buffered before a row group is encoded.
const ROW_GROUP_ROWS: usize = 64 * 1024;

type Encoded = Result<Vec<ArrowColumnChunk>, String>;

/// Writes batches into `<dir>/part-NNNNN.parquet`, starting a new file once
/// the current one reaches `target_bytes` on disk.
pub struct PartWriter {
    dir: PathBuf,
    rel_dir: String,
    target: u64,
    schema: Option<SchemaRef>,
    cur: Option<Open>,
    files: Vec<FileInfo>,
    buffer: Vec<RecordBatch>,
    buffered_rows: usize,
    buffered_bytes: usize,
}

struct Open {
    writer: SerializedFileWriter<File>,
    factory: ArrowRowGroupWriterFactory,
    file: File,
    name: String,
    rows: u64,
    next_group: usize,
    /// Row groups being encoded, oldest first: (rows, result).
    pending: VecDeque<(usize, Receiver<Encoded>)>,
}

impl Open {
    /// Appends the oldest encoded row group, waiting for it if needed.
    fn append_front(&mut self) -> Result<(), String> {
        let Some((rows, rx)) = self.pending.pop_front() else {
            return Ok(());
        };
        let chunks = rx.recv().map_err(|_| format!("encoding {} stopped", self.name))??;
        let mut rg = self.writer.next_row_group().map_err(|e| e.to_string())?;
        for c in chunks {
            c.append_to_row_group(&mut rg)
                .map_err(|e| format!("cannot write {}: {e}", self.name))?;
        }
        rg.close().map_err(|e| format!("cannot write {}: {e}", self.name))?;
        self.rows += rows as u64;
        Ok(())
    }
}

impl PartWriter {
    /// Files go to `artifact_dir/rel_dir/`.
    pub fn new(artifact_dir: &Path, rel_dir: &str, target_bytes: u64) -> Self {
        PartWriter {
            dir: artifact_dir.join(rel_dir),
            rel_dir: rel_dir.to_string(),
            target: target_bytes.max(1),
            schema: None,
            cur: None,
            files: Vec::new(),
            buffer: Vec::new(),
            buffered_rows: 0,
            buffered_bytes: 0,
        }
    }

    /// Appends a batch.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<(), String> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        match &self.schema {
            None => self.schema = Some(batch.schema()),
            Some(s) if s.fields() != batch.schema().fields() => {
                return Err(format!(
                    "inputs have different columns: first {:?}, now {:?}; read them in separate nodes",
                    s.fields()
                        .iter()
                        .map(|f| format!("{}: {}", f.name(), f.data_type()))
                        .collect::<Vec<_>>(),
                    batch
                        .schema()
                        .fields()
                        .iter()
                        .map(|f| format!("{}: {}", f.name(), f.data_type()))
                        .collect::<Vec<_>>()
                ));
            }
            _ => {}
        }
        self.buffered_rows += batch.num_rows();
        self.buffered_bytes += batch.get_array_memory_size();
        self.buffer.push(batch.clone());
        if self.buffered_bytes >= ROW_GROUP_BYTES || self.buffered_rows >= ROW_GROUP_ROWS {
            self.encode_buffer()?;
        }
        Ok(())
    }

    fn open(&mut self, schema: SchemaRef) -> Result<(), String> {
        std::fs::create_dir_all(&self.dir).map_err(|e| format!("cannot create {}: {e}", self.dir.display()))?;
        let name = format!("{}/part-{:05}.parquet", self.rel_dir, self.files.len());
        let path = self.dir.join(format!("part-{:05}.parquet", self.files.len()));
        let file = File::create(&path).map_err(|e| format!("cannot create {}: {e}", path.display()))?;
        let clone = file.try_clone().map_err(|e| e.to_string())?;
        let arrow = ArrowWriter::try_new(clone, schema, Some(writer_props())).map_err(|e| e.to_string())?;
        let (writer, factory) = arrow.into_serialized_writer().map_err(|e| e.to_string())?;
        self.cur = Some(Open {
            writer,
            factory,
            file,
            name,
            rows: 0,
            next_group: 0,
            pending: VecDeque::new(),
        });
        Ok(())
    }

    /// Starts encoding the buffered batches as one row group.
    fn encode_buffer(&mut self) -> Result<(), String> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let Some(schema) = self.schema.clone() else { return Ok(()) };
        if self.cur.is_none() {
            self.open(schema.clone())?;
        }
        let Some(open) = self.cur.as_mut() else { return Ok(()) };
        let writers = open.factory.create_column_writers(open.next_group).map_err(|e| e.to_string())?;
        open.next_group += 1;
        let batches = std::mem::take(&mut self.buffer);
        let rows = std::mem::take(&mut self.buffered_rows);
        self.buffered_bytes = 0;
        let (tx, rx) = bounded::<Encoded>(1);
        rayon::spawn(move || {
            let encode = || -> Result<Vec<ArrowColumnChunk>, parquet::errors::ParquetError> {
                let mut writers = writers;
                for b in &batches {
                    let mut w = writers.iter_mut();
                    for (field, col) in schema.fields().iter().zip(b.columns()) {
                        for leaf in compute_leaves(field, col)? {
                            match w.next() {
                                Some(writer) => writer.write(&leaf)?,
                                None => return Err(parquet::errors::ParquetError::General("column count mismatch".into())),
                            }
                        }
                    }
                }
                writers.into_iter().map(|w| w.close()).collect()
            };
            let _ = tx.send(encode().map_err(|e| e.to_string()));
        });
        open.pending.push_back((rows, rx));
        if open.pending.len() > rayon::current_num_threads().max(1) {
            self.append_oldest()?;
        }
        Ok(())
    }

    /// Waits for the oldest row group and appends it to the file; starts a
    /// new file once this one is big enough.
    fn append_oldest(&mut self) -> Result<(), String> {
        if let Some(open) = self.cur.as_mut() {
            open.append_front()?;
            if open.writer.bytes_written() as u64 >= self.target {
                self.close_current()?;
            }
        }
        Ok(())
    }

    fn close_current(&mut self) -> Result<(), String> {
        if let Some(mut open) = self.cur.take() {
            while !open.pending.is_empty() {
                open.append_front()?;
            }
            open.writer.close().map_err(|e| format!("cannot finish {}: {e}", open.name))?;
            open.file.sync_all().map_err(|e| format!("cannot sync {}: {e}", open.name))?;
            let bytes = open.file.metadata().map(|m| m.len()).unwrap_or(0);
            self.files.push(FileInfo {
                name: open.name,
                rows: open.rows,
                bytes,
            });
        }
        Ok(())
    }

    /// The schema of what was written, if anything was.
    pub fn schema(&self) -> Option<SchemaRef> {
        self.schema.clone()
    }

    /// Encodes what is buffered, closes the last file and lists them all.
    pub fn finish(mut self) -> Result<Vec<FileInfo>, String> {
        self.encode_buffer()?;
        self.close_current()?;
        Ok(std::mem::take(&mut self.files))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{AsArray, StringArray, UInt64Array};
    use std::sync::Arc;

    #[test]
    fn message_contents_are_written_without_dictionaries() {
        use crate::io::chat::{ChatBuilder, Message, Role};
        let d = tempfile::tempdir().unwrap();
        let mut b = ChatBuilder::with_capacity(100, 1 << 12);
        for i in 0..100 {
            let msgs = [
                Message::new(Role::User, format!("question {i}")),
                Message::new(Role::Assistant, "same"),
            ];
            b.push(&i.to_string(), &msgs, "s", None, None);
        }
        let mut w = PartWriter::new(d.path(), "data", 1 << 20);
        w.write(&b.finish()).unwrap();
        let files = w.finish().unwrap();
        let f = File::open(d.path().join(&files[0].name)).unwrap();
        let meta = parquet::file::reader::SerializedFileReader::new(f).unwrap();
        let rg = parquet::file::reader::FileReader::metadata(&meta).row_group(0).clone();
        let col = |path: &str| rg.columns().iter().find(|c| c.column_path().string() == path).unwrap().clone();
        assert!(col("messages.list.item.content").dictionary_page_offset().is_none());
        // Roles repeat: a dictionary pays there.
        assert!(col("messages.list.item.role").dictionary_page_offset().is_some());
    }

    #[test]
    fn parallel_row_groups_keep_row_order_across_files() {
        let d = tempfile::tempdir().unwrap();
        // Small target: several files, each with several row groups.
        let mut w = PartWriter::new(d.path(), "data", 128 << 10);
        let mut n = 0u64;
        for b in 0..200 {
            let ids: UInt64Array = (n..n + 5000).collect();
            let text: StringArray = (0..5000)
                .map(|i| Some(format!("batch {b} row {i} {}", "x".repeat(i % 200))))
                .collect();
            n += 5000;
            let batch = RecordBatch::try_from_iter([("n", Arc::new(ids) as _), ("text", Arc::new(text) as _)]).unwrap();
            w.write(&batch).unwrap();
        }
        let files = w.finish().unwrap();
        assert!(files.len() > 1, "{files:?}");
        assert_eq!(files.iter().map(|f| f.rows).sum::<u64>(), n);
        let mut next = 0u64;
        for f in &files {
            for b in crate::io::table::parquet_batches(&d.path().join(&f.name)).unwrap() {
                let b = b.unwrap();
                let col = b.column(0).as_primitive::<arrow::datatypes::UInt64Type>();
                for v in col.values() {
                    assert_eq!(*v, next);
                    next += 1;
                }
            }
        }
        assert_eq!(next, n);
    }
}
