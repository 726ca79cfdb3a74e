//! The CPU backend: f32 matmuls through our AVX-512F kernel (`fp32.rs`,
//! the `gemm` crate elsewhere), bf16 matmuls through our own kernels, AMX
//! (`amx.rs`) where the CPU and OS allow it and AVX512-BF16 (`bf16.rs`)
//! otherwise, all parallelised on the current rayon pool so the engine's
//! `--threads` governs them.

#[cfg(target_arch = "x86_64")]
pub mod amx;
pub mod bf16;
pub mod fp32;
#[cfg(target_arch = "x86_64")]
mod tiled;

use super::{Backend, MatRef, Precision};

/// A raw pointer that parallel tasks share to write disjoint parts of one
/// buffer (tiles of a matmul output, tiles of a packed operand). Each user
/// states why its tasks' writes are disjoint.
#[derive(Clone, Copy)]
pub(crate) struct SendPtr<T>(pub(crate) *mut T);
// SAFETY: only a pointer is shared; every use writes a disjoint part of the
// buffer from each task (see the callers).
unsafe impl<T> Send for SendPtr<T> {}
unsafe impl<T> Sync for SendPtr<T> {}

impl<T> SendPtr<T> {
    /// The pointer (a method, so closures capture the whole `Send` wrapper).
    pub(crate) fn get(self) -> *mut T {
        self.0
    }
}

/// Normal(0, 1) test data from a seed, shared by the kernels' tests.
#[cfg(test)]
pub(crate) fn test_data(len: usize, seed: u64) -> Vec<f32> {
    let mut rng = crate::model::rng::Rng::new(seed);
    (0..len).map(|_| rng.normal() as f32).collect()
}

/// One logical `a` (`[m, k]`) and `b` (`[k, n]`) stored in every layout the
/// packers tell apart, for the kernels' tests.
#[cfg(test)]
pub(crate) struct Stored {
    m: usize,
    n: usize,
    k: usize,
    a: Vec<f32>,
    b: Vec<f32>,
    at: Vec<f32>,
    bt: Vec<f32>,
    /// `a` with a NaN after every element: neither rows nor columns contiguous.
    ap: Vec<f32>,
}

#[cfg(test)]
impl Stored {
    /// Stores `a` and `b` (row-major) every way.
    pub(crate) fn new(m: usize, n: usize, k: usize, a: Vec<f32>, b: Vec<f32>) -> Self {
        let at = (0..k * m).map(|i| a[(i % m) * k + i / m]).collect();
        let bt = (0..n * k).map(|i| b[(i % k) * n + i / k]).collect();
        let ap = (0..2 * m * k).map(|i| if i % 2 == 0 { a[i / 2] } else { f32::NAN }).collect();
        Stored { m, n, k, a, b, at, bt, ap }
    }

    /// The same product four ways: both row-major; both transposed
    /// (column-contiguous); A strided both ways (the generic path); A
    /// column-contiguous with B row-major.
    pub(crate) fn layouts(&self) -> [(MatRef<'_>, MatRef<'_>); 4] {
        let (m, n, k) = (self.m, self.n, self.k);
        [
            (MatRef::row_major(&self.a, k), MatRef::row_major(&self.b, n)),
            (MatRef::transposed(&self.at, m), MatRef::transposed(&self.bt, k)),
            (
                MatRef {
                    data: &self.ap,
                    rs: 2 * k,
                    cs: 2,
                },
                MatRef::row_major(&self.b, n),
            ),
            (MatRef::transposed(&self.at, m), MatRef::row_major(&self.b, n)),
        ]
    }
}

