//! Parquet output split into files of a target size, written in order.

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;
use serde::{Deserialize, Serialize};
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
pub fn writer_props() -> WriterProperties {
    let mut b = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(3).unwrap_or_default()))
        .set_max_row_group_row_count(Some(64 * 1024))
        .set_max_row_group_bytes(Some(64 << 20));
    for col in ["text", "metadata", "id", "url"] {
        b = b
            .set_column_dictionary_enabled(ColumnPath::from(col), false)
            .set_column_statistics_enabled(ColumnPath::from(col), EnabledStatistics::None);
    }
    b.build()
}

/// Writes batches into `<dir>/<prefix>-NNNNN.parquet`, starting a new file
/// once the current one reaches `target_bytes` on disk.
pub struct PartWriter {
    dir: PathBuf,
    rel_dir: String,
    target: u64,
    schema: Option<SchemaRef>,
    cur: Option<Open>,
    files: Vec<FileInfo>,
}

struct Open {
    writer: ArrowWriter<File>,
    file: File,
    name: String,
    rows: u64,
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
        if self.cur.is_none() {
            std::fs::create_dir_all(&self.dir).map_err(|e| format!("cannot create {}: {e}", self.dir.display()))?;
            let name = format!("{}/part-{:05}.parquet", self.rel_dir, self.files.len());
            let path = self.dir.join(format!("part-{:05}.parquet", self.files.len()));
            let file = File::create(&path).map_err(|e| format!("cannot create {}: {e}", path.display()))?;
            let clone = file.try_clone().map_err(|e| e.to_string())?;
            let writer = ArrowWriter::try_new(clone, batch.schema(), Some(writer_props())).map_err(|e| e.to_string())?;
            self.cur = Some(Open {
                writer,
                file,
                name,
                rows: 0,
            });
        }
        let Some(open) = self.cur.as_mut() else { return Ok(()) };
        open.writer.write(batch).map_err(|e| format!("cannot write {}: {e}", open.name))?;
        open.rows += batch.num_rows() as u64;
        if (open.writer.bytes_written() + open.writer.in_progress_size()) as u64 >= self.target {
            self.close_current()?;
        }
        Ok(())
    }

    fn close_current(&mut self) -> Result<(), String> {
        if let Some(open) = self.cur.take() {
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

    /// Closes the last file and lists them all.
    pub fn finish(mut self) -> Result<Vec<FileInfo>, String> {
        self.close_current()?;
        Ok(self.files)
    }
}
