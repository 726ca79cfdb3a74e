//! GPT-2 on the GPU: the same flat layouts as the CPU model
//! ([`ParamLayout`], [`ActLayout`]) in device memory, and forward/backward
//! wired the same way as `model::gpt`, op for op, so the two can be
//! compared tensor by tensor.
//!
//! Precision: master weights, gradients, activations and optimizer state
//! are f32. With [`Operands::Bf16`] every matmul reads bf16 operands (a
//! bf16 copy of the weights that AdamW refreshes, and activations cast on
//! the way in) and accumulates in f32 on the tensor cores; the LM head's
//! logit gradient is written in bf16 directly by the loss kernel. With
//! [`Operands::F32`] everything is f32 (the path the tests hold to 1e-5).
//!
//! Within a step nothing crosses to the host but the loss scalar (and the
//! grad norm, which the training loop logs and clips by).

use super::device::{Buf, Gpu};
use super::linear::{self, Operands};
use super::{CudaError, kernels};
use crate::model::acts::ActLayout;
use crate::model::gpt::check_batch;
use crate::model::params::{Kind, ParamLayout};
use crate::model::{Gpt, GptConfig, ModelError};
use std::ops::Range;

impl From<CudaError> for ModelError {
    fn from(e: CudaError) -> Self {
        ModelError::Device(e.0)
    }
}

/// Device buffers sized for one (B, T).
struct Sized {
    a: ActLayout,
    acts: Buf<f32>,
    /// bf16 copy of a matmul's activation input.
    in16: Buf<u16>,
    /// bf16 copy of a matmul's output gradient (and the LM head's dlogits).
    out16: Buf<u16>,
    ln_part: Buf<f32>,
    col_part: Buf<f32>,
    inputs: Buf<i32>,
    targets: Buf<i32>,
    mask: Buf<u8>,
    order: Buf<i32>,
    starts: Buf<i32>,
    tokens: Buf<i32>,
}

/// The sizes forward and backward use: batch, sequence, layers, heads,
/// width, vocabulary (real and padded), rows (`B·T`) and head size.
#[derive(Debug, Clone, Copy)]
struct Dims {
    b: usize,
    t: usize,
    nl: usize,
    nh: usize,
    c: usize,
    v: usize,
    vp: usize,
    n: usize,
    hs: usize,
}

/// Positions of a batch grouped by token id, for the deterministic
/// embedding backward (`encoder_bwd_wte`): group `g` is token `tokens[g]` at
/// positions `order[starts[g]..starts[g + 1]]`, in increasing position order.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenGroups {
    /// Positions sorted by (token, position).
    pub order: Vec<i32>,
    /// Start of each group in `order`, plus `order.len()` at the end.
    pub starts: Vec<i32>,
    /// The token of each group.
    pub tokens: Vec<i32>,
}

impl TokenGroups {
    /// The groups of `ids`.
    pub fn of(ids: &[i32]) -> Self {
        let mut order: Vec<i32> = (0..ids.len() as i32).collect();
        order.sort_by_key(|&i| (ids[i as usize], i));
        let (mut starts, mut tokens) = (Vec::new(), Vec::new());
        for (k, &i) in order.iter().enumerate() {
            if k == 0 || ids[i as usize] != ids[order[k - 1] as usize] {
                starts.push(k as i32);
                tokens.push(ids[i as usize]);
            }
        }
        starts.push(order.len() as i32);
        TokenGroups { order, starts, tokens }
    }
}

/// What the last forward left behind (as in `model::gpt`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Empty,
    Logits,
    Loss,
}

