//! AdamW on the GPU: the moments live in device memory and one fused kernel
//! per run of parameters applies the clip scale, the moment updates, the
//! decoupled weight decay and the step, and refreshes the bf16 weight copy
//! (the CPU twin is `train::adamw`, whose update rule this matches).

use super::gpt::CudaGpt;
use super::kernels::{self, AdamStep};
use super::{Buf, CudaError};
use crate::train::AdamWConfig;
use std::ops::Range;

/// AdamW state on the GPU.
pub struct CudaAdamW {
    /// Hyper-parameters.
    pub config: AdamWConfig,
    /// First moments.
    pub m: Buf<f32>,
    /// Second moments.
    pub v: Buf<f32>,
    /// Steps taken.
    pub step: u64,
    runs: Vec<(Range<usize>, bool)>,
}

impl std::fmt::Debug for CudaAdamW {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CudaAdamW(step {}, {:?})", self.step, self.config)
    }
}

impl CudaAdamW {
    /// Zeroed state for `model`, with weight decay on its matrices.
    pub fn new(config: AdamWConfig, model: &CudaGpt) -> Result<Self, CudaError> {
        let n = model.n_params();
        let g = model.gpu();
        Ok(CudaAdamW {
            config,
            m: g.zeros(n)?,
            v: g.zeros(n)?,
            step: 0,
            runs: crate::train::adamw::decay_runs(n, model.decay_ranges()),
        })
    }

    /// One update at `lr` with the gradients multiplied by `grad_scale`.
    pub fn update(&mut self, model: &mut CudaGpt, lr: f32, grad_scale: f32) -> Result<(), CudaError> {
        self.step += 1;
        let AdamWConfig {
            beta1,
            beta2,
            eps,
            weight_decay,
        } = self.config;
        let (step_size, inv_sqrt_bc2) = self.config.bias_corrected(self.step, lr);
        let s = AdamStep {
            beta1,
            beta2,
            eps,
            step_size,
            inv_sqrt_bc2,
            grad_scale,
        };
        let bf = model.operands() == super::Operands::Bf16;
        for (r, decays) in &self.runs {
            let decay = if *decays { 1.0 - lr * weight_decay } else { 1.0 };
            let p16 = if bf { model.params16.at(r.start) } else { 0 };
            kernels::adamw(
                model.gpu(),
                model.params.at(r.start),
                p16,
                model.grads.at(r.start),
                self.m.at(r.start),
                self.v.at(r.start),
                r.len(),
                decay,
                &s,
            )?;
        }
        Ok(())
    }

    /// Replaces the moments (resuming from a checkpoint).
    pub fn upload(&mut self, g: &super::Gpu, m: &[f32], v: &[f32], step: u64) -> Result<(), CudaError> {
        g.upload(self.m.ptr(), m)?;
        g.upload(self.v.ptr(), v)?;
        self.step = step;
        Ok(())
    }

    /// The moments, copied to the host (for a checkpoint).
    pub fn download(&self, g: &super::Gpu) -> Result<(Vec<f32>, Vec<f32>), CudaError> {
        let mut m = vec![0.0; self.m.len()];
        let mut v = vec![0.0; self.v.len()];
        g.download(&mut m, self.m.ptr())?;
        g.download(&mut v, self.v.ptr())?;
        Ok((m, v))
    }
}
