//! bf16 GEMM with f32 accumulation on AMX (Intel Sapphire Rapids and later).
//!
//! `tdpbf16ps tmmC, tmmA, tmmB` adds a 16×32 bf16 tile times a 32×16 bf16
//! tile into a 16×16 f32 tile: 8,192 multiply-adds per instruction, against
//! 32 for `vdpbf16ps` on a zmm register. On the 2-core development machine the
//! AVX512-BF16 kernel (`bf16.rs`) reaches about 60 GFLOP/s on the model's
//! shapes; this one several times that. The operand layouts follow Intel's
//! AMX programming reference (Intel® 64 and IA-32 Architectures Optimization
//! Reference Manual, chapter "Intel AMX"):
//!
//! - A (`[m, k]`) is packed *tile-major*: panels of 16 rows, each split into
//!   blocks of 16 k-pairs; one block is a contiguous 16 × 16 u32 tile
//!   (row r holds pairs `(a[r][2kk], a[r][2kk+1])`), so every A load is 1 KiB
//!   of contiguous memory.
//! - B (`[k, n]`) is packed as `bf16.rs` packs it, in panels of 16 columns
//!   (Intel's "VNNI" layout: row kk of a tile holds the pairs
//!   `(b[2kk][j], b[2kk+1][j])` of its 16 columns); 16 consecutive k-pairs of
//!   a panel are again one contiguous 1 KiB tile.
//!
//! The inner step computes a 32 × 32 output block in four accumulator tiles
//! (tmm0–3) from two A tiles (tmm4–5) and two B tiles (tmm6–7). Rows and
//! columns are zero-padded to multiples of 32 and k to a multiple of 32 at
//! packing time, so tiles are always full; only the write-back is clipped.
//!
//! Each output block is computed by exactly one task, always in the same k
//! order, so results do not depend on the thread count.
//!
//! Linux makes a process ask for the 8 KiB of AMX register state before its
//! first tile instruction (`arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)`,
//! Documentation/arch/x86/xstate.rst); [`available`] does that once.
//! The tile instructions are written as inline assembly because Rust's AMX
//! intrinsics are not stable; the compiler never allocates tmm registers, so
//! nothing it holds is clobbered.

#[cfg(test)]
mod emulate;
mod pack;
mod tiles;

pub use tiles::{PackedA, PackedB, TilePairs, TileRows, gemm_packed, gemm_raw_packed_b};

use super::super::MatRef;
use super::SendPtr;
use super::tiled::aligned;
use rayon::prelude::*;
use std::arch::asm;
use std::sync::OnceLock;

/// Tile edge: 16 rows of 64 bytes (16 f32 or 16 bf16 pairs).
const T: usize = 16;
/// Output block per inner step: 2 × 2 tiles.
const BLK: usize = 32;
/// Blocks per parallel task along m and n (64 rows × 128 columns).
const TASK_MB: usize = 2;
const TASK_NB: usize = 4;
/// Below these sizes padding to 32 wastes more than AMX gains: use the
/// AVX512-BF16 kernel (batch-1 decoding, tiny test matrices).
pub const MIN_M: usize = 16;
pub const MIN_N: usize = 16;
/// Below this depth a 32-deep k step is mostly padding.
pub const MIN_K: usize = 16;

/// Whether AMX-BF16 can be used: the CPU has it, the kernel granted this
/// process the tile state, and `KILN_NO_AMX` is unset (it forces the
/// AVX512-BF16 kernel, for comparisons).
pub fn available() -> bool {
    static OK: OnceLock<bool> = OnceLock::new();
    *OK.get_or_init(|| std::env::var_os("KILN_NO_AMX").is_none() && cpu_has_amx_bf16() && request_tile_state())
}

/// CPUID leaf 7, sub-leaf 0, EDX: bit 22 AMX-BF16, bit 24 AMX-TILE.
fn cpu_has_amx_bf16() -> bool {
    #[allow(unused_unsafe)]
    // SAFETY: CPUID leaf 7 exists on every x86-64 CPU that has AVX-512, which
    // the caller (the bf16 path) has already required.
    let r = unsafe { std::arch::x86_64::__cpuid_count(7, 0) };
    r.edx & (1 << 22) != 0 && r.edx & (1 << 24) != 0
}

