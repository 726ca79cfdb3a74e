//! `bestfit`: every row starts at a document start. Documents are laid into
//! rows of `seq_len + 1` by best-fit decreasing (Johnson 1973; the "BFD"
//! packing of Ding et al. 2024, "Fewer Truncations Improve Language
//! Modeling"), and the rest of each row is `pad_id` with loss mask 0.
//!
//! A document longer than a row is cropped to its first `row_len` tokens
//! (`crop: true`) or cut into full rows plus a remainder that is packed like
//! any other document (`crop: false`).
//!
//! Memory: packing works window by window. A window is a run of documents
//! in split order holding about [`WINDOW_TOKENS`] tokens; only their
//! lengths and the piece layout (about 20 bytes a piece) are held while it
//! is planned, and token ids are read from the memory-mapped documents only
//! when rows are written. Windowing costs a few partly filled rows per
//! window, a negligible share of 16M tokens (the benchmark measures 0.9999
//! utilisation), and avoids what a global packing does: ordering the whole
//! output by document length. Windows are planned in parallel and written
//! in order, so the rows do not depend on the thread count.

use super::docs::DocStore;
use super::rows::{RowBlock, block_rows};
use super::{PackError, Progress, SplitStats};
use rayon::prelude::*;

/// Tokens per packing window (at least [`WINDOW_ROWS`] rows' worth).
pub const WINDOW_TOKENS: u64 = 1 << 24;

/// Rows' worth of tokens a window holds at least, so that very long rows
/// still have many documents to choose from.
pub const WINDOW_ROWS: u64 = 256;

/// A run of one document's tokens placed in a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Piece {
    /// Document index.
    pub doc: u32,
    /// First token of the run within the document.
    pub start: u32,
    /// Tokens in the run.
    pub len: u32,
}

/// The rows of one window: `pieces[row_ends[i - 1]..row_ends[i]]` fill row `i`.
#[derive(Debug, Default)]
pub struct Plan {
    /// Pieces in row order.
    pub pieces: Vec<Piece>,
    /// End of each row's pieces.
    pub row_ends: Vec<u32>,
    /// Counts (everything but `docs` and `tokens_in`, which the caller adds).
    pub stats: SplitStats,
}

/// Which open rows have exactly `c` free slots, for every `c`: a stack of
/// rows per capacity (linked through `next`) and a two-level bitset of the
/// non-empty stacks, so "the fullest row that still fits `len`" is a
/// find-next-set-bit away even for rows of a million tokens.
struct Free {
    head: Vec<u32>,
    next: Vec<u32>,
    words: Vec<u64>,
    summary: Vec<u64>,
}

const NONE: u32 = u32::MAX;

impl Free {
    fn new(row_len: usize) -> Self {
        let words = row_len / 64 + 1;
        Free {
            head: vec![NONE; row_len + 1],
            next: Vec::new(),
            words: vec![0; words],
            summary: vec![0; words / 64 + 1],
        }
    }

    fn push(&mut self, cap: usize, row: u32) {
        if self.next.len() <= row as usize {
            self.next.resize(row as usize + 1, NONE);
        }
        self.next[row as usize] = self.head[cap];
        self.head[cap] = row;
        self.words[cap / 64] |= 1 << (cap % 64);
        self.summary[cap / 4096] |= 1 << (cap / 64 % 64);
    }

    fn pop(&mut self, cap: usize) -> u32 {
        let row = self.head[cap];
        self.head[cap] = self.next[row as usize];
        if self.head[cap] == NONE {
            self.words[cap / 64] &= !(1 << (cap % 64));
            if self.words[cap / 64] == 0 {
                self.summary[cap / 4096] &= !(1 << (cap / 64 % 64));
            }
        }
        row
    }

    /// The smallest capacity `>= len` with an open row.
    fn fit(&self, len: usize) -> Option<usize> {
        let w = len / 64;
        let here = self.words.get(w)? & (u64::MAX << (len % 64));
        if here != 0 {
            return Some(w * 64 + here.trailing_zeros() as usize);
        }
        let first = w + 1;
        let mut s = first / 64;
        let mut bits = self.summary.get(s)? & (u64::MAX << (first % 64));
        loop {
            if bits != 0 {
                let wi = s * 64 + bits.trailing_zeros() as usize;
                return Some(wi * 64 + self.words[wi].trailing_zeros() as usize);
            }
            s += 1;
            bits = *self.summary.get(s)?;
        }
    }
}

