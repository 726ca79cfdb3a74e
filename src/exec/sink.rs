//! The output side of a table node: a writer thread that takes batches in
//! order, writes data and rejected Parquet files, counts rejects by reason
//! and hashes rows per unit, so parsing and writing overlap.

use crate::io::docs::{Reject, rejects_batch};
use crate::io::hash::{RowsHash, hash_rows};
use crate::io::writer::{FileInfo, PartWriter};
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use crossbeam_channel::{Sender, bounded};
use std::collections::BTreeMap;
use std::path::Path;
use std::thread::JoinHandle;

enum Msg {
    Rows(RecordBatch, Option<Vec<[u8; 32]>>),
    Rejects(Vec<Reject>),
}

/// What a finished sink wrote.
#[derive(Debug, Default)]
pub struct SinkResult {
    /// Data files in order.
    pub files: Vec<FileInfo>,
    /// Rejected files.
    pub rejected_files: Vec<FileInfo>,
    /// Rows written.
    pub rows: u64,
    /// Rejected rows.
    pub rejected_rows: u64,
    /// Data schema (if any rows).
    pub schema: Option<SchemaRef>,
    /// Hash of the rows written, in order.
    pub rows_hash: RowsHash,
    /// Rejects by reason (digits folded to N).
    pub reasons: BTreeMap<String, u64>,
}

/// A running writer thread.
pub struct TableSink {
    tx: Option<Sender<Msg>>,
    handle: Option<JoinHandle<Result<SinkResult, String>>>,
}

impl TableSink {
    /// Starts writing into `out_dir/data` and `out_dir/rejected`.
    pub fn start(out_dir: &Path, shard_bytes: u64) -> Self {
        let (tx, rx) = bounded::<Msg>(4);
        let dir = out_dir.to_path_buf();
        let handle = std::thread::spawn(move || -> Result<SinkResult, String> {
            let mut data = PartWriter::new(&dir, "data", shard_bytes);
            let mut rej = PartWriter::new(&dir, "rejected", shard_bytes);
            let mut res = SinkResult::default();
            for msg in rx {
                match msg {
                    Msg::Rows(batch, digests) => {
                        match digests {
                            Some(ds) => ds.iter().for_each(|d| res.rows_hash.push(d)),
                            None => hash_rows(&batch, &mut res.rows_hash),
                        }
                        res.rows += batch.num_rows() as u64;
                        data.write(&batch)?;
                    }
                    Msg::Rejects(rs) => {
                        for r in &rs {
                            *res.reasons.entry(r.reason_key()).or_default() += 1;
                        }
                        res.rejected_rows += rs.len() as u64;
                        rej.write(&rejects_batch(&rs))?;
                    }
                }
            }
            res.schema = data.schema();
            res.files = data.finish()?;
            res.rejected_files = rej.finish()?;
            Ok(res)
        });
        TableSink {
            tx: Some(tx),
            handle: Some(handle),
        }
    }

    fn send(&self, m: Msg) -> Result<(), String> {
        match &self.tx {
            Some(tx) => tx.send(m).map_err(|_| "the output writer stopped".to_string()),
            None => Err("sink already finished".into()),
        }
    }

    /// Queues rows.
    pub fn rows(&self, batch: RecordBatch) -> Result<(), String> {
        self.rows_hashed(batch, None)
    }

    /// Queues rows whose digests were computed already (`None`: hash here).
    pub fn rows_hashed(&self, batch: RecordBatch, digests: Option<Vec<[u8; 32]>>) -> Result<(), String> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        self.send(Msg::Rows(batch, digests))
    }

    /// Queues rejected records.
    pub fn rejects(&self, rejects: Vec<Reject>) -> Result<(), String> {
        if rejects.is_empty() {
            return Ok(());
        }
        self.send(Msg::Rejects(rejects))
    }

    /// Waits for everything to be written.
    pub fn finish(mut self) -> Result<SinkResult, String> {
        self.tx = None;
        match self.handle.take().map(JoinHandle::join) {
            Some(Ok(r)) => r,
            Some(Err(_)) => Err("the output writer panicked".into()),
            None => Err("sink already finished".into()),
        }
    }
}

impl Drop for TableSink {
    fn drop(&mut self) {
        self.tx = None;
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}
