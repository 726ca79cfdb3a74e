//! Operands already in tile order. [`PackedB`] packs a B operand once for
//! several products (attention's keys and values, read by every block of
//! queries). [`PackedA`] and [`PackedB::shape`] hold an operand that its
//! producer writes straight in tile order, 16 pairs at a time through
//! [`TileRows`] and [`TilePairs`]: attention's probabilities and their
//! gradient go from registers to tiles, without the f32 round trip through
//! memory and the packing pass that [`super::gemm_raw`] would make.
//!
//! The layouts are the module's (see `amx`): A in panels of 16 rows, each a
//! run of 16 × 16 u32 tiles `[row][pair]` along k; B in panels of 16
//! columns, each a run of tiles `[pair][column]` along k.

use super::{BLK, SCRATCH, T, pack, serial_blocks};
use crate::backend::MatRef;
use crate::backend::cpu::raw_views;
use crate::backend::cpu::tiled::aligned;

/// Pairs per panel for a depth of `k`: k rounded up to whole 32-deep steps.
fn pairs(k: usize) -> usize {
    k.div_ceil(2 * T) * T
}

/// An `[m, k]` A operand in tile order.
#[derive(Default)]
pub struct PackedA {
    buf: Vec<u32>,
    m: usize,
    k2p: usize,
}

impl PackedA {
    /// Makes room for an `[m, k]` operand (reusing the buffer) and returns
    /// its rows to write. Every row below `m` must be written, for every
    /// k-block, before a product reads it; rows from `m` to the next
    /// multiple of 32 only feed output rows that are never written back.
    pub fn shape(&mut self, m: usize, k: usize) -> TileRows<'_> {
        (self.m, self.k2p) = (m, pairs(k));
        let k2p = self.k2p;
        TileRows { w: self.words(), k2p }
    }

    /// Packs `a` (`(pointer, row stride, column stride)`, `[m, k]`).
    ///
    /// # Safety
    /// `super::available()` returned true; `m, k ≥ 1`; every
    /// `a + i·rs + p·cs` (i < m, p < k) readable.
    pub unsafe fn pack(&mut self, m: usize, k: usize, a: (*const f32, usize, usize)) {
        // SAFETY: readable per the contract (a 1 × 1 dummy view for B).
        let (av, _) = unsafe { raw_views(m, 1, k, a, (a.0, 0, 0)) };
        let rows = self.shape(m, k);
        pack::pack(m, k, rows.k2p, av, rows.w, true, false);
    }

    /// The packed words (from the cache-line boundary `aligned` chose).
    fn words(&mut self) -> &mut [u32] {
        let len = self.m.div_ceil(BLK) * BLK * self.k2p;
        aligned(&mut self.buf, len)
    }
}

/// The rows of a [`PackedA`], for its producer to fill.
pub struct TileRows<'a> {
    w: &'a mut [u32],
    k2p: usize,
}

impl TileRows<'_> {
    /// k-blocks of 32 elements per row.
    pub fn k_blocks(&self) -> usize {
        self.k2p / T
    }

    /// The 16 pairs of row `r` for k-elements `32·kb .. 32·kb + 32`:
    /// pair `q` is `(a[r][32kb + 2q], a[r][32kb + 2q + 1])`, low half first.
    #[inline(always)]
    pub fn chunk(&mut self, r: usize, kb: usize) -> &mut [u32] {
        let at = r / T * T * self.k2p + kb * T * T + r % T * T;
        &mut self.w[at..at + T]
    }
}

/// A `[k, n]` B operand in tile order: packed from f32 once for several
/// products ([`PackedB::pack`]), or written by its producer
/// ([`PackedB::shape`]).
#[derive(Default)]
pub struct PackedB {
    buf: Vec<u32>,
    n: usize,
    k: usize,
    k2p: usize,
}

impl PackedB {
    /// Packs `b` (`(pointer, row stride, column stride)`, `[k, n]`) into
    /// panels of 16 columns of `k2p` pairs, reusing this buffer.
    ///
    /// # Safety
    /// `super::available()` returned true; `n, k ≥ 1`; every
    /// `b + p·rs + j·cs` (p < k, j < n) readable.
    pub unsafe fn pack(&mut self, n: usize, k: usize, b: (*const f32, usize, usize)) {
        // SAFETY: readable per the contract (a 1 × 1 dummy view for A).
        let (_, bv) = unsafe { raw_views(1, n, k, (b.0, 0, 0), b) };
        let bt = MatRef {
            data: bv.data,
            rs: bv.cs,
            cs: bv.rs,
        };
        let dst = self.shape(k, n);
        pack::pack(n, k, dst.k2p, bt, dst.w, false, false);
    }