/// Whether this CPU can run the AVX512-BF16 kernel (`vdpbf16ps`).
pub fn has_avx512bf16() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512bf16") && std::arch::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// CPU matmul backend. Holds the kernels' packing buffers so that, after
/// the first step at a given size, a matmul allocates nothing of its own
/// (the `gemm` crate's fallback keeps its own packing scratch).
#[derive(Debug, Clone)]
pub struct CpuBackend {
    /// True when bf16 was requested and the kernel is usable on this CPU.
    bf16_kernel: bool,
    /// True when bf16 products off AMX run on `vdpbf16ps` (`bf16.rs`);
    /// false when they run on FMA over bf16-rounded operands
    /// (`fp32::Bf16OnFma`). See [`dot_outruns_fma`].
    bf16_dot: bool,
    /// True when the bf16 kernel may use AMX tiles (see `amx::available`).
    amx: bool,
    /// True when f32 matmuls may use the AVX-512F kernel (`fp32.rs`).
    f32_kernel: bool,
    pack_a: Vec<u32>,
    pack_b: Vec<u32>,
}

impl CpuBackend {
    /// A backend for `precision`; a `Bf16` request falls back to f32 on CPUs
    /// without AVX512-BF16 (check [`Backend::precision`] to see which one is in effect).
    pub fn new(precision: Precision) -> Self {
        let bf16_kernel = precision == Precision::Bf16 && has_avx512bf16();
        CpuBackend {
            bf16_kernel,
            bf16_dot: dot_outruns_fma(),
            amx: bf16_kernel && amx_available(),
            f32_kernel: fp32::available(),
            pack_a: Vec::new(),
            pack_b: Vec::new(),
        }
    }

    /// A `Bf16` backend forced onto the f32 fallback, so the fallback path can
    /// be tested on a machine that has the bf16 instructions.
    pub fn bf16_without_kernel() -> Self {
        CpuBackend {
            bf16_kernel: false,
            bf16_dot: false,
            amx: false,
            f32_kernel: fp32::available(),
            pack_a: Vec::new(),
            pack_b: Vec::new(),
        }
    }

    /// A `Bf16` backend on the `vdpbf16ps` kernel, never AMX, so that
    /// kernel can be tested and compared on any CPU with AVX512-BF16.
    pub fn bf16_without_amx() -> Self {
        CpuBackend {
            amx: false,
            bf16_dot: true,
            ..Self::new(Precision::Bf16)
        }
    }

    /// A `Bf16` backend on FMA over bf16-rounded operands, never AMX, so
    /// that path can be tested and compared on any CPU with AVX512-BF16.
    pub fn bf16_on_fma() -> Self {
        CpuBackend {
            amx: false,
            bf16_dot: false,
            ..Self::new(Precision::Bf16)
        }
    }

    /// An `F32` backend on the `gemm` crate, so our f32 kernel can be
    /// checked and compared against it on a machine that has AVX-512F.
    pub fn f32_on_gemm_crate() -> Self {
        CpuBackend {
            f32_kernel: false,
            ..Self::new(Precision::F32)
        }
    }

    /// Whether bf16 matmuls of at least 16 × 16 run on AMX tiles.
    pub fn uses_amx(&self) -> bool {
        self.amx
    }
}

/// Whether bf16 products off AMX should run on `vdpbf16ps` rather than on
/// FMA over bf16-rounded operands: only where one `vdpbf16ps` (32
/// multiply-adds) issues at least as often as one FMA (16), i.e. on AMD's
/// Zen 4 and 5, where the bf16 peak is twice the f32 one (BENCHMARKS.md,
/// session 10: 453 against 227 GFLOP/s on two cores). Intel cores issue
/// `vdpbf16ps` on one port against two for FMA: the Xeon of session 22,
/// with AMX hidden by its VM, measured 169 against 348 GFLOP/s, and the
/// `vdpbf16ps` kernel trained `tiny` 30% slower than f32. Decided by the
/// vendor rather than by timing, so a run's numerics never depend on how
/// busy the machine was when it started.
fn dot_outruns_fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        #[allow(unused_unsafe)]
        // SAFETY: CPUID leaf 0 exists on every x86-64 CPU.
        let r = unsafe { std::arch::x86_64::__cpuid(0) };
        // "AuthenticAMD" in EBX, EDX, ECX.
        (r.ebx, r.edx, r.ecx) == (0x6874_7541, 0x6974_6E65, 0x444D_4163)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

fn amx_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        amx::available()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

