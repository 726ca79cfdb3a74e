//! Causal multi-head self-attention, FlashAttention-style on the CPU.
//!
//! One rayon task per (batch, head). Rows are processed in blocks of `BLK`
//! queries; a block only looks at keys `0..i1` (its last row), so the upper
//! triangle is skipped block-wise and the scores of one block never exceed
//! `BLK × T` floats. Forward saves only the output and the per-row
//! log-sum-exp; backward recomputes the probabilities from Q, K and the lse
//! (Dao et al. 2022, "FlashAttention", Alg. 4), so no `T × T` tensor is kept
//! per (batch, head) across the step.
//!
//! Matmuls inside a task run serially: in f32 on our AVX-512F kernel (the
//! `gemm` crate on CPUs without it), or,
//! in bf16 mode on a CPU with AMX, on AMX tiles with bf16 operands (Q, K, V,
//! the probabilities and their gradient rounded to bf16, f32 accumulation, as
//! FlashAttention does in bf16 on GPUs). On AMX a task packs its keys and
//! values into tiles once, in the layouts its products read them
//! (`SharedB`), rather than once per block of queries; with heads at least
//! 16 wide, its row passes also write the probabilities and their gradient
//! straight into tiles (`amx.rs`). Attention is a few
//! percent of GPT-2's FLOPs at T ≤ 1024, but those small f32 products were
//! 40% of a `tiny` bf16 training step once the projections ran on AMX.

#[cfg(target_arch = "x86_64")]
mod amx;

use super::{dot_lanes, exp_inplace_sum, fast_exp, max_lanes, simd_fn};
use crate::backend::cpu::{SharedB, gemm_raw};
use rayon::prelude::*;
use std::cell::RefCell;

thread_local! {
    /// A task's keys and values as the B operands its query blocks share,
    /// packed once per (batch, head) (see `SharedB`); one set per thread,
    /// so their buffers are allocated in the first step only.
    static SHARED: RefCell<[SharedB; 3]> = RefCell::new(Default::default());
}

/// Query rows per block. Taller blocks mean fewer, larger products (and,
/// before keys and values were packed once per task, less packing): 128
/// against 64 took the 124M model's bf16 attention at T 1024 from ≈ 1,060
/// to ≈ 950 ms a step, and small's (T 256) from ≈ 57 to ≈ 51 ms; 256 was
/// no faster than 128 (BENCHMARKS.md, session 20). f32 attention did not
/// change.
pub const BLK: usize = 128;

/// Scratch floats per worker: two `BLK × T` blocks (scores/probabilities and
/// their gradient).
pub fn scratch_per_worker(t: usize) -> usize {
    2 * BLK * t
}

/// Shared pointer to buffers that tasks write in disjoint strided pieces.
#[derive(Clone, Copy)]
struct Shared(*mut f32);
// SAFETY: tasks write disjoint (batch, head) column blocks; see the callers.
unsafe impl Send for Shared {}
unsafe impl Sync for Shared {}

impl Shared {
    /// The pointer (a method, so closures capture the whole `Send` wrapper).
    fn get(self) -> *mut f32 {
        self.0
    }
}

/// Geometry of one call.
#[derive(Clone, Copy)]
struct Dims {
    b: usize,
    t: usize,
    c: usize,
    nh: usize,
    hs: usize,
    /// Matmuls on AMX in bf16 (`CpuBackend::uses_amx`).
    amx: bool,
}

impl Dims {
    /// Whether tasks take the AMX path that writes probabilities straight
    /// into tiles (`amx.rs`): heads narrower than a tile's depth would be
    /// mostly padding there.
    #[cfg(target_arch = "x86_64")]
    fn tiles(self) -> bool {
        self.amx && self.hs >= crate::backend::cpu::amx::MIN_K
    }
}

