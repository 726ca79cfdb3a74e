//! The documents the packers read: token ids (and loss masks) laid out flat,
//! addressed by document index.
//!
//! A `tokens` artifact is Parquet, which cannot be read at random, yet a
//! shuffled packing visits documents in random order. So the first pass
//! decodes every input file once into a flat spill file of native-endian
//! `u32` ids (and one of `u8` masks) next to the output, memory-maps it, and
//! keeps only the per-document offsets (8 bytes a document) in memory. The
//! operating system pages ids in and out as packing touches them, so a few
//! GB of tokens pack on a machine with less free memory than that.

use super::{PackError, Progress};
use arrow::array::{Array, AsArray, GenericListArray, OffsetSizeTrait};
use arrow::buffer::{Buffer, ScalarBuffer};
use arrow::datatypes::{DataType, UInt8Type, UInt32Type};
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use rayon::prelude::*;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// One run of documents stored contiguously.
#[derive(Debug, Clone)]
struct Segment {
    tokens: ScalarBuffer<u32>,
    mask: Option<ScalarBuffer<u8>>,
    /// `offsets[i]..offsets[i + 1]` are document `i`'s tokens.
    offsets: Vec<u64>,
}

/// Documents addressed by index `0..count()`, in input order.
#[derive(Debug, Clone, Default)]
pub struct DocStore {
    segments: Vec<Segment>,
    /// Index of each segment's first document.
    first_doc: Vec<u32>,
    count: u32,
    has_mask: bool,
}

/// Facts gathered while reading the input.
#[derive(Debug, Clone, Copy, Default)]
pub struct InputFacts {
    /// Documents read (rows).
    pub docs: u64,
    /// Tokens read.
    pub tokens: u64,
    /// Rows whose `input_ids` was null or empty.
    pub empty_docs: u64,
    /// The largest token id seen.
    pub max_id: Option<u32>,
}

impl DocStore {
    /// Documents from memory: `tokens` holds them back to back, `lengths`
    /// says how many tokens each has (tests, benchmarks, callers with their
    /// own data).
    pub fn from_vecs(tokens: Vec<u32>, mask: Option<Vec<u8>>, lengths: &[u32]) -> Result<DocStore, String> {
        let mut offsets = Vec::with_capacity(lengths.len() + 1);
        offsets.push(0u64);
        let mut end = 0u64;
        for &l in lengths {
            end += l as u64;
            offsets.push(end);
        }
        if end != tokens.len() as u64 || mask.as_ref().is_some_and(|m| m.len() != tokens.len()) {
            return Err(format!(
                "lengths add up to {end} tokens but {} ids (and {:?} mask values) were given",
                tokens.len(),
                mask.as_ref().map(Vec::len)
            ));
        }
        let mut s = DocStore::default();
        s.push(Segment {
            tokens: ScalarBuffer::from(tokens),
            mask: mask.map(ScalarBuffer::from),
            offsets,
        })?;
        Ok(s)
    }

    fn push(&mut self, seg: Segment) -> Result<(), String> {
        let n = seg.offsets.len().saturating_sub(1) as u64;
        let total = self.count as u64 + n;
        if total > u32::MAX as u64 {
            return Err(format!("more than {} documents; pack them in parts", u32::MAX));
        }
        self.has_mask |= seg.mask.is_some();
        self.first_doc.push(self.count);
        self.count = total as u32;
        self.segments.push(seg);
        Ok(())
    }

    /// Number of documents.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// Whether documents carry a loss mask.
    pub fn has_mask(&self) -> bool {
        self.has_mask
    }

    fn locate(&self, i: u32) -> (&Segment, usize) {
        // Few segments (one per input file): a binary search per document
        // costs nothing next to copying its tokens.
        let s = self.first_doc.partition_point(|&f| f <= i).saturating_sub(1);
        (&self.segments[s], (i - self.first_doc[s]) as usize)
    }

    /// Tokens of document `i`.
    pub fn len(&self, i: u32) -> usize {
        let (s, j) = self.locate(i);
        (s.offsets[j + 1] - s.offsets[j]) as usize
    }

    /// Whether there are no documents.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The ids of document `i`.
    pub fn tokens(&self, i: u32) -> &[u32] {
        let (s, j) = self.locate(i);
        &s.tokens[s.offsets[j] as usize..s.offsets[j + 1] as usize]
    }

    /// The loss mask of document `i` (`None` when the input has none;
    /// documents of files without one are all ones).
    pub fn mask(&self, i: u32) -> Option<&[u8]> {
        let (s, j) = self.locate(i);
        s.mask.as_ref().map(|m| &m[s.offsets[j] as usize..s.offsets[j + 1] as usize])
    }