/// GPT-2 with its parameters, gradients and activations on one GPU.
pub struct CudaGpt {
    gpu: Gpu,
    config: GptConfig,
    layout: ParamLayout,
    ops: Operands,
    /// f32 master parameters.
    pub params: Buf<f32>,
    /// bf16 copy of the parameters (empty for f32 operands).
    pub params16: Buf<u16>,
    /// Gradients; backward accumulates into them.
    pub grads: Buf<f32>,
    sized: Option<Sized>,
    /// Small scratch: [0] loss, [1] grad norm, then the norm's partials.
    scalars: Buf<f32>,
    counted: usize,
    has_mask: bool,
    groups: usize,
    state: State,
}

impl std::fmt::Debug for CudaGpt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CudaGpt({:?}, {:?}, {:?})", self.gpu, self.ops, self.config)
    }
}

impl CudaGpt {
    /// Copies `model`'s parameters to `gpu`.
    pub fn from_cpu(gpu: Gpu, model: &Gpt, ops: Operands) -> Result<Self, ModelError> {
        let config = model.config().clone();
        let layout = model.layout().clone();
        let n = model.params.len();
        let params = gpu.zeros::<f32>(n)?;
        let params16 = gpu.zeros::<u16>(if ops == Operands::Bf16 { n } else { 0 })?;
        let grads = gpu.zeros::<f32>(n)?;
        let scalars = gpu.zeros::<f32>(2 + kernels::NORM_BLOCKS)?;
        let mut m = CudaGpt {
            gpu,
            config,
            layout,
            ops,
            params,
            params16,
            grads,
            sized: None,
            scalars,
            counted: 0,
            has_mask: false,
            groups: 0,
            state: State::Empty,
        };
        m.upload_params(&model.params)?;
        Ok(m)
    }

    /// The GPU.
    pub fn gpu(&self) -> &Gpu {
        &self.gpu
    }

    /// The architecture.
    pub fn config(&self) -> &GptConfig {
        &self.config
    }

    /// The parameter layout.
    pub fn layout(&self) -> &ParamLayout {
        &self.layout
    }

    /// The matmul operand type.
    pub fn operands(&self) -> Operands {
        self.ops
    }

    /// Number of parameters.
    pub fn n_params(&self) -> usize {
        self.params.len()
    }

    /// Replaces the parameters (and their bf16 copy).
    pub fn upload_params(&mut self, p: &[f32]) -> Result<(), ModelError> {
        if p.len() != self.params.len() {
            return Err(ModelError::Shape(format!(
                "{} parameters for a model of {}",
                p.len(),
                self.params.len()
            )));
        }
        self.gpu.upload(self.params.ptr(), p)?;
        if self.ops == Operands::Bf16 {
            kernels::cast_bf16(&self.gpu, self.params16.ptr(), self.params.ptr(), p.len(), 1, 1)?;
        }
        Ok(())
    }

    /// The parameters, copied to the host.
    pub fn download_params(&self) -> Result<Vec<f32>, ModelError> {
        let mut v = vec![0.0; self.params.len()];
        self.gpu.download(&mut v, self.params.ptr())?;
        Ok(v)
    }

    /// The gradients, copied to the host.
    pub fn download_grads(&self) -> Result<Vec<f32>, ModelError> {
        let mut v = vec![0.0; self.grads.len()];
        self.gpu.download(&mut v, self.grads.ptr())?;
        Ok(v)
    }

    /// Logits of the last forward `[B·T, Vp]`, copied to the host (tests, generation).
    pub fn download_logits(&self) -> Result<Vec<f32>, ModelError> {
        let s = self.sized.as_ref().ok_or(ModelError::State("no forward yet"))?;
        let mut v = vec![0.0; s.a.logits.len()];
        self.gpu.download(&mut v, s.acts.at(s.a.logits.start))?;
        Ok(v)
    }

    /// Parameter ranges that get weight decay (the matrices).
    pub fn decay_ranges(&self) -> Vec<Range<usize>> {
        self.layout.tensors().filter(|t| t.matrix).map(|t| t.range()).collect()
    }

    /// Sets every gradient to zero.
    pub fn zero_grad(&mut self) -> Result<(), ModelError> {
        self.gpu.memset(self.grads.ptr(), 0, self.grads.len() * 4)?;
        Ok(())
    }

