//! Typed launchers for the kernels in `kernels/*.cu`: one function per
//! kernel, taking device addresses (`u64`, from [`super::Buf::at`]) and
//! sizes, with the launch configuration the kernel's comment states.

// A launcher takes what its kernel takes: pointers and sizes, often more than seven.
#![allow(clippy::too_many_arguments)]

use super::CudaError;
use super::device::{Arg, Gpu};
use Arg::{F, I, L, P};

type R = Result<(), CudaError>;

fn blocks(n: usize, per: usize) -> u32 {
    n.div_ceil(per) as u32
}

fn int(x: usize) -> Arg {
    I(x as i32)
}

/// Rows per warp in `layernorm_bwd` (`LN_ROWS` in train.cu).
pub const LN_ROWS: usize = 32;
/// Rows per chunk in `col_partial` (`COL_ROWS` in train.cu).
pub const COL_ROWS: usize = 64;
/// Blocks of the grad-norm's first pass (a fixed grid fixes the order).
pub const NORM_BLOCKS: usize = 512;

/// Rows of LayerNorm-backward partials for `n` rows (each `2C` wide).
pub fn ln_part_rows(n: usize) -> usize {
    n.div_ceil(LN_ROWS)
}

/// `out[bt] = wte[inp[bt]] + wpe[bt % t]`.
pub fn encoder_fwd(g: &Gpu, out: u64, inp: u64, wte: u64, wpe: u64, bt: usize, t: usize, c: usize) -> R {
    g.launch(
        "encoder_fwd",
        (blocks(bt * c, 256), 1, 1),
        256,
        0,
        &[P(out), P(inp), P(wte), P(wpe), int(bt), int(t), int(c)],
    )
}

/// `dwpe += Σ_b dout[b]`.
pub fn encoder_bwd_wpe(g: &Gpu, dwpe: u64, dout: u64, b: usize, t: usize, c: usize) -> R {
    g.launch(
        "encoder_bwd_wpe",
        (blocks(t * c, 256), 1, 1),
        256,
        0,
        &[P(dwpe), P(dout), int(b), int(t), int(c)],
    )
}

/// `dwte[tokens[g]] += Σ dout[order[starts[g]..starts[g+1]]]` for each of `groups` tokens.
pub fn encoder_bwd_wte(g: &Gpu, dwte: u64, dout: u64, order: u64, starts: u64, tokens: u64, groups: usize, c: usize) -> R {
    let threads = c.min(256).div_ceil(32) * 32;
    g.launch(
        "encoder_bwd_wte",
        (groups as u32, 1, 1),
        threads as u32,
        0,
        &[P(dwte), P(dout), P(order), P(starts), P(tokens), int(c)],
    )
}

/// LayerNorm forward over `n` rows of `c`.
pub fn layernorm_fwd(g: &Gpu, out: u64, mean: u64, rstd: u64, inp: u64, w: u64, b: u64, n: usize, c: usize) -> R {
    g.launch(
        "layernorm_fwd",
        (blocks(n, 8), 1, 1),
        256,
        0,
        &[P(out), P(mean), P(rstd), P(inp), P(w), P(b), int(n), int(c)],
    )
}

/// LayerNorm backward: `dinp +=`, and `dw += `, `db +=` through `part`
/// (at least [`ln_part_rows`]`(n) · 2c` floats).
pub fn layernorm_bwd(
    g: &Gpu,
    dinp: u64,
    dw: u64,
    db: u64,
    part: u64,
    dout: u64,
    inp: u64,
    w: u64,
    mean: u64,
    rstd: u64,
    n: usize,
    c: usize,
) -> R {
    let warps = ln_part_rows(n);
    g.launch(
        "layernorm_bwd",
        (blocks(warps, 8), 1, 1),
        256,
        0,
        &[P(dinp), P(part), P(dout), P(inp), P(w), P(mean), P(rstd), int(n), int(c)],
    )?;
    reduce_cols_add(g, dw, part, warps, c, 2 * c)?;
    reduce_cols_add(g, db, part + (c * 4) as u64, warps, c, 2 * c)
}