    /// Reads the `input_ids` (and `loss_mask`) of Parquet `files` into
    /// spill files under `spill_dir`, one per input file, decoded on the
    /// rayon pool; the result maps them.
    pub fn spill(files: &[PathBuf], spill_dir: &Path, progress: &dyn Progress) -> Result<(DocStore, InputFacts), PackError> {
        std::fs::create_dir_all(spill_dir).map_err(|e| format!("cannot create {}: {e}", spill_dir.display()))?;
        let has_mask = files.iter().try_fold(false, |acc, f| Ok::<_, String>(acc || file_has_mask(f)?))?;
        let parts: Vec<(Segment, InputFacts)> = files
            .par_iter()
            .enumerate()
            .map(|(i, f)| spill_file(f, &spill_dir.join(format!("seg-{i:05}")), has_mask, progress))
            .collect::<Result<_, _>>()?;
        let mut store = DocStore::default();
        let mut facts = InputFacts::default();
        for (seg, f) in parts {
            store.push(seg)?;
            facts.docs += f.docs;
            facts.tokens += f.tokens;
            facts.empty_docs += f.empty_docs;
            facts.max_id = facts.max_id.max(f.max_id);
        }
        // A file whose schema has no mask still gets an all-ones mask, so
        // every segment agrees with `has_mask`.
        store.has_mask = has_mask;
        Ok((store, facts))
    }
}

fn open_parquet(path: &Path) -> Result<ParquetRecordBatchReaderBuilder<File>, String> {
    let f = File::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    ParquetRecordBatchReaderBuilder::try_new(f).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

fn file_has_mask(path: &Path) -> Result<bool, String> {
    Ok(open_parquet(path)?.schema().column_with_name("loss_mask").is_some())
}

/// Where one spill file is being written.
struct SpillOut {
    path: PathBuf,
    w: BufWriter<File>,
    len: u64,
}

impl SpillOut {
    fn create(path: PathBuf) -> Result<Self, String> {
        // Readable too: the finished file is mapped through this handle.
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
        Ok(SpillOut {
            path,
            w: BufWriter::with_capacity(1 << 20, f),
            len: 0,
        })
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.len += bytes.len() as u64;
        self.w
            .write_all(bytes)
            .map_err(|e| format!("cannot write {}: {e}", self.path.display()))
    }

    /// Finishes the file, maps it and unlinks it: the mapping keeps the
    /// data alive, and nothing is left behind however the process ends.
    fn map(self) -> Result<Buffer, String> {
        let f = self
            .w
            .into_inner()
            .map_err(|e| format!("cannot write {}: {e}", self.path.display()))?;
        if self.len == 0 {
            let _ = std::fs::remove_file(&self.path);
            return Ok(Buffer::from_vec(Vec::<u32>::new()));
        }
        // SAFETY: the file was created by this function in the node's own
        // scratch directory and is unlinked right after, so nothing else
        // writes to it while it is mapped.
        let mmap = unsafe { memmap2::Mmap::map(&f) }.map_err(|e| format!("cannot map {}: {e}", self.path.display()))?;
        let _ = std::fs::remove_file(&self.path);
        Ok(Buffer::from(bytes::Bytes::from_owner(mmap)))
    }
}

/// The list column `name`, as a list of `u32`/`u8` values, or why not.
fn list_of<'a>(
    batch: &'a arrow::record_batch::RecordBatch,
    name: &str,
    item: &DataType,
    path: &Path,
) -> Result<Option<&'a dyn Array>, String> {
    let Some(col) = batch.column_by_name(name) else { return Ok(None) };
    match col.data_type() {
        DataType::List(f) | DataType::LargeList(f) if f.data_type() == item => Ok(Some(col.as_ref())),
        t => Err(format!(
            "{}: column `{name}` is {t}, expected List<{item}>; is this a `tokens` artifact?",
            path.display()
        )),
    }
}

