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
//! A large block is glibc's (`malloc`, `calloc`, `realloc`, `free`) with
//! a line of slack: the block handed out starts at the first line boundary
//! at least 8 bytes in, and those 8 bytes hold glibc's pointer for `free`.
//! So glibc's own behaviour stays: `calloc` of fresh pages writes nothing
//! and pages never touched cost no memory, and its dynamic mmap threshold
//! keeps buffers that are freed and made again every step in the heap
//! (an earlier version used `posix_memalign` and zeroed by hand: the
//! quickstart's reward model, whose activations are sized again for each
//! batch, ran 28% slower with 28% more peak memory). Small blocks go
//! through `std::alloc::System` unchanged.

use std::alloc::{GlobalAlloc, Layout, System};

/// See the module doc.
pub struct LineAligned;

/// Blocks of at least this many bytes are aligned to [`LINE`].
const MIN_SIZE: usize = 64 << 10;
/// A cache line; also the slack added to every large block.
const LINE: usize = 64;

/// Whether a block of this layout is made here (see the module doc): large,
/// and asking for no more than a line's alignment. A pure function of the
/// caller's layout, so `dealloc` and `realloc` agree with `alloc`.
fn ours(layout: Layout) -> bool {
    layout.size() >= MIN_SIZE && layout.align() <= LINE
}

/// The line boundary at least 8 bytes into `raw` (glibc's blocks are
/// 16-aligned, so it lies 16 to 64 bytes in); stores `raw` in the 8 bytes
/// before it. Null stays null.
///
/// # Safety
/// `raw` is null or a glibc block of at least `LINE` bytes more than the
/// caller will use from the returned pointer.
unsafe fn place(raw: *mut u8) -> *mut u8 {
    if raw.is_null() {
        return raw;
    }
    let off = (raw as usize + 8).next_multiple_of(LINE) - raw as usize;
    // SAFETY: 8 ≤ off ≤ LINE, inside the block's slack; the header slot is
    // 8-aligned because the returned pointer is 64-aligned.
    unsafe {
        let block = raw.add(off);
        (block as *mut *mut u8).sub(1).write(raw);
        block
    }
}

/// glibc's pointer for a block `place` returned.
///
/// # Safety
/// `block` came from `place`.
unsafe fn raw_of(block: *mut u8) -> *mut u8 {
    // SAFETY: `place` wrote it there.
    unsafe { (block as *mut *mut u8).sub(1).read() }
}

// SAFETY: blocks for which `ours` holds come from `place` over a glibc
// block LINE bytes larger than asked, so they are line-aligned and hold the
// size asked; they are released with `free` of the stored pointer. The rest
// go to `System` with their layout unchanged. `ours` depends only on the
// layout, which the caller passes again to `dealloc` and `realloc`.
unsafe impl GlobalAlloc for LineAligned {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if !ours(layout) {
            // SAFETY: the caller's contract.
            return unsafe { System.alloc(layout) };
        }
        match layout.size().checked_add(LINE) {
            // SAFETY: a block of size + LINE bytes, or null.
            Some(size) => unsafe { place(libc::malloc(size) as *mut u8) },
            None => std::ptr::null_mut(),
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if !ours(layout) {
            // SAFETY: the caller's contract.
            return unsafe { System.alloc_zeroed(layout) };
        }
        match layout.size().checked_add(LINE) {
            // SAFETY: as `alloc`; calloc zeroes (lazily, for fresh pages).
            Some(size) => unsafe { place(libc::calloc(1, size) as *mut u8) },
            None => std::ptr::null_mut(),
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if ours(layout) {
            // SAFETY: `ptr` came from `place` (see `alloc`).
            unsafe { libc::free(raw_of(ptr) as *mut libc::c_void) }
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
            // glibc's realloc keeps the block's first new_size + LINE bytes,
            // which hold the data at its old offset; where the new block's
            // line boundary falls elsewhere, move the data there.
            (true, true) => unsafe {
                // SAFETY: `ptr` came from `place`; on failure the old block
                // stays valid and null is returned, as the contract asks.
                let raw = raw_of(ptr);
                let off = ptr as usize - raw as usize;
                let Some(size) = new_size.checked_add(LINE) else {
                    return std::ptr::null_mut();
                };
                let moved = libc::realloc(raw as *mut libc::c_void, size) as *mut u8;
                if moved.is_null() {
                    return moved;
                }
                let new_off = (moved as usize + 8).next_multiple_of(LINE) - moved as usize;
                if new_off != off {
                    // SAFETY: both ranges lie in the first size bytes (off,
                    // new_off ≤ LINE); `copy` allows the overlap.
                    std::ptr::copy(moved.add(off), moved.add(new_off), layout.size().min(new_size));
                }
                place(moved)
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
