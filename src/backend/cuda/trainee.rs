//! The GPU model and its fused AdamW as a [`Trainee`], so `pretrain` and
//! `sft` run the same loop (schedule, accumulation, clipping, evaluation,
//! checkpoints, resume) on the GPU. Checkpoints go through the host in the
//! CPU format, so a run can resume on either backend.

use super::{CudaAdamW, CudaGpt};
use crate::model::{GptConfig, ModelError};
use crate::train::AdamWConfig;
use crate::train::checkpoint::{self, Buffers, TrainState};
use crate::train::pretrain::Trainee;
use std::path::Path;

/// [`CudaGpt`] with its optimizer.
#[derive(Debug)]
pub struct CudaTrainee {
    /// The model.
    pub model: CudaGpt,
    /// Its optimizer.
    pub opt: CudaAdamW,
}

impl CudaTrainee {
    /// `model` with zeroed AdamW state.
    pub fn new(model: CudaGpt, adamw: AdamWConfig) -> Result<Self, ModelError> {
        let opt = CudaAdamW::new(adamw, &model)?;
        Ok(CudaTrainee { model, opt })
    }
}

impl Trainee for CudaTrainee {
    fn config(&self) -> &GptConfig {
        self.model.config()
    }
    fn n_params(&self) -> usize {
        self.model.n_params()
    }
    fn zero_grad(&mut self) -> Result<(), String> {
        self.model.zero_grad().map_err(|e| e.to_string())
    }
    fn forward(
        &mut self,
        inputs: &[u32],
        targets: Option<&[u32]>,
        mask: Option<&[u8]>,
        b: usize,
        t: usize,
    ) -> Result<Option<f32>, ModelError> {
        self.model.forward(inputs, targets, mask, b, t)
    }
    fn backward_scaled(&mut self, scale: f32) -> Result<(), ModelError> {
        self.model.backward_scaled(scale)
    }
    fn grad_norm(&mut self) -> Result<f32, String> {
        self.model.grad_norm().map_err(|e| e.to_string())
    }
    fn update(&mut self, lr: f32, grad_scale: f32) -> Result<(), String> {
        self.opt.update(&mut self.model, lr, grad_scale).map_err(|e| e.to_string())
    }
    fn adam_step(&self) -> u64 {
        self.opt.step
    }
    fn load_checkpoint(&mut self, dir: &Path) -> Result<Option<TrainState>, String> {
        let n = self.model.n_params();
        let (mut p, mut m, mut v) = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
        let Some(s) = checkpoint::load_latest(dir, &mut p, &mut m, &mut v)? else {
            return Ok(None);
        };
        self.model.upload_params(&p).map_err(|e| e.to_string())?;
        self.opt.upload(self.model.gpu(), &m, &v, s.adam_step).map_err(|e| e.to_string())?;
        Ok(Some(s))
    }
    fn save_checkpoint(&mut self, dir: &Path, state: &TrainState) -> Result<(), String> {
        let p = self.model.download_params().map_err(|e| e.to_string())?;
        let (m, v) = self.opt.download(self.model.gpu()).map_err(|e| e.to_string())?;
        checkpoint::save(dir, state, &Buffers { params: &p, m: &m, v: &v }).map(|_| ())
    }
}
