//! The CUDA backend (`--features cuda`): GPT-2 training on one NVIDIA GPU.
//!
//! - [`device`]: the GPU handle (driver, stream, cuBLAS, kernels), device
//!   buffers and the kernel launcher. CUDA is loaded at run time (cudarc's
//!   `dynamic-loading`), so a build with this feature runs, and fails with
//!   a message naming what is missing, on a machine without CUDA.
//! - [`nvrtc`]: `kernels/*.cu` compiled at run time for the device, cached on disk.
//! - [`kernels`]: one typed launcher per kernel.
//! - [`linear`]: the matmuls, on cuBLAS (bf16 operands, f32 accumulation).
//! - [`gpt`]: the model, op for op the CPU model's twin.
//! - [`optim`]: fused AdamW.
//! - [`trainee`]: the two as the training loop's `Trainee`.

pub mod device;
pub mod gpt;
pub mod kernels;
pub mod linear;
pub mod nvrtc;
pub mod optim;
pub mod trainee;

pub use device::{Buf, Gpu};
pub use gpt::CudaGpt;
pub use linear::Operands;
pub use optim::CudaAdamW;
pub use trainee::CudaTrainee;

/// A CUDA failure or a missing piece of CUDA; the message says which.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct CudaError(pub String);