/// Runs `f(task, worker_scratch)` for every (b, h) task: worker `w` of the
/// `scratch.len() / per` workers takes tasks `w, w + workers, …`, a static
/// split so the work (equal per task) and the results don't depend on
/// scheduling.
fn for_each_task(scratch: &mut [f32], per: usize, tasks: usize, f: impl Fn(usize, &mut [f32]) + Sync) {
    let workers = (scratch.len() / per).clamp(1, tasks.max(1));
    scratch[..workers * per].par_chunks_mut(per).enumerate().for_each(|(w, s)| {
        for task in (w..tasks).step_by(workers) {
            f(task, s);
        }
    });
}

/// `out = softmax(q·kᵀ/√hs + causal) · v` per head; saves `lse`.
///
/// Shapes: out `[B·T, C]`, lse `[B, NH, T]`, qkv `[B·T, 3C]` (q | k | v, head
/// h at columns h·hs..), scratch `≥ scratch_per_worker(T)` (one block per
/// worker; more workers = more parallelism). `amx` as in `Dims`.
#[allow(clippy::too_many_arguments)]
pub fn forward(out: &mut [f32], lse: &mut [f32], qkv: &[f32], b: usize, t: usize, nh: usize, scratch: &mut [f32], amx: bool) {
    let c = out.len() / (b * t);
    let d = Dims {
        b,
        t,
        c,
        nh,
        hs: c / nh,
        amx,
    };
    assert!(
        out.len() == b * t * c && qkv.len() == b * t * 3 * c && lse.len() == b * nh * t,
        "attention::forward shapes"
    );
    let (outp, lsep) = (Shared(out.as_mut_ptr()), Shared(lse.as_mut_ptr()));
    for_each_task(scratch, scratch_per_worker(t), d.b * d.nh, |task, s| {
        #[cfg(target_arch = "x86_64")]
        if d.tiles() {
            // SAFETY: as below; `tiles` implies AMX.
            unsafe { amx::forward_task(d, task, outp.get(), lsep.get(), qkv, s) };
            return;
        }
        // SAFETY: task (b, h) writes only rows b·T.. of out at columns
        // h·hs..(h+1)·hs and lse[b, h, ..]; the asserted shapes keep every
        // access in bounds.
        unsafe { forward_task(d, task, outp.get(), lsep.get(), qkv, s) };
    });
}

/// # Safety
/// See [`forward`]: `out`/`lse` must be the full buffers of the asserted shapes.
unsafe fn forward_task(d: Dims, task: usize, out: *mut f32, lse: *mut f32, qkv: &[f32], s: &mut [f32]) {
    let Dims { t, c, hs, nh, .. } = d;
    let (bi, h) = (task / nh, task % nh);
    let q = &qkv[bi * t * 3 * c + h * hs..];
    let (k, v) = (&q[c..], &q[2 * c..]);
    let scale = 1.0 / (hs as f32).sqrt();
    let scores = &mut s[..BLK * t];
    SHARED.with_borrow_mut(|[kt, vb, _]| {
        // SAFETY: k and v rows < T at stride 3C with hs columns lie in qkv,
        // which outlives this task.
        unsafe {
            kt.set(d.amx, t, hs, (k.as_ptr(), 1, 3 * c));
            vb.set(d.amx, hs, t, (v.as_ptr(), 3 * c, 1));
        }
        for i0 in (0..t).step_by(BLK) {
            let i1 = (i0 + BLK).min(t);
            let (rows, cols) = (i1 - i0, i1);
            // SAFETY: q rows i < T at stride 3C with hs columns lie in qkv;
            // scores holds rows × T.
            unsafe {
                kt.gemm(
                    d.amx,
                    rows,
                    cols,
                    hs,
                    scores.as_mut_ptr(),
                    t,
                    false,
                    scale,
                    (q[i0 * 3 * c..].as_ptr(), 3 * c, 1),
                );
            }
            for r in 0..rows {
                let i = i0 + r;
                let row = &mut scores[r * t..r * t + cols];
                let (live, dead) = row.split_at_mut(i + 1);
                let row_lse = softmax_row(live);
                dead.fill(0.0);
                // SAFETY: (b, h, i) is inside lse and owned by this task.
                unsafe { *lse.add(task * t + i) = row_lse };
            }
            // SAFETY: out rows b·T+i0.. at columns h·hs.. (owned by this task).
            unsafe {
                vb.gemm(
                    d.amx,
                    rows,
                    hs,
                    cols,
                    out.add((bi * t + i0) * c + h * hs),
                    c,
                    false,
                    1.0,
                    (scores.as_ptr(), t, 1),
                );
            }
        }
    });
}

