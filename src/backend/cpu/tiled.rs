//! The packed-panel GEMM driver shared by the AVX-512 f32 kernel (`fp32.rs`)
//! and the AVX512-BF16 kernel (`bf16.rs`).
//!
//! Both operands are packed into panels of 32-bit words, one word per
//! *step* along k (one f32, or a pair of bf16 for `vdpbf16ps`):
//!
//! - B (`[k, n]`) into panels of `NR` columns: `pb[(panel·steps + s)·NR + c]`,
//!   once per matmul, shared by every task;
//! - A (`[m, k]`) into panels of `MR` rows: `pa[(panel·ks + s)·MR + r]`, by
//!   each task for its own rows, one k-block of `ks` steps at a time, into a
//!   per-thread buffer that stays in L2 while the task's tiles read it.
//!   Packing all of A first wrote it out and read it back from memory: for
//!   the LM head's weight gradient that is 67 MB each way, and packing
//!   per task made `train_step small` 7% faster on one thread (BENCHMARKS.md,
//!   session 24). A kernel that needs no conversion (f32) reads a row-major
//!   A in place instead (`Panels::DIRECT_A`).
//!
//! A micro-kernel keeps an `MR × NR` tile of f32 accumulators in 24 zmm
//! registers, broadcasts one A word per row and multiplies it against two
//! zmm of B words. Tails in m, n and k are zero-padded at packing time, so
//! the kernel always runs full tiles and only the write-back is clipped.
//! Operands are repacked per matmul: packing is O(k·(m+n)) against the
//! O(m·n·k) product, and weights change every optimizer step anyway.
//!
//! Every output element is summed over k in order (in blocks of `KC`
//! steps, each added to c) by one task, so results do not depend on the
//! thread count.

#![cfg(target_arch = "x86_64")]

use super::super::MatRef;
use super::SendPtr;
use rayon::prelude::*;
use std::arch::x86_64::*;

/// Rows per micro-tile: 24 accumulators, 2 B registers and a broadcast in
/// AVX-512's 32, so each B load feeds 12 FMAs. Against 8 rows, single-thread
/// `train_step small` ran 2–3% faster, better in 6 of 8 paired rounds
/// (BENCHMARKS.md, session 23).
pub const MR: usize = 12;
/// Columns per micro-tile (two zmm registers of f32).
pub const NR: usize = 32;
/// Micro-tiles per parallel task, along m and n.
const TASK_MR: usize = 8;
const TASK_NR: usize = 4;
/// Packed steps per k-block: a B micro-panel block of NR · KC words is 32
/// KiB, and a task's TASK_NR of them fit L2 with room to spare.
const KC: usize = 256;

/// The accumulators of one micro-tile: `MR` rows of two zmm.
pub(super) type Acc = [[__m512; 2]; MR];

/// A pointer with row and step strides, in words.
#[derive(Clone, Copy)]
pub(super) struct Strided {
    pub ptr: *const u32,
    pub rs: usize,
    pub cs: usize,
}

/// One kind of micro-kernel over packed panels.
pub(super) trait Panels {
    /// k values per packed word (1 for f32, 2 for bf16 pairs).
    const GROUP: usize;

    /// Whether the kernel reads A in place when its rows are contiguous: f32
    /// needs no conversion, and each A row is read by one task only, so
    /// packing it costs a pass over memory and buys little.
    const DIRECT_A: bool;

    /// Packs one group of k values (zero past k) into a word.
    fn word(group: &[f32]) -> u32;

    /// `out[i] = word(src[g·i..g·i + g])` for a contiguous run of values
    /// (zero past its end); `out` holds `src.len().div_ceil(GROUP)` words.
    ///
    /// # Safety
    /// The CPU must run this kernel (implementations may vectorise).
    unsafe fn words_of_row(src: &[f32], out: &mut [u32]) {
        for (o, grp) in out.iter_mut().zip(src.chunks(Self::GROUP)) {
            let mut group = [0.0f32; 2];
            group[..grp.len()].copy_from_slice(grp);
            *o = Self::word(&group[..Self::GROUP]);
        }
    }