    /// Makes room for a `[k, n]` operand (reusing the buffer) and returns
    /// its pairs to write. Every pair row below the padded depth (`k`
    /// rounded up to 32, halved) must be written for every panel up to `n`
    /// rounded up to 32, zeros in the padding: the products read them all.
    pub fn shape(&mut self, k: usize, n: usize) -> TilePairs<'_> {
        (self.n, self.k, self.k2p) = (n, k, pairs(k));
        let k2p = self.k2p;
        TilePairs { w: self.words(), k2p }
    }

    /// Whether an operand is packed ([`PackedB::clear`] undoes it).
    pub fn is_packed(&self) -> bool {
        self.k2p > 0
    }

    /// Marks the buffer as holding no operand (it keeps its memory).
    pub fn clear(&mut self) {
        (self.n, self.k, self.k2p) = (0, 0, 0);
    }

    /// The packed words (from the cache-line boundary `aligned` chose).
    fn words(&mut self) -> &mut [u32] {
        let len = self.n.div_ceil(BLK) * BLK * self.k2p;
        aligned(&mut self.buf, len)
    }
}

/// The pair rows of a [`PackedB`], for its producer to fill.
pub struct TilePairs<'a> {
    w: &'a mut [u32],
    k2p: usize,
}

impl TilePairs<'_> {
    /// Pair rows per panel (the padded depth, halved).
    pub fn pair_rows(&self) -> usize {
        self.k2p
    }

    /// Pair row `kk` of the panel of columns `16·p .. 16·p + 16`: column
    /// `j` is `(b[2kk][16p + j], b[2kk + 1][16p + j])`, low half first.
    #[inline(always)]
    pub fn chunk(&mut self, kk: usize, p: usize) -> &mut [u32] {
        let at = p * T * self.k2p + kk * T;
        &mut self.w[at..at + T]
    }
}

/// [`super::gemm_raw`] with B already packed: `c[m, n] = (accumulate ? c :
/// 0) + alpha · a[m, k] · b[0..k, 0..n]`, for `n` and `k` up to those `b` was
/// packed with. The result is bit-identical to [`super::gemm_raw`] on the
/// same values: B's pairs past `k` meet A's zero padding, and B's columns
/// past `n` are computed but not written back.
///
/// # Safety
/// As [`super::gemm_raw`] for `a` and `c`; `n ≤ b.n`, `k ≤ b.k`.
#[allow(clippy::too_many_arguments)]
pub unsafe fn gemm_raw_packed_b(
    m: usize,
    n: usize,
    k: usize,
    c: *mut f32,
    ldc: usize,
    accumulate: bool,
    alpha: f32,
    a: (*const f32, usize, usize),
    b: &mut PackedB,
) {
    assert!(
        n <= b.n && k <= b.k,
        "gemm_raw_packed_b: [{k}, {n}] outside the packed [{}, {}]",
        b.k,
        b.n
    );
    let b_k2p = b.k2p;
    let pb = b.words();
    // SAFETY: readable per the contract (a 1 × 1 dummy view for B).
    let (av, _) = unsafe { raw_views(m, 1, k, a, (a.0, 0, 0)) };
    SCRATCH.with_borrow_mut(|(pa, _)| {
        let k2p = pairs(k);
        let pa = aligned(pa, m.div_ceil(BLK) * BLK * k2p);
        pack::pack(m, k, k2p, av, pa, true, false);
        // SAFETY: as in `gemm_raw`; B's panels hold b_k2p ≥ k2p pairs and
        // cover n columns (asserted above).
        unsafe { super::serial_blocks(m, n, k2p, pa.as_ptr(), (pb.as_ptr(), b_k2p), c, ldc, accumulate, alpha) };
    });
}

