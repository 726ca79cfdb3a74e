//! Packing f32 operands into the bf16 tiles `tdpbf16ps` reads (module doc of
//! `amx`): one 16 × 16 u32 tile per 16 rows (or columns) × 16 k-pairs, each
//! u32 a pair `(x[2kk], x[2kk+1])` of bf16 halves, low half first.
//!
//! Packing is O(k·(m+n)) against the product's O(m·n·k), but with AMX the
//! product is so fast that a scalar conversion took as long as the tiles
//! (`perf` on the `tiny` training step). So the conversion runs on
//! AVX512-BF16 (`vcvtne2ps2bf16`, round to nearest even as `to_bf16_bits`),
//! 16 or 32 floats at a time, and a layout that needs the other orientation
//! transposes one 16 × 16 tile in cache.

use super::T;
use crate::backend::MatRef;
use crate::backend::cpu::SendPtr;
use crate::backend::cpu::bf16::{pair, pairs_of_columns, pairs_of_row};
use rayon::prelude::*;
use std::arch::x86_64::*;

/// u32 per tile.
const TILE: usize = T * T;

/// Packs `view` (`[rows, k]`) into panels of 16 rows of `k2p` pairs, zero-
/// padded past `rows` and `k`; `out` may hold more panels than `rows` needs.
/// Within a panel, k-block `kb` is the tile at `kb·256`: laid out
/// `[row][pair]` when `rows_major` (the A operand) or `[pair][row]`
/// otherwise (the B operand, whose "rows" are the product's columns).
/// `parallel` splits the work over the current rayon pool.
pub(super) fn pack(rows: usize, k: usize, k2p: usize, view: MatRef<'_>, out: &mut [u32], rows_major: bool, parallel: bool) {
    let g = Geometry { rows, k, k2p, rows_major };
    if view.rs == 1 && view.cs != 1 {
        // Columns contiguous: the source is a row-major matrix read down its
        // columns. Panel by panel, every tile would touch 32 rows a whole
        // row stride apart (for the LM head's gradient, 32 KiB: a TLB miss
        // per row); k-block by k-block, the same 32 rows are read across
        // in order, once.
        let kbs = k2p / T;
        let panels = out.len() / (T * k2p);
        let base = SendPtr(out.as_mut_ptr());
        let strip = |kb: usize| {
            let mut tmp = [0u32; TILE];
            for panel in 0..panels {
                // SAFETY: tile (panel, kb) is 256 u32 inside `out` (panels ×
                // 16·k2p of them), written only by the task of strip kb.
                let tile = unsafe { std::slice::from_raw_parts_mut(base.get().add(panel * T * k2p + kb * TILE), TILE) };
                g.fill(view, panel, kb, tile, &mut tmp);
            }
        };
        if parallel {
            (0..kbs).into_par_iter().for_each(strip);
        } else {
            (0..kbs).for_each(strip);
        }
        return;
    }
    let panel = |(panel, dst): (usize, &mut [u32])| {
        let mut tmp = [0u32; TILE];
        for (kb, tile) in dst.chunks_exact_mut(TILE).enumerate() {
            g.fill(view, panel, kb, tile, &mut tmp);
        }
    };
    if parallel {
        out.par_chunks_mut(T * k2p).enumerate().for_each(panel);
    } else {
        out.chunks_mut(T * k2p).enumerate().for_each(panel);
    }
}

/// What `pack` packs, for filling one tile.
#[derive(Clone, Copy)]
struct Geometry {
    rows: usize,
    k: usize,
    k2p: usize,
    rows_major: bool,
}

impl Geometry {
    /// Fills `tile` (panel, k-block kb); `tmp` is scratch for a transpose.
    fn fill(self, view: MatRef<'_>, panel: usize, kb: usize, tile: &mut [u32], tmp: &mut [u32; TILE]) {
        let (r0, p0) = (panel * T, 2 * T * kb);
        let live = T.min(self.rows.saturating_sub(r0));
        let kv = self.k.saturating_sub(p0).min(2 * T);
        debug_assert!(kb < self.k2p / T && tile.len() == TILE);
        if live == 0 || kv == 0 {
            tile.fill(0);
            return;
        }
        // Which orientation the source gives cheaply: rows contiguous →
        // [row][pair]; columns contiguous → [pair][row]. Write straight into
        // the tile when that is the one wanted.
        let gives_rows = view.cs == 1 || view.rs != 1;
        let dst: &mut [u32] = if gives_rows == self.rows_major { tile } else { tmp };
        if view.cs == 1 {
            // SAFETY: rows r0..r0+live and columns p0..p0+kv lie inside the
            // view (the caller checked it fits rows × k); AVX512-BF16 is
            // present wherever AMX is.
            unsafe { tile_rows(&view.data[r0 * view.rs + p0..], view.rs, live, kv, dst) };
        } else if view.rs == 1 {
            // SAFETY: as above, with the view's columns contiguous.
            unsafe { tile_cols(&view.data[r0 + p0 * view.cs..], view.cs, live, kv, dst) };
        } else {
            dst.fill(0);
            let get = |r: usize, p: usize| {
                if p < kv {
                    view.data[(r0 + r) * view.rs + (p0 + p) * view.cs]
                } else {
                    0.0
                }
            };
            for r in 0..live {
                for t in 0..T {
                    dst[r * T + t] = pair(get(r, 2 * t), get(r, 2 * t + 1));
                }
            }
        }
        if gives_rows != self.rows_major {
            // SAFETY: AVX-512F is present wherever AMX is; both are 256 u32.
            unsafe { transpose(tmp, tile) };
        }
    }
}

