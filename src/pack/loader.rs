//! The training-side reader of a `packed` artifact: batches of `[B, T+1]`
//! rows straight out of memory-mapped Arrow IPC files.
//!
//! The files are mapped and decoded with Arrow's zero-copy `FileDecoder`, so
//! opening reads only the footers and every row is a slice of the page
//! cache; a batch is `B` copies of `T+1` ids. Each epoch visits the rows in a
//! seeded permutation (computed serially: the same for any thread count),
//! and rank `r` of `world` takes positions `r, r + world, r + 2·world, ...`
//! of it, like PyTorch's `DistributedSampler`. Each rank gets
//! `rows / world` rows an epoch and `rows / world / B` batches; the few rows
//! left over differ from epoch to epoch, so none is skipped for good, and
//! every batch has the same shape, which data-parallel training needs.
//! A [`Position`] (epoch, step) says where a loader is; [`Loader::resume`]
//! continues from one exactly.

use super::shuffle::permutation;
use crate::exec::store;
use crate::spec::Kind;
use arrow::array::AsArray;
use arrow::buffer::{Buffer, OffsetBuffer, ScalarBuffer};
use arrow::datatypes::{UInt8Type, UInt32Type};
use arrow::ipc::reader::{FileDecoder, read_footer_length};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::Arc;

/// Why a packed artifact cannot be loaded.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct LoadError(pub String);

impl From<String> for LoadError {
    fn from(s: String) -> Self {
        LoadError(s)
    }
}

/// Where a loader is: the next batch is step `step` of epoch `epoch`.
/// Save it with a checkpoint; [`Loader::resume`] continues from it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    /// Epoch (0-based).
    pub epoch: u64,
    /// Batch within the epoch (0-based).
    pub step: u64,
}

/// One batch: `B` rows of `T+1` tokens, row-major.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Batch {
    /// Token ids, `[B, T+1]`: inputs are `row[..T]`, targets `row[1..]`.
    pub tokens: Vec<u32>,
    /// Loss mask, `[B, T+1]` (1 = trained on), when the artifact has one.
    pub loss_mask: Option<Vec<u8>>,
    /// Document start positions of all rows, flat.
    pub doc_starts: Vec<u32>,
    /// `doc_starts[doc_offsets[i]..doc_offsets[i + 1]]` belong to row `i`.
    pub doc_offsets: Vec<u32>,
    /// The artifact rows (split-relative) the batch holds, in order.
    pub rows: Vec<u64>,
    /// Where this batch is in the stream.
    pub position: Position,
}

impl Batch {
    /// Row `i`'s tokens.
    pub fn row(&self, i: usize) -> &[u32] {
        let n = self.tokens.len() / self.rows.len().max(1);
        &self.tokens[i * n..(i + 1) * n]
    }

    /// Row `i`'s document start positions.
    pub fn starts(&self, i: usize) -> &[u32] {
        &self.doc_starts[self.doc_offsets[i] as usize..self.doc_offsets[i + 1] as usize]
    }
}

/// One record batch of a mapped file.
struct Chunk {
    tokens: ScalarBuffer<u32>,
    mask: Option<ScalarBuffer<u8>>,
    starts: OffsetBuffer<i32>,
    start_values: ScalarBuffer<u32>,
}

/// Reads batches of one split of a packed artifact.
pub struct Loader {
    maps: Vec<Buffer>,
    chunks: Vec<Chunk>,
    /// First split-relative row of each chunk.
    chunk_first: Vec<u64>,
    rows: u64,
    row_len: usize,
    batch_size: usize,
    rank: usize,
    world: usize,
    seed: u64,
    shuffle: bool,
    pos: Position,
    /// The epoch order of `order_epoch`.
    order: Vec<u64>,
    order_epoch: Option<u64>,
    has_mask: bool,
}

