//! Attention on AMX tiles, with the probabilities written straight in tile
//! order.
//!
//! The generic path (`super`) writes every block of probabilities (and, in
//! the backward pass, their gradient) as f32, then packs it into bf16 tiles
//! for each product that reads it. Two of those packs read the block down
//! its columns (`Pᵀ·dO`, `dSᵀ·Q`) and transpose it tile by tile. Here the
//! row pass that computes P or dS also converts it to bf16 and stores it in
//! the layout its products read:
//! - forward: `exp(s − max)` as the A operand of `P·V`. The output rows are
//!   scaled by `1/Σ` afterwards (FlashAttention's deferred normalisation),
//!   so there is no pass over the block to normalise it.
//! - backward: rows are taken two at a time, which is exactly a pair row
//!   of a B operand. P and `scale·dS` go out as B operands of `dVᵀ += dOᵀ·P`
//!   and `dKᵀ += Qᵀ·dS`, and `scale·dS` also as the A operand of
//!   `dQ = dS·K`. `dVᵀ` and `dKᵀ` (`hs × T` each) are transposed once per
//!   (batch, head) at the end, instead of P and dS once per block.
//!
//! The scale `1/√hs` is folded into the exponent and into dS, so every
//! product runs with alpha 1 (the kernel's direct store path).

use super::{BLK, Dims};
use crate::backend::cpu::amx::{PackedA, PackedB, TilePairs, TileRows, gemm_packed, gemm_raw_packed_b};
use crate::backend::cpu::bf16::{pairs_of_columns, pairs_of_row};
use crate::model::ops::{dot_lanes, fast_exp, max_lanes};
use std::cell::RefCell;