/// Plans the rows of one window of documents (in split order).
pub fn plan(docs: &DocStore, window: &[u32], row_len: usize, crop: bool) -> Plan {
    let mut st = SplitStats::default();
    // Pieces in document order; the index is a piece's place in that order.
    let mut pieces: Vec<Piece> = Vec::with_capacity(window.len());
    // Per piece: its row (u32::MAX until placed).
    let mut row_of: Vec<u32> = Vec::with_capacity(window.len());
    let mut rows = 0u32;
    for &d in window {
        let len = docs.len(d);
        if len > row_len && crop {
            st.cropped += (len - row_len) as u64;
            st.docs_cropped += 1;
        } else if len > row_len {
            st.docs_split += 1;
        }
        let kept = if crop { len.min(row_len) } else { len };
        let mut start = 0;
        while start < kept {
            let n = (kept - start).min(row_len);
            pieces.push(Piece {
                doc: d,
                start: start as u32,
                len: n as u32,
            });
            // A full row needs no search: it is a row of its own.
            if n == row_len {
                row_of.push(rows);
                rows += 1;
            } else {
                row_of.push(NONE);
            }
            start += n;
        }
    }
    // Best-fit decreasing over the partial pieces: longest first (ties in
    // document order, so the plan is deterministic), each into the open row
    // with the least room that still fits it, else a new row.
    let mut order: Vec<u32> = (0..pieces.len() as u32).filter(|&p| row_of[p as usize] == NONE).collect();
    order.sort_unstable_by_key(|&p| (std::cmp::Reverse(pieces[p as usize].len), p));
    let mut free = Free::new(row_len);
    for p in order {
        let len = pieces[p as usize].len as usize;
        let (row, left) = match free.fit(len) {
            Some(cap) => (free.pop(cap), cap - len),
            None => {
                rows += 1;
                (rows - 1, row_len - len)
            }
        };
        row_of[p as usize] = row;
        if left > 0 {
            free.push(left, row);
        }
    }
    // Rows in the order of their first document and, within a row, pieces
    // in document order: with `shuffle: false` the output follows the
    // input, and it is never sorted by length.
    let mut rank = vec![NONE; rows as usize];
    let mut next_rank = 0u32;
    let mut count = vec![0u32; rows as usize + 1];
    for &r in &row_of {
        if rank[r as usize] == NONE {
            rank[r as usize] = next_rank;
            next_rank += 1;
        }
        count[rank[r as usize] as usize + 1] += 1;
    }
    for i in 1..count.len() {
        count[i] += count[i - 1];
    }
    let row_ends = count[1..].to_vec();
    let mut out = vec![Piece { doc: 0, start: 0, len: 0 }; pieces.len()];
    for (p, &r) in pieces.iter().zip(&row_of) {
        let slot = &mut count[rank[r as usize] as usize];
        out[*slot as usize] = *p;
        *slot += 1;
    }
    st.rows = rows as u64;
    st.tokens_out = out.iter().map(|p| p.len as u64).sum();
    st.padding = st.rows * row_len as u64 - st.tokens_out;
    Plan {
        pieces: out,
        row_ends,
        stats: st,
    }
}

/// Writes a plan's rows into `block`, emitting it whenever it is full.
fn fill(
    docs: &DocStore,
    plan: &Plan,
    row_len: usize,
    pad_id: u32,
    block: &mut RowBlock,
    emit: &mut dyn FnMut(RowBlock) -> Result<(), PackError>,
) -> Result<(), PackError> {
    let mut begin = 0usize;
    for &end in &plan.row_ends {
        let mut at = 0u32;
        for p in &plan.pieces[begin..end as usize] {
            let (a, b) = (p.start as usize, (p.start + p.len) as usize);
            block.starts.push(at);
            block.tokens.extend_from_slice(&docs.tokens(p.doc)[a..b]);
            if let Some(out) = block.mask.as_mut() {
                match docs.mask(p.doc) {
                    Some(m) => out.extend_from_slice(&m[a..b]),
                    None => out.resize(out.len() + p.len as usize, 1),
                }
            }
            at += p.len;
        }
        let full = block.tokens.len() + row_len - at as usize;
        block.tokens.resize(full, pad_id);
        if let Some(out) = block.mask.as_mut() {
            out.resize(full, 0);
        }
        block.end_row();
        begin = end as usize;
        if block.rows() == block_rows(row_len) {
            let cap = block_rows(row_len);
            emit(std::mem::replace(block, RowBlock::new(row_len, true, cap)))?;
        }
    }
    Ok(())
}