#[cfg(target_os = "linux")]
fn request_tile_state() -> bool {
    const ARCH_REQ_XCOMP_PERM: libc::c_long = 0x1023;
    const XFEATURE_XTILEDATA: libc::c_long = 18;
    // SAFETY: arch_prctl with these arguments only changes this process's
    // permitted xsave features; it reads and writes no memory of ours.
    unsafe { libc::syscall(libc::SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0 }
}

#[cfg(not(target_os = "linux"))]
fn request_tile_state() -> bool {
    false
}

/// The 64-byte tile configuration `ldtilecfg` reads: palette 1, all eight
/// tiles 16 rows × 64 bytes.
#[repr(C, align(64))]
struct TileConfig([u8; 64]);

impl TileConfig {
    fn all_full() -> Self {
        let mut c = [0u8; 64];
        c[0] = 1;
        for t in 0..8 {
            c[16 + 2 * t] = (T * 4) as u8; // bytes per row (u16, little-endian)
            c[48 + t] = T as u8; // rows
        }
        TileConfig(c)
    }
}

/// `c[m, n] (ldc) = (accumulate ? c : 0) + a · b` in bf16 with f32
/// accumulation on AMX. The caller has checked shapes and [`available`];
/// `pa`/`pb` are reusable packing buffers.
#[allow(clippy::too_many_arguments)]
pub(crate) fn matmul(
    m: usize,
    n: usize,
    k: usize,
    c: &mut [f32],
    ldc: usize,
    accumulate: bool,
    a: MatRef<'_>,
    b: MatRef<'_>,
    pa: &mut Vec<u32>,
    pb: &mut Vec<u32>,
) {
    let (k2p, pa, pb) = pack_operands(m, n, k, a, b, pa, pb, true);
    let (mb, nb) = (m.div_ceil(BLK), n.div_ceil(BLK));
    let (tm, tn) = (mb.div_ceil(TASK_MB), nb.div_ceil(TASK_NB));
    let cptr = SendPtr(c.as_mut_ptr());
    let cfg = TileConfig::all_full();
    (0..tm * tn).into_par_iter().for_each(|task| {
        let (ti, tj) = (task / tn, task % tn);
        // SAFETY: `available()` was checked by the caller, so the tile state
        // is permitted; the configuration is 64 bytes and 64-aligned.
        unsafe { asm!("ldtilecfg [{0}]", in(reg) cfg.0.as_ptr(), options(nostack, readonly)) };
        for bi in ti * TASK_MB..((ti + 1) * TASK_MB).min(mb) {
            for bj in tj * TASK_NB..((tj + 1) * TASK_NB).min(nb) {
                let (i0, j0) = (bi * BLK, bj * BLK);
                // SAFETY: block (bi, bj) belongs to this task alone; the packed
                // panels hold 32 rows (columns) of k2p pairs from i0 (j0); the
                // write-back is clipped to m × n inside c (shapes checked by
                // the caller).
                unsafe {
                    block(
                        k2p,
                        pa.as_ptr().add(i0 * k2p),
                        (pb.as_ptr().add(j0 * k2p), k2p),
                        cptr.get().add(i0 * ldc + j0),
                        ldc,
                        BLK.min(m - i0),
                        BLK.min(n - j0),
                        accumulate,
                        1.0,
                    );
                }
            }
        }
        // SAFETY: releases this thread's tile state; no tile is live.
        unsafe { asm!("tilerelease", options(nostack, nomem)) };
    });
}

/// Packs A and B into `pa`/`pb` (grown as needed); returns the padded pair
/// count `k2p` and the packed slices.
#[allow(clippy::too_many_arguments)]
fn pack_operands<'p>(
    m: usize,
    n: usize,
    k: usize,
    a: MatRef<'_>,
    b: MatRef<'_>,
    pa: &'p mut Vec<u32>,
    pb: &'p mut Vec<u32>,
    parallel: bool,
) -> (usize, &'p [u32], &'p [u32]) {
    let k2p = k.div_ceil(2 * T) * T;
    let (la, lb) = (m.div_ceil(BLK) * BLK * k2p, n.div_ceil(BLK) * BLK * k2p);
    // Tile rows are 64-byte loads: keep them inside one cache line each.
    let (pa, pb) = (aligned(pa, la), aligned(pb, lb));
    pack::pack(m, k, k2p, a, pa, true, parallel);
    // B is packed as panels of its columns: view it as bᵀ ([n, k]).
    let bt = MatRef {
        data: b.data,
        rs: b.cs,
        cs: b.rs,
    };
    pack::pack(n, k, k2p, bt, pb, false, parallel);
    (k2p, pa, pb)
}