/// Maps `path` and decodes its record batches without copying them.
fn map_file(path: &Path, row_len: usize) -> Result<(Buffer, Vec<Chunk>), LoadError> {
    let shown = path.display();
    let f = std::fs::File::open(path).map_err(|e| format!("cannot open {shown}: {e}"))?;
    // SAFETY: artifacts are written in scratch and renamed into place, and
    // nothing writes to a finished artifact; replacing it renames a new
    // directory over it, which leaves this mapping's inode intact.
    let mmap = unsafe { memmap2::Mmap::map(&f) }.map_err(|e| format!("cannot map {shown}: {e}"))?;
    let buf = Buffer::from(bytes::Bytes::from_owner(mmap));
    let bad = |why: String| LoadError(format!("{shown} is not a packed Arrow IPC file: {why}"));
    let n = buf.len();
    if n < 16 {
        return Err(bad("too short".into()));
    }
    let mut tail = [0u8; 10];
    tail.copy_from_slice(&buf[n - 10..]);
    let footer_len = read_footer_length(tail).map_err(|e| bad(e.to_string()))?;
    let footer_start = (n - 10)
        .checked_sub(footer_len)
        .ok_or_else(|| bad("footer longer than the file".into()))?;
    let footer = arrow::ipc::root_as_footer(&buf[footer_start..n - 10]).map_err(|e| bad(e.to_string()))?;
    let fb_schema = footer.schema().ok_or_else(|| bad("no schema".into()))?;
    let schema = arrow::ipc::convert::try_fb_to_schema(fb_schema).map_err(|e| bad(e.to_string()))?;
    // Alignment required: a misaligned buffer would be copied silently; kiln
    // writes 64-byte aligned files, so anything else is an error to report.
    let decoder = FileDecoder::new(Arc::new(schema), footer.version()).with_require_alignment(true);
    let mut chunks = Vec::new();
    for block in footer.recordBatches().into_iter().flatten() {
        let len = block.bodyLength() as usize + block.metaDataLength() as usize;
        let off = block.offset() as usize;
        if off.checked_add(len).is_none_or(|e| e > n) {
            return Err(bad("a record batch lies outside the file".into()));
        }
        let Some(b) = decoder
            .read_record_batch(block, &buf.slice_with_length(off, len))
            .map_err(|e| bad(e.to_string()))?
        else {
            continue;
        };
        let fixed = |name: &str| {
            b.column_by_name(name)
                .and_then(|c| c.as_fixed_size_list_opt())
                .filter(|l| l.value_length() as usize == row_len)
        };
        let tokens = fixed("tokens")
            .and_then(|l| l.values().as_primitive_opt::<UInt32Type>())
            .ok_or_else(|| bad(format!("no `tokens: FixedSizeList<UInt32>[{row_len}]` column")))?;
        let mask = fixed("loss_mask").and_then(|l| l.values().as_primitive_opt::<UInt8Type>());
        let starts = b
            .column_by_name("doc_starts")
            .and_then(|c| c.as_list_opt::<i32>())
            .ok_or_else(|| bad("no `doc_starts: List<UInt32>` column".into()))?;
        let start_values = starts
            .values()
            .as_primitive_opt::<UInt32Type>()
            .ok_or_else(|| bad("`doc_starts` is not a list of UInt32".into()))?;
        if tokens.len() != b.num_rows() * row_len {
            return Err(bad("`tokens` holds the wrong number of values".into()));
        }
        chunks.push(Chunk {
            tokens: tokens.values().clone(),
            mask: mask.map(|m| m.values().clone()),
            starts: starts.offsets().clone(),
            start_values: start_values.values().clone(),
        });
    }
    Ok((buf, chunks))
}

impl Loader {
    /// Opens split `split` (`train`, `val`) of the packed artifact in `dir`
    /// for rank `rank` of `world`, `batch_size` rows a batch, epoch orders
    /// drawn from `seed`.
    pub fn open(dir: &Path, split: &str, batch_size: usize, rank: usize, world: usize, seed: u64) -> Result<Loader, LoadError> {
        if batch_size == 0 || world == 0 || rank >= world {
            return Err(LoadError(format!(
                "batch_size {batch_size}, rank {rank}, world {world}: need batch_size >= 1 and rank < world"
            )));
        }
        let a = store::load(dir).ok_or_else(|| format!("{} is not a finished artifact (no readable manifest.json)", dir.display()))?;
        if a.manifest.kind != Kind::Packed {
            return Err(LoadError(format!(
                "{} is a `{}` artifact; the loader reads `packed` ones (the output of `pack`)",
                dir.display(),
                a.manifest.kind.name()
            )));
        }
        let extra = &a.manifest.extra;
        let seq_len = extra
            .get("seq_len")
            .and_then(|v| v.as_u64())
            .ok_or_else(|| "manifest extra has no `seq_len`".to_string())?;
        let splits = extra.get("splits").and_then(|v| v.as_object());
        let names = splits.and_then(|s| s.get(split)).and_then(|v| v.as_array()).ok_or_else(|| {
            let known: Vec<&String> = splits.map(|s| s.keys().collect()).unwrap_or_default();
            format!("{} has no split `{split}`; it has {known:?}", dir.display())
        })?;
        let row_len = seq_len as usize + 1;
        let mut l = Loader {
            maps: Vec::new(),
            chunks: Vec::new(),
            chunk_first: Vec::new(),
            rows: 0,
            row_len,
            batch_size,
            rank,
            world,
            seed,
            shuffle: true,
            pos: Position::default(),
            order: Vec::new(),
            order_epoch: None,
            has_mask: true,
        };
        for name in names {
            let name = name
                .as_str()
                .ok_or_else(|| "manifest extra `splits` holds a non-string file name".to_string())?;
            let (buf, chunks) = map_file(&a.dir.join(name), row_len)?;
            l.maps.push(buf);
            for c in chunks {
                l.has_mask &= c.mask.is_some();
                l.chunk_first.push(l.rows);
                l.rows += (c.tokens.len() / row_len) as u64;
                l.chunks.push(c);
            }
        }
        if l.steps_per_epoch() == 0 {
            return Err(LoadError(format!(
                "split `{split}` of {} has {} rows, fewer than batch_size × world = {}; lower the batch size",
                dir.display(),
                l.rows,
                batch_size * world
            )));
        }
        Ok(l)
    }

