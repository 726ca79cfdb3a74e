//! `backend: cuda` for the language-model trainers (`pretrain`, `sft`): the
//! model is built (or loaded) on the host as usual, copied to the GPU,
//! trained there by the same loop as on the CPU, and copied back to be
//! saved. A build without the `cuda` feature, or a machine without a GPU,
//! fails the node with a message that says which.

use super::{Ctx, NodeError};
use crate::model::Gpt;
use crate::pack::loader::Loader;
use crate::train::pretrain::{Hooks, LoopConfig, Outcome, TrainError};
use std::path::Path;

#[cfg(feature = "cuda")]
pub(super) use crate::backend::cuda::Gpu;

/// Stands in for the GPU handle in a build without CUDA (never constructed).
#[cfg(not(feature = "cuda"))]
pub(super) enum Gpu {}

/// Opens GPU 0 and logs which it is.
#[cfg(feature = "cuda")]
pub(super) fn open(ctx: &Ctx) -> Result<Gpu, NodeError> {
    let g = Gpu::open(0).map_err(|e| NodeError::Failed(format!("backend: cuda: {e}")))?;
    ctx.log.line(format!("training on {} (sm_{}{})", g.name, g.cc.0, g.cc.1));
    Ok(g)
}

#[cfg(not(feature = "cuda"))]
pub(super) fn open(_ctx: &Ctx) -> Result<Gpu, NodeError> {
    Err(NodeError::Failed(
        "`backend: cuda` needs a kiln built with the CUDA backend (`cargo build --release --features cuda`); this one was built without it. Use `backend: cpu` here".into(),
    ))
}

/// Datasheet dense peak in GFLOP/s for MFU (bf16 tensor cores, or plain f32
/// FMA): H100/H200 SXM for compute capability 9.x, A100 for 8.0, else the
/// A100 figures as a floor. `peak_gflops` in the YAML overrides it.
#[cfg(feature = "cuda")]
pub(super) fn peak_gflops(g: &Gpu, bf16: bool) -> f64 {
    match (g.cc.0, bf16) {
        (9, true) => 989_000.0,
        (9, false) => 67_000.0,
        (_, true) => 312_000.0,
        (_, false) => 19_500.0,
    }
}

#[cfg(not(feature = "cuda"))]
pub(super) fn peak_gflops(g: &Gpu, _bf16: bool) -> f64 {
    match *g {}
}

/// Trains `model` on the GPU (bf16 matmul operands when `bf16`, else f32)
/// and copies the trained parameters back into it.
#[cfg(feature = "cuda")]
#[allow(clippy::too_many_arguments)]
pub(super) fn train(
    g: Gpu,
    model: &mut Gpt,
    bf16: bool,
    train: &mut Loader,
    val: &dyn Fn() -> Option<Loader>,
    cfg: &LoopConfig,
    ckpt: &Path,
    hooks: &dyn Hooks,
) -> Result<Outcome, TrainError> {
    use crate::backend::cuda::{CudaGpt, CudaTrainee, Operands};
    let ops = if bf16 { Operands::Bf16 } else { Operands::F32 };
    let gpu_model = CudaGpt::from_cpu(g, model, ops).map_err(|e| e.to_string())?;
    let mut t = CudaTrainee::new(gpu_model, cfg.adamw).map_err(|e| e.to_string())?;
    let out = crate::train::pretrain::train_with(&mut t, train, val, cfg, ckpt, hooks)?;
    model.params = t.model.download_params().map_err(|e| e.to_string())?;
    Ok(out)
}

#[cfg(not(feature = "cuda"))]
#[allow(clippy::too_many_arguments)]
pub(super) fn train(
    g: Gpu,
    _model: &mut Gpt,
    _bf16: bool,
    _train: &mut Loader,
    _val: &dyn Fn() -> Option<Loader>,
    _cfg: &LoopConfig,
    _ckpt: &Path,
    _hooks: &dyn Hooks,
) -> Result<Outcome, TrainError> {
    match g {}
}
