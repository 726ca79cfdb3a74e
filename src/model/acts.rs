//! The activation layout for a batch of B sequences of T tokens: every
//! saved activation (and the backward pass's gradient scratch) at an offset
//! in one flat `Vec<f32>`, allocated once per (B, T).
//!
//! What is saved is exactly what backward needs (llm.c's list, minus the
//! attention probabilities, which backward recomputes from Q, K and the
//! saved log-sum-exp, and minus the attention/MLP projection outputs, which
//! are added straight into the residual stream).

use super::GptConfig;
use std::ops::Range;

/// Offsets of every activation for one (config, B, T). Per-layer buffers are
/// stacked `[L, ...]`; use [`ActLayout::layer`] to pick one layer.
#[derive(Debug, Clone, PartialEq)]
pub struct ActLayout {
    /// Batch size.
    pub b: usize,
    /// Sequence length.
    pub t: usize,
    /// `wte[tok] + wpe[pos]`: `[BT, C]`.
    pub encoded: Range<usize>,
    /// `ln_1` output `[L, BT, C]`.
    pub ln1: Range<usize>,
    /// `ln_1` per-row mean `[L, BT]`.
    pub ln1_mean: Range<usize>,
    /// `ln_1` per-row 1/std `[L, BT]`.
    pub ln1_rstd: Range<usize>,
    /// `c_attn` output (q, k, v concatenated per row) `[L, BT, 3C]`.
    pub qkv: Range<usize>,
    /// Attention output before `c_proj` `[L, BT, C]`.
    pub atty: Range<usize>,
    /// Per-row log-sum-exp of the attention scores `[L, B, NH, T]`.
    pub att_lse: Range<usize>,
    /// Residual stream after attention `[L, BT, C]`.
    pub residual2: Range<usize>,
    /// `ln_2` output `[L, BT, C]`.
    pub ln2: Range<usize>,
    /// `ln_2` per-row mean `[L, BT]`.
    pub ln2_mean: Range<usize>,
    /// `ln_2` per-row 1/std `[L, BT]`.
    pub ln2_rstd: Range<usize>,
    /// `c_fc` output, before GELU `[L, BT, 4C]`.
    pub fch: Range<usize>,
    /// GELU output `[L, BT, 4C]`.
    pub fch_gelu: Range<usize>,
    /// Residual stream after the MLP `[L, BT, C]`.
    pub residual3: Range<usize>,
    /// `ln_f` output `[BT, C]` (the "last hidden state").
    pub lnf: Range<usize>,
    /// `ln_f` per-row mean `[BT]`.
    pub lnf_mean: Range<usize>,
    /// `ln_f` per-row 1/std `[BT]`.
    pub lnf_rstd: Range<usize>,
    /// LM-head logits `[BT, Vp]`; overwritten in place by d(loss)/d(logits) in backward.
    pub logits: Range<usize>,
    /// Per-position cross-entropy (0 where the mask is 0) `[BT]`.
    pub losses: Range<usize>,
    /// Per-position log-sum-exp of the logits (saved for the loss backward) `[BT]`.
    pub logit_lse: Range<usize>,
    /// Backward scratch: gradient of the residual stream `[BT, C]`.
    pub dresidual: Range<usize>,
    /// Backward scratch: gradient of a layernorm output / attention output `[BT, C]`.
    pub dsmall: Range<usize>,
    /// Backward scratch: gradient of `c_fc`/GELU output or of `qkv` `[BT, 4C]`.
    pub dbig: Range<usize>,
    /// Total f32 count.
    pub total: usize,
}

impl ActLayout {
    /// The layout for `cfg` at batch `b` × sequence `t`.
    pub fn new(cfg: &GptConfig, b: usize, t: usize) -> Self {
        let (l, c, nh, vp) = (cfg.n_layer, cfg.n_embd, cfg.n_head, cfg.padded_vocab());
        let bt = b * t;
        let mut next = 0usize;
        let mut take = |n: usize| {
            let r = next..next + n;
            next += n;
            r
        };
        let mut a = ActLayout {
            b,
            t,
            encoded: take(bt * c),
            ln1: take(l * bt * c),
            ln1_mean: take(l * bt),
            ln1_rstd: take(l * bt),
            qkv: take(l * bt * 3 * c),
            atty: take(l * bt * c),
            att_lse: take(l * b * nh * t),
            residual2: take(l * bt * c),
            ln2: take(l * bt * c),
            ln2_mean: take(l * bt),
            ln2_rstd: take(l * bt),
            fch: take(l * bt * 4 * c),
            fch_gelu: take(l * bt * 4 * c),
            residual3: take(l * bt * c),
            lnf: take(bt * c),
            lnf_mean: take(bt),
            lnf_rstd: take(bt),
            logits: take(bt * vp),
            losses: take(bt),
            logit_lse: take(bt),
            dresidual: take(bt * c),
            dsmall: take(bt * c),
            dbig: take(bt * 4 * c),
            total: 0,
        };
        a.total = next;
        a
    }

    /// Layer `l`'s slice of a stacked `[L, ...]` range.
    pub fn layer(r: &Range<usize>, n_layer: usize, l: usize) -> Range<usize> {
        let per = r.len() / n_layer;
        r.start + l * per..r.start + (l + 1) * per
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_disjoint_and_cover_the_buffer() {
        let cfg = crate::model::tiny_config();
        let a = ActLayout::new(&cfg, 3, 5);
        assert_eq!(a.logits.len(), 15 * 128);
        assert_eq!(a.att_lse.len(), 2 * 3 * 2 * 5);
        assert_eq!(ActLayout::layer(&a.qkv, 2, 1), a.qkv.start + 15 * 48..a.qkv.end);
        assert_eq!(a.dbig.end, a.total);
    }
}