/// `dst[c] += Σ_r part[r·ld + c]` for `c < cols`.
pub fn reduce_cols_add(g: &Gpu, dst: u64, part: u64, rows: usize, cols: usize, ld: usize) -> R {
    g.launch(
        "reduce_cols_add",
        (blocks(cols, 256), 1, 1),
        256,
        0,
        &[P(dst), P(part), int(rows), int(cols), int(ld)],
    )
}

/// `dbias += Σ_rows x[r, ..cols]` (row stride `ld`), through `part`
/// (at least `ceil(n / COL_ROWS) · cols` floats).
pub fn bias_grad(g: &Gpu, dbias: u64, part: u64, x: u64, n: usize, cols: usize, ld: usize) -> R {
    let chunks = n.div_ceil(COL_ROWS);
    g.launch(
        "col_partial",
        (blocks(cols, 256), chunks as u32, 1),
        256,
        0,
        &[P(part), P(x), int(n), int(cols), int(ld)],
    )?;
    reduce_cols_add(g, dbias, part, chunks, cols, cols)
}

/// GELU forward over `n` elements.
pub fn gelu_fwd(g: &Gpu, out: u64, inp: u64, n: usize) -> R {
    g.launch("gelu_fwd", (blocks(n, 256), 1, 1), 256, 0, &[P(out), P(inp), L(n as i64)])
}

/// `d *= GELU'(inp)` over `n` elements.
pub fn gelu_bwd(g: &Gpu, d: u64, inp: u64, n: usize) -> R {
    g.launch("gelu_bwd", (blocks(n, 256), 1, 1), 256, 0, &[P(d), P(inp), L(n as i64)])
}

/// `out[r, ..oc] = res[r] + bias` (either may be 0 for none), row stride `ldo`.
pub fn seed_bias_residual(g: &Gpu, out: u64, ldo: usize, bias: u64, res: u64, n: usize, oc: usize) -> R {
    g.launch(
        "seed_bias_residual",
        (blocks(n * oc, 256), 1, 1),
        256,
        0,
        &[P(out), int(ldo), P(bias), P(res), int(n), int(oc)],
    )
}

/// `out[r, ..cols] = bf16(inp[r, ..cols])`, both with row stride `ld`.
pub fn cast_bf16(g: &Gpu, out: u64, inp: u64, rows: usize, cols: usize, ld: usize) -> R {
    g.launch(
        "cast_bf16",
        (blocks(rows * cols, 256), 1, 1),
        256,
        0,
        &[P(out), P(inp), L(rows as i64), int(cols), int(ld)],
    )
}

/// Cross-entropy forward: per-row `losses` and `lse` (mask may be 0).
pub fn ce_fwd(g: &Gpu, losses: u64, lse: u64, logits: u64, targets: u64, mask: u64, n: usize, v: usize, vp: usize) -> R {
    g.launch(
        "ce_fwd",
        (n as u32, 1, 1),
        1024,
        0,
        &[P(losses), P(lse), P(logits), P(targets), P(mask), int(n), int(v), int(vp)],
    )
}

/// Cross-entropy backward `g·(softmax − onehot)` into `d16` (bf16) and/or `d32` (either may be 0).
pub fn ce_bwd(gpu: &Gpu, d16: u64, d32: u64, logits: u64, lse: u64, targets: u64, mask: u64, g: f32, n: usize, v: usize, vp: usize) -> R {
    gpu.launch(
        "ce_bwd",
        (n as u32, 1, 1),
        1024,
        0,
        &[
            P(d16),
            P(d32),
            P(logits),
            P(lse),
            P(targets),
            P(mask),
            F(g),
            int(n),
            int(v),
            int(vp),
        ],
    )
}

/// `out[0] = √(Σ x²)` over `n` elements, through `part` ([`NORM_BLOCKS`] floats).
pub fn norm(g: &Gpu, out: u64, part: u64, x: u64, n: usize) -> R {
    g.launch("sumsq_partial", (NORM_BLOCKS as u32, 1, 1), 512, 0, &[P(part), P(x), L(n as i64)])?;
    g.launch("sum_final", (1, 1, 1), 1024, 0, &[P(out), P(part), int(NORM_BLOCKS), I(1), F(1.0)])
}