thread_local! {
    /// Packing buffers of [`gemm_raw`], one pair per thread.
    static SCRATCH: std::cell::RefCell<(Vec<u32>, Vec<u32>)> = const { std::cell::RefCell::new((Vec::new(), Vec::new())) };
}

/// Serial AMX GEMM on raw strided pointers, the bf16 counterpart of
/// `gemm_f32_raw` for callers that write disjoint blocks of a shared buffer
/// from inside rayon tasks (attention):
/// `c[m, n] = (accumulate ? c : 0) + alpha · a[m, k] · b[k, n]`, with `a`
/// and `b` given as `(pointer, row stride, column stride)`.
///
/// # Safety
/// [`available`] returned true; `m, n, k ≥ 1`; every element
/// `a + i·rs + p·cs` (i < m, p < k) and `b + p·rs + j·cs` (p < k, j < n)
/// readable and `c + i·ldc + j` (i < m, j < n) writable, with no other
/// thread touching that block of c meanwhile.
#[allow(clippy::too_many_arguments)]
pub unsafe fn gemm_raw(
    m: usize,
    n: usize,
    k: usize,
    c: *mut f32,
    ldc: usize,
    accumulate: bool,
    alpha: f32,
    a: (*const f32, usize, usize),
    b: (*const f32, usize, usize),
) {
    // SAFETY: readable per the contract.
    let (av, bv) = unsafe { super::raw_views(m, n, k, a, b) };
    SCRATCH.with_borrow_mut(|(pa, pb)| {
        let (k2p, pa, pb) = pack_operands(m, n, k, av, bv, pa, pb, false);
        // SAFETY: tiles permitted and c writable (contract); both operands
        // were packed just above with k2p pairs per panel.
        unsafe { serial_blocks(m, n, k2p, pa.as_ptr(), (pb.as_ptr(), k2p), c, ldc, accumulate, alpha) };
    });
}

/// Every 32 × 32 block of `c[m, n]` on this thread, as `gemm_raw` computes
/// them: A packed with `k2p` pairs per panel, B with `b.1 ≥ k2p`.
///
/// # Safety
/// [`available`] returned true; `a` holds `m` rows (rounded up to 32) of
/// packed A panels, `b.0` `n` columns (rounded up to 32) of packed B
/// panels; `c` addresses a writable `m × n` block at stride `ldc` that no
/// other thread touches meanwhile.
#[allow(clippy::too_many_arguments)]
unsafe fn serial_blocks(
    m: usize,
    n: usize,
    k2p: usize,
    a: *const u32,
    b: (*const u32, usize),
    c: *mut f32,
    ldc: usize,
    accumulate: bool,
    alpha: f32,
) {
    #[cfg(test)]
    if !available() {
        // SAFETY: the same contract, on the scalar model.
        unsafe { emulate::serial_blocks(m, n, k2p, a, b, c, ldc, accumulate, alpha) };
        return;
    }
    let cfg = TileConfig::all_full();
    // SAFETY: tiles permitted (contract); blocks as in `matmul`, all on this
    // thread; the panels and c's block are inside the contract's buffers.
    unsafe {
        asm!("ldtilecfg [{0}]", in(reg) cfg.0.as_ptr(), options(nostack, readonly));
        for i0 in (0..m).step_by(BLK) {
            for j0 in (0..n).step_by(BLK) {
                block(
                    k2p,
                    a.add(i0 * k2p),
                    (b.0.add(j0 * b.1), b.1),
                    c.add(i0 * ldc + j0),
                    ldc,
                    BLK.min(m - i0),
                    BLK.min(n - j0),
                    accumulate,
                    alpha,
                );
            }
        }
        asm!("tilerelease", options(nostack, nomem));
    }
}

