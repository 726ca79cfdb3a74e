//! `concat`: documents back to back, cut every `seq_len + 1` tokens (the
//! GPT-2 / nanoGPT recipe). Every token lands in a row in order, except the
//! final partial row, which is dropped and counted: padding it would put a
//! row of mostly padding into every epoch, and the loss of at most `seq_len`
//! tokens per split is what nanoGPT and Megatron accept too.
//!
//! It streams: one pass over the documents in split order, holding only the
//! block of rows being filled.

use super::docs::DocStore;
use super::rows::{RowBlock, block_rows};
use super::{PackError, Progress, SplitStats};

/// Packs documents `order` of `docs` into rows of `row_len` tokens, handing
/// each full block of rows to `emit`.
pub fn concat(
    docs: &DocStore,
    order: &[u32],
    row_len: usize,
    progress: &dyn Progress,
    emit: &mut dyn FnMut(RowBlock) -> Result<(), PackError>,
) -> Result<SplitStats, PackError> {
    let mut st = SplitStats::default();
    let cap = block_rows(row_len);
    let mut block = RowBlock::new(row_len, docs.has_mask(), cap);
    // Tokens in the row being filled.
    let mut fill = 0usize;
    let mut reported = 0usize;
    for (n, &d) in order.iter().enumerate() {
        let toks = docs.tokens(d);
        st.docs += 1;
        st.tokens_in += toks.len() as u64;
        if toks.is_empty() {
            continue;
        }
        let mask = docs.mask(d);
        block.starts.push(fill as u32);
        let mut off = 0;
        while off < toks.len() {
            let take = (row_len - fill).min(toks.len() - off);
            block.tokens.extend_from_slice(&toks[off..off + take]);
            if let (Some(out), Some(m)) = (block.mask.as_mut(), mask) {
                out.extend_from_slice(&m[off..off + take]);
            }
            fill += take;
            off += take;
            if fill == row_len {
                block.end_row();
                fill = 0;
                if block.rows() == cap {
                    let full = std::mem::replace(&mut block, RowBlock::new(row_len, docs.has_mask(), cap));
                    st.rows += full.rows() as u64;
                    emit(full)?;
                    if progress.cancelled() {
                        return Err(PackError::Cancelled);
                    }
                    progress.inc((n - reported) as u64);
                    reported = n;
                }
            }
        }
    }
    st.dropped = block.drop_partial() as u64;
    st.rows += block.rows() as u64;
    st.tokens_out = st.rows * row_len as u64;
    if block.rows() > 0 {
        emit(block)?;
    }
    progress.inc((order.len() - reported) as u64);
    Ok(st)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pack::NoProgress;

    fn docs(lengths: &[u32], mask: bool) -> DocStore {
        let n: u32 = lengths.iter().sum();
        let mask = mask.then(|| (0..n).map(|i| (i % 3 == 0) as u8).collect());
        DocStore::from_vecs((0..n).collect(), mask, lengths).unwrap()
    }

    fn run(d: &DocStore, order: &[u32], row_len: usize) -> (Vec<RowBlock>, SplitStats) {
        let mut blocks = Vec::new();
        let st = concat(d, order, row_len, &NoProgress, &mut |b| {
            blocks.push(b);
            Ok(())
        })
        .unwrap();
        (blocks, st)
    }

    #[test]
    fn all_tokens_in_order_and_the_tail_is_counted() {
        let lengths: Vec<u32> = (0..3000).map(|i| (i * 7919 % 23) as u32).collect();
        let d = docs(&lengths, true);
        let order: Vec<u32> = (0..3000).collect();
        let (blocks, st) = run(&d, &order, 9);
        let total: u64 = lengths.iter().map(|&l| l as u64).sum();
        let tokens: Vec<u32> = blocks.iter().flat_map(|b| b.tokens.iter().copied()).collect();
        let mask: Vec<u8> = blocks.iter().flat_map(|b| b.mask.clone().unwrap()).collect();
        assert_eq!(tokens.len() as u64, st.rows * 9);
        assert_eq!(st.tokens_out + st.dropped, total);
        assert_eq!(st.dropped, total % 9);
        assert!(
            tokens.iter().enumerate().all(|(i, &t)| t == i as u32),
            "tokens are the input in order"
        );
        assert!(mask.iter().enumerate().all(|(i, &m)| m == (i % 3 == 0) as u8));
        assert!(blocks.iter().all(|b| b.rows() <= block_rows(9)));
        // doc_starts: exactly the positions where a non-empty document begins.
        let mut want = Vec::new();
        let mut at = 0u64;
        for &l in &lengths {
            if l > 0 && at < st.tokens_out {
                want.push(at);
            }
            at += l as u64;
        }
        let mut got = Vec::new();
        let mut row = 0u64;
        for b in &blocks {
            for r in 0..b.rows() {
                for s in &b.starts[b.start_offsets[r] as usize..b.start_offsets[r + 1] as usize] {
                    got.push(row * 9 + *s as u64);
                }
                row += 1;
            }
        }
        assert_eq!(got, want);
    }

    #[test]
    fn follows_the_given_order() {
        let d = docs(&[3, 2, 4], false);
        let (blocks, st) = run(&d, &[2, 0, 1], 3);
        assert_eq!(blocks[0].tokens, vec![5, 6, 7, 8, 0, 1, 2, 3, 4]);
        assert!(blocks[0].mask.is_none());
        assert_eq!((st.rows, st.dropped, st.docs), (3, 0, 3));
    }
}