    /// The global L2 norm of the gradients (one scalar crosses to the host).
    pub fn grad_norm(&mut self) -> Result<f32, ModelError> {
        let s = &self.scalars;
        kernels::norm(&self.gpu, s.at(1), s.at(2), self.grads.ptr(), self.grads.len())?;
        let mut v = [0.0f32];
        self.gpu.download(&mut v, s.at(1))?;
        Ok(v[0])
    }

    fn prepare(&mut self, b: usize, t: usize) -> Result<(), ModelError> {
        if self.sized.as_ref().is_some_and(|s| s.a.b == b && s.a.t == t) {
            return Ok(());
        }
        self.sized = None; // free the old buffers first
        let g = &self.gpu;
        let a = ActLayout::new(&self.config, b, t);
        let (c, vp, bt) = (self.config.n_embd, self.config.padded_vocab(), b * t);
        let bf = self.ops == Operands::Bf16;
        self.sized = Some(Sized {
            acts: g.zeros(a.total)?,
            in16: g.zeros(if bf { bt * 4 * c } else { 0 })?,
            out16: g.zeros(if bf { bt * (4 * c).max(vp) } else { 0 })?,
            ln_part: g.zeros(kernels::ln_part_rows(bt) * 2 * c)?,
            col_part: g.zeros(bt.div_ceil(kernels::COL_ROWS) * 4 * c)?,
            inputs: g.zeros(bt)?,
            targets: g.zeros(bt)?,
            mask: g.zeros(bt)?,
            order: g.zeros(bt)?,
            starts: g.zeros(bt + 1)?,
            tokens: g.zeros(bt)?,
            a,
        });
        Ok(())
    }

    /// Runs the model on `inputs` (`[B·T]`); with `targets` also the mean
    /// cross-entropy over positions whose `mask` is non-zero, returned.
    pub fn forward(
        &mut self,
        inputs: &[u32],
        targets: Option<&[u32]>,
        mask: Option<&[u8]>,
        b: usize,
        t: usize,
    ) -> Result<Option<f32>, ModelError> {
        check_batch(&self.config, inputs, targets, mask, b, t)?;
        self.prepare(b, t)?;
        self.state = State::Empty;
        let Some(s) = self.sized.as_ref() else {
            return Err(ModelError::State("no activations"));
        };
        let g = &self.gpu;
        let ids: Vec<i32> = inputs.iter().map(|&x| x as i32).collect();
        g.upload(s.inputs.ptr(), &ids)?;
        if let Some(tg) = targets {
            let tg: Vec<i32> = tg.iter().map(|&x| x as i32).collect();
            g.upload(s.targets.ptr(), &tg)?;
        }
        if let Some(m) = mask {
            g.upload(s.mask.ptr(), m)?;
        }
        self.counted = mask.map_or(b * t, |m| m.iter().filter(|&&x| x != 0).count());
        self.has_mask = mask.is_some();
        self.run_forward()?;
        if targets.is_some() {
            // The embedding backward's token groups, sorted on the host while
            // the forward kernels run (the loss below waits for them).
            let grp = TokenGroups::of(&ids);
            self.groups = grp.tokens.len();
            g.upload(s.order.ptr(), &grp.order)?;
            g.upload(s.starts.ptr(), &grp.starts)?;
            g.upload(s.tokens.ptr(), &grp.tokens)?;
        }
        let loss = if targets.is_some() { Some(self.run_loss()?) } else { None };
        self.state = if loss.is_some() { State::Loss } else { State::Logits };
        Ok(loss)
    }

    fn dims(&self, a: &ActLayout) -> Dims {
        let GptConfig {
            n_layer: nl,
            n_head: nh,
            n_embd: c,
            vocab_size: v,
            ..
        } = self.config;
        Dims {
            b: a.b,
            t: a.t,
            nl,
            nh,
            c,
            v,
            vp: self.config.padded_vocab(),
            n: a.b * a.t,
            hs: c / nh,
        }
    }