impl Backend for CpuBackend {
    fn precision(&self) -> Precision {
        if self.bf16_kernel { Precision::Bf16 } else { Precision::F32 }
    }

    fn matmul(&mut self, m: usize, n: usize, k: usize, c: &mut [f32], ldc: usize, accumulate: bool, a: MatRef<'_>, b: MatRef<'_>) {
        check_shapes(m, n, k, c, ldc, a, b);
        if m == 0 || n == 0 {
            return;
        }
        if k == 0 {
            if !accumulate {
                for r in 0..m {
                    c[r * ldc..r * ldc + n].fill(0.0);
                }
            }
            return;
        }
        #[cfg(target_arch = "x86_64")]
        if self.amx && m >= amx::MIN_M && n >= amx::MIN_N {
            amx::matmul(m, n, k, c, ldc, accumulate, a, b, &mut self.pack_a, &mut self.pack_b);
            return;
        }
        #[cfg(target_arch = "x86_64")]
        if self.bf16_kernel {
            if self.bf16_dot {
                tiled::matmul::<bf16::Bf16>(m, n, k, c, ldc, accumulate, a, b, &mut self.pack_b);
            } else {
                tiled::matmul::<fp32::Bf16OnFma>(m, n, k, c, ldc, accumulate, a, b, &mut self.pack_b);
            }
            return;
        }
        // Thinner products would mostly multiply the tiles' zero padding.
        #[cfg(target_arch = "x86_64")]
        if self.f32_kernel && m >= tiled::MR && n >= tiled::NR / 2 {
            tiled::matmul::<fp32::F32>(m, n, k, c, ldc, accumulate, a, b, &mut self.pack_b);
            return;
        }
        gemm_f32(m, n, k, c, ldc, accumulate, a, b, true);
    }
}

/// Panics with the offending shape when a view does not fit its slice; these
/// are programming errors in the model, not input errors.
fn check_shapes(m: usize, n: usize, k: usize, c: &[f32], ldc: usize, a: MatRef<'_>, b: MatRef<'_>) {
    assert!(ldc >= n, "matmul: ldc {ldc} < n {n}");
    assert!(
        m == 0 || n == 0 || (m - 1) * ldc + n <= c.len(),
        "matmul: c too small for [{m}, {n}] with ldc {ldc}"
    );
    assert!(a.fits(m, k), "matmul: a too small for [{m}, {k}]");
    assert!(b.fits(k, n), "matmul: b too small for [{k}, {n}]");
}

/// f32 GEMM through the `gemm` crate: `c = (accumulate ? c : 0) + a · b`.
/// `parallel` uses the current rayon pool; pass false from inside a rayon task.
#[allow(clippy::too_many_arguments)]
pub fn gemm_f32(m: usize, n: usize, k: usize, c: &mut [f32], ldc: usize, accumulate: bool, a: MatRef<'_>, b: MatRef<'_>, parallel: bool) {
    check_shapes(m, n, k, c, ldc, a, b);
    if m == 0 || n == 0 {
        return;
    }
    let threads = rayon::current_num_threads();
    let par = if parallel && threads > 1 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: check_shapes proved every addressed element of a, b and c lies
    // inside its slice, and c is borrowed mutably so nothing else aliases it.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            ldc as isize,
            accumulate,
            a.data.as_ptr(),
            a.cs as isize,
            a.rs as isize,
            b.data.as_ptr(),
            b.cs as isize,
            b.rs as isize,
            1.0f32,
            1.0f32,
            false,
            false,
            false,
            par,
        );
    }
}

/// `a` (`[m, k]`) and `b` (`[k, n]`) given as (pointer, row stride, column
/// stride) as bounds-checked views.
///
/// # Safety
/// Every element `a + i·rs + p·cs` (i < m, p < k) and `b + p·rs + j·cs`
/// (p < k, j < n) must be readable for `'v`; `m, n, k ≥ 1`.
pub(crate) unsafe fn raw_views<'v>(
    m: usize,
    n: usize,
    k: usize,
    a: (*const f32, usize, usize),
    b: (*const f32, usize, usize),
) -> (MatRef<'v>, MatRef<'v>) {
    // SAFETY: the largest index each view addresses is (rows−1)·rs +
    // (cols−1)·cs, readable per the contract.
    unsafe {
        (
            MatRef {
                data: std::slice::from_raw_parts(a.0, (m - 1) * a.1 + (k - 1) * a.2 + 1),
                rs: a.1,
                cs: a.2,
            },
            MatRef {
                data: std::slice::from_raw_parts(b.0, (k - 1) * b.1 + (n - 1) * b.2 + 1),
                rs: b.1,
                cs: b.2,
            },
        )
    }
}