fn spill_file(path: &Path, base: &Path, has_mask: bool, progress: &dyn Progress) -> Result<(Segment, InputFacts), PackError> {
    let b = open_parquet(path)?;
    let arrow_schema = b.schema().clone();
    let roots: Vec<usize> = ["input_ids", "loss_mask"]
        .iter()
        .filter_map(|n| arrow_schema.index_of(n).ok())
        .collect();
    if arrow_schema.index_of("input_ids").is_err() {
        return Err(PackError::Failed(format!(
            "{}: no `input_ids` column; pack reads the output of `tokenize`",
            path.display()
        )));
    }
    let mask_proj = ProjectionMask::roots(b.parquet_schema(), roots);
    let reader = b
        .with_projection(mask_proj)
        .with_batch_size(4096)
        .build()
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut toks = SpillOut::create(base.with_extension("tokens"))?;
    let mut mask = if has_mask {
        Some(SpillOut::create(base.with_extension("mask"))?)
    } else {
        None
    };
    let mut offsets = vec![0u64];
    let mut facts = InputFacts::default();
    for batch in reader {
        if progress.cancelled() {
            return Err(PackError::Cancelled);
        }
        let batch = batch.map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let ids = list_of(&batch, "input_ids", &DataType::UInt32, path)?;
        let m = list_of(&batch, "loss_mask", &DataType::UInt8, path)?;
        let ids = ids.ok_or_else(|| format!("{}: no `input_ids` column", path.display()))?;
        let first = offsets.len() - 1;
        match ids.data_type() {
            DataType::List(_) => spill_ids(ids.as_list::<i32>(), &mut toks, &mut offsets, &mut facts, path)?,
            _ => spill_ids(ids.as_list::<i64>(), &mut toks, &mut offsets, &mut facts, path)?,
        }
        if let Some(out) = mask.as_mut() {
            let lens: Vec<u64> = offsets[first..].windows(2).map(|w| w[1] - w[0]).collect();
            match m {
                Some(m) if matches!(m.data_type(), DataType::List(_)) => spill_mask(m.as_list::<i32>(), &lens, out, path, first)?,
                Some(m) => spill_mask(m.as_list::<i64>(), &lens, out, path, first)?,
                None => out.write(&vec![1u8; lens.iter().sum::<u64>() as usize])?,
            }
        }
        progress.inc(batch.num_rows() as u64);
    }
    let n = *offsets.last().unwrap_or(&0);
    let tokens = toks.map()?;
    let seg = Segment {
        tokens: ScalarBuffer::new(tokens, 0, n as usize),
        mask: match mask {
            Some(m) => Some(ScalarBuffer::new(m.map()?, 0, n as usize)),
            None => None,
        },
        offsets,
    };
    Ok((seg, facts))
}

fn spill_ids<O: OffsetSizeTrait>(
    list: &GenericListArray<O>,
    out: &mut SpillOut,
    offsets: &mut Vec<u64>,
    facts: &mut InputFacts,
    path: &Path,
) -> Result<(), String> {
    let values = list.values().as_primitive::<UInt32Type>();
    if values.null_count() > 0 {
        return Err(format!("{}: `input_ids` holds null token ids", path.display()));
    }
    let vals: &[u32] = values.values();
    let offs = list.value_offsets();
    let start = *offsets.last().unwrap_or(&0);
    let mut end = start;
    let mut write_range = |a: usize, b: usize, out: &mut SpillOut| -> Result<(), String> {
        let s = &vals[a..b];
        if let Some(&m) = s.iter().max() {
            facts.max_id = facts.max_id.max(Some(m));
        }
        out.write(&values.values().inner().as_slice()[a * 4..b * 4])
    };
    if list.null_count() == 0 {
        // One write for the whole batch: the values are already contiguous.
        write_range(offs[0].as_usize(), offs[list.len()].as_usize(), out)?;
    }
    for i in 0..list.len() {
        let (a, b) = (offs[i].as_usize(), offs[i + 1].as_usize());
        let len = if list.is_valid(i) { b - a } else { 0 };
        if list.null_count() > 0 && len > 0 {
            write_range(a, b, out)?;
        }
        if len == 0 {
            facts.empty_docs += 1;
        }
        end += len as u64;
        offsets.push(end);
    }
    facts.docs += list.len() as u64;
    facts.tokens += end - start;
    Ok(())
}

fn spill_mask<O: OffsetSizeTrait>(
    list: &GenericListArray<O>,
    lens: &[u64],
    out: &mut SpillOut,
    path: &Path,
    first_doc: usize,
) -> Result<(), String> {
    let values = list.values().as_primitive::<UInt8Type>();
    let bytes = values.values();
    let offs = list.value_offsets();
    for (i, &want) in lens.iter().enumerate() {
        if !list.is_valid(i) {
            // A document without a mask is trained on everywhere.
            out.write(&vec![1u8; want as usize])?;
            continue;
        }
        let (a, b) = (offs[i].as_usize(), offs[i + 1].as_usize());
        if (b - a) as u64 != want {
            return Err(format!(
                "{}: document {} has {} loss_mask values but {want} input_ids; the two must match",
                path.display(),
                first_doc + i,
                b - a
            ));
        }
        out.write(&bytes[a..b])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_memory_documents_are_addressed_by_index() {
        let d = DocStore::from_vecs(vec![1, 2, 3, 4, 5, 6], Some(vec![1, 1, 0, 1, 0, 1]), &[2, 0, 4]).unwrap();
        assert_eq!(d.count(), 3);
        assert_eq!(d.tokens(0), &[1, 2]);
        assert_eq!(d.len(1), 0);
        assert_eq!(d.tokens(2), &[3, 4, 5, 6]);
        assert_eq!(d.mask(2), Some(&[0, 1, 0, 1][..]));
        assert!(DocStore::from_vecs(vec![1], None, &[2]).is_err());
    }
}
