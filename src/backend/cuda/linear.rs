//! Linear layers on cuBLAS (`cublasGemmEx`): the GPU twin of
//! `model::ops::matmul`. Operands are bf16 (f32 accumulation and f32
//! output) or plain f32, per [`Operands`]; weights are `[OC, C]` row-major
//! (PyTorch `Linear`), activations `[N, C]` row-major.
//!
//! cuBLAS is column-major, and a row-major `[r, c]` matrix is the
//! column-major `[c, r]` one, so `C = A·B` in row-major is `Cᵀ = Bᵀ·Aᵀ` in
//! column-major: each call below passes the operands swapped.

use super::device::Gpu;
use super::{CudaError, kernels};
use cudarc::cublas::sys::{cublasComputeType_t, cublasGemmAlgo_t, cublasOperation_t, cudaDataType};
use std::ffi::c_void;

type R = Result<(), CudaError>;

/// Which operands a matmul reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operands {
    /// f32 inputs, exact f32 arithmetic (the reference path the tests compare at 1e-5).
    F32,
    /// bf16 inputs (f32 accumulate, f32 output): the tensor-core path.
    Bf16,
}

/// Column-major `C[m, n] = A'·B' + beta·C` with `A' = ta ? Aᵀ : A` (`B'` likewise);
/// `C` is f32, `A` and `B` the operand type. Public for the peak-rate benchmark.
#[allow(clippy::too_many_arguments)]
pub fn gemm(
    g: &Gpu,
    ta: bool,
    tb: bool,
    m: usize,
    n: usize,
    k: usize,
    a: u64,
    lda: usize,
    b: u64,
    ldb: usize,
    c: u64,
    ldc: usize,
    beta: f32,
    ops: Operands,
) -> R {
    if m == 0 || n == 0 {
        return Ok(());
    }
    let op = |t: bool| {
        if t {
            cublasOperation_t::CUBLAS_OP_T
        } else {
            cublasOperation_t::CUBLAS_OP_N
        }
    };
    let dt = match ops {
        Operands::F32 => cudaDataType::CUDA_R_32F,
        Operands::Bf16 => cudaDataType::CUDA_R_16BF,
    };
    // PEDANTIC keeps f32 operands in true f32 (no TF32), whatever the
    // environment asks; bf16 operands take the tensor cores either way.
    let compute = match ops {
        Operands::F32 => cublasComputeType_t::CUBLAS_COMPUTE_32F_PEDANTIC,
        Operands::Bf16 => cublasComputeType_t::CUBLAS_COMPUTE_32F,
    };
    let alpha = 1.0f32;
    g.bind()?;
    // SAFETY: the addresses are live device buffers holding the operand
    // shapes the callers state (each caller documents them); alpha and beta
    // are host scalars (the handle's default pointer mode).
    unsafe {
        cudarc::cublas::result::gemm_ex(
            *g.blas().handle(),
            op(ta),
            op(tb),
            m as i32,
            n as i32,
            k as i32,
            &alpha as *const f32 as *const c_void,
            a as *const c_void,
            dt,
            lda as i32,
            b as *const c_void,
            dt,
            ldb as i32,
            &beta as *const f32 as *const c_void,
            c as *mut c_void,
            cudaDataType::CUDA_R_32F,
            ldc as i32,
            compute,
            cublasGemmAlgo_t::CUBLAS_GEMM_DFALT,
        )
    }
    .map_err(|e| CudaError(format!("cublasGemmEx {m}×{n}×{k}: {e}")))
}

/// `out[N, ..oc] (row stride ldo) = res + bias + inp · wᵀ`, with `inp`
/// `[N, C]` and `w` `[≥oc, C]` in the operand type; `bias`, `res` are f32
/// (0 for none). The seed kernel writes `res + bias`, the matmul adds to it.
#[allow(clippy::too_many_arguments)]
pub fn forward(g: &Gpu, ops: Operands, out: u64, ldo: usize, inp: u64, w: u64, bias: u64, res: u64, n: usize, c: usize, oc: usize) -> R {
    let seeded = bias != 0 || res != 0;
    if seeded {
        kernels::seed_bias_residual(g, out, ldo, bias, res, n, oc)?;
    }
    // outᵀ[oc, N] = w[oc, C]·inpᵀ: w is column-major [C, oc] (transposed), inp column-major [C, N].
    gemm(
        g,
        true,
        false,
        oc,
        n,
        c,
        w,
        c,
        inp,
        c,
        out,
        ldo,
        if seeded { 1.0 } else { 0.0 },
        ops,
    )
}

/// `dinp[N, C] (=, or += when accumulate) = dout · w` with `dout` `[N, oc]`
/// (row stride lddo) in the operand type.
#[allow(clippy::too_many_arguments)]
pub fn backward_input(
    g: &Gpu,
    ops: Operands,
    dinp: u64,
    accumulate: bool,
    dout: u64,
    lddo: usize,
    w: u64,
    n: usize,
    c: usize,
    oc: usize,
) -> R {
    // dinpᵀ[C, N] = wᵀ... : w row-major [oc, C] is column-major [C, oc]; dout column-major [oc, N].
    gemm(
        g,
        false,
        false,
        c,
        n,
        oc,
        w,
        c,
        dout,
        lddo,
        dinp,
        c,
        if accumulate { 1.0 } else { 0.0 },
        ops,
    )
}

/// `dw[..oc, C] += doutᵀ · inp` with `dout` `[N, oc]` (row stride lddo) and `inp` `[N, C]` in the operand type.
#[allow(clippy::too_many_arguments)]
pub fn backward_weight(g: &Gpu, ops: Operands, dw: u64, dout: u64, lddo: usize, inp: u64, n: usize, c: usize, oc: usize) -> R {
    // dwᵀ[C, oc] = inpᵀ[C, N] · dout[N, oc]: inp column-major [C, N]; dout column-major [oc, N], transposed.
    gemm(g, false, true, c, oc, n, inp, c, dout, lddo, dw, c, 1.0, ops)
}
