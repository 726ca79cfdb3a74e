//! Packed rows in memory ([`RowBlock`]) and on disk ([`SplitWriter`]):
//! Arrow IPC files of `rows_per_file` rows with the `packed` schema.

use super::PackError;
use crate::io::hash::RowsHash;
use crate::io::writer::FileInfo;
use arrow::array::{Array, ArrayRef, AsArray, FixedSizeListArray, ListArray, UInt8Array, UInt32Array};
use arrow::buffer::{OffsetBuffer, ScalarBuffer};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::ipc::writer::FileWriter;
use arrow::record_batch::RecordBatch;
use crossbeam_channel::{Receiver, Sender, bounded};
use rayon::prelude::*;
use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;

/// Tokens per block handed from a packer to the writer: 4 MiB of ids is
/// large enough to amortise per-batch costs and small enough that memory
/// stays flat whatever the row length.
pub const BLOCK_TOKENS: usize = 1 << 20;

/// Rows per block for rows of `row_len` tokens (at least one).
pub fn block_rows(row_len: usize) -> usize {
    (BLOCK_TOKENS / row_len.max(1)).max(1)
}

/// The `packed` schema for rows of `row_len` tokens.
///
/// `tokens` and `loss_mask` are fixed-size lists, so row `i` of a batch is
/// `values[i * row_len..(i + 1) * row_len]`, which the loader slices out of
/// the memory map without decoding. `doc_starts` lists the positions in the
/// row where a document (or, for a document split across rows, a piece of
/// one) begins, for document-level attention masks. A `bestfit` row always
/// lists 0; a `concat` row that begins inside a document does not, since
/// its first tokens continue the previous row's document.
pub fn schema(row_len: usize, has_mask: bool) -> SchemaRef {
    let mut fields = vec![Field::new(
        "tokens",
        DataType::FixedSizeList(Arc::new(Field::new_list_field(DataType::UInt32, false)), row_len as i32),
        false,
    )];
    if has_mask {
        fields.push(Field::new(
            "loss_mask",
            DataType::FixedSizeList(Arc::new(Field::new_list_field(DataType::UInt8, false)), row_len as i32),
            false,
        ));
    }
    fields.push(Field::new(
        "doc_starts",
        DataType::List(Arc::new(Field::new_list_field(DataType::UInt32, false))),
        false,
    ));
    Arc::new(Schema::new(fields))
}

/// Rows being built, flat: row `i` is `tokens[i * row_len..(i + 1) * row_len]`.
#[derive(Debug, Clone)]
pub struct RowBlock {
    /// Tokens per row (`seq_len + 1`).
    pub row_len: usize,
    /// Token ids of finished rows, then of the row being filled.
    pub tokens: Vec<u32>,
    /// Loss mask, parallel to `tokens`.
    pub mask: Option<Vec<u8>>,
    /// Document start positions of all rows, flat.
    pub starts: Vec<u32>,
    /// `starts[start_offsets[i]..start_offsets[i + 1]]` belong to row `i`.
    pub start_offsets: Vec<i32>,
}

impl RowBlock {
    /// An empty block with room for `cap` rows.
    pub fn new(row_len: usize, has_mask: bool, cap: usize) -> Self {
        let mut start_offsets = Vec::with_capacity(cap + 1);
        start_offsets.push(0);
        RowBlock {
            row_len,
            tokens: Vec::with_capacity(cap * row_len),
            mask: has_mask.then(|| Vec::with_capacity(cap * row_len)),
            starts: Vec::with_capacity(cap * 2),
            start_offsets,
        }
    }

    /// Finished rows.
    pub fn rows(&self) -> usize {
        self.start_offsets.len() - 1
    }

    /// Closes the row being filled (its tokens must be complete).
    pub fn end_row(&mut self) {
        self.start_offsets.push(self.starts.len() as i32);
    }

    /// Forgets the unfinished row, if any; returns how many tokens it had.
    pub fn drop_partial(&mut self) -> usize {
        let keep = self.rows() * self.row_len;
        let dropped = self.tokens.len() - keep;
        self.tokens.truncate(keep);
        if let Some(m) = self.mask.as_mut() {
            m.truncate(keep);
        }
        self.starts.truncate(*self.start_offsets.last().unwrap_or(&0) as usize);
        dropped
    }