/// A serial GEMM on raw strided pointers: with `amx` the AMX bf16 kernel
/// (`amx::gemm_raw`) when the product is big enough to fill its tiles, else
/// our AVX-512F f32 kernel (`fp32.rs`) where the CPU has it and the product
/// fills a tile, else [`gemm_f32_raw`]; `amx` must come from
/// [`CpuBackend::uses_amx`].
///
/// # Safety
/// As [`gemm_f32_raw`].
#[allow(clippy::too_many_arguments)]
pub unsafe fn gemm_raw(
    amx: bool,
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
    #[cfg(target_arch = "x86_64")]
    if amx && m >= amx::MIN_M && n >= amx::MIN_N && k >= amx::MIN_K {
        // SAFETY: `amx` implies `amx::available()`; sizes are non-zero; the
        // rest is the caller's contract.
        unsafe { amx::gemm_raw(m, n, k, c, ldc, accumulate, alpha, a, b) };
        return;
    }
    let _ = amx;
    #[cfg(target_arch = "x86_64")]
    if m >= tiled::MR && n >= tiled::NR / 2 && k >= 1 && fp32::available() {
        // SAFETY: readable views per the contract; the kernel's CPU check
        // passed; c's block is the caller's to write.
        unsafe {
            let (av, bv) = raw_views(m, n, k, a, b);
            tiled::matmul_serial::<fp32::F32>(m, n, k, c, ldc, accumulate, alpha, av, bv);
        }
        return;
    }
    // SAFETY: the caller's contract.
    unsafe { gemm_f32_raw(m, n, k, c, ldc, accumulate, alpha, a, b) }
}

/// A B operand that several serial products read: attention's keys and
/// values, read by every block of queries of a head. With AMX it is packed
/// into tiles once ([`amx::PackedB`]) rather than once per product; either
/// way [`SharedB::gemm`] gives the bits [`gemm_raw`] gives.
pub struct SharedB {
    src: (*const f32, usize, usize),
    #[cfg(target_arch = "x86_64")]
    packed: amx::PackedB,
}

impl Default for SharedB {
    fn default() -> Self {
        SharedB {
            src: (std::ptr::null(), 0, 0),
            #[cfg(target_arch = "x86_64")]
            packed: amx::PackedB::default(),
        }
    }
}

impl SharedB {
    /// Makes `b` (`[k, n]` as `(pointer, row stride, column stride)`) the
    /// operand, packing it when `amx` and it fills tiles; the buffers are
    /// reused from the last call.
    ///
    /// # Safety
    /// Every `b + p·rs + j·cs` (p < k, j < n) readable, and still so at
    /// every [`SharedB::gemm`] until the next `set`; `amx` as in [`gemm_raw`].
    pub unsafe fn set(&mut self, amx: bool, n: usize, k: usize, b: (*const f32, usize, usize)) {
        self.src = b;
        #[cfg(target_arch = "x86_64")]
        {
            if amx && n >= amx::MIN_N && k >= amx::MIN_K {
                // SAFETY: `amx` implies `amx::available()`; readable per the contract.
                unsafe { self.packed.pack(n, k, b) };
            } else {
                // Unused, but its buffer is kept, so it is not allocated again.
                self.packed.clear();
            }
        }
        let _ = (amx, n, k);
    }

