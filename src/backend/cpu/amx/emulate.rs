//! A scalar model of `serial_blocks` for tests on machines without AMX. It
//! reads the packed operands at the addresses the tile loads read them, so
//! code that writes operands in tile order (attention's row passes) is
//! checked wherever AVX512-BF16 exists, not only where AMX does. Sums run
//! in a different order from the tiles', so results agree to rounding, not
//! bit for bit.

use super::T;

/// The bf16 halves of a packed pair as f32: (low, high).
fn halves(w: u32) -> (f32, f32) {
    (f32::from_bits(w << 16), f32::from_bits(w & 0xFFFF_0000))
}

/// `c[m, n] = (accumulate ? c : 0) + alpha · A · B`, as `super::serial_blocks`.
///
/// # Safety
/// As `super::serial_blocks`, less the AMX requirement.
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn serial_blocks(
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
    for i in 0..m {
        for j in 0..n {
            let mut acc = 0.0f32;
            for kk in 0..k2p {
                // SAFETY: A's panel i/16 holds k2p pairs in tiles of 16 × 16
                // u32 ([row][pair]); B's panel j/16 holds b.1 ≥ k2p pairs
                // ([pair][column]); both inside the contract's buffers.
                let (aw, bw) = unsafe {
                    (
                        *a.add(i / T * T * k2p + kk / T * T * T + i % T * T + kk % T),
                        *b.0.add(j / T * T * b.1 + kk * T + j % T),
                    )
                };
                let ((a0, a1), (b0, b1)) = (halves(aw), halves(bw));
                acc += a0 * b0 + a1 * b1;
            }
            // SAFETY: c's m × n block at stride ldc is writable (contract).
            unsafe {
                let cp = c.add(i * ldc + j);
                *cp = if accumulate { *cp + alpha * acc } else { alpha * acc };
            }
        }
    }
}