/// One thread's operands and accumulators, kept across tasks and steps so
/// they are allocated in the first step only.
#[derive(Default)]
struct Scratch {
    /// Kᵀ (`[hs, T]`), for `S = Q·Kᵀ`.
    kt: PackedB,
    /// Forward: V (`[T, hs]`), for `P·V`. Backward: Vᵀ, for `dP = dO·Vᵀ`.
    v: PackedB,
    /// K (`[T, hs]`), for `dQ = dS·K`.
    k: PackedB,
    /// The block's P (forward) or `scale·dS` (backward) as an A operand.
    a: PackedA,
    /// `dOᵀ` or `Qᵀ` of the block (`[hs, rows]`).
    small: PackedA,
    /// The block's P and `scale·dS` as B operands (`[rows, cols]`).
    p: PackedB,
    ds: PackedB,
    /// `dVᵀ` and `dKᵀ` of the task (`[hs, T]`).
    dvt: Vec<f32>,
    dkt: Vec<f32>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// Forward of one (batch, head) task; as `super::forward_task`.
///
/// # Safety
/// AMX available (`d.amx`); `out`/`lse` the full buffers `super::forward`
/// asserted; `scores` holds `BLK × T` floats.
pub(super) unsafe fn forward_task(d: Dims, task: usize, out: *mut f32, lse: *mut f32, qkv: &[f32], scores: &mut [f32]) {
    let Dims { t, c, hs, nh, .. } = d;
    let (bi, h) = (task / nh, task % nh);
    let q = qkv[bi * t * 3 * c + h * hs..].as_ptr();
    // SAFETY: k and v are q's columns one and two C further, inside qkv.
    let (k, v) = unsafe { (q.add(c), q.add(2 * c)) };
    let scale = 1.0 / (hs as f32).sqrt();
    SCRATCH.with_borrow_mut(|s| {
        // SAFETY (whole closure): rows < T of q, k, v at stride 3C with hs
        // columns lie in qkv; scores holds rows × T; this task owns out's
        // rows b·T.. at columns h·hs.. and lse[b, h, ..].
        unsafe {
            s.kt.pack(t, hs, (k, 1, 3 * c));
            s.v.pack(hs, t, (v, 3 * c, 1));
            for i0 in (0..t).step_by(BLK) {
                let i1 = (i0 + BLK).min(t);
                let (rows, cols) = (i1 - i0, i1);
                gemm_raw_packed_b(
                    rows,
                    cols,
                    hs,
                    scores.as_mut_ptr(),
                    t,
                    false,
                    1.0,
                    (q.add(i0 * 3 * c), 3 * c, 1),
                    &mut s.kt,
                );
                let mut inv = [0.0f32; BLK];
                let mut pa = s.a.shape(rows, cols);
                for (r, inv) in inv.iter_mut().enumerate().take(rows) {
                    let i = i0 + r;
                    let (row_lse, sum) = exp_row(&scores[r * t..r * t + i + 1], scale, &mut pa, r);
                    *lse.add(task * t + i) = row_lse;
                    *inv = 1.0 / sum;
                }
                let o = out.add((bi * t + i0) * c + h * hs);
                gemm_packed(rows, hs, &mut s.a, &mut s.v, o, c, false, 1.0);
                for (r, &inv) in inv.iter().enumerate().take(rows) {
                    for x in std::slice::from_raw_parts_mut(o.add(r * c), hs) {
                        *x *= inv;
                    }
                }
            }
        }
    });
}

/// Backward of one (batch, head) task; as `super::backward_task`.
///
/// # Safety
/// AMX available (`d.amx`); `dqkv` the full `[B·T, 3C]` buffer;
/// `scratch` holds `2 × BLK × T` floats.
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn backward_task(
    d: Dims,
    task: usize,
    dqkv: *mut f32,
    dout: &[f32],
    qkv: &[f32],
    out: &[f32],
    lse: &[f32],
    scratch: &mut [f32],
) {
    let Dims { t, c, hs, nh, .. } = d;
    let (bi, h) = (task / nh, task % nh);
    let base = bi * t * 3 * c + h * hs;
    let q = &qkv[base..];
    let (k, v) = (q[c..].as_ptr(), q[2 * c..].as_ptr());
    let dob = &dout[bi * t * c + h * hs..];
    let ob = &out[bi * t * c + h * hs..];
    let lse = &lse[task * t..(task + 1) * t];
    let scale = 1.0 / (hs as f32).sqrt();
    let (sb, dpb) = scratch[..2 * BLK * t].split_at_mut(BLK * t);
    SCRATCH.with_borrow_mut(|s| {
        s.dvt.resize(hs * t, 0.0);
        s.dkt.resize(hs * t, 0.0);
        // SAFETY (whole block): rows < T of q, k, v (stride 3C) and of dout,
        // out (stride C) with hs columns lie in their slices; sb and dpb hold
        // rows × T; dvt and dkt hold hs × T; this task owns dqkv's rows b·T..
        // at its head's q, k and v columns.
        unsafe {
            s.kt.pack(t, hs, (k, 1, 3 * c));
            s.v.pack(t, hs, (v, 1, 3 * c));
            s.k.pack(hs, t, (k, 3 * c, 1));
            // Last block first: it spans every key, so its products set the
            // whole of dVᵀ and dKᵀ and the earlier (narrower) ones add to them.
            for blk in (0..t.div_ceil(BLK)).rev() {
                let i0 = blk * BLK;
                let i1 = (i0 + BLK).min(t);
                let (rows, cols) = (i1 - i0, i1);
                let (qb, dob_blk) = (q[i0 * 3 * c..].as_ptr(), dob[i0 * c..].as_ptr());
                // S = q·kᵀ and dP = dO·vᵀ, unscaled.
                gemm_raw_packed_b(rows, cols, hs, sb.as_mut_ptr(), t, false, 1.0, (qb, 3 * c, 1), &mut s.kt);
                gemm_raw_packed_b(rows, cols, hs, dpb.as_mut_ptr(), t, false, 1.0, (dob_blk, c, 1), &mut s.v);
                {
                    let mut tiles = Tiles {
                        a: s.a.shape(rows, cols),
                        p: s.p.shape(rows, cols),
                        ds: s.ds.shape(rows, cols),
                    };
                    for kk in 0..tiles.p.pair_rows() {
                        let row = |r: usize| {
                            if r >= rows {
                                return GradRow::default();
                            }
                            let i = i0 + r;
                            GradRow {
                                s: &sb[r * t..r * t + i + 1],
                                dp: &dpb[r * t..r * t + i + 1],
                                lse: lse[i],
                                // D_i = dO_i · O_i equals Σ_j P_ij dP_ij (the
                                // softmax Jacobian's diagonal term), and is
                                // cheaper: hs instead of i multiply-adds.
                                d: dot_lanes(&dob[i * c..i * c + hs], &ob[i * c..i * c + hs]),
                            }
                        };
                        grad_pair([row(2 * kk), row(2 * kk + 1)], scale, kk, &mut tiles);
                    }
                }
                let first = i1 == t;
                // dVᵀ[.., 0..i1] += dO[i0..i1]ᵀ · P.
                s.small.pack(hs, rows, (dob_blk, 1, c));
                gemm_packed(hs, cols, &mut s.small, &mut s.p, s.dvt.as_mut_ptr(), t, !first, 1.0);
                // dKᵀ[.., 0..i1] += Q[i0..i1]ᵀ · scale·dS.
                s.small.pack(hs, rows, (qb, 1, 3 * c));
                gemm_packed(hs, cols, &mut s.small, &mut s.ds, s.dkt.as_mut_ptr(), t, !first, 1.0);
                // dQ[i0..i1] = scale·dS · K[0..i1].
                gemm_packed(rows, hs, &mut s.a, &mut s.k, dqkv.add(base + i0 * 3 * c), 3 * c, false, 1.0);
            }
            scatter_transposed(&s.dvt, t, hs, dqkv.add(base + 2 * c), 3 * c);
            scatter_transposed(&s.dkt, t, hs, dqkv.add(base + c), 3 * c);
        }
    });
}

/// One query row of the backward pass: its scores and `dP` over its live
/// (causal) keys, its log-sum-exp and `D_i`. A row past the block is empty.
#[derive(Default, Clone, Copy)]
struct GradRow<'a> {
    s: &'a [f32],
    dp: &'a [f32],
    lse: f32,
    d: f32,
}