/// `out[0] = scale · Σ x[0..n]`.
pub fn sum_scaled(g: &Gpu, out: u64, x: u64, n: usize, scale: f32) -> R {
    g.launch("sum_final", (1, 1, 1), 1024, 0, &[P(out), P(x), int(n), I(0), F(scale)])
}

/// AdamW hyper-parameters for one step, as the kernel takes them.
#[derive(Debug, Clone, Copy)]
pub struct AdamStep {
    /// First-moment decay.
    pub beta1: f32,
    /// Second-moment decay.
    pub beta2: f32,
    /// Denominator epsilon.
    pub eps: f32,
    /// `lr / (1 − β1ᵗ)`.
    pub step_size: f32,
    /// `1 / √(1 − β2ᵗ)`.
    pub inv_sqrt_bc2: f32,
    /// Gradient multiplier (the clip factor).
    pub grad_scale: f32,
}

/// One AdamW step over `n` parameters; `decay` is `1 − lr·wd` or 1; `p16` (0 for none) gets the bf16 copy.
pub fn adamw(g: &Gpu, p: u64, p16: u64, grads: u64, m: u64, v: u64, n: usize, decay: f32, s: &AdamStep) -> R {
    g.launch(
        "adamw",
        (blocks(n, 256), 1, 1),
        256,
        0,
        &[
            P(p),
            P(p16),
            P(grads),
            P(m),
            P(v),
            L(n as i64),
            F(s.beta1),
            F(s.beta2),
            F(s.eps),
            F(decay),
            F(s.step_size),
            F(s.inv_sqrt_bc2),
            F(s.grad_scale),
        ],
    )
}

/// Causal flash attention forward: `out` `[B, T, C]` and `lse` `[B, NH, T]` from `qkv` `[B, T, 3C]`.
pub fn attn_fwd(g: &Gpu, out: u64, lse: u64, qkv: u64, b: usize, t: usize, nh: usize, hs: usize) -> R {
    let (grid, block, shared) = attn_launch(b, t, nh, hs);
    g.launch(
        "flash_attn_fwd",
        grid,
        block,
        shared,
        &[P(out), P(lse), P(qkv), int(b), int(t), int(nh), int(hs)],
    )
}

/// Flash attention backward: `dqkv` `[B, T, 3C]` (overwritten) from `dout` `[B, T, C]`.
pub fn attn_bwd(g: &Gpu, dqkv: u64, dout: u64, qkv: u64, out: u64, lse: u64, b: usize, t: usize, nh: usize, hs: usize) -> R {
    let (grid, block, shared) = attn_launch(b, t, nh, hs);
    let args = [P(dqkv), P(dout), P(qkv), P(out), P(lse), int(b), int(t), int(nh), int(hs)];
    g.launch("flash_attn_bwd", grid, block, shared, &args)?;
    g.launch("flash_attn_bwd_dq", grid, block, shared, &args)
}

/// Grid, block and dynamic shared bytes of the flash-attention kernels:
/// one block of 256 threads per 64-row tile and (batch, head); their
/// shared memory is static.
fn attn_launch(b: usize, t: usize, nh: usize, _hs: usize) -> ((u32, u32, u32), u32, u32) {
    ((blocks(t, 64), (b * nh) as u32, 1), 256, 0)
}

/// KV-cache decode attention: `out` `[B, NH, HS]` for one query per row
/// against `lens[b]` cached positions of `kcache`/`vcache` `[B, NH, TMAX, HS]`.
pub fn attn_decode(g: &Gpu, out: u64, q: u64, kcache: u64, vcache: u64, lens: u64, b: usize, nh: usize, hs: usize, tmax: usize) -> R {
    g.launch(
        "attn_decode",
        ((b * nh) as u32, 1, 1),
        256,
        0,
        &[P(out), P(q), P(kcache), P(vcache), P(lens), int(b), int(nh), int(hs), int(tmax)],
    )
}
