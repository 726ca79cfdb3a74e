//! The GPT-2 model: config, the four flat buffers (parameters, gradients,
//! activations, scratch), and forward/backward wired from `ops`.

use super::acts::ActLayout;
use super::ops::{attention, carve, encoder, gelu, layernorm, loss, matmul};
use super::params::{Init, Kind, ParamLayout};
use super::rng::Rng;
use super::{GptConfig, ModelError};
use crate::backend::{Backend, CpuBackend, Precision};
use std::ops::Range;
use std::time::{Duration, Instant};

/// Where a step's time went (filled only when profiling is on).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Timings {
    /// Forward matmuls (including the LM head).
    pub matmul_fwd: Duration,
    /// Backward matmuls (including the LM head).
    pub matmul_bwd: Duration,
    /// Attention forward.
    pub attention_fwd: Duration,
    /// Attention backward.
    pub attention_bwd: Duration,
    /// Everything else in forward (embedding, layernorm, GELU, loss).
    pub other_fwd: Duration,
    /// Everything else in backward.
    pub other_bwd: Duration,
}

/// Timing categories.
#[derive(Clone, Copy)]
enum Cat {
    MatmulFwd,
    MatmulBwd,
    AttnFwd,
    AttnBwd,
    OtherFwd,
    OtherBwd,
}

/// Accumulates elapsed time per category when profiling is on.
struct Clock {
    last: Option<Instant>,
}

impl Clock {
    fn new(on: bool) -> Self {
        Clock {
            last: on.then(Instant::now),
        }
    }

    fn lap(&mut self, t: &mut Option<Timings>, cat: Cat) {
        if let (Some(last), Some(t)) = (self.last, t.as_mut()) {
            let now = Instant::now();
            let d = now - last;
            let slot = match cat {
                Cat::MatmulFwd => &mut t.matmul_fwd,
                Cat::MatmulBwd => &mut t.matmul_bwd,
                Cat::AttnFwd => &mut t.attention_fwd,
                Cat::AttnBwd => &mut t.attention_bwd,
                Cat::OtherFwd => &mut t.other_fwd,
                Cat::OtherBwd => &mut t.other_bwd,
            };
            *slot += d;
            self.last = Some(now);
        }
    }
}

/// What the last forward left behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// No forward yet, or its activations were consumed by a backward.
    Empty,
    /// Forward ran; logits valid; no loss.
    Logits,
    /// Forward ran with targets; logits and loss valid.
    Loss,
    /// The trunk ran without the LM head; only the hidden state is valid.
    Hidden,
}

/// Checks a batch against the model: `inputs`, `targets` and `mask` hold
/// `B·T` entries, every id is inside the vocabulary, and `1 ≤ T ≤ block_size`
/// (shared by the CPU and CUDA models).
pub fn check_batch(
    config: &GptConfig,
    inputs: &[u32],
    targets: Option<&[u32]>,
    mask: Option<&[u8]>,
    b: usize,
    t: usize,
) -> Result<(), ModelError> {
    let n = b * t;
    if n == 0 {
        return Err(ModelError::Shape(format!("batch {b} × sequence {t} is empty")));
    }
    if t > config.block_size {
        return Err(ModelError::Shape(format!(
            "sequence length {t} exceeds block_size {}",
            config.block_size
        )));
    }
    for (what, len) in [
        ("inputs", Some(inputs.len())),
        ("targets", targets.map(|x| x.len())),
        ("mask", mask.map(|x| x.len())),
    ] {
        if let Some(len) = len
            && len != n
        {
            return Err(ModelError::Shape(format!("{what} has {len} entries, expected B·T = {b}·{t} = {n}")));
        }
    }
    let v = config.vocab_size;
    for (what, ids) in [("input", Some(inputs)), ("target", targets)] {
        if let Some((position, &id)) = ids.and_then(|ids| ids.iter().enumerate().find(|(_, id)| **id as usize >= v)) {
            return Err(ModelError::Token {
                what,
                id,
                position,
                vocab: v,
            });
        }
    }
    Ok(())
}