/// Tokens per window for rows of `row_len`.
pub fn window_tokens(row_len: usize) -> u64 {
    WINDOW_TOKENS.max(WINDOW_ROWS * row_len as u64)
}

/// Packs documents `order` of `docs` into rows of `row_len` tokens by
/// best-fit decreasing in windows of about `window` tokens (see
/// [`window_tokens`]), handing each full block of rows to `emit`. Rows
/// always carry a loss mask, since padding must not be trained on.
#[allow(clippy::too_many_arguments)]
pub fn bestfit(
    docs: &DocStore,
    order: &[u32],
    row_len: usize,
    crop: bool,
    pad_id: u32,
    window: u64,
    progress: &dyn Progress,
    emit: &mut dyn FnMut(RowBlock) -> Result<(), PackError>,
) -> Result<SplitStats, PackError> {
    // Window boundaries from lengths alone (cheap, serial).
    let mut windows = Vec::new();
    let (mut begin, mut acc) = (0usize, 0u64);
    for (i, &d) in order.iter().enumerate() {
        let len = docs.len(d);
        acc += if crop { len.min(row_len) } else { len } as u64;
        if acc >= window {
            windows.push(begin..i + 1);
            (begin, acc) = (i + 1, 0);
        }
    }
    if begin < order.len() {
        windows.push(begin..order.len());
    }
    let mut st = SplitStats {
        docs: order.len() as u64,
        tokens_in: order.iter().map(|&d| docs.len(d) as u64).sum(),
        ..Default::default()
    };
    let mut block = RowBlock::new(row_len, true, block_rows(row_len));
    // A few windows per thread at a time: parallel planning, bounded memory.
    let group = rayon::current_num_threads().max(1) * 2;
    for ws in windows.chunks(group) {
        if progress.cancelled() {
            return Err(PackError::Cancelled);
        }
        let plans: Vec<Plan> = ws.par_iter().map(|w| plan(docs, &order[w.clone()], row_len, crop)).collect();
        for (p, w) in plans.iter().zip(ws) {
            fill(docs, p, row_len, pad_id, &mut block, emit)?;
            st.add(&p.stats);
            progress.inc(w.len() as u64);
        }
    }
    if block.rows() > 0 {
        emit(block)?;
    }
    Ok(st)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pack::NoProgress;

    /// Documents whose ids encode (doc, position): doc d, token j = d * 10000 + j.
    fn docs(lengths: &[u32]) -> DocStore {
        let ids: Vec<u32> = lengths
            .iter()
            .enumerate()
            .flat_map(|(d, &l)| (0..l).map(move |j| d as u32 * 10_000 + j))
            .collect();
        DocStore::from_vecs(ids, None, lengths).unwrap()
    }

    fn run(d: &DocStore, row_len: usize, crop: bool) -> (Vec<RowBlock>, SplitStats) {
        run_in(d, row_len, crop, window_tokens(row_len))
    }

    fn run_in(d: &DocStore, row_len: usize, crop: bool, window: u64) -> (Vec<RowBlock>, SplitStats) {
        let order: Vec<u32> = (0..d.count()).collect();
        let mut blocks = Vec::new();
        let st = bestfit(d, &order, row_len, crop, 7777, window, &NoProgress, &mut |b| {
            blocks.push(b);
            Ok(())
        })
        .unwrap();
        (blocks, st)
    }

    fn lengths(n: usize, max: u32) -> Vec<u32> {
        (0..n).map(|i| ((i as u64 * 2_654_435_761) % max as u64) as u32 + 1).collect()
    }

    #[test]
    fn rows_start_at_documents_and_keep_every_token() {
        let row_len = 64;
        let ls = lengths(5000, 60);
        let d = docs(&ls);
        // Small windows: many of them, planned in parallel.
        let (blocks, st) = run_in(&d, row_len, true, 4096);
        let mut seen = vec![0u32; ls.len()];
        let mut real = 0u64;
        for b in &blocks {
            assert_eq!(b.tokens.len(), b.rows() * row_len);
            for r in 0..b.rows() {
                let row = &b.tokens[r * row_len..(r + 1) * row_len];
                let mask = &b.mask.as_ref().unwrap()[r * row_len..(r + 1) * row_len];
                let starts = &b.starts[b.start_offsets[r] as usize..b.start_offsets[r + 1] as usize];
                assert_eq!(starts[0], 0, "every row starts at a document start");
                assert_eq!(row[0] % 10_000, 0);
                for (k, &s) in starts.iter().enumerate() {
                    let end = starts
                        .get(k + 1)
                        .map_or_else(|| row.iter().position(|&t| t == 7777).unwrap_or(row_len), |&e| e as usize);
                    let doc = row[s as usize] / 10_000;
                    let want: Vec<u32> = (0..ls[doc as usize]).map(|j| doc * 10_000 + j).collect();
                    assert_eq!(&row[s as usize..end], &want[..], "a whole document, in order");
                    seen[doc as usize] += 1;
                    real += (end - s as usize) as u64;
                }
                let used = mask.iter().filter(|&&m| m == 1).count();
                assert!(
                    row[used..].iter().all(|&t| t == 7777) && mask[used..].iter().all(|&m| m == 0),
                    "padding is masked"
                );
            }
        }
        assert!(seen.iter().all(|&c| c == 1), "every document exactly once");
        let total: u64 = ls.iter().map(|&l| l as u64).sum();
        assert_eq!((real, st.tokens_out, st.cropped), (total, total, 0));
        assert_eq!(st.tokens_out + st.padding, st.rows * row_len as u64);
        assert!(st.utilisation() > 0.95, "BFD packs tightly: {}", st.utilisation());
    }

    #[test]
    fn long_documents_are_cropped_or_split() {
        let ls = [10u32, 25, 8, 3];
        let d = docs(&ls);
        let (blocks, st) = run(&d, 8, true);
        assert_eq!((st.cropped, st.docs_cropped, st.tokens_out), (2 + 17, 2, 8 + 8 + 8 + 3));
        assert_eq!(st.rows, 4);
        let (blocks2, st2) = run(&d, 8, false);
        assert_eq!((st2.cropped, st2.docs_split, st2.tokens_out), (0, 2, 46));
        // 10 = 8 + 2, 25 = 8 * 3 + 1 and 8: five full rows; 3 + 2 + 1 share one.
        assert_eq!(st2.rows, 6);
        let toks: Vec<u32> = blocks2.iter().flat_map(|b| b.tokens.clone()).filter(|&t| t != 7777).collect();
        let mut sorted = toks.clone();
        sorted.sort();
        let mut want: Vec<u32> = ls
            .iter()
            .enumerate()
            .flat_map(|(d, &l)| (0..l).map(move |j| d as u32 * 10_000 + j))
            .collect();
        want.sort();
        assert_eq!(sorted, want, "splitting loses nothing");
        assert_eq!(st.utilisation(), 27.0 / 32.0);
        assert!(blocks.iter().all(|b| b.mask.is_some()));
    }

    #[test]
    fn windows_give_the_same_rows_on_any_thread_count() {
        let d = docs(&lengths(4000, 200));
        let runs: Vec<_> = [1, 2, 3]
            .iter()
            .map(|&t| {
                let pool = rayon::ThreadPoolBuilder::new().num_threads(t).build().unwrap();
                let (blocks, st) = pool.install(|| run_in(&d, 128, false, 3000));
                (blocks.into_iter().map(|b| (b.tokens, b.starts)).collect::<Vec<_>>(), st)
            })
            .collect();
        assert!(runs.windows(2).all(|w| w[0] == w[1]));
        assert!(runs[0].1.rows > 100);
    }

    #[test]
    fn free_rows_find_the_best_fit() {
        let mut f = Free::new(5000);
        assert_eq!(f.fit(1), None);
        f.push(3, 0);
        f.push(4500, 1);
        f.push(70, 2);
        assert_eq!(f.fit(2), Some(3));
        assert_eq!(f.fit(4), Some(70));
        assert_eq!(f.fit(71), Some(4500));
        assert_eq!(f.fit(4501), None);
        assert_eq!(f.pop(70), 2);
        assert_eq!(f.fit(4), Some(4500));
        assert_eq!(f.pop(4500), 1);
        assert_eq!(f.fit(4), None);
    }
}
