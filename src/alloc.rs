//! The process's allocator: the system's, with every block of 64 KiB or
//! more aligned to a 64-byte cache line.
//!
//! glibc returns large blocks 16 bytes past a page boundary (its chunk
//! header), so every row of a model buffer began mid-line, and a 64-byte
//! load or store of a row (an AMX tile row, a zmm register) touched two
//! lines for one. Aligned, the bf16 training step of GPT-2 124M ran ≈ 4%
//! faster and `small`'s ≈ 8% (BENCHMARKS.md, session 21). Aligning here
//! covers every buffer at once: parameters, gradients, moments, activations,
//! scratch. Smaller blocks (strings, records) keep glibc's own fast path.
//!
//! Large blocks go to glibc directly (`posix_memalign`, `realloc`, `free`),
//! so this module alone decides how they are made and released; small ones
//! go through `std::alloc::System` unchanged.

use std::alloc::{GlobalAlloc, Layout, System};

/// See the module doc.
pub struct LineAligned;

/// Blocks of at least this many bytes are aligned to [`LINE`].
const MIN_SIZE: usize = 64 << 10;
/// A cache line.
const LINE: usize = 64;

/// Whether a block of this layout is made here (see the module doc): large,
/// and asking for no more than a line's alignment. A pure function of the
/// caller's layout, so `dealloc` and `realloc` agree with `alloc`.
fn ours(layout: Layout) -> bool {
    layout.size() >= MIN_SIZE && layout.align() <= LINE
}

/// A line-aligned block of `size` bytes from glibc, or null.
///
/// # Safety
/// As `malloc`.
unsafe fn aligned_block(size: usize) -> *mut u8 {
    let mut p = std::ptr::null_mut();
    // SAFETY: LINE is a power of two and a multiple of the pointer size.
    if unsafe { libc::posix_memalign(&mut p, LINE, size) } == 0 {
        p as *mut u8
    } else {
        std::ptr::null_mut()
    }
}

// SAFETY: blocks for which `ours` holds are made by `posix_memalign` (or
// `realloc` of such a block) and released by `free`, all line-aligned and
// at least as large as asked; the rest go to `System` with their layout
// unchanged. `ours` depends only on the layout, which the caller passes
// again to `dealloc` and `realloc`.
unsafe impl GlobalAlloc for LineAligned {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if ours(layout) {
            // SAFETY: a non-zero size (≥ MIN_SIZE).
            unsafe { aligned_block(layout.size()) }
        } else {
            // SAFETY: the caller's contract.
            unsafe { System.alloc(layout) }
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if ours(layout) {
            // No aligned calloc: zero it here. Every page is written now,
            // instead of first read (mapping the shared zero page) and then
            // written, which costs a second fault and a TLB shootdown per
            // page on first use.
            // SAFETY: a fresh block of layout.size() bytes, when not null.
            unsafe {
                let p = aligned_block(layout.size());
                if !p.is_null() {
                    std::ptr::write_bytes(p, 0, layout.size());
                }
                p
            }
        } else {
            // SAFETY: the caller's contract.
            unsafe { System.alloc_zeroed(layout) }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if ours(layout) {
            // SAFETY: made by posix_memalign or realloc (see `alloc`).
            unsafe { libc::free(ptr as *mut libc::c_void) }
        } else {
            // SAFETY: made by System with this layout.
            unsafe { System.dealloc(ptr, layout) }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: GlobalAlloc::realloc's contract: new_size with the old
        // alignment is a valid layout.
        let new = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        match (ours(layout), ours(new)) {
            // SAFETY: made by System with `layout`.
            (false, false) => unsafe { System.realloc(ptr, layout, new_size) },
            // SAFETY: `ptr` is glibc's; realloc keeps the first
            // min(old, new) bytes. A block it moves may lose the alignment
            // (mremap keeps the offset in the page, the heap does not): then
            // move it once more, into an aligned block.
            (true, true) => unsafe {
                let moved = libc::realloc(ptr as *mut libc::c_void, new_size) as *mut u8;
                if moved.is_null() || (moved as usize).is_multiple_of(LINE) {
                    return moved;
                }
                let aligned = aligned_block(new_size);
                if !aligned.is_null() {
                    std::ptr::copy_nonoverlapping(moved, aligned, layout.size().min(new_size));
                    libc::free(moved as *mut libc::c_void);
                }
                aligned
            },
            // Across the threshold: a new block of the other kind.
            // SAFETY: both layouts are valid; the copy covers bytes both
            // blocks hold; `ptr` is released the way it was made.
            _ => unsafe {
                let moved = self.alloc(new);
                if !moved.is_null() {
                    std::ptr::copy_nonoverlapping(ptr, moved, layout.size().min(new_size));
                    self.dealloc(ptr, layout);
                }
                moved
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{LINE, MIN_SIZE};

    /// Large blocks start on a cache line, through growth and shrinking
    /// across the threshold, and keep their contents; zeroed ones are zero.
    #[test]
    fn large_blocks_are_line_aligned_and_keep_their_contents() {
        let mut v: Vec<u8> = (0..100u8).collect();
        // Bytes below `kept` still hold 0, 1, 2, …; the rest were filled with 7.
        let mut kept = 100;
        for len in [5_000, MIN_SIZE, 1 << 20, 3 << 20, 3_000, 70_000, 64, 50 << 20, MIN_SIZE + 1] {
            v.resize(len, 7);
            v.shrink_to_fit();
            kept = kept.min(len);
            assert!((0..kept).all(|i| v[i] == i as u8), "len {len}");
            assert!(v[kept..].iter().all(|&x| x == 7), "len {len}");
            if len >= MIN_SIZE {
                assert_eq!(v.as_ptr() as usize % LINE, 0, "len {len}");
            }
        }
        for n in [1024usize, 100_000, 10_000_000] {
            let z = vec![0.0f32; n];
            if n * 4 >= MIN_SIZE {
                assert_eq!(z.as_ptr() as usize % LINE, 0);
            }
            assert!(z.iter().all(|&x| x == 0.0));
        }
    }
}