/// GPT-2 with its parameters, gradients, activations and CPU backend.
#[derive(Debug, Clone)]
pub struct Gpt {
    config: GptConfig,
    layout: ParamLayout,
    /// All parameters, laid out by [`ParamLayout`].
    pub params: Vec<f32>,
    /// Gradients, same layout; backward accumulates (`+=`) into them.
    pub grads: Vec<f32>,
    acts: Vec<f32>,
    act_layout: Option<ActLayout>,
    attn_scratch: Vec<f32>,
    ln_scratch: Vec<f32>,
    backend: CpuBackend,
    inputs: Vec<u32>,
    targets: Vec<u32>,
    mask: Vec<u8>,
    has_mask: bool,
    state: State,
    /// Per-op time accumulators; `Some` turns profiling on.
    pub timings: Option<Timings>,
}

impl Gpt {
    /// A freshly initialised model (GPT-2 init from `seed`, see
    /// [`ParamLayout::tensors`]); padded vocabulary rows of `wte` are zero.
    pub fn new(config: GptConfig, precision: Precision, seed: u64) -> Result<Self, ModelError> {
        Self::with_backend(config, CpuBackend::new(precision), seed)
    }

    /// As [`Gpt::new`] with an explicit backend (tests force the bf16 fallback).
    pub fn with_backend(config: GptConfig, backend: CpuBackend, seed: u64) -> Result<Self, ModelError> {
        let problems = config.check();
        if !problems.is_empty() {
            return Err(ModelError::Config(problems));
        }
        let layout = ParamLayout::new(&config);
        let mut params = vec![0.0f32; layout.total()];
        let mut rng = Rng::new(seed);
        for t in layout.tensors() {
            let dst = &mut params[t.range()];
            match t.init {
                Init::Zeros => dst.fill(0.0),
                Init::Ones => dst.fill(1.0),
                Init::Normal(std) => dst.iter_mut().for_each(|x| *x = (rng.normal() * std as f64) as f32),
            }
        }
        // Padded vocabulary rows stay zero: they are never looked up, never
        // in the loss, and (with zero gradient) AdamW keeps them at zero.
        params[layout.range(Kind::Wte)][config.vocab_size * config.n_embd..].fill(0.0);
        let grads = vec![0.0f32; layout.total()];
        Ok(Gpt {
            config,
            layout,
            params,
            grads,
            acts: Vec::new(),
            act_layout: None,
            attn_scratch: Vec::new(),
            ln_scratch: Vec::new(),
            backend,
            inputs: Vec::new(),
            targets: Vec::new(),
            mask: Vec::new(),
            has_mask: false,
            state: State::Empty,
            timings: None,
        })
    }

    /// The architecture.
    pub fn config(&self) -> &GptConfig {
        &self.config
    }

    /// The parameter layout (names, shapes, offsets, decay flags).
    pub fn layout(&self) -> &ParamLayout {
        &self.layout
    }

    /// The matmul precision in effect.
    pub fn precision(&self) -> Precision {
        self.backend.precision()
    }

    /// Parameter ranges that get weight decay (the matrices).
    pub fn decay_ranges(&self) -> Vec<Range<usize>> {
        self.layout.tensors().filter(|t| t.matrix).map(|t| t.range()).collect()
    }

    /// Sets every gradient to zero, on the current rayon pool: one thread
    /// writing 500 MB (124M's gradients) took ≈ 2.4% of a bf16 step.
    pub fn zero_grad(&mut self) {
        use rayon::prelude::*;
        self.grads.par_chunks_mut(1 << 16).for_each(|c| c.fill(0.0));
    }

    /// Allocates activations for (b, t) unless already sized for them, and
    /// per-worker scratch for the current rayon pool.
    fn prepare(&mut self, b: usize, t: usize) -> Result<(), ModelError> {
        if b == 0 || t == 0 {
            return Err(ModelError::Shape(format!("batch {b} × sequence {t} is empty")));
        }
        if t > self.config.block_size {
            return Err(ModelError::Shape(format!(
                "sequence length {t} exceeds block_size {}",
                self.config.block_size
            )));
        }
        if self.act_layout.as_ref().is_none_or(|a| a.b != b || a.t != t) {
            let a = ActLayout::new(&self.config, b, t);
            self.acts = vec![0.0; a.total];
            self.ln_scratch = vec![0.0; layernorm::scratch_len(b * t, self.config.n_embd)];
            self.act_layout = Some(a);
            self.inputs = vec![0; b * t];
            self.targets = vec![0; b * t];
            self.mask = vec![0; b * t];
        }
        let attn = rayon::current_num_threads() * attention::scratch_per_worker(t);
        if self.attn_scratch.len() != attn {
            self.attn_scratch = vec![0.0; attn];
        }
        Ok(())
    }