    /// `out[i] = word([lo[i], hi[i]])` for pairs (only `lo` for one value
    /// per word); all three of equal length.
    ///
    /// # Safety
    /// As [`Panels::words_of_row`].
    unsafe fn words_of_columns(lo: &[f32], hi: &[f32], out: &mut [u32]) {
        for ((o, &l), &h) in out.iter_mut().zip(lo).zip(hi) {
            *o = Self::word(&[l, h][..Self::GROUP]);
        }
    }

    /// One tile: `c[0..mr, 0..nr] (+)= alpha · Σ_s a[s] ⊗ b[s]` over `steps`
    /// words, written back with [`store`]. Row r's word at step s is
    /// `a[r·a.rs + s·a.cs]`: `(1, MR)` for a packed panel, the matrix's own
    /// strides when read in place.
    ///
    /// # Safety
    /// The kernel's instructions must be available; `a` must address
    /// words of rows `0..mr` at steps `0..steps` (rows past mr are never
    /// read in place; a packed panel holds all `MR`), `b` `steps·NR` words;
    /// `c` must address an `mr × nr` block with row stride `ldc` that no
    /// other thread touches meanwhile.
    #[allow(clippy::too_many_arguments)]
    unsafe fn tile(steps: usize, a: Strided, b: *const u32, c: *mut f32, ldc: usize, mr: usize, nr: usize, accumulate: bool, alpha: f32);
}

/// `c[m, n] (ldc) = (accumulate ? c : 0) + a · b` through `P`'s kernel, in
/// parallel on the current rayon pool. The caller has checked shapes
/// (non-zero m, n, k) and that the CPU runs the kernel. `pb` is B's
/// reusable packing buffer (A packs into per-thread buffers).
#[allow(clippy::too_many_arguments)]
pub(super) fn matmul<P: Panels>(
    m: usize,
    n: usize,
    k: usize,
    c: &mut [f32],
    ldc: usize,
    accumulate: bool,
    a: MatRef<'_>,
    b: MatRef<'_>,
    pb: &mut Vec<u32>,
) {
    // SAFETY: c is borrowed mutably and holds the checked [m, n] block.
    unsafe { run::<P>(m, n, k, c.as_mut_ptr(), ldc, accumulate, 1.0, a, b, pb, true) }
}