    fn w(&self, k: Kind, l: usize) -> u64 {
        self.params.at(self.layout.layer(k, l).start)
    }

    /// The operand copy of weight `k` of layer `l` (bf16 or f32).
    fn wop(&self, k: Kind, l: usize) -> u64 {
        match self.ops {
            Operands::Bf16 => self.params16.at(self.layout.layer(k, l).start),
            Operands::F32 => self.w(k, l),
        }
    }

    fn dw(&self, k: Kind, l: usize) -> u64 {
        self.grads.at(self.layout.layer(k, l).start)
    }

    /// The operand form of an f32 activation `[rows, cols]`: itself, or its bf16 copy in `dst`.
    fn operand(&self, x: u64, rows: usize, cols: usize, ld: usize, dst: &Buf<u16>) -> Result<u64, CudaError> {
        match self.ops {
            Operands::F32 => Ok(x),
            Operands::Bf16 => {
                kernels::cast_bf16(&self.gpu, dst.ptr(), x, rows, cols, ld)?;
                Ok(dst.ptr())
            }
        }
    }

    /// `out = res + bias + inp · wᵀ` for weight kind `k` of layer `l`.
    #[allow(clippy::too_many_arguments)]
    fn linear(
        &self,
        s: &Sized,
        out: u64,
        inp: u64,
        k: Kind,
        bias: Option<Kind>,
        res: u64,
        l: usize,
        c: usize,
        oc: usize,
        ldo: usize,
    ) -> Result<(), CudaError> {
        let n = s.a.b * s.a.t;
        let x = self.operand(inp, n, c, c, &s.in16)?;
        let bias = bias.map_or(0, |bk| self.w(bk, l));
        linear::forward(&self.gpu, self.ops, out, ldo, x, self.wop(k, l), bias, res, n, c, oc)
    }

    fn run_forward(&self) -> Result<(), CudaError> {
        let Some(s) = self.sized.as_ref() else { return Ok(()) };
        let g = &self.gpu;
        let a = &s.a;
        let Dims {
            b,
            t,
            nl,
            nh,
            c,
            v,
            vp,
            n,
            hs,
        } = self.dims(a);
        let at = |r: &Range<usize>, l: usize| s.acts.at(ActLayout::layer(r, nl, l).start);
        let top = |r: &Range<usize>| s.acts.at(r.start);
        kernels::encoder_fwd(
            g,
            top(&a.encoded),
            s.inputs.ptr(),
            self.w(Kind::Wte, 0),
            self.w(Kind::Wpe, 0),
            n,
            t,
            c,
        )?;
        for l in 0..nl {
            let resid = if l == 0 { top(&a.encoded) } else { at(&a.residual3, l - 1) };
            kernels::layernorm_fwd(
                g,
                at(&a.ln1, l),
                at(&a.ln1_mean, l),
                at(&a.ln1_rstd, l),
                resid,
                self.w(Kind::Ln1W, l),
                self.w(Kind::Ln1B, l),
                n,
                c,
            )?;
            self.linear(s, at(&a.qkv, l), at(&a.ln1, l), Kind::QkvW, Some(Kind::QkvB), 0, l, c, 3 * c, 3 * c)?;
            kernels::attn_fwd(g, at(&a.atty, l), at(&a.att_lse, l), at(&a.qkv, l), b, t, nh, hs)?;
            self.linear(
                s,
                at(&a.residual2, l),
                at(&a.atty, l),
                Kind::AttProjW,
                Some(Kind::AttProjB),
                resid,
                l,
                c,
                c,
                c,
            )?;
            kernels::layernorm_fwd(
                g,
                at(&a.ln2, l),
                at(&a.ln2_mean, l),
                at(&a.ln2_rstd, l),
                at(&a.residual2, l),
                self.w(Kind::Ln2W, l),
                self.w(Kind::Ln2B, l),
                n,
                c,
            )?;
            self.linear(s, at(&a.fch, l), at(&a.ln2, l), Kind::FcW, Some(Kind::FcB), 0, l, c, 4 * c, 4 * c)?;
            kernels::gelu_fwd(g, at(&a.fch_gelu, l), at(&a.fch, l), n * 4 * c)?;
            self.linear(
                s,
                at(&a.residual3, l),
                at(&a.fch_gelu, l),
                Kind::FcProjW,
                Some(Kind::FcProjB),
                at(&a.residual2, l),
                l,
                4 * c,
                c,
                c,
            )?;
        }
        kernels::layernorm_fwd(
            g,
            top(&a.lnf),
            top(&a.lnf_mean),
            top(&a.lnf_rstd),
            at(&a.residual3, nl - 1),
            self.w(Kind::LnfW, 0),
            self.w(Kind::LnfB, 0),
            n,
            c,
        )?;
        // LM head tied to wte; only the V real rows are multiplied.
        self.linear(s, top(&a.logits), top(&a.lnf), Kind::Wte, None, 0, 0, c, v, vp)
    }