    /// Runs the model on `inputs` (`[B·T]` token ids). With `targets`
    /// (`[B·T]`) also computes the mean cross-entropy over positions whose
    /// `mask` (`[B·T]`, optional) is non-zero, and returns it.
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
        self.inputs.copy_from_slice(inputs);
        if let Some(tg) = targets {
            self.targets.copy_from_slice(tg);
        }
        self.has_mask = mask.is_some();
        if let Some(m) = mask {
            self.mask.copy_from_slice(m);
        }
        self.state = State::Empty;
        self.run_forward(b, t, true);
        let loss = targets.map(|_| self.run_loss());
        self.state = if loss.is_some() { State::Loss } else { State::Logits };
        Ok(loss)
    }

    /// Runs the trunk only (through `ln_f`, no LM head) on `inputs`
    /// (`[B·T]`), for scalar heads that read [`Gpt::hidden`] and backpropagate
    /// with [`Gpt::backward_from_dhidden`]. The LM head is a third of a small
    /// model's FLOPs, so skipping it matters for reward and value models.
    pub fn forward_trunk(&mut self, inputs: &[u32], b: usize, t: usize) -> Result<(), ModelError> {
        if inputs.len() != b * t {
            return Err(ModelError::Shape(format!(
                "inputs has {} entries, expected B·T = {b}·{t} = {}",
                inputs.len(),
                b * t
            )));
        }
        let v = self.config.vocab_size;
        if let Some((position, &id)) = inputs.iter().enumerate().find(|(_, id)| **id as usize >= v) {
            return Err(ModelError::Token {
                what: "input",
                id,
                position,
                vocab: v,
            });
        }
        self.prepare(b, t)?;
        self.inputs.copy_from_slice(inputs);
        self.has_mask = false;
        self.state = State::Empty;
        self.run_forward(b, t, false);
        self.state = State::Hidden;
        Ok(())
    }

    fn run_forward(&mut self, b: usize, t: usize, head: bool) {
        let Some(a) = self.act_layout.clone() else { return };
        let GptConfig {
            n_layer: nl,
            n_head: nh,
            n_embd: c,
            vocab_size: v,
            ..
        } = self.config;
        let vp = self.config.padded_vocab();
        let (p, pl) = (&self.params, &self.layout);
        let amx = self.backend.uses_amx();
        let be = &mut self.backend;
        let acts = &mut self.acts[..];
        let tm = &mut self.timings;
        let mut clk = Clock::new(tm.is_some());
        let w = |k: Kind, l: usize| &p[pl.layer(k, l)];

        let [enc] = carve(acts, [a.encoded.clone()]);
        encoder::forward(enc, &self.inputs, w(Kind::Wte, 0), w(Kind::Wpe, 0), t, c);
        for l in 0..nl {
            let lr = |r: &Range<usize>| ActLayout::layer(r, nl, l);
            let resid = if l == 0 {
                a.encoded.clone()
            } else {
                ActLayout::layer(&a.residual3, nl, l - 1)
            };
            let [ln1, mean, rstd, x] = carve(acts, [lr(&a.ln1), lr(&a.ln1_mean), lr(&a.ln1_rstd), resid.clone()]);
            layernorm::forward(ln1, mean, rstd, x, w(Kind::Ln1W, l), w(Kind::Ln1B, l));
            clk.lap(tm, Cat::OtherFwd);
            let [qkv, ln1] = carve(acts, [lr(&a.qkv), lr(&a.ln1)]);
            matmul::forward(be, qkv, 3 * c, ln1, w(Kind::QkvW, l), Some(w(Kind::QkvB, l)), None, c, 3 * c);
            clk.lap(tm, Cat::MatmulFwd);
            let [atty, lse, qkv] = carve(acts, [lr(&a.atty), lr(&a.att_lse), lr(&a.qkv)]);
            attention::forward(atty, lse, qkv, b, t, nh, &mut self.attn_scratch, amx);
            clk.lap(tm, Cat::AttnFwd);
            let [res2, atty, x] = carve(acts, [lr(&a.residual2), lr(&a.atty), resid]);
            matmul::forward(be, res2, c, atty, w(Kind::AttProjW, l), Some(w(Kind::AttProjB, l)), Some(x), c, c);
            clk.lap(tm, Cat::MatmulFwd);
            let [ln2, mean, rstd, res2] = carve(acts, [lr(&a.ln2), lr(&a.ln2_mean), lr(&a.ln2_rstd), lr(&a.residual2)]);
            layernorm::forward(ln2, mean, rstd, res2, w(Kind::Ln2W, l), w(Kind::Ln2B, l));
            clk.lap(tm, Cat::OtherFwd);
            let [fch, ln2] = carve(acts, [lr(&a.fch), lr(&a.ln2)]);
            matmul::forward(be, fch, 4 * c, ln2, w(Kind::FcW, l), Some(w(Kind::FcB, l)), None, c, 4 * c);
            clk.lap(tm, Cat::MatmulFwd);
            let [g, fch] = carve(acts, [lr(&a.fch_gelu), lr(&a.fch)]);
            gelu::forward(g, fch);
            clk.lap(tm, Cat::OtherFwd);
            let [res3, g, res2] = carve(acts, [lr(&a.residual3), lr(&a.fch_gelu), lr(&a.residual2)]);
            matmul::forward(be, res3, c, g, w(Kind::FcProjW, l), Some(w(Kind::FcProjB, l)), Some(res2), 4 * c, c);
            clk.lap(tm, Cat::MatmulFwd);
        }
        let [lnf, mean, rstd, x] = carve(
            acts,
            [
                a.lnf.clone(),
                a.lnf_mean.clone(),
                a.lnf_rstd.clone(),
                ActLayout::layer(&a.residual3, nl, nl - 1),
            ],
        );
        layernorm::forward(lnf, mean, rstd, x, w(Kind::LnfW, 0), w(Kind::LnfB, 0));
        clk.lap(tm, Cat::OtherFwd);
        if !head {
            return;
        }
        // LM head tied to wte; only the V real rows are multiplied.
        let [logits, lnf] = carve(acts, [a.logits.clone(), a.lnf.clone()]);
        matmul::forward(be, logits, vp, lnf, w(Kind::Wte, 0), None, None, c, v);
        clk.lap(tm, Cat::MatmulFwd);
    }

    fn run_loss(&mut self) -> f32 {
        let Some(a) = self.act_layout.as_ref() else { return 0.0 };
        let mut clk = Clock::new(self.timings.is_some());
        let [losses, lse, logits] = carve(&mut self.acts, [a.losses.clone(), a.logit_lse.clone(), a.logits.clone()]);
        let mask = self.has_mask.then_some(&self.mask[..]);
        let l = loss::forward(
            losses,
            lse,
            logits,
            &self.targets,
            mask,
            self.config.vocab_size,
            self.config.padded_vocab(),
        );
        clk.lap(&mut self.timings, Cat::OtherFwd);
        l
    }

    /// Logits of the last forward, `[B·T, Vp]` row-major; columns `V..Vp`
    /// (padding) are meaningless. Overwritten by a backward.
    pub fn logits(&self) -> &[f32] {
        self.act_layout.as_ref().map_or(&[], |a| &self.acts[a.logits.clone()])
    }

    /// The logits buffer, for a custom head loss to overwrite with
    /// d(loss)/d(logits) before [`Gpt::backward_from_dlogits`].
    pub fn logits_mut(&mut self) -> &mut [f32] {
        match self.act_layout.as_ref() {
            Some(a) => &mut self.acts[a.logits.clone()],
            None => &mut [],
        }
    }

    /// Last hidden state (the `ln_f` output) of the last forward, `[B·T, C]`.
    pub fn hidden(&self) -> &[f32] {
        self.act_layout.as_ref().map_or(&[], |a| &self.acts[a.lnf.clone()])
    }

    /// Accumulates into `grads` the gradient of the loss the last forward
    /// returned (mean masked cross-entropy).
    pub fn backward(&mut self) -> Result<(), ModelError> {
        self.backward_scaled(1.0)
    }

    /// As [`Gpt::backward`] for `scale · loss` (e.g. `1/steps` under gradient accumulation).
    pub fn backward_scaled(&mut self, scale: f32) -> Result<(), ModelError> {
        if self.state != State::Loss {
            return Err(ModelError::State("backward needs a forward with targets first"));
        }
        let Some(a) = self.act_layout.as_ref() else {
            return Err(ModelError::State("no activations"));
        };
        let mut clk = Clock::new(self.timings.is_some());
        let [lse, logits] = carve(&mut self.acts, [a.logit_lse.clone(), a.logits.clone()]);
        let mask = self.has_mask.then_some(&self.mask[..]);
        loss::backward(
            logits,
            lse,
            &self.targets,
            mask,
            self.config.vocab_size,
            self.config.padded_vocab(),
            scale,
        );
        clk.lap(&mut self.timings, Cat::OtherBwd);
        self.state = State::Logits;
        self.backward_from_dlogits()
    }

    /// Backward from d(loss)/d(logits) that the caller wrote into
    /// [`Gpt::logits_mut`] (`[B·T, Vp]`; padded columns are ignored): the
    /// hook for PPO/DPO losses on the LM head.
    pub fn backward_from_dlogits(&mut self) -> Result<(), ModelError> {
        if matches!(self.state, State::Empty | State::Hidden) {
            return Err(ModelError::State("backward_from_dlogits needs a forward with the LM head first"));
        }
        let Some(a) = self.act_layout.clone() else {
            return Err(ModelError::State("no activations"));
        };
        let (c, v, vp) = (self.config.n_embd, self.config.vocab_size, self.config.padded_vocab());
        let mut clk = Clock::new(self.timings.is_some());
        let wte = self.layout.range(Kind::Wte);
        let [dlnf, dlogits, lnf] = carve(&mut self.acts, [a.dsmall.clone(), a.logits.clone(), a.lnf.clone()]);
        let [dwte] = carve(&mut self.grads, [wte.clone()]);
        matmul::backward(
            &mut self.backend,
            dlnf,
            false,
            dwte,
            None,
            dlogits,
            vp,
            lnf,
            &self.params[wte],
            c,
            v,
        );
        clk.lap(&mut self.timings, Cat::MatmulBwd);
        self.trunk_backward(&a);
        Ok(())
    }

    /// Backward from d(loss)/d(hidden) (`[B·T, C]`, the `ln_f` output): the
    /// hook for scalar heads (reward model, value head) that sit on the
    /// trunk instead of the LM head.
    pub fn backward_from_dhidden(&mut self, dhidden: &[f32]) -> Result<(), ModelError> {
        if self.state == State::Empty {
            return Err(ModelError::State("backward_from_dhidden needs a forward first"));
        }
        let Some(a) = self.act_layout.clone() else {
            return Err(ModelError::State("no activations"));
        };
        if dhidden.len() != a.dsmall.len() {
            return Err(ModelError::Shape(format!(
                "dhidden has {} entries, expected B·T·C = {}",
                dhidden.len(),
                a.dsmall.len()
            )));
        }
        self.acts[a.dsmall.clone()].copy_from_slice(dhidden);
        self.trunk_backward(&a);
        Ok(())
    }

    /// Backward through `ln_f` and the blocks to the embeddings, starting
    /// from d(ln_f output) in `dsmall`. Consumes the forward state.
    fn trunk_backward(&mut self, a: &ActLayout) {
        let (b, t) = (a.b, a.t);
        let GptConfig {
            n_layer: nl,
            n_head: nh,
            n_embd: c,
            ..
        } = self.config;
        let (p, pl) = (&self.params, &self.layout);
        let amx = self.backend.uses_amx();
        let be = &mut self.backend;
        let acts = &mut self.acts[..];
        let grads = &mut self.grads[..];
        let tm = &mut self.timings;
        let lns = &mut self.ln_scratch[..];
        let mut clk = Clock::new(tm.is_some());
        let w = |k: Kind, l: usize| &p[pl.layer(k, l)];
        let g2 = |k1: Kind, k2: Kind, l: usize| [pl.layer(k1, l), pl.layer(k2, l)];
        let bt = b * t;

        let last = ActLayout::layer(&a.residual3, nl, nl - 1);
        let [dres, dlnf, x, mean, rstd] = carve(
            acts,
            [a.dresidual.clone(), a.dsmall.clone(), last, a.lnf_mean.clone(), a.lnf_rstd.clone()],
        );
        dres.fill(0.0);
        let [dw, db] = carve(grads, g2(Kind::LnfW, Kind::LnfB, 0));
        layernorm::backward(dres, dw, db, dlnf, x, w(Kind::LnfW, 0), mean, rstd, lns);
        clk.lap(tm, Cat::OtherBwd);
        for l in (0..nl).rev() {
            let lr = |r: &Range<usize>| ActLayout::layer(r, nl, l);
            let resid = if l == 0 {
                a.encoded.clone()
            } else {
                ActLayout::layer(&a.residual3, nl, l - 1)
            };
            let dbig4 = a.dbig.start..a.dbig.start + bt * 4 * c;
            let dbig3 = a.dbig.start..a.dbig.start + bt * 3 * c;
            // MLP: residual3 = residual2 + c_proj(gelu(c_fc(ln_2(residual2)))).
            let [dfch, dres, g] = carve(acts, [dbig4.clone(), a.dresidual.clone(), lr(&a.fch_gelu)]);
            let [dw, db] = carve(grads, g2(Kind::FcProjW, Kind::FcProjB, l));
            matmul::backward(be, dfch, false, dw, Some(db), dres, c, g, w(Kind::FcProjW, l), 4 * c, c);
            clk.lap(tm, Cat::MatmulBwd);
            let [dfch, fch] = carve(acts, [dbig4.clone(), lr(&a.fch)]);
            gelu::backward_inplace(dfch, fch);
            clk.lap(tm, Cat::OtherBwd);
            let [dln2, dfch, ln2] = carve(acts, [a.dsmall.clone(), dbig4, lr(&a.ln2)]);
            let [dw, db] = carve(grads, g2(Kind::FcW, Kind::FcB, l));
            matmul::backward(be, dln2, false, dw, Some(db), dfch, 4 * c, ln2, w(Kind::FcW, l), c, 4 * c);
            clk.lap(tm, Cat::MatmulBwd);
            let [dres, dln2, x, mean, rstd] = carve(
                acts,
                [
                    a.dresidual.clone(),
                    a.dsmall.clone(),
                    lr(&a.residual2),
                    lr(&a.ln2_mean),
                    lr(&a.ln2_rstd),
                ],
            );
            let [dw, db] = carve(grads, g2(Kind::Ln2W, Kind::Ln2B, l));
            layernorm::backward(dres, dw, db, dln2, x, w(Kind::Ln2W, l), mean, rstd, lns);
            clk.lap(tm, Cat::OtherBwd);
            // Attention: residual2 = residual + c_proj(attn(c_attn(ln_1(residual)))).
            let [datty, dres, atty] = carve(acts, [a.dsmall.clone(), a.dresidual.clone(), lr(&a.atty)]);
            let [dw, db] = carve(grads, g2(Kind::AttProjW, Kind::AttProjB, l));
            matmul::backward(be, datty, false, dw, Some(db), dres, c, atty, w(Kind::AttProjW, l), c, c);
            clk.lap(tm, Cat::MatmulBwd);
            let [dqkv, datty, qkv, atty, lse] = carve(acts, [dbig3.clone(), a.dsmall.clone(), lr(&a.qkv), lr(&a.atty), lr(&a.att_lse)]);
            attention::backward(dqkv, datty, qkv, atty, lse, b, t, nh, &mut self.attn_scratch, amx);
            clk.lap(tm, Cat::AttnBwd);
            let [dln1, dqkv, ln1] = carve(acts, [a.dsmall.clone(), dbig3, lr(&a.ln1)]);
            let [dw, db] = carve(grads, g2(Kind::QkvW, Kind::QkvB, l));
            matmul::backward(be, dln1, false, dw, Some(db), dqkv, 3 * c, ln1, w(Kind::QkvW, l), c, 3 * c);
            clk.lap(tm, Cat::MatmulBwd);
            let [dres, dln1, x, mean, rstd] = carve(
                acts,
                [a.dresidual.clone(), a.dsmall.clone(), resid, lr(&a.ln1_mean), lr(&a.ln1_rstd)],
            );
            let [dw, db] = carve(grads, g2(Kind::Ln1W, Kind::Ln1B, l));
            layernorm::backward(dres, dw, db, dln1, x, w(Kind::Ln1W, l), mean, rstd, lns);
            clk.lap(tm, Cat::OtherBwd);
        }
        let [dres] = carve(acts, [a.dresidual.clone()]);
        let [dwte, dwpe] = carve(grads, g2(Kind::Wte, Kind::Wpe, 0));
        encoder::backward(dwte, dwpe, dres, &self.inputs, t, c);
        clk.lap(tm, Cat::OtherBwd);
        self.state = State::Empty;
    }
}