    /// Splits off rows `at..` into a new block.
    fn split_off(&mut self, at: usize) -> RowBlock {
        let cut = self.start_offsets[at];
        let mut start_offsets: Vec<i32> = self.start_offsets.split_off(at + 1).into_iter().map(|o| o - cut).collect();
        start_offsets.insert(0, 0);
        RowBlock {
            row_len: self.row_len,
            tokens: self.tokens.split_off(at * self.row_len),
            mask: self.mask.as_mut().map(|m| m.split_off(at * self.row_len)),
            starts: self.starts.split_off(cut as usize),
            start_offsets,
        }
    }

    /// The rows as a record batch of [`schema`] (no copy).
    pub fn into_batch(self, schema: &SchemaRef) -> Result<RecordBatch, String> {
        let len = self.row_len as i32;
        let item = |t: DataType| Arc::new(Field::new_list_field(t, false));
        let mut cols: Vec<ArrayRef> = vec![Arc::new(
            FixedSizeListArray::try_new(item(DataType::UInt32), len, Arc::new(UInt32Array::from(self.tokens)), None)
                .map_err(|e| e.to_string())?,
        )];
        if let Some(m) = self.mask {
            cols.push(Arc::new(
                FixedSizeListArray::try_new(item(DataType::UInt8), len, Arc::new(UInt8Array::from(m)), None).map_err(|e| e.to_string())?,
            ));
        }
        let offsets = OffsetBuffer::new(ScalarBuffer::from(self.start_offsets));
        cols.push(Arc::new(
            ListArray::try_new(item(DataType::UInt32), offsets, Arc::new(UInt32Array::from(self.starts)), None)
                .map_err(|e| e.to_string())?,
        ));
        RecordBatch::try_new(schema.clone(), cols).map_err(|e| e.to_string())
    }
}

/// A column's raw values, and how a row finds its part of them.
enum RawCol<'a> {
    /// `bytes[i * width..(i + 1) * width]` is row `i`.
    Fixed(&'a [u8], usize),
    /// `bytes[offsets[i] * 4..offsets[i + 1] * 4]` is row `i` (u32 values).
    List(&'a [u8], &'a [i32]),
}

fn raw_col(c: &ArrayRef) -> Option<RawCol<'_>> {
    match c.data_type() {
        DataType::FixedSizeList(f, n) => {
            let l = c.as_fixed_size_list();
            let width = if f.data_type() == &DataType::UInt32 { 4 } else { 1 };
            // Both fixed-size lists are built unsliced from one Vec each, so
            // their values are exactly the rows, back to back.
            let slice = match width {
                4 => l
                    .values()
                    .as_primitive::<arrow::datatypes::UInt32Type>()
                    .values()
                    .inner()
                    .as_slice(),
                _ => l.values().as_primitive::<arrow::datatypes::UInt8Type>().values().inner().as_slice(),
            };
            Some(RawCol::Fixed(slice, *n as usize * width))
        }
        DataType::List(_) => {
            let l = c.as_list::<i32>();
            let v = l
                .values()
                .as_primitive::<arrow::datatypes::UInt32Type>()
                .values()
                .inner()
                .as_slice();
            Some(RawCol::List(v, l.value_offsets()))
        }
        _ => None,
    }
}

/// One digest per row for the artifact's content hash.
///
/// [`crate::io::hash::row_digests`] formats every value as text, which for
/// a row of 1025 ids costs more than packing it; packed rows instead hash
/// each column's raw bytes as stored, so the hash still depends on the rows
/// and their order only. Each column is hashed on its own, from its first
/// byte: blake3 hashes whole 1 KiB chunks side by side with SIMD, and a
/// prefix would shift every chunk boundary and force the slow serial path.
/// The row's digest hashes the column digests. Rows are hashed in parallel;
/// the result is in row order whatever the thread count.
pub fn row_digests(batch: &RecordBatch) -> Vec<[u8; 32]> {
    let cols: Vec<RawCol> = batch.columns().iter().filter_map(raw_col).collect();
    (0..batch.num_rows())
        .into_par_iter()
        .map(|r| {
            let mut h = blake3::Hasher::new();
            for c in &cols {
                let b: &[u8] = match c {
                    RawCol::Fixed(bytes, w) => &bytes[r * w..(r + 1) * w],
                    RawCol::List(bytes, offs) => &bytes[offs[r] as usize * 4..offs[r + 1] as usize * 4],
                };
                h.update(blake3::hash(b).as_bytes());
            }
            *h.finalize().as_bytes()
        })
        .collect()
}