    /// Visits rows in file order every epoch instead of a seeded
    /// permutation (evaluation).
    pub fn in_order(mut self) -> Self {
        self.shuffle = false;
        self.order_epoch = None;
        self
    }

    /// Rows in the split.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Tokens per row (`seq_len + 1`).
    pub fn row_len(&self) -> usize {
        self.row_len
    }

    /// Whether batches carry a loss mask.
    pub fn has_loss_mask(&self) -> bool {
        self.has_mask
    }

    /// Batches per epoch for each rank.
    pub fn steps_per_epoch(&self) -> u64 {
        self.rows / self.world as u64 / self.batch_size as u64
    }

    /// Where the next batch comes from.
    pub fn position(&self) -> Position {
        self.pos
    }

    /// Continues from a saved position (of a loader opened with the same
    /// artifact, split, batch size, world and seed).
    pub fn resume(&mut self, pos: Position) -> Result<(), LoadError> {
        if pos.step >= self.steps_per_epoch() {
            return Err(LoadError(format!(
                "position {pos:?} is past the {} steps of an epoch; was it saved with another batch size or world size?",
                self.steps_per_epoch()
            )));
        }
        self.pos = pos;
        Ok(())
    }

    fn ensure_order(&mut self) {
        if self.order_epoch == Some(self.pos.epoch) {
            return;
        }
        self.order = if self.shuffle {
            permutation(self.rows, self.seed, "kiln.loader.epoch", self.pos.epoch)
        } else {
            (0..self.rows).collect()
        };
        self.order_epoch = Some(self.pos.epoch);
    }

    /// The next batch.
    pub fn next_batch(&mut self) -> Batch {
        let mut b = Batch::default();
        self.next_into(&mut b);
        b
    }

    /// The next batch, into `b`'s buffers (no allocation once they have
    /// grown to size).
    pub fn next_into(&mut self, b: &mut Batch) {
        self.ensure_order();
        b.tokens.clear();
        b.doc_starts.clear();
        b.doc_offsets.clear();
        b.doc_offsets.push(0);
        b.rows.clear();
        if self.has_mask {
            b.loss_mask.get_or_insert_with(Vec::new).clear();
        } else {
            b.loss_mask = None;
        }
        b.position = self.pos;
        let first = self.pos.step as usize * self.batch_size;
        for j in first..first + self.batch_size {
            let row = self.order[j * self.world + self.rank];
            let ci = self.chunk_first.partition_point(|&f| f <= row) - 1;
            let c = &self.chunks[ci];
            let r = (row - self.chunk_first[ci]) as usize;
            let span = r * self.row_len..(r + 1) * self.row_len;
            b.tokens.extend_from_slice(&c.tokens[span.clone()]);
            if let (Some(out), Some(m)) = (b.loss_mask.as_mut(), &c.mask) {
                out.extend_from_slice(&m[span]);
            }
            let (s, e) = (c.starts[r] as usize, c.starts[r + 1] as usize);
            b.doc_starts.extend_from_slice(&c.start_values[s..e]);
            b.doc_offsets.push(b.doc_starts.len() as u32);
            b.rows.push(row);
        }
        self.pos.step += 1;
        if self.pos.step == self.steps_per_epoch() {
            self.pos = Position {
                epoch: self.pos.epoch + 1,
                step: 0,
            };
        }
    }

    /// Whether every row is read from the mapped files (no copies made
    /// while decoding).
    pub fn is_zero_copy(&self) -> bool {
        self.chunks.iter().all(|c| {
            let p = c.tokens.inner().as_ptr() as usize;
            self.maps.iter().any(|m| {
                let base = m.as_ptr() as usize;
                (base..base + m.len()).contains(&p)
            })
        })
    }
}