/// Stores the accumulator tiles tmm0–3 as a 32 × 32 f32 block at `c` with
/// row stride `ldc` (in f32).
///
/// # Safety
/// `c` must address 32 writable rows of 32 f32 at stride `ldc`.
unsafe fn store_block(c: *mut f32, ldc: usize) {
    // SAFETY: the four stores cover rows 0..32 × columns 0..32 of the block.
    unsafe {
        asm!(
            "tilestored [{c} + {s}*1], tmm0",
            "tilestored [{c} + {s}*1 + 64], tmm1",
            "tilestored [{c2} + {s}*1], tmm2",
            "tilestored [{c2} + {s}*1 + 64], tmm3",
            c = in(reg) c,
            c2 = in(reg) c.add(T * ldc),
            s = in(reg) ldc * 4,
            options(nostack),
        );
    }
}

/// One 32 × 32 block: `c[0..mr, 0..nr] = (accumulate ? c : 0) + alpha · A-panels · B-panels`.
///
/// # Safety
/// Tiles configured by `ldtilecfg` as in [`TileConfig::all_full`]; `a`
/// must hold 32·k2p u32 laid out as `pack::pack` writes them, and `b.0` two
/// B panels of `b.1 ≥ k2p` pairs each (the first k2p are read);
/// `c` must address an `mr × nr` block with row stride `ldc`.
#[allow(clippy::too_many_arguments)]
unsafe fn block(
    k2p: usize,
    a: *const u32,
    b: (*const u32, usize),
    c: *mut f32,
    ldc: usize,
    mr: usize,
    nr: usize,
    accumulate: bool,
    alpha: f32,
) {
    // Whole blocks without scaling go straight between tiles and c.
    let full = mr == BLK && nr == BLK && alpha == 1.0;
    let stride_c = ldc * 4;
    let half_a = T * k2p; // u32 from the first to the second 16-row A panel
    let (b, half_b) = (b.0, T * b.1); // B's panels hold b.1 pairs each
    // SAFETY (whole body): every tile load reads 16 rows of 64 bytes inside
    // the packed panels or, for c, inside the 32 × 32 block the contract
    // covers; stores write only inside that block or the local buffer.
    unsafe {
        if full && accumulate {
            asm!(
                "tileloadd tmm0, [{c} + {s}*1]",
                "tileloadd tmm1, [{c} + {s}*1 + 64]",
                "tileloadd tmm2, [{c2} + {s}*1]",
                "tileloadd tmm3, [{c2} + {s}*1 + 64]",
                c = in(reg) c,
                c2 = in(reg) c.add(T * ldc),
                s = in(reg) stride_c,
                options(nostack, readonly),
            );
        } else {
            asm!(
                "tilezero tmm0",
                "tilezero tmm1",
                "tilezero tmm2",
                "tilezero tmm3",
                options(nostack, nomem)
            );
        }
        for kb in 0..k2p / T {
            let off = kb * T * T;
            asm!(
                "tileloadd tmm4, [{a0} + {s}*1]",
                "tileloadd tmm5, [{a1} + {s}*1]",
                "tileloadd tmm6, [{b0} + {s}*1]",
                "tileloadd tmm7, [{b1} + {s}*1]",
                "tdpbf16ps tmm0, tmm4, tmm6",
                "tdpbf16ps tmm1, tmm4, tmm7",
                "tdpbf16ps tmm2, tmm5, tmm6",
                "tdpbf16ps tmm3, tmm5, tmm7",
                a0 = in(reg) a.add(off),
                a1 = in(reg) a.add(half_a + off),
                b0 = in(reg) b.add(off),
                b1 = in(reg) b.add(half_b + off),
                s = in(reg) T * 4,
                options(nostack, readonly),
            );
        }
        if full {
            store_block(c, ldc);
            return;
        }
        let mut buf = [[0.0f32; BLK]; BLK];
        store_block(buf.as_mut_ptr() as *mut f32, BLK);
        for (r, row) in buf.iter().enumerate().take(mr) {
            let dst = std::slice::from_raw_parts_mut(c.add(r * ldc), nr);
            if accumulate {
                for (d, v) in dst.iter_mut().zip(row) {
                    *d += alpha * v;
                }
            } else {
                for (d, v) in dst.iter_mut().zip(row) {
                    *d = alpha * v;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    // ok: test module
    use super::*;
    use crate::backend::cpu::bf16::reference;

    use crate::backend::cpu::{Stored, test_data as data};

    #[test]
    fn a_prepacked_b_gives_gemm_raws_bits_on_its_leading_part() {
        if !available() {
            println!("skipping: no usable AMX-BF16 on this machine");
            return;
        }
        // B as attention holds keys: [k = 64, n = 300] with columns at a
        // stride (rs 1, cs 3·64), and as it holds values: [k = 300, n = 64]
        // (rs 3·64, cs 1); products read a leading part of it.
        let (kf, nf) = (64, 300);
        let src = data(3 * 64 * 300, 9);
        let mut packed = PackedB::default();
        for (bt, (k_full, n_full)) in [((1, 3 * 64), (kf, nf)), ((3 * 64, 1), (nf, kf))] {
            let b = (src.as_ptr(), bt.0, bt.1);
            // SAFETY: AMX checked; every b + p·rs + j·cs (p < k_full, j < n_full) lies in src.
            unsafe { packed.pack(n_full, k_full, b) };
            for &(m, n, k) in &[
                (128, n_full, k_full),
                (50, n_full.min(130), k_full),
                (128, n_full, k_full.min(128)),
                (40, n_full.min(64), k_full.min(100)),
                (17, 16, k_full.min(16)),
            ] {
                let a = data(m * k, (m + n + k) as u64);
                for accumulate in [false, true] {
                    let ldc = n + 5;
                    let mut want = vec![0.25f32; m * ldc];
                    let mut got = want.clone();
                    // SAFETY: a is [m, k] row-major; b's leading [k, n] is in src; c is m × ldc.
                    unsafe {
                        gemm_raw(m, n, k, want.as_mut_ptr(), ldc, accumulate, 0.125, (a.as_ptr(), k, 1), b);
                        gemm_raw_packed_b(m, n, k, got.as_mut_ptr(), ldc, accumulate, 0.125, (a.as_ptr(), k, 1), &mut packed);
                    }
                    let same = want.iter().zip(&got).all(|(w, g)| w.to_bits() == g.to_bits());
                    assert!(same, "({m}, {n}, {k}) of [{k_full}, {n_full}], accumulate {accumulate}");
                }
            }
        }
    }

    #[test]
    fn amx_matches_scalar_reference_on_every_layout_and_tail() {
        if !available() {
            println!("skipping: no usable AMX-BF16 on this machine");
            return;
        }
        let (mut pa, mut pb) = (Vec::new(), Vec::new());
        // Full blocks, tails in m, n and k, odd k, k past one 32-wide step.
        for &(m, n, k) in &[(32, 32, 32), (64, 128, 256), (17, 33, 5), (45, 70, 129), (100, 31, 64), (16, 16, 1)] {
            let (a, b) = (data(m * k, m as u64 + 1), data(k * n, n as u64 + 2));
            let want = reference(m, n, k, &a, &b);
            let stored = Stored::new(m, n, k, a, b);
            for (li, (av, bv)) in stored.layouts().into_iter().enumerate() {
                for accumulate in [false, true] {
                    // ldc > n: columns past n must be left alone.
                    let ldc = n + 3;
                    let mut c = vec![0.5f32; m * ldc];
                    matmul(m, n, k, &mut c, ldc, accumulate, av, bv, &mut pa, &mut pb);
                    let base = if accumulate { 0.5 } else { 0.0 };
                    for i in 0..m {
                        for j in 0..n {
                            let (got, want) = (c[i * ldc + j], want[i * n + j]);
                            let tol = 1e-5 * (k as f32).sqrt() * 4.0;
                            assert!(
                                (got - base - want).abs() <= tol,
                                "({m},{n},{k}) layout {li} acc {accumulate} [{i},{j}]: {got} - {base} vs {want}"
                            );
                        }
                        assert!(c[i * ldc + n..(i + 1) * ldc].iter().all(|&x| x == 0.5), "row {i} tail touched");
                    }
                }
            }
        }
    }

    #[test]
    fn amx_result_does_not_depend_on_the_thread_count() {
        if !available() {
            println!("skipping: no usable AMX-BF16 on this machine");
            return;
        }
        let (m, n, k) = (130, 200, 300);
        let a = data(m * k, 5);
        let b = data(k * n, 6);
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("pool");
            pool.install(|| {
                let mut c = vec![0.0f32; m * n];
                let (mut pa, mut pb) = (Vec::new(), Vec::new());
                matmul(
                    m,
                    n,
                    k,
                    &mut c,
                    n,
                    false,
                    MatRef::row_major(&a, k),
                    MatRef::row_major(&b, n),
                    &mut pa,
                    &mut pb,
                );
                c
            })
        };
        assert_eq!(run(1), run(3));
    }
}