/// The record batches of one packed IPC file, read (not mapped) in order;
/// for tools such as `kiln inspect`, where the loader is more than needed.
pub fn read_file(path: &Path) -> Result<impl Iterator<Item = Result<RecordBatch, String>>, String> {
    let f = File::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let r = arrow::ipc::reader::FileReader::try_new(std::io::BufReader::new(f), None)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let shown = path.display().to_string();
    Ok(r.map(move |b| b.map_err(|e| format!("cannot read {shown}: {e}"))))
}

/// One IPC file being written.
struct OpenFile {
    w: FileWriter<BufWriter<File>>,
    path: PathBuf,
    name: String,
    rows: u64,
}

/// What the writing thread is told.
enum Msg {
    /// Rows for the current file.
    Rows(RecordBatch),
    /// Close the current file; the next rows start a new one.
    EndFile,
}

/// The writing thread: IPC files of one split, in order.
fn write_files(dir: PathBuf, split: String, schema: SchemaRef, rx: Receiver<Msg>) -> Result<Vec<FileInfo>, String> {
    let mut files = Vec::new();
    let mut cur: Option<OpenFile> = None;
    let close = |f: OpenFile, files: &mut Vec<FileInfo>| -> Result<(), String> {
        let OpenFile { mut w, path, name, rows } = f;
        w.finish().map_err(|e| format!("cannot finish {}: {e}", path.display()))?;
        let f = w
            .into_inner()
            .map_err(|e| e.to_string())?
            .into_inner()
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        f.sync_all().map_err(|e| format!("cannot sync {}: {e}", path.display()))?;
        let bytes = f.metadata().map(|m| m.len()).unwrap_or(0);
        files.push(FileInfo { name, rows, bytes });
        Ok(())
    };
    for msg in rx {
        match msg {
            Msg::Rows(batch) => {
                if cur.is_none() {
                    let d = dir.join(&split);
                    std::fs::create_dir_all(&d).map_err(|e| format!("cannot create {}: {e}", d.display()))?;
                    let file_name = format!("part-{:05}.arrow", files.len());
                    let path = d.join(&file_name);
                    let f = File::create(&path).map_err(|e| format!("cannot create {}: {e}", path.display()))?;
                    // Uncompressed, 64-byte aligned buffers (the IPC writer's
                    // default): what lets the loader use the mapped file as
                    // the arrays' memory. The buffer only gathers the small
                    // metadata writes; MiB-sized token buffers bypass it.
                    let w = FileWriter::try_new(BufWriter::with_capacity(256 << 10, f), &schema).map_err(|e| e.to_string())?;
                    cur = Some(OpenFile {
                        w,
                        path,
                        name: format!("{split}/{file_name}"),
                        rows: 0,
                    });
                }
                if let Some(f) = cur.as_mut() {
                    f.w.write(&batch).map_err(|e| format!("cannot write {}: {e}", f.path.display()))?;
                    f.rows += batch.num_rows() as u64;
                }
            }
            Msg::EndFile => {
                if let Some(f) = cur.take() {
                    close(f, &mut files)?;
                }
            }
        }
    }
    if let Some(f) = cur.take() {
        close(f, &mut files)?;
    }
    Ok(files)
}

/// Writes one split's rows into `<dir>/<split>/part-NNNNN.arrow`.
///
/// The caller's thread builds and hashes batches (hashing on the rayon
/// pool) while a thread of its own writes and syncs the files, so disk
/// time overlaps packing; at most two batches wait between them.
pub struct SplitWriter {
    rows_per_file: u64,
    schema: SchemaRef,
    tx: Option<Sender<Msg>>,
    handle: Option<JoinHandle<Result<Vec<FileInfo>, String>>>,
    /// Rows in the current file.
    in_file: u64,
    /// Rows written so far.
    pub rows: u64,
    /// Hash of the rows written, in order.
    pub hash: RowsHash,
}

impl SplitWriter {
    /// A writer for `split` under the artifact directory `dir`.
    pub fn new(dir: &Path, split: &str, rows_per_file: u64, schema: SchemaRef) -> Self {
        let (tx, rx) = bounded::<Msg>(2);
        let (d, s, sc) = (dir.to_path_buf(), split.to_string(), schema.clone());
        let handle = std::thread::spawn(move || write_files(d, s, sc, rx));
        SplitWriter {
            rows_per_file: rows_per_file.max(1),
            schema,
            tx: Some(tx),
            handle: Some(handle),
            in_file: 0,
            rows: 0,
            hash: RowsHash::default(),
        }
    }

