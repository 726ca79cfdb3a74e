//! The KV-cached decoder: GPT-2's forward pass for only the *new* tokens of
//! each sequence, attending over the keys and values cached from earlier
//! calls.
//!
//! The cache holds K and V as `[n_layer, B, n_head, T_max, head_size]`, so
//! one head of one sequence is a contiguous `[T, hs]` block that attention
//! scans in order. Each sequence of the batch has its own length: positions
//! are left-aligned (every prompt starts at position 0), so sequences of
//! different lengths need no padding and no attention mask beyond causality.
//!
//! Per call: embeddings → per layer (ln_1 → c_attn → append K, V → causal
//! attention of the new rows over the cache → c_proj + residual → ln_2 →
//! c_fc → GELU → c_proj + residual) → ln_f and the LM head for the *last*
//! new row of each sequence only: the prompt's other positions need no
//! logits, and the head is a third of GPT-2 small's weights.
//!
//! The LayerNorm and GELU are the training ops themselves, so the decoder
//! computes what [`Gpt::forward`] computes, up to summation order.

use super::InferError;
use super::linear::{self, Weight};
use crate::backend::{CpuBackend, Precision};
use crate::model::ops::{dot_lanes, fast_exp, gelu, layernorm};
use crate::model::params::Kind;
use crate::model::{Gpt, GptConfig};
use rayon::prelude::*;

/// One block's matrices.
#[derive(Debug)]
struct Layer<'m> {
    qkv: Weight<'m>,
    att_proj: Weight<'m>,
    fc: Weight<'m>,
    fc_proj: Weight<'m>,
}

/// Per-call activations, sized for the rows of the current call.
#[derive(Debug, Default)]
struct Scratch {
    /// Residual stream `[N, C]`.
    x: Vec<f32>,
    /// LayerNorm output `[N, C]` (also the gathered last rows before `ln_f`).
    ln: Vec<f32>,
    /// `[N]` mean and 1/std (the training op saves them; unused here).
    mean: Vec<f32>,
    rstd: Vec<f32>,
    /// `c_attn` output `[N, 3C]`.
    qkv: Vec<f32>,
    /// Attention output `[N, C]`.
    atty: Vec<f32>,
    /// `c_fc` output and its GELU `[N, 4C]`.
    fch: Vec<f32>,
    fcg: Vec<f32>,
    /// LM-head output for the sequences that got tokens `[B', Vp]`.
    head: Vec<f32>,
}

/// A GPT-2 decoder with a KV cache for a batch of `B` sequences.
#[derive(Debug)]
pub struct Decoder<'m> {
    model: &'m Gpt,
    cfg: GptConfig,
    layers: Vec<Layer<'m>>,
    head: Weight<'m>,
    backend: CpuBackend,
    precision: Precision,
    simd: bool,
    batch: usize,
    t_max: usize,
    k: Vec<f32>,
    v: Vec<f32>,
    lens: Vec<usize>,
    /// `[B, Vp]`; a row is valid while `fresh[b]`.
    logits: Vec<f32>,
    fresh: Vec<bool>,
    s: Scratch,
}

impl<'m> Decoder<'m> {
    /// A decoder for up to `batch` sequences of at most `t_max` tokens
    /// (clamped to the model's `block_size`). `Bf16` keeps bf16 copies of the
    /// matrices (half the memory traffic per token; activations stay f32).
    pub fn new(model: &'m Gpt, batch: usize, t_max: usize, precision: Precision) -> Result<Self, InferError> {
        let cfg = model.config().clone();
        if batch == 0 {
            return Err(InferError::Shape("a decoder needs a batch of at least 1 sequence".into()));
        }
        let t_max = t_max.min(cfg.block_size).max(1);
        let (c, nl) = (cfg.n_embd, cfg.n_layer);
        let bf16 = precision == Precision::Bf16;
        let p = &model.params;
        let pl = model.layout();
        let w = |k: Kind, l: usize, rows: usize, cols: usize| Weight::new(&p[pl.layer(k, l)], rows, cols, bf16);
        let layers = (0..nl)
            .map(|l| Layer {
                qkv: w(Kind::QkvW, l, 3 * c, c),
                att_proj: w(Kind::AttProjW, l, c, c),
                fc: w(Kind::FcW, l, 4 * c, c),
                fc_proj: w(Kind::FcProjW, l, c, 4 * c),
            })
            .collect();
        let head = w(Kind::Wte, 0, cfg.padded_vocab(), c);
        let cache = nl * batch * c * t_max;
        Ok(Decoder {
            model,
            layers,
            head,
            backend: CpuBackend::new(precision),
            precision,
            simd: linear::has_avx512(),
            batch,
            t_max,
            k: vec![0.0; cache],
            v: vec![0.0; cache],
            lens: vec![0; batch],
            logits: vec![0.0; batch * cfg.padded_vocab()],
            fresh: vec![false; batch],
            s: Scratch::default(),
            cfg,
        })
    }

    /// The model's architecture.
    pub fn config(&self) -> &GptConfig {
        &self.cfg
    }