/// Backward of [`forward`]: writes `dqkv` (overwrites the whole buffer).
///
/// Shapes: dqkv, qkv `[B·T, 3C]`; dout, out `[B·T, C]`; lse `[B, NH, T]`;
/// scratch as in [`forward`].
#[allow(clippy::too_many_arguments)]
pub fn backward(
    dqkv: &mut [f32],
    dout: &[f32],
    qkv: &[f32],
    out: &[f32],
    lse: &[f32],
    b: usize,
    t: usize,
    nh: usize,
    scratch: &mut [f32],
    amx: bool,
) {
    let c = out.len() / (b * t);
    let d = Dims {
        b,
        t,
        c,
        nh,
        hs: c / nh,
        amx,
    };
    assert!(
        dqkv.len() == qkv.len() && qkv.len() == b * t * 3 * c && dout.len() == out.len() && lse.len() == b * nh * t,
        "attention::backward shapes"
    );
    let dp = Shared(dqkv.as_mut_ptr());
    for_each_task(scratch, scratch_per_worker(t), d.b * d.nh, |task, s| {
        #[cfg(target_arch = "x86_64")]
        if d.tiles() {
            // SAFETY: as below; `tiles` implies AMX.
            unsafe { amx::backward_task(d, task, dp.get(), dout, qkv, out, lse, s) };
            return;
        }
        // SAFETY: task (b, h) writes only rows b·T.. of dqkv at its head's
        // q, k and v columns; shapes asserted above.
        unsafe { backward_task(d, task, dp.get(), dout, qkv, out, lse, s) };
    });
}

/// # Safety
/// See [`backward`]: `dqkv` must be the full `[B·T, 3C]` buffer.
#[allow(clippy::too_many_arguments)]
unsafe fn backward_task(d: Dims, task: usize, dqkv: *mut f32, dout: &[f32], qkv: &[f32], out: &[f32], lse: &[f32], s: &mut [f32]) {
    let Dims { t, c, hs, nh, .. } = d;
    let (bi, h) = (task / nh, task % nh);
    let base = bi * t * 3 * c + h * hs;
    let q = &qkv[base..];
    let (k, v) = (&q[c..], &q[2 * c..]);
    let (dq, dk, dv) = unsafe { (dqkv.add(base), dqkv.add(base + c), dqkv.add(base + 2 * c)) };
    let dob = &dout[bi * t * c + h * hs..];
    let ob = &out[bi * t * c + h * hs..];
    let lse = &lse[task * t..(task + 1) * t];
    let scale = 1.0 / (hs as f32).sqrt();
    let (p, ds) = s[..2 * BLK * t].split_at_mut(BLK * t);
    for i in 0..t {
        // SAFETY: this task's dk/dv rows; accumulated over blocks below.
        unsafe {
            std::slice::from_raw_parts_mut(dk.add(i * 3 * c), hs).fill(0.0);
            std::slice::from_raw_parts_mut(dv.add(i * 3 * c), hs).fill(0.0);
        }
    }
    SHARED.with_borrow_mut(|[kt, vt, kb]| {
        // SAFETY: k and v rows < T at stride 3C with hs columns lie in qkv,
        // which outlives this task.
        unsafe {
            kt.set(d.amx, t, hs, (k.as_ptr(), 1, 3 * c));
            vt.set(d.amx, t, hs, (v.as_ptr(), 1, 3 * c));
            kb.set(d.amx, hs, t, (k.as_ptr(), 3 * c, 1));
        }
        for i0 in (0..t).step_by(BLK) {
            let i1 = (i0 + BLK).min(t);
            let (rows, cols) = (i1 - i0, i1);
            let qb = q[i0 * 3 * c..].as_ptr();
            let dob_blk = dob[i0 * c..].as_ptr();
            // SAFETY (all gemm calls): q/k/v/dout/out rows < T with hs columns at
            // their strides lie inside their slices; p/ds hold rows × T; the
            // dq/dk/dv blocks belong to this task.
            unsafe {
                // Recompute P = exp(scale·q·kᵀ − lse) on the causal part.
                kt.gemm(d.amx, rows, cols, hs, p.as_mut_ptr(), t, false, scale, (qb, 3 * c, 1));
                // dP = dO · vᵀ.
                vt.gemm(d.amx, rows, cols, hs, ds.as_mut_ptr(), t, false, 1.0, (dob_blk, c, 1));
            }
            for r in 0..rows {
                let i = i0 + r;
                let (prow, dsrow) = (&mut p[r * t..r * t + cols], &mut ds[r * t..r * t + cols]);
                // D_i = dO_i · O_i equals Σ_j P_ij dP_ij (the softmax Jacobian's
                // diagonal term), and is cheaper: hs instead of i multiply-adds.
                let di = dot_lanes(&dob[i * c..i * c + hs], &ob[i * c..i * c + hs]);
                softmax_grad_row(prow, dsrow, i + 1, lse[i], di);
            }
            unsafe {
                // dV[0..i1] += Pᵀ · dO[i0..i1].
                gemm_raw(d.amx, cols, hs, rows, dv, 3 * c, true, 1.0, (p.as_ptr(), 1, t), (dob_blk, c, 1));
                // dQ[i0..i1] = scale · dS · K[0..i1].
                kb.gemm(d.amx, rows, hs, cols, dq.add(i0 * 3 * c), 3 * c, false, scale, (ds.as_ptr(), t, 1));
                // dK[0..i1] += scale · dSᵀ · Q[i0..i1].
                gemm_raw(d.amx, cols, hs, rows, dk, 3 * c, true, scale, (ds.as_ptr(), 1, t), (qb, 3 * c, 1));
            }
        }
    });
}