    /// The writing thread's result (its error, when a send failed).
    fn join(&mut self) -> Result<Vec<FileInfo>, PackError> {
        self.tx = None;
        match self.handle.take().map(JoinHandle::join) {
            Some(Ok(r)) => r.map_err(PackError::Failed),
            Some(Err(_)) => Err(PackError::Failed("the packed-file writer panicked".into())),
            None => Err(PackError::Failed("the packed-file writer already finished".into())),
        }
    }

    fn send(&mut self, m: Msg) -> Result<(), PackError> {
        let sent = self.tx.as_ref().is_some_and(|tx| tx.send(m).is_ok());
        if sent {
            return Ok(());
        }
        // The thread stopped: it failed, and says why.
        Err(self
            .join()
            .err()
            .unwrap_or_else(|| PackError::Failed("the packed-file writer stopped".into())))
    }

    /// Appends rows, starting a new file every `rows_per_file` rows.
    pub fn write(&mut self, mut block: RowBlock) -> Result<(), PackError> {
        while block.rows() > 0 {
            let room = (self.rows_per_file - self.in_file) as usize;
            let rest = (block.rows() > room).then(|| block.split_off(room));
            let n = block.rows() as u64;
            let batch = block.into_batch(&self.schema)?;
            for d in row_digests(&batch) {
                self.hash.push(&d);
            }
            self.send(Msg::Rows(batch))?;
            self.rows += n;
            self.in_file += n;
            if self.in_file == self.rows_per_file {
                self.send(Msg::EndFile)?;
                self.in_file = 0;
            }
            block = match rest {
                Some(r) => r,
                None => break,
            };
        }
        Ok(())
    }

    /// Waits for the files to be written and synced.
    pub fn finish(mut self) -> Result<(Vec<FileInfo>, u64, RowsHash), PackError> {
        let files = self.join()?;
        Ok((files, self.rows, self.hash))
    }
}

impl Drop for SplitWriter {
    fn drop(&mut self) {
        self.tx = None;
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(rows: usize, row_len: usize) -> RowBlock {
        let mut b = RowBlock::new(row_len, true, rows);
        for r in 0..rows {
            b.starts.push(0);
            b.starts.push(r as u32 % row_len as u32);
            b.tokens.extend((0..row_len).map(|i| (r * row_len + i) as u32));
            if let Some(m) = b.mask.as_mut() {
                m.extend((0..row_len).map(|i| (i % 2) as u8));
            }
            b.end_row();
        }
        b
    }

    #[test]
    fn files_hold_rows_per_file_rows_and_hashes_ignore_the_cut() {
        let d = tempfile::tempdir().unwrap();
        let s = schema(4, true);
        let mut w = SplitWriter::new(d.path(), "train", 3, s.clone());
        let mut b = block(7, 4);
        let tail = b.split_off(5);
        w.write(b).unwrap();
        w.write(tail).unwrap();
        let (files, rows, hash) = w.finish().unwrap();
        assert_eq!(rows, 7);
        assert_eq!(files.iter().map(|f| f.rows).collect::<Vec<_>>(), vec![3, 3, 1]);
        assert_eq!(files[0].name, "train/part-00000.arrow");
        let mut h = RowsHash::default();
        for dg in row_digests(&block(7, 4).into_batch(&s).unwrap()) {
            h.push(&dg);
        }
        assert_eq!(h, hash);
        let f = File::open(d.path().join(&files[1].name)).unwrap();
        let r = arrow::ipc::reader::FileReader::try_new(f, None).unwrap();
        let batches: Vec<RecordBatch> = r.map(|b| b.unwrap()).collect();
        let t = batches[0].column(0).as_fixed_size_list().value(0);
        assert_eq!(
            t.as_primitive::<arrow::datatypes::UInt32Type>().values().to_vec(),
            vec![12, 13, 14, 15]
        );
        let starts = batches[0].column(2).as_list::<i32>().value(0);
        assert_eq!(starts.as_primitive::<arrow::datatypes::UInt32Type>().values().to_vec(), vec![0, 3]);
    }
}