/// The backward block's operands as its row pass writes them.
struct Tiles<'a> {
    /// `scale·dS` as the A operand of `dS·K`.
    a: TileRows<'a>,
    /// P and `scale·dS` as B operands (`[rows, cols]`).
    p: TilePairs<'a>,
    ds: TilePairs<'a>,
}

/// `exp(scale·s − shift)` of one forward row, written as row `r` of the A
/// operand (zeros past the row's keys, to the operand's padded depth).
/// Returns the row's log-sum-exp and its sum of exponentials.
///
/// # Safety
/// AVX-512F and AVX512-BF16 available (wherever AMX is).
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn exp_row(row: &[f32], scale: f32, a: &mut TileRows<'_>, r: usize) -> (f32, f32) {
    let live = row.len();
    // scale > 0, so the largest scaled score is scale times the largest.
    let shift = max_lanes(row) * scale;
    let mut sums = [0.0f32; 16];
    for kb in 0..a.k_blocks() {
        let b0 = 32 * kb;
        if b0 >= live {
            a.chunk(r, kb).fill(0);
            continue;
        }
        let mut v = [0.0f32; 32];
        if b0 + 32 <= live {
            for (v, &x) in v.iter_mut().zip(&row[b0..b0 + 32]) {
                *v = fast_exp(x * scale - shift);
            }
        } else {
            for (v, &x) in v.iter_mut().zip(&row[b0..]) {
                *v = fast_exp(x * scale - shift);
            }
        }
        for (i, sum) in sums.iter_mut().enumerate() {
            *sum += v[i] + v[i + 16];
        }
        // SAFETY: this function's features; 32 floats into 16 pairs.
        unsafe { pairs_of_row(&v, a.chunk(r, kb)) };
    }
    let sum: f32 = sums.iter().sum();
    (shift + sum.ln(), sum)
}

/// Query rows `2kk` and `2kk + 1` of a backward block: `p = exp(scale·s −
/// lse)` and `g = scale · p · (dP − D)` over 32 keys at a time, written as
/// pair row `kk` of the P and dS B operands and as rows `2kk`, `2kk + 1` of
/// the dS A operand (zeros past each row's keys).
///
/// # Safety
/// AVX-512F and AVX512-BF16 available (wherever AMX is).
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn grad_pair(rows: [GradRow<'_>; 2], scale: f32, kk: usize, out: &mut Tiles<'_>) {
    for kb in 0..out.a.k_blocks() {
        let b0 = 32 * kb;
        let mut p = [[0.0f32; 32]; 2];
        let mut g = [[0.0f32; 32]; 2];
        for (x, row) in rows.iter().enumerate() {
            let end = row.s.len().min(b0 + 32);
            if end <= b0 {
                continue;
            }
            let (s, dp) = (&row.s[b0..end], &row.dp[b0..end]);
            for (((pv, gv), &sv), &dpv) in p[x].iter_mut().zip(g[x].iter_mut()).zip(s).zip(dp) {
                *pv = fast_exp(sv * scale - row.lse);
                *gv = scale * *pv * (dpv - row.d);
            }
        }
        // SAFETY: this function's features; 32 floats into 16 pairs, or two
        // runs of 16 into 16 pairs.
        unsafe {
            pairs_of_row(&g[0], out.a.chunk(2 * kk, kb));
            pairs_of_row(&g[1], out.a.chunk(2 * kk + 1, kb));
            for half in 0..2 {
                let cols = 16 * half..16 * half + 16;
                pairs_of_columns(&p[0][cols.clone()], &p[1][cols.clone()], out.p.chunk(kk, 2 * kb + half));
                pairs_of_columns(&g[0][cols.clone()], &g[1][cols], out.ds.chunk(kk, 2 * kb + half));
            }
        }
    }
}

/// `dst[j·ld + e] = src[e·t + j]` for `e < hs`, `j < t`: a task's `dVᵀ` or
/// `dKᵀ` into its head's columns of dqkv, 16 keys at a time so each source
/// row is read a cache line at a time.
///
/// # Safety
/// `dst + j·ld + e` (j < t, e < hs) writable and owned by this task.
unsafe fn scatter_transposed(src: &[f32], t: usize, hs: usize, dst: *mut f32, ld: usize) {
    for j0 in (0..t).step_by(16) {
        let n = 16.min(t - j0);
        for e in 0..hs {
            let from = &src[e * t + j0..e * t + j0 + n];
            for (j, &x) in from.iter().enumerate() {
                // SAFETY: j0 + j < t and e < hs (contract).
                unsafe { *dst.add((j0 + j) * ld + e) = x };
            }
        }
    }
}