/// `out[r·16 + t] = pair(src[r·stride + 2t], src[r·stride + 2t + 1])` for
/// `r < rows`, with elements at `2t(+1) ≥ kv` and rows past `rows` zero.
///
/// # Safety
/// AVX512F and AVX512-BF16 available; `src[r·stride + e]` in bounds for
/// `r < rows`, `e < kv ≤ 32`.
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn tile_rows(src: &[f32], stride: usize, rows: usize, kv: usize, out: &mut [u32]) {
    assert_eq!(out.len(), TILE);
    for (r, o) in out.chunks_exact_mut(T).enumerate() {
        if r >= rows {
            o.fill(0);
        } else if kv == 2 * T {
            // SAFETY: this function's features.
            unsafe { pairs_of_row(&src[r * stride..r * stride + 2 * T], o) };
        } else {
            let s = &src[r * stride..r * stride + kv];
            for (t, o) in o.iter_mut().enumerate() {
                let at = |e: usize| s.get(e).copied().unwrap_or(0.0);
                *o = pair(at(2 * t), at(2 * t + 1));
            }
        }
    }
}

/// `out[t·16 + j] = pair(src[2t·stride + j], src[(2t+1)·stride + j])` for
/// `j < cols`, with elements at `2t(+1) ≥ kv` and columns past `cols` zero.
///
/// # Safety
/// AVX512F and AVX512-BF16 available; `src[e·stride + j]` in bounds for
/// `e < kv ≤ 32`, `j < cols`.
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn tile_cols(src: &[f32], stride: usize, cols: usize, kv: usize, out: &mut [u32]) {
    assert_eq!(out.len(), TILE);
    for (t, o) in out.chunks_exact_mut(T).enumerate() {
        let (e0, e1) = (2 * t, 2 * t + 1);
        if cols == T && e1 < kv {
            let (lo, hi) = (&src[e0 * stride..e0 * stride + T], &src[e1 * stride..e1 * stride + T]);
            // SAFETY: this function's features.
            unsafe { pairs_of_columns(lo, hi, o) };
        } else {
            let at = |e: usize, j: usize| if e < kv && j < cols { src[e * stride + j] } else { 0.0 };
            for (j, o) in o.iter_mut().enumerate() {
                *o = pair(at(e0, j), at(e1, j));
            }
        }
    }
}

/// `dst[j·16 + i] = src[i·16 + j]`: a 16 × 16 transpose of u32 in registers
/// (32-bit, then 64-bit interleaves within 128-bit lanes, then two rounds of
/// lane shuffles), about 64 shuffles instead of 256 scalar moves.
///
/// # Safety
/// AVX-512F available.
#[target_feature(enable = "avx512f")]
unsafe fn transpose(src: &[u32; TILE], dst: &mut [u32]) {
    assert_eq!(dst.len(), TILE);
    // SAFETY: every load and store addresses one of the 16 rows of 16 u32
    // of `src` or `dst`.
    unsafe {
        let r: [__m512i; T] = std::array::from_fn(|i| _mm512_loadu_si512(src.as_ptr().add(i * T) as *const __m512i));
        // Rows 2i, 2i+1 interleaved: per 128-bit lane L, columns 4L, 4L+1
        // (even t) and 4L+2, 4L+3 (odd t) of the two rows.
        let t: [__m512i; T] = std::array::from_fn(|x| {
            let (a, b) = (r[x & !1], r[x | 1]);
            if x % 2 == 0 {
                _mm512_unpacklo_epi32(a, b)
            } else {
                _mm512_unpackhi_epi32(a, b)
            }
        });
        // u[4i + j], lane L: column 4L + j of rows 4i..4i+4.
        let u: [__m512i; T] = std::array::from_fn(|x| {
            let (g, j) = (x / 4 * 4, x % 4);
            let (a, b) = (t[g + j / 2], t[g + 2 + j / 2]);
            if j % 2 == 0 {
                _mm512_unpacklo_epi64(a, b)
            } else {
                _mm512_unpackhi_epi64(a, b)
            }
        });
        for j in 0..4 {
            // Lanes (0, 2) and (1, 3) of row groups 0–1 and 2–3.
            let v0 = _mm512_shuffle_i32x4::<0x88>(u[j], u[4 + j]);
            let w0 = _mm512_shuffle_i32x4::<0xDD>(u[j], u[4 + j]);
            let v1 = _mm512_shuffle_i32x4::<0x88>(u[8 + j], u[12 + j]);
            let w1 = _mm512_shuffle_i32x4::<0xDD>(u[8 + j], u[12 + j]);
            let out = [
                (j, _mm512_shuffle_i32x4::<0x88>(v0, v1)),
                (4 + j, _mm512_shuffle_i32x4::<0x88>(w0, w1)),
                (8 + j, _mm512_shuffle_i32x4::<0xDD>(v0, v1)),
                (12 + j, _mm512_shuffle_i32x4::<0xDD>(w0, w1)),
            ];
            for (col, v) in out {
                _mm512_storeu_si512(dst.as_mut_ptr().add(col * T) as *mut __m512i, v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    // ok: test module
    use super::*;

    #[test]
    fn register_transpose_matches_scalar() {
        if !std::arch::is_x86_feature_detected!("avx512f") {
            println!("skipping: no AVX-512F");
            return;
        }
        let src: [u32; TILE] = std::array::from_fn(|i| (i as u32).wrapping_mul(2654435761));
        let mut dst = [0u32; TILE];
        // SAFETY: AVX-512F checked above.
        unsafe { transpose(&src, &mut dst) };
        for i in 0..T {
            for j in 0..T {
                assert_eq!(dst[j * T + i], src[i * T + j], "[{i}][{j}]");
            }
        }
    }
}