simd_fn! {
    /// Softmax of one row of scores in place; returns its log-sum-exp.
    fn softmax_row(row: &mut [f32]) -> f32 {
        let max = max_lanes(row);
        let l = exp_inplace_sum(row, max);
        let inv = 1.0 / l;
        for x in row.iter_mut() {
            *x *= inv;
        }
        max + l.ln()
    }
}

simd_fn! {
    /// One row of the softmax backward: `p = exp(p − lse)` on the first
    /// `live` columns (0 after them), then `ds = p · (ds − d)`.
    fn softmax_grad_row(p: &mut [f32], ds: &mut [f32], live: usize, lse: f32, d: f32) {
        let (on, off) = p.split_at_mut(live);
        for x in on.iter_mut() {
            *x = fast_exp(*x - lse);
        }
        off.fill(0.0);
        for (g, &pv) in ds.iter_mut().zip(p.iter()) {
            *g = pv * (*g - d);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ops::testutil::*;

    /// f64 reference: causal softmax attention, returns `[B·T, C]`.
    fn attn64(qkv: &[f64], b: usize, t: usize, c: usize, nh: usize) -> Vec<f64> {
        let hs = c / nh;
        let mut out = vec![0.0; b * t * c];
        for bi in 0..b {
            for h in 0..nh {
                for i in 0..t {
                    let qi = |d: usize| qkv[(bi * t + i) * 3 * c + h * hs + d];
                    let s: Vec<f64> = (0..=i)
                        .map(|j| (0..hs).map(|d| qi(d) * qkv[(bi * t + j) * 3 * c + c + h * hs + d]).sum::<f64>() / (hs as f64).sqrt())
                        .collect();
                    let m = s.iter().fold(f64::NEG_INFINITY, |a, &x| a.max(x));
                    let z: f64 = s.iter().map(|x| (x - m).exp()).sum();
                    for d in 0..hs {
                        out[(bi * t + i) * c + h * hs + d] = (0..=i)
                            .map(|j| (s[j] - m).exp() / z * qkv[(bi * t + j) * 3 * c + 2 * c + h * hs + d])
                            .sum();
                    }
                }
            }
        }
        out
    }

    fn check(b: usize, t: usize, c: usize, nh: usize, workers: usize) {
        let qkv = randn(b * t * 3 * c, 1, 1.0);
        let dout = randn(b * t * c, 2, 1.0);
        let mut out = vec![0.0f32; b * t * c];
        let mut lse = vec![0.0f32; b * nh * t];
        let mut scratch = vec![0.0f32; workers * scratch_per_worker(t)];
        forward(&mut out, &mut lse, &f32s(&qkv), b, t, nh, &mut scratch, false);
        let want = attn64(&qkv, b, t, c, nh);
        for (o, w) in out.iter().zip(&want) {
            assert!((*o as f64 - w).abs() < 1e-5, "out {o} vs {w}");
        }
        let mut dqkv = vec![f32::NAN; qkv.len()]; // every element must be written
        backward(&mut dqkv, &f32s(&dout), &f32s(&qkv), &out, &lse, b, t, nh, &mut scratch, false);
        let num = numeric_grad(&qkv, |x| attn64(x, b, t, c, nh).iter().zip(&dout).map(|(o, d)| o * d).sum());
        assert_close("dqkv", &dqkv, &num, 1e-4);
    }

    #[test]
    fn backward_matches_finite_differences() {
        check(2, 5, 8, 2, 3);
    }

    /// Relative Frobenius distance.
    fn rel(a: &[f32], b: &[f32]) -> f32 {
        let d: f32 = a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum();
        let n: f32 = b.iter().map(|y| y * y).sum();
        (d / n).sqrt()
    }

    /// The tile path (`amx.rs`) against the f32 path. Without AMX the
    /// products run on the scalar model of the tiles (`amx::emulate`), so
    /// the row passes that write operands in tile order are checked on any
    /// CPU with AVX512-BF16.
    #[test]
    #[cfg(target_arch = "x86_64")]
    fn amx_bf16_attention_stays_close_to_f32() {
        if !std::arch::is_x86_feature_detected!("avx512bf16") {
            println!("skipping: no AVX512-BF16 on this machine");
            return;
        }
        // Heads of 32 and 64; T past one row block, with an odd last block
        // (a pair row with one live row) and T off a multiple of 32.
        for &(b, t, c, nh) in &[(2, BLK + 30, 64, 2), (1, BLK + 37, 128, 2), (1, 21, 32, 1)] {
            let qkv = f32s(&randn(b * t * 3 * c, 7, 1.0));
            let dout = f32s(&randn(b * t * c, 8, 1.0));
            let mut scratch = vec![0.0f32; 2 * scratch_per_worker(t)];
            let run = |amx: bool, scratch: &mut [f32]| {
                let (mut out, mut lse) = (vec![f32::NAN; b * t * c], vec![f32::NAN; b * nh * t]);
                forward(&mut out, &mut lse, &qkv, b, t, nh, scratch, amx);
                let mut dqkv = vec![f32::NAN; qkv.len()];
                backward(&mut dqkv, &dout, &qkv, &out, &lse, b, t, nh, scratch, amx);
                (out, lse, dqkv)
            };
            let (o32, l32, d32) = run(false, &mut scratch);
            let (o16, l16, d16) = run(true, &mut scratch);
            // bf16 operands carry 8 significant bits (2^-9 relative
            // rounding): a few 1e-3 of relative error, far from the f32
            // result's 1e-7.
            let (eo, el, ed) = (rel(&o16, &o32), rel(&l16, &l32), rel(&d16, &d32));
            assert!(eo < 1e-2 && el < 1e-2 && ed < 2e-2, "T {t}, C {c}: out {eo}, lse {el}, dqkv {ed}");
            println!("T {t}, C {c}: out {eo:.2e}, lse {el:.2e}, dqkv {ed:.2e}");
            assert!(eo > 0.0, "bf16 output equals f32 exactly: were the tiles used?");
            assert!(d16.iter().all(|x| x.is_finite()), "every dqkv element written");
        }
    }

    #[test]
    fn backward_matches_across_row_blocks() {
        // T > BLK exercises the block loop and the causal block skipping.
        check(1, BLK + 6, 4, 2, 1);
    }
}