    /// The weight precision in effect.
    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// Number of sequences the cache holds.
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// The most tokens one sequence can hold.
    pub fn t_max(&self) -> usize {
        self.t_max
    }

    /// Tokens cached so far for sequence `b`.
    pub fn len(&self, b: usize) -> usize {
        self.lens.get(b).copied().unwrap_or(0)
    }

    /// True when no sequence holds any token.
    pub fn is_empty(&self) -> bool {
        self.lens.iter().all(|&l| l == 0)
    }

    /// Forgets every sequence (the cache is overwritten, not cleared).
    pub fn reset(&mut self) {
        self.lens.fill(0);
        self.fresh.fill(false);
    }

    /// Logits `[V]` (padding excluded) after the last token fed to sequence
    /// `b`, or `None` when the last [`Decoder::step`] gave it no tokens.
    pub fn logits(&self, b: usize) -> Option<&[f32]> {
        let vp = self.cfg.padded_vocab();
        (self.fresh.get(b) == Some(&true)).then(|| &self.logits[b * vp..b * vp + self.cfg.vocab_size])
    }

    /// Appends `chunks[b]` to sequence `b` (an empty chunk leaves it as it
    /// is) and computes the logits after each non-empty chunk's last token.
    pub fn step(&mut self, chunks: &[&[u32]]) -> Result<(), InferError> {
        if chunks.len() != self.batch {
            return Err(InferError::Shape(format!(
                "step got {} chunks for a decoder of batch {}",
                chunks.len(),
                self.batch
            )));
        }
        let v = self.cfg.vocab_size;
        for (b, ch) in chunks.iter().enumerate() {
            if self.lens[b] + ch.len() > self.t_max {
                return Err(InferError::Shape(format!(
                    "sequence {b}: {} cached + {} new tokens exceed the context of {} (block_size {})",
                    self.lens[b],
                    ch.len(),
                    self.t_max,
                    self.cfg.block_size
                )));
            }
            if let Some((i, &id)) = ch.iter().enumerate().find(|(_, id)| **id as usize >= v) {
                return Err(InferError::Token {
                    seq: b,
                    pos: self.lens[b] + i,
                    id,
                    vocab: v,
                });
            }
        }
        // Rows of this call: (sequence, position, token).
        let rows: Vec<(usize, usize, u32)> = chunks
            .iter()
            .enumerate()
            .flat_map(|(b, ch)| ch.iter().enumerate().map(move |(i, &t)| (b, i, t)))
            .map(|(b, i, t)| (b, self.lens[b] + i, t))
            .collect();
        if rows.is_empty() {
            return Err(InferError::Shape("step got no tokens at all".into()));
        }
        self.forward(&rows);
        for (b, ch) in chunks.iter().enumerate() {
            self.lens[b] += ch.len();
            self.fresh[b] = !ch.is_empty();
        }
        Ok(())
    }

    fn forward(&mut self, rows: &[(usize, usize, u32)]) {
        let n = rows.len();
        let (c, nh) = (self.cfg.n_embd, self.cfg.n_head);
        let (v, vp) = (self.cfg.vocab_size, self.cfg.padded_vocab());
        let s = &mut self.s;
        for (buf, width) in [
            (&mut s.x, c),
            (&mut s.ln, c),
            (&mut s.qkv, 3 * c),
            (&mut s.atty, c),
            (&mut s.fch, 4 * c),
            (&mut s.fcg, 4 * c),
            (&mut s.mean, 1),
            (&mut s.rstd, 1),
        ] {
            buf.resize(n * width, 0.0);
        }
        let (p, pl) = (&self.model.params, self.model.layout());
        let w = |k: Kind, l: usize| &p[pl.layer(k, l)];
        let (wte, wpe) = (w(Kind::Wte, 0), w(Kind::Wpe, 0));
        s.x.par_chunks_mut(c).zip(rows).for_each(|(x, &(_, pos, tok))| {
            let e = &wte[tok as usize * c..(tok as usize + 1) * c];
            let q = &wpe[pos * c..(pos + 1) * c];
            x.iter_mut().zip(e).zip(q).for_each(|((x, e), q)| *x = e + q);
        });
        let be = &mut self.backend;
        let simd = self.simd;
        for (l, lw) in self.layers.iter().enumerate() {
            layernorm::forward(&mut s.ln, &mut s.mean, &mut s.rstd, &s.x, w(Kind::Ln1W, l), w(Kind::Ln1B, l));
            linear::forward(be, simd, &mut s.qkv, 3 * c, &s.ln, n, &lw.qkv, Some(w(Kind::QkvB, l)), false, 3 * c);
            let geo = Geometry {
                batch: self.batch,
                t_max: self.t_max,
                nh,
                hs: c / nh,
                l,
            };
            append_kv(&mut self.k, &mut self.v, &s.qkv, rows, geo);
            attend(&mut s.atty, &s.qkv, &self.k, &self.v, rows, geo);
            linear::forward(be, simd, &mut s.x, c, &s.atty, n, &lw.att_proj, Some(w(Kind::AttProjB, l)), true, c);
            layernorm::forward(&mut s.ln, &mut s.mean, &mut s.rstd, &s.x, w(Kind::Ln2W, l), w(Kind::Ln2B, l));
            linear::forward(be, simd, &mut s.fch, 4 * c, &s.ln, n, &lw.fc, Some(w(Kind::FcB, l)), false, 4 * c);
            gelu::forward(&mut s.fcg, &s.fch);
            linear::forward(be, simd, &mut s.x, c, &s.fcg, n, &lw.fc_proj, Some(w(Kind::FcProjB, l)), true, c);
        }
        // The last row of each sequence that got tokens, in batch order.
        let last: Vec<(usize, usize)> = (0..self.batch)
            .filter_map(|b| rows.iter().rposition(|r| r.0 == b).map(|i| (b, i)))
            .collect();
        let m = last.len();
        let mut gathered = std::mem::take(&mut s.qkv);
        gathered.resize(m * c, 0.0);
        for (j, &(_, i)) in last.iter().enumerate() {
            gathered[j * c..(j + 1) * c].copy_from_slice(&s.x[i * c..(i + 1) * c]);
        }
        s.ln.resize(m * c, 0.0);
        s.mean.resize(m, 0.0);
        s.rstd.resize(m, 0.0);
        layernorm::forward(&mut s.ln, &mut s.mean, &mut s.rstd, &gathered, w(Kind::LnfW, 0), w(Kind::LnfB, 0));
        s.qkv = gathered;
        s.head.resize(m * vp, 0.0);
        // Tied head: only the V real rows of wte are multiplied.
        linear::forward(be, simd, &mut s.head, vp, &s.ln, m, &self.head, None, false, v);
        for (j, &(b, _)) in last.iter().enumerate() {
            let dst = &mut self.logits[b * vp..(b + 1) * vp];
            dst[..v].copy_from_slice(&s.head[j * vp..j * vp + v]);
            // Padded ids can never win an argmax or a draw.
            dst[v..].fill(f32::NEG_INFINITY);
        }
    }
}