/// `c[m, n] = (accumulate ? c : 0) + alpha · a · b[.., 0..n]` on this
/// thread, both operands in tile order; the depth is `a`'s (`b` may be
/// deeper: its extra pairs meet nothing).
///
/// # Safety
/// `super::available()` returned true; `a` and `b` written as their
/// `shape` asks; `m ≤ a`'s rows, `n ≤ b`'s columns, `a`'s depth ≤ `b`'s;
/// `c + i·ldc + j` (i < m, j < n) writable, with no other thread touching
/// that block of c meanwhile.
#[allow(clippy::too_many_arguments)]
pub unsafe fn gemm_packed(m: usize, n: usize, a: &mut PackedA, b: &mut PackedB, c: *mut f32, ldc: usize, accumulate: bool, alpha: f32) {
    assert!(
        m <= a.m && n <= b.n && a.k2p <= b.k2p,
        "gemm_packed: [{m}, {}·2] by [{}·2, {n}] outside the operands [{}, ·] and [{}·2, {}]",
        a.k2p,
        a.k2p,
        a.m,
        b.k2p,
        b.n
    );
    let (k2p, b_k2p) = (a.k2p, b.k2p);
    let (pa, pb) = (a.words().as_ptr(), b.words().as_ptr());
    // SAFETY: tiles permitted and c writable (contract); A holds m rows
    // (rounded up to 32) of k2p pairs, B n columns (rounded up) of b_k2p.
    unsafe { serial_blocks(m, n, k2p, pa, (pb, b_k2p), c, ldc, accumulate, alpha) };
}

#[cfg(test)]
mod tests {
    // ok: test module
    use super::*;
    use crate::backend::cpu::bf16::pair;
    use crate::backend::cpu::test_data as data;

    fn words(buf: &mut Vec<u32>, len: usize) -> Vec<u32> {
        aligned(buf, len).to_vec()
    }

    /// Operands written chunk by chunk through `TileRows` / `TilePairs`
    /// equal the packer's, word for word: the producers' addressing is the
    /// layout the products read.
    #[test]
    fn chunks_written_by_hand_equal_the_packers_words() {
        if !std::arch::is_x86_feature_detected!("avx512bf16") {
            println!("skipping: no AVX512-BF16");
            return;
        }
        for &(rows, k) in &[(37, 70), (32, 64), (5, 3), (130, 33)] {
            let src = data(rows * k, (rows * k) as u64);
            let at = |r: usize, e: usize| if r < rows && e < k { src[r * k + e] } else { 0.0 };
            // A: [rows, k] row-major.
            let (mut packed, mut by_hand) = (PackedA::default(), PackedA::default());
            // SAFETY: src is [rows, k] row-major.
            unsafe { packed.pack(rows, k, (src.as_ptr(), k, 1)) };
            let mut w = by_hand.shape(rows, k);
            for r in 0..rows {
                for kb in 0..w.k_blocks() {
                    let chunk = w.chunk(r, kb);
                    for (q, x) in chunk.iter_mut().enumerate() {
                        *x = pair(at(r, 32 * kb + 2 * q), at(r, 32 * kb + 2 * q + 1));
                    }
                }
            }
            let len = rows.div_ceil(BLK) * BLK * pairs(k);
            // Rows past `rows` are the packer's zeros; the hand-written
            // operand leaves them as they were (zero in a new buffer).
            assert_eq!(words(&mut packed.buf, len), words(&mut by_hand.buf, len), "A [{rows}, {k}]");
            // B: [k, n = rows], read from srcᵀ.
            let (mut packed, mut by_hand) = (PackedB::default(), PackedB::default());
            // SAFETY: element (p, j) of srcᵀ is src[j·k + p].
            unsafe { packed.pack(rows, k, (src.as_ptr(), 1, k)) };
            let mut w = by_hand.shape(k, rows);
            for kk in 0..w.pair_rows() {
                for p in 0..rows.div_ceil(BLK) * BLK / T {
                    for (j, x) in w.chunk(kk, p).iter_mut().enumerate() {
                        *x = pair(at(16 * p + j, 2 * kk), at(16 * p + j, 2 * kk + 1));
                    }
                }
            }
            let len = rows.div_ceil(BLK) * BLK * pairs(k);
            assert_eq!(words(&mut packed.buf, len), words(&mut by_hand.buf, len), "B [{k}, {rows}]");
        }
    }
}