    fn run_loss(&self) -> Result<f32, ModelError> {
        let Some(s) = self.sized.as_ref() else {
            return Err(ModelError::State("no activations"));
        };
        let a = &s.a;
        let n = a.b * a.t;
        let mask = if self.has_mask { s.mask.ptr() } else { 0 };
        let g = &self.gpu;
        let (v, vp) = (self.config.vocab_size, self.config.padded_vocab());
        kernels::ce_fwd(
            g,
            s.acts.at(a.losses.start),
            s.acts.at(a.logit_lse.start),
            s.acts.at(a.logits.start),
            s.targets.ptr(),
            mask,
            n,
            v,
            vp,
        )?;
        if self.counted == 0 {
            return Ok(0.0);
        }
        kernels::sum_scaled(g, self.scalars.at(0), s.acts.at(a.losses.start), n, 1.0 / self.counted as f32)?;
        let mut out = [0.0f32];
        g.download(&mut out, self.scalars.at(0))?;
        Ok(out[0])
    }

    /// Accumulates into `grads` the gradient of `scale ·` the loss the last
    /// forward returned.
    pub fn backward_scaled(&mut self, scale: f32) -> Result<(), ModelError> {
        if self.state != State::Loss {
            return Err(ModelError::State("backward needs a forward with targets first"));
        }
        let Some(s) = self.sized.as_ref() else {
            return Err(ModelError::State("no activations"));
        };
        let a = &s.a;
        let g = &self.gpu;
        let Dims {
            b,
            t,
            nl,
            nh,
            c,
            v,
            vp,
            n,
            hs,
        } = self.dims(a);
        let at = |r: &Range<usize>, l: usize| s.acts.at(ActLayout::layer(r, nl, l).start);
        let top = |r: &Range<usize>| s.acts.at(r.start);
        let gscale = if self.counted == 0 { 0.0 } else { scale / self.counted as f32 };
        let mask = if self.has_mask { s.mask.ptr() } else { 0 };
        let logits = top(&a.logits);
        let ops = self.ops;
        // d(logits): bf16 into out16 for the bf16 matmuls, else f32 in place.
        let dlogits = match ops {
            Operands::Bf16 => {
                kernels::ce_bwd(
                    g,
                    s.out16.ptr(),
                    0,
                    logits,
                    top(&a.logit_lse),
                    s.targets.ptr(),
                    mask,
                    gscale,
                    n,
                    v,
                    vp,
                )?;
                s.out16.ptr()
            }
            Operands::F32 => {
                kernels::ce_bwd(g, 0, logits, logits, top(&a.logit_lse), s.targets.ptr(), mask, gscale, n, v, vp)?;
                logits
            }
        };
        let (dres, dsmall, dbig) = (top(&a.dresidual), top(&a.dsmall), top(&a.dbig));
        let lnf_op = self.operand(top(&a.lnf), n, c, c, &s.in16)?;
        linear::backward_input(g, ops, dsmall, false, dlogits, vp, self.wop(Kind::Wte, 0), n, c, v)?;
        linear::backward_weight(g, ops, self.dw(Kind::Wte, 0), dlogits, vp, lnf_op, n, c, v)?;
        g.memset(dres, 0, n * c * 4)?;
        let lp = s.ln_part.ptr();
        kernels::layernorm_bwd(
            g,
            dres,
            self.dw(Kind::LnfW, 0),
            self.dw(Kind::LnfB, 0),
            lp,
            dsmall,
            at(&a.residual3, nl - 1),
            self.w(Kind::LnfW, 0),
            top(&a.lnf_mean),
            top(&a.lnf_rstd),
            n,
            c,
        )?;
        // One linear layer's backward: dinp = dout·w, dw += doutᵀ·inp, db += Σ dout.
        let lin_bwd = |dinp: u64, dout: u64, oc: usize, inp: u64, ic: usize, wk: Kind, bk: Kind, l: usize| -> Result<(), CudaError> {
            let d = self.operand(dout, n, oc, oc, &s.out16)?;
            let x = self.operand(inp, n, ic, ic, &s.in16)?;
            linear::backward_input(g, ops, dinp, false, d, oc, self.wop(wk, l), n, ic, oc)?;
            linear::backward_weight(g, ops, self.dw(wk, l), d, oc, x, n, ic, oc)?;
            kernels::bias_grad(g, self.dw(bk, l), s.col_part.ptr(), dout, n, oc, oc)
        };
        for l in (0..nl).rev() {
            let resid = if l == 0 { top(&a.encoded) } else { at(&a.residual3, l - 1) };
            lin_bwd(dbig, dres, c, at(&a.fch_gelu, l), 4 * c, Kind::FcProjW, Kind::FcProjB, l)?;
            kernels::gelu_bwd(g, dbig, at(&a.fch, l), n * 4 * c)?;
            lin_bwd(dsmall, dbig, 4 * c, at(&a.ln2, l), c, Kind::FcW, Kind::FcB, l)?;
            kernels::layernorm_bwd(
                g,
                dres,
                self.dw(Kind::Ln2W, l),
                self.dw(Kind::Ln2B, l),
                lp,
                dsmall,
                at(&a.residual2, l),
                self.w(Kind::Ln2W, l),
                at(&a.ln2_mean, l),
                at(&a.ln2_rstd, l),
                n,
                c,
            )?;
            lin_bwd(dsmall, dres, c, at(&a.atty, l), c, Kind::AttProjW, Kind::AttProjB, l)?;
            kernels::attn_bwd(g, dbig, dsmall, at(&a.qkv, l), at(&a.atty, l), at(&a.att_lse, l), b, t, nh, hs)?;
            lin_bwd(dsmall, dbig, 3 * c, at(&a.ln1, l), c, Kind::QkvW, Kind::QkvB, l)?;
            kernels::layernorm_bwd(
                g,
                dres,
                self.dw(Kind::Ln1W, l),
                self.dw(Kind::Ln1B, l),
                lp,
                dsmall,
                resid,
                self.w(Kind::Ln1W, l),
                at(&a.ln1_mean, l),
                at(&a.ln1_rstd, l),
                n,
                c,
            )?;
        }
        kernels::encoder_bwd_wpe(g, self.dw(Kind::Wpe, 0), dres, b, t, c)?;
        kernels::encoder_bwd_wte(
            g,
            self.dw(Kind::Wte, 0),
            dres,
            s.order.ptr(),
            s.starts.ptr(),
            s.tokens.ptr(),
            self.groups,
            c,
        )?;
        self.state = State::Empty;
        Ok(())
    }
}