thread_local! {
    /// B's packing buffer for [`matmul_serial`], one per thread.
    static SCRATCH: std::cell::RefCell<Vec<u32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// `c[m, n] (ldc) = (accumulate ? c : 0) + alpha · a · b` on this thread
/// alone, for callers that already run inside a rayon task (attention);
/// packs into per-thread buffers that grow once and are then reused.
///
/// # Safety
/// The CPU must run `P`'s kernel; `m, n, k ≥ 1`; `c` must address a
/// writable `[m, n]` block with row stride `ldc` that no other thread
/// touches meanwhile.
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn matmul_serial<P: Panels>(
    m: usize,
    n: usize,
    k: usize,
    c: *mut f32,
    ldc: usize,
    accumulate: bool,
    alpha: f32,
    a: MatRef<'_>,
    b: MatRef<'_>,
) {
    SCRATCH.with_borrow_mut(|pb| {
        // SAFETY: the caller's contract.
        unsafe { run::<P>(m, n, k, c, ldc, accumulate, alpha, a, b, pb, false) }
    });
}

/// The driver behind [`matmul`] and [`matmul_serial`].
///
/// # Safety
/// As [`matmul_serial`].
#[allow(clippy::too_many_arguments)]
unsafe fn run<P: Panels>(
    m: usize,
    n: usize,
    k: usize,
    c: *mut f32,
    ldc: usize,
    accumulate: bool,
    alpha: f32,
    a: MatRef<'_>,
    b: MatRef<'_>,
    pb: &mut Vec<u32>,
    parallel: bool,
) {
    let steps = k.div_ceil(P::GROUP);
    let (mp, np) = (m.div_ceil(MR), n.div_ceil(NR));
    // Only rows read in place: a column-contiguous A (a gradient's
    // transpose) strides a whole row of the matrix per step, and the tiles
    // that share it ran 20% slower reading it in place than packed.
    let direct = P::DIRECT_A && a.cs == 1;
    let pb = aligned(pb, np * NR * steps);
    // B is packed as panels of its columns: view it as bᵀ ([n, k]).
    let bt = MatRef {
        data: b.data,
        rs: b.cs,
        cs: b.rs,
    };
    // SAFETY: the caller checked the CPU runs P's kernel.
    unsafe { pack::<P>(n, k, NR, bt, pb, parallel) };
    let pb = &*pb;
    let cptr = SendPtr(c);
    // One tile over steps s0..s0 + ks of k-block, A's panel given.
    let tile = |ap: Strided, p: usize, q: usize, s0: usize, ks: usize| {
        let (i0, j0) = (p * MR, q * NR);
        // SAFETY: tile (p, q) belongs to exactly one task; rows i0..i0+mr
        // and columns j0..j0+nr are inside c (the caller's contract); the
        // packed panels hold `ks` words each from s0 on; the caller checked
        // the CPU runs P's kernel.
        unsafe {
            P::tile(
                ks,
                ap,
                pb[(q * steps + s0) * NR..].as_ptr(),
                cptr.get().add(i0 * ldc + j0),
                ldc,
                MR.min(m - i0),
                NR.min(n - j0),
                accumulate || s0 > 0,
                alpha,
            );
        }
    };
    let tm = mp.div_ceil(TASK_MR);
    if direct {
        let tn = np.div_ceil(TASK_NR);
        let task = |task: usize| {
            let (ti, tj) = (task / tn, task % tn);
            // k in blocks of KC steps, so the task's B panels (TASK_NR · NR ·
            // KC words) stay in L2 while its m-tiles pass over them; the
            // first block honours `accumulate`, the later ones add to it.
            for s0 in (0..steps).step_by(KC) {
                let ks = KC.min(steps - s0);
                for p in ti * TASK_MR..((ti + 1) * TASK_MR).min(mp) {
                    for q in tj * TASK_NR..((tj + 1) * TASK_NR).min(np) {
                        let ap = Strided {
                            ptr: a.data[p * MR * a.rs + s0..].as_ptr() as *const u32,
                            rs: a.rs,
                            cs: 1,
                        };
                        tile(ap, p, q, s0, ks);
                    }
                }
            }
        };
        each(tm * tn, parallel, task);
        return;
    }
    // A packed per task and k-block, into a buffer that stays in L2 while
    // the task's tiles read it. Column chunks split the tasks only as far
    // as the threads need work: each chunk repacks the task's rows.
    let chunks = if parallel {
        (4 * rayon::current_num_threads()).div_ceil(tm).clamp(1, np)
    } else {
        1
    };
    let chunk = np.div_ceil(chunks);
    let tn = np.div_ceil(chunk);
    let g = P::GROUP;
    let task = |task: usize| {
        let (ti, tj) = (task / tn, task % tn);
        let (p0, p1) = (ti * TASK_MR, ((ti + 1) * TASK_MR).min(mp));
        let (q0, q1) = (tj * chunk, ((tj + 1) * chunk).min(np));
        let r0 = p0 * MR;
        let rows = m.min(p1 * MR) - r0;
        LOCAL_A.with_borrow_mut(|buf| {
            let la = aligned(buf, (p1 - p0) * MR * KC);
            for s0 in (0..steps).step_by(KC) {
                let ks = KC.min(steps - s0);
                let view = MatRef {
                    data: &a.data[r0 * a.rs + s0 * g * a.cs..],
                    rs: a.rs,
                    cs: a.cs,
                };
                let la = &mut la[..(p1 - p0) * MR * ks];
                // SAFETY: the caller checked the CPU runs P's kernel.
                unsafe { pack::<P>(rows, (ks * g).min(k - s0 * g), MR, view, la, false) };
                for qc in (q0..q1).step_by(L2_PANELS) {
                    for p in p0..p1 {
                        for q in qc..(qc + L2_PANELS).min(q1) {
                            let ap = Strided {
                                ptr: la[(p - p0) * ks * MR..].as_ptr(),
                                rs: 1,
                                cs: MR,
                            };
                            tile(ap, p, q, s0, ks);
                        }
                    }
                }
            }
        });
    };
    each(tm * tn, parallel, task);
}

/// Runs `f(0..count)`, on the current rayon pool when `parallel`.
fn each(count: usize, parallel: bool, f: impl Fn(usize) + Send + Sync) {
    if parallel {
        (0..count).into_par_iter().for_each(f);
    } else {
        (0..count).for_each(f);
    }
}

/// B panels a task's m-tiles pass over per k-block while A is packed per
/// task: 16 · NR · KC words, 512 KiB of L2.
const L2_PANELS: usize = 16;

thread_local! {
    /// A's panels for one task's rows and k-block (see [`run`]).
    static LOCAL_A: std::cell::RefCell<Vec<u32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The first `len` words of `buf` from a 64-byte boundary, growing `buf`
/// as needed. A panel that starts mid-line makes every 64-byte load of the
/// kernel span two cache lines: aligned, the f32 kernel ran 8–10% faster
/// on one thread of a Xeon with AVX-512 (BENCHMARKS.md, session 18).
pub(super) fn aligned(buf: &mut Vec<u32>, len: usize) -> &mut [u32] {
    const LINE_WORDS: usize = 16;
    if buf.len() < len + LINE_WORDS {
        buf.resize(len + LINE_WORDS, 0);
    }
    let off = buf.as_ptr().align_offset(64).min(LINE_WORDS);
    &mut buf[off..off + len]
}

/// Packs `view` (`[rows, k]`) into panels of `w` rows of `P::GROUP`-wide
/// words (see the module doc), zero-padding past `rows` and `k`. Fast
/// paths cover every layout the model uses: rows contiguous (`cs == 1`) and
/// columns contiguous (`rs == 1`).
///
/// # Safety
/// The CPU must run `P`'s kernel.
#[target_feature(enable = "avx512f")]
unsafe fn pack<P: Panels>(rows: usize, k: usize, w: usize, view: MatRef<'_>, out: &mut [u32], parallel: bool) {
    if view.rs == 1 {
        // SAFETY: the caller's contract.
        return unsafe { pack_columns::<P>(rows, k, w, view, out, parallel) };
    }
    let g = P::GROUP;
    let steps = k.div_ceil(g);
    let panel = |(panel, dst): (usize, &mut [u32])| {
        let r0 = panel * w;
        let live = w.min(rows - r0);
        if live < w {
            dst.fill(0);
        }
        if view.cs == 1 {
            // Each row is contiguous: convert 16 words of every row of the
            // panel, then write them out step by step, so each line of dst
            // is written whole, once (scattering a row at a time wrote every
            // line of the panel once per row).
            debug_assert!(w <= NR, "panels are at most NR wide");
            let mut tmp = [[0u32; T]; NR];
            for s0 in (0..steps).step_by(T) {
                let sn = T.min(steps - s0);
                for (r, t) in tmp.iter_mut().enumerate().take(live) {
                    let at = (r0 + r) * view.rs + s0 * g;
                    // SAFETY: the caller's contract.
                    unsafe { P::words_of_row(&view.data[at..at + (sn * g).min(k - s0 * g)], &mut t[..sn]) };
                }
                for s in 0..sn {
                    for (d, t) in dst[(s0 + s) * w..(s0 + s) * w + live].iter_mut().zip(&tmp) {
                        *d = t[s];
                    }
                }
            }
        } else {
            let at = |r: usize, p: usize| if p < k { view.data[(r0 + r) * view.rs + p * view.cs] } else { 0.0 };
            let mut group = [0.0f32; 2];
            for s in 0..steps {
                for r in 0..live {
                    for (i, x) in group[..g].iter_mut().enumerate() {
                        *x = at(r, s * g + i);
                    }
                    dst[s * w + r] = P::word(&group[..g]);
                }
            }
        }
    };
    if parallel {
        out.par_chunks_mut(steps * w).enumerate().for_each(panel);
    } else {
        out.chunks_mut(steps * w).enumerate().for_each(panel);
    }
}

/// Words converted at a time through a stack buffer while packing.
const BUF: usize = 256;

/// Steps of each row converted at a time when packing contiguous rows.
const T: usize = 16;

/// Steps of an `MR`-row panel that together fill whole 64-byte lines (16
/// words): 2 for 8 rows, 4 for 12.
const LINE_STEPS: usize = 16 / gcd(MR, 16);

const fn gcd(a: usize, b: usize) -> usize {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// How far ahead of its copying [`pack_columns`] prefetches the source.
const PREFETCH_STEPS: usize = 8;

/// Steps per task of [`pack_columns`].
const PACK_STEPS: usize = 64;

/// [`pack`] for a column-contiguous view: at step s the source columns
/// `data[(g·s + i)·cs..][..rows]` are contiguous runs that are cut into the
/// panels' rows. Going step-major reads each source line once, in order
/// (panel-major re-read the matrix in strips, a page per step), and tasks
/// own blocks of steps.
///
/// # Safety
/// The CPU must run `P`'s kernel.
#[target_feature(enable = "avx512f")]
unsafe fn pack_columns<P: Panels>(rows: usize, k: usize, w: usize, view: MatRef<'_>, out: &mut [u32], parallel: bool) {
    let g = P::GROUP;
    let steps = k.div_ceil(g);
    let panels = rows.div_ceil(w);
    if !rows.is_multiple_of(w) {
        out[(panels - 1) * steps * w..panels * steps * w].fill(0);
    }
    let optr = SendPtr(out.as_mut_ptr());
    let zeros = [0.0f32; BUF];
    let block = |b: usize| {
        let mut buf = [0u32; BUF];
        let (mut s, end) = (b * PACK_STEPS, ((b + 1) * PACK_STEPS).min(steps));
        while s < end {
            // SAFETY (all writes below): words (q, s, 0..len) lie inside
            // out (panels · steps · w words), and steps s (and the next ones
            // when written LINE_STEPS at a time) belong to this task alone.
            let dst = |q: usize, len: usize| unsafe { std::slice::from_raw_parts_mut(optr.get().add((q * steps + s) * w), len) };
            let col = |p: usize| &view.data[p * view.cs..p * view.cs + rows];
            // Fetch the source lines of steps PREFETCH_STEPS ahead while
            // these are copied: a task packing its own rows reads only a
            // few lines per step, too few for the hardware prefetchers.
            let whole_lines = g == 1 && w == MR && s + LINE_STEPS <= end;
            let advance = if whole_lines { LINE_STEPS } else { 1 };
            for p in g * (s + PREFETCH_STEPS)..(g * (s + PREFETCH_STEPS + advance)).min(k) {
                for x in col(p).iter().step_by(16) {
                    _mm_prefetch::<_MM_HINT_T0>(x as *const f32 as *const i8);
                }
            }
            if whole_lines {
                // LINE_STEPS steps of an MR-row panel fill whole 64-byte
                // lines: write them together, so no line is left
                // half-written while the other panels' writes evict it.
                let cols: [&[f32]; LINE_STEPS] = std::array::from_fn(|i| col(s + i));
                for q in 0..rows.div_ceil(w) {
                    let (r0, live) = (q * w, w.min(rows - q * w));
                    let d = dst(q, (LINE_STEPS - 1) * w + live);
                    for (i, c) in cols.iter().enumerate() {
                        // SAFETY: the caller's contract.
                        unsafe { P::words_of_row(&c[r0..r0 + live], &mut d[i * w..i * w + live]) };
                    }
                }
                s += LINE_STEPS;
                continue;
            }
            if g == 1 {
                for (q, part) in col(s).chunks(w).enumerate() {
                    // SAFETY: the caller's contract.
                    unsafe { P::words_of_row(part, dst(q, part.len())) };
                }
            } else {
                // Pairs of columns, converted BUF rows at a time (BUF is a
                // multiple of w, so pieces start on panel boundaries); an
                // odd k's last pair has a zero high half.
                let lo = col(g * s);
                for r0 in (0..rows).step_by(BUF) {
                    let n = BUF.min(rows - r0);
                    let hi = if g * s + 1 < k { &col(g * s + 1)[r0..r0 + n] } else { &zeros[..n] };
                    let lo = &lo[r0..r0 + n];
                    if w >= 16 {
                        // Wide panels: convert straight into each.
                        for (i, (l, h)) in lo.chunks(w).zip(hi.chunks(w)).enumerate() {
                            // SAFETY: the caller's contract.
                            unsafe { P::words_of_columns(l, h, dst(r0 / w + i, l.len())) };
                        }
                        continue;
                    }
                    // SAFETY: the caller's contract.
                    unsafe { P::words_of_columns(lo, hi, &mut buf[..n]) };
                    for (i, part) in buf[..n].chunks(w).enumerate() {
                        for (d, &x) in dst(r0 / w + i, part.len()).iter_mut().zip(part) {
                            *d = x;
                        }
                    }
                }
            }
            s += 1;
        }
    };
    let blocks = steps.div_ceil(PACK_STEPS);
    each(blocks, parallel, block);
}

/// Writes a tile's accumulators times `alpha` to `c[0..mr, 0..nr]`, adding
/// to what is there when `accumulate`.
///
/// # Safety
/// AVX-512F must be available; `c` must address an `mr × nr` block (mr ≤
/// MR, nr ≤ NR) with row stride `ldc`.
#[target_feature(enable = "avx512f")]
#[inline]
pub(super) unsafe fn store(acc: &Acc, c: *mut f32, ldc: usize, mr: usize, nr: usize, accumulate: bool, alpha: f32) {
    let mut scaled = *acc;
    if alpha != 1.0 {
        let s = _mm512_set1_ps(alpha);
        for v in scaled.iter_mut().flatten() {
            *v = _mm512_mul_ps(*v, s);
        }
    }
    let acc = &scaled;
    if nr == NR {
        for (r, acc_r) in acc.iter().enumerate().take(mr) {
            // SAFETY: row r < mr, 32 columns, inside c per the contract.
            unsafe {
                let row = c.add(r * ldc);
                let (mut v0, mut v1) = (acc_r[0], acc_r[1]);
                if accumulate {
                    v0 = _mm512_add_ps(v0, _mm512_loadu_ps(row));
                    v1 = _mm512_add_ps(v1, _mm512_loadu_ps(row.add(16)));
                }
                _mm512_storeu_ps(row, v0);
                _mm512_storeu_ps(row.add(16), v1);
            }
        }
    } else {
        let mut tile = [[0.0f32; NR]; MR];
        for (t, acc_r) in tile.iter_mut().zip(acc) {
            // SAFETY: t has exactly 32 f32.
            unsafe {
                _mm512_storeu_ps(t.as_mut_ptr(), acc_r[0]);
                _mm512_storeu_ps(t.as_mut_ptr().add(16), acc_r[1]);
            }
        }
        for (r, t) in tile.iter().enumerate().take(mr) {
            for (j, v) in t.iter().enumerate().take(nr) {
                // SAFETY: r < mr, j < nr, inside c per the contract.
                unsafe {
                    let dst = c.add(r * ldc + j);
                    *dst = if accumulate { *dst + v } else { *v };
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::aligned;

    /// Every slice starts on a cache line and has the asked length, while
    /// the buffer grows and when it is reused for a shorter one.
    #[test]
    fn aligned_slices_start_on_a_cache_line() {
        let mut buf = Vec::new();
        for len in [0, 1, 17, 1000, 100_000, 5, 300_000] {
            let s = aligned(&mut buf, len);
            assert_eq!(s.len(), len);
            assert_eq!(s.as_ptr() as usize % 64, 0, "len {len}");
        }
    }
}