/// Cache geometry for one layer.
#[derive(Clone, Copy)]
struct Geometry {
    batch: usize,
    t_max: usize,
    nh: usize,
    hs: usize,
    l: usize,
}

impl Geometry {
    /// Offset of (sequence b, head h, position t) in a cache.
    fn at(&self, b: usize, h: usize, t: usize) -> usize {
        (((self.l * self.batch + b) * self.nh + h) * self.t_max + t) * self.hs
    }
}

/// Copies each new row's K and V (columns C.. and 2C.. of `qkv`) into the caches.
fn append_kv(k: &mut [f32], v: &mut [f32], qkv: &[f32], rows: &[(usize, usize, u32)], g: Geometry) {
    let c = g.nh * g.hs;
    for (i, &(b, pos, _)) in rows.iter().enumerate() {
        let row = &qkv[i * 3 * c..(i + 1) * 3 * c];
        for h in 0..g.nh {
            let at = g.at(b, h, pos);
            k[at..at + g.hs].copy_from_slice(&row[c + h * g.hs..c + (h + 1) * g.hs]);
            v[at..at + g.hs].copy_from_slice(&row[2 * c + h * g.hs..2 * c + (h + 1) * g.hs]);
        }
    }
}

/// `out[i, head h] = softmax(q·Kᵀ/√hs) · V` over positions `0..=pos` of row
/// i's sequence, one task per (row, head), with the one-pass ("online")
/// softmax of Milakov & Gimelshein 2018: a running maximum rescales the
/// running sum and output, so no score buffer is needed.
fn attend(out: &mut [f32], qkv: &[f32], k: &[f32], v: &[f32], rows: &[(usize, usize, u32)], g: Geometry) {
    let (hs, nh) = (g.hs, g.nh);
    let c = nh * hs;
    let scale = 1.0 / (hs as f32).sqrt();
    out.par_chunks_mut(hs).enumerate().for_each(|(task, o)| {
        let (i, h) = (task / nh, task % nh);
        let (b, pos, _) = rows[i];
        let q = &qkv[i * 3 * c + h * hs..i * 3 * c + (h + 1) * hs];
        let base = g.at(b, h, 0);
        o.fill(0.0);
        let (mut max, mut sum) = (f32::NEG_INFINITY, 0.0f32);
        for t in 0..=pos {
            let kt = &k[base + t * hs..base + (t + 1) * hs];
            let score = dot_lanes(q, kt) * scale;
            if score > max {
                let f = fast_exp(max - score);
                sum *= f;
                o.iter_mut().for_each(|x| *x *= f);
                max = score;
            }
            let e = fast_exp(score - max);
            sum += e;
            let vt = &v[base + t * hs..base + (t + 1) * hs];
            o.iter_mut().zip(vt).for_each(|(x, v)| *x += e * v);
        }
        let inv = 1.0 / sum;
        o.iter_mut().for_each(|x| *x *= inv);
    });
}
