//! Compute backends for the training core.
//!
//! The CPU model (`crate::model`) owns its buffers as plain host slices and
//! asks a backend only for the heavy part: matrix multiplication ([`Backend`],
//! [`cpu`]). Everything else (layernorm, attention softmax, GELU, AdamW) is
//! written against rayon in the model and train modules. The CUDA backend
//! (`cuda`, built with `--features cuda`) is a whole second model instead: the same
//! layouts in device memory, every op a kernel, matmuls on cuBLAS.

pub mod cpu;
#[cfg(feature = "cuda")]
pub mod cuda;

pub use cpu::CpuBackend;

use serde::{Deserialize, Serialize};

/// Precision used for the matmul operands. Master weights, gradients and
/// optimizer state are always f32; accumulation is always f32.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// f32 operands (our AVX-512F kernel; the `gemm` crate elsewhere).
    #[default]
    F32,
    /// bf16 operands, f32 accumulation (AVX512-BF16 `vdpbf16ps` where the
    /// CPU has it; f32 fallback elsewhere).
    Bf16,
}

/// A read-only strided matrix view: element (r, c) lives at
/// `data[r * rs + c * cs]`. Strides make transposes free: the transpose of a
/// row-major `[rows, cols]` matrix is the view with `rs = 1, cs = cols`.
#[derive(Debug, Clone, Copy)]
pub struct MatRef<'a> {
    /// Backing storage; every addressed element must lie inside it.
    pub data: &'a [f32],
    /// Distance between consecutive rows, in elements.
    pub rs: usize,
    /// Distance between consecutive columns, in elements.
    pub cs: usize,
}

impl<'a> MatRef<'a> {
    /// Row-major view: `[rows, cols]` with `rs = cols`, `cs = 1`.
    pub fn row_major(data: &'a [f32], cols: usize) -> Self {
        MatRef { data, rs: cols, cs: 1 }
    }

    /// The transpose of a row-major `[rows, cols]` matrix, as a `[cols, rows]` view.
    pub fn transposed(data: &'a [f32], cols: usize) -> Self {
        MatRef { data, rs: 1, cs: cols }
    }

    /// Whether a `[rows, cols]` view fits inside `data` (rows, cols > 0).
    pub fn fits(&self, rows: usize, cols: usize) -> bool {
        rows == 0 || cols == 0 || (rows - 1) * self.rs + (cols - 1) * self.cs < self.data.len()
    }
}

/// The one operation a backend must provide to the model: a strided GEMM.
pub trait Backend {
    /// The operand precision in effect (after any fallback: a `Bf16` request
    /// on a CPU without AVX512-BF16 reports `F32`).
    fn precision(&self) -> Precision;

    /// `c[m, n] (row-major, row stride ldc) = (accumulate ? c : 0) + a[m, k] · b[k, n]`.
    ///
    /// Shapes are checked with `assert!`: a mismatch is a bug in the model
    /// code, never a property of user input.
    #[allow(clippy::too_many_arguments)]
    fn matmul(&mut self, m: usize, n: usize, k: usize, c: &mut [f32], ldc: usize, accumulate: bool, a: MatRef<'_>, b: MatRef<'_>);
}