    /// `gemm_raw(amx, m, n, k, c, ldc, accumulate, alpha, a, b)` with this
    /// operand as `b` (its first `k` rows and `n` columns).
    ///
    /// # Safety
    /// As [`gemm_raw`]; `n`, `k` within those given to [`SharedB::set`].
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn gemm(
        &mut self,
        amx: bool,
        m: usize,
        n: usize,
        k: usize,
        c: *mut f32,
        ldc: usize,
        accumulate: bool,
        alpha: f32,
        a: (*const f32, usize, usize),
    ) {
        #[cfg(target_arch = "x86_64")]
        if self.packed.is_packed() && amx && m >= amx::MIN_M && n >= amx::MIN_N && k >= amx::MIN_K {
            // SAFETY: the same product `gemm_raw` would run on AMX, per the contract.
            unsafe { amx::gemm_raw_packed_b(m, n, k, c, ldc, accumulate, alpha, a, &mut self.packed) };
            return;
        }
        // SAFETY: the caller's contract; `src` is readable per `set`'s.
        unsafe { gemm_raw(amx, m, n, k, c, ldc, accumulate, alpha, a, self.src) }
    }
}

/// Serial f32 GEMM on raw strided pointers, for callers that write disjoint
/// strided blocks of a shared buffer from inside rayon tasks (attention):
/// `c[m, n] = (accumulate ? c : 0) + alpha · a[m, k] · b[k, n]`.
///
/// # Safety
/// Every element `a + i·a_rs + p·a_cs` (i < m, p < k), `b + p·b_rs + j·b_cs`
/// (p < k, j < n) must be readable and `c + i·ldc + j` (i < m, j < n)
/// writable, with no other thread touching that block of c meanwhile.
#[allow(clippy::too_many_arguments)]
pub unsafe fn gemm_f32_raw(
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
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            for i in 0..m {
                // SAFETY: row i of c is writable per the contract.
                unsafe { std::slice::from_raw_parts_mut(c.add(i * ldc), n).fill(0.0) };
            }
        }
        return;
    }
    // SAFETY: forwarded from the caller's contract.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c,
            1,
            ldc as isize,
            accumulate,
            a.0,
            a.2 as isize,
            a.1 as isize,
            b.0,
            b.2 as isize,
            b.1 as isize,
            1.0f32,
            alpha,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(m: usize, n: usize, k: usize, a: MatRef<'_>, b: MatRef<'_>) -> Vec<f64> {
        let mut out = vec![0.0f64; m * n];
        for i in 0..m {
            for j in 0..n {
                out[i * n + j] = (0..k)
                    .map(|p| a.data[i * a.rs + p * a.cs] as f64 * b.data[p * b.rs + j * b.cs] as f64)
                    .sum();
            }
        }
        out
    }

    use super::test_data as data;

    #[test]
    fn f32_gemm_handles_transposed_views_and_accumulation() {
        let (m, n, k) = (7, 5, 9);
        let a = data(m * k, 1);
        let bt = data(n * k, 2); // stored [n, k]: use its transpose as b [k, n]
        let av = MatRef::row_major(&a, k);
        let bv = MatRef::transposed(&bt, k);
        let want = naive(m, n, k, av, bv);
        let mut c = vec![1.0f32; m * n];
        CpuBackend::new(Precision::F32).matmul(m, n, k, &mut c, n, true, av, bv);
        for (got, want) in c.iter().zip(&want) {
            assert!((*got as f64 - (want + 1.0)).abs() < 1e-4, "{got} vs {}", want + 1.0);
        }
    }

    #[test]
    fn forced_fallback_reports_f32_and_matches_f32() {
        let mut fb = CpuBackend::bf16_without_kernel();
        assert_eq!(fb.precision(), Precision::F32);
        let (m, n, k) = (9, 33, 17);
        let a = data(m * k, 3);
        let b = data(k * n, 4);
        let (av, bv) = (MatRef::row_major(&a, k), MatRef::row_major(&b, n));
        let mut c1 = vec![0.0f32; m * n];
        let mut c2 = vec![0.0f32; m * n];
        fb.matmul(m, n, k, &mut c1, n, false, av, bv);
        CpuBackend::new(Precision::F32).matmul(m, n, k, &mut c2, n, false, av, bv);
        assert_eq!(c1, c2);
    }
}
