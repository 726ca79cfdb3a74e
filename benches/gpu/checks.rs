//! The GPU checks, shared by `tests/cuda_gpu.rs` (`cargo test --features
//! cuda -- --ignored`) and `benches/gpu.rs` (the prepared device script):
//! every kernel against the CPU backend on fresh random inputs with the
//! outputs poisoned (NaN) before each run, full-model gradients against the
//! CPU model, a 20-step loss trajectory against the CPU, and resume
//! bit-exactness on the GPU.
//!
//! Each check returns its measured error; [`run_all`] runs them all,
//! prints one line per check and returns the failures.

#![allow(dead_code)]

use kiln::backend::Precision;
use kiln::backend::cuda::gpt::TokenGroups;
use kiln::backend::cuda::kernels::{self, AdamStep};
use kiln::backend::cuda::linear::{self, Operands};
use kiln::backend::cuda::{Buf, CudaAdamW, CudaGpt, Gpu};
use kiln::model::ops::{attention, encoder, gelu, layernorm, loss};
use kiln::model::rng::Rng;
use kiln::model::{Gpt, GptConfig};
use kiln::train::{AdamW, AdamWConfig};

/// f32 paths: relative error bound (the 1e-5).
pub const TOL_F32: f64 = 1e-5;
/// bf16 operand paths.
pub const TOL_BF16: f64 = 1e-2;

type Res = Result<f64, String>;

/// Parameters, first and second moments, and the AdamW step of a GPU run.
type Snapshot = (Vec<f32>, Vec<f32>, Vec<f32>, u64);

fn e<E: std::fmt::Display>(x: E) -> String {
    x.to_string()
}

/// ‖got − want‖ / ‖want‖ in f64; infinite when `got` holds a NaN (an unwritten element).
pub fn rel(got: &[f32], want: &[f32]) -> f64 {
    assert_eq!(got.len(), want.len());
    let (mut d, mut n) = (0f64, 0f64);
    for (&a, &b) in got.iter().zip(want) {
        if !a.is_finite() {
            return f64::INFINITY;
        }
        d += (a as f64 - b as f64).powi(2);
        n += (b as f64).powi(2);
    }
    if n == 0.0 { d.sqrt() } else { (d / n).sqrt() }
}

fn randn(n: usize, rng: &mut Rng, scale: f64) -> Vec<f32> {
    (0..n).map(|_| (rng.normal() * scale) as f32).collect()
}

fn up(g: &Gpu, x: &[f32]) -> Result<Buf<f32>, String> {
    let b = g.zeros::<f32>(x.len()).map_err(e)?;
    g.upload(b.ptr(), x).map_err(e)?;
    Ok(b)
}

fn up_i32(g: &Gpu, x: &[u32]) -> Result<Buf<i32>, String> {
    let v: Vec<i32> = x.iter().map(|&i| i as i32).collect();
    let b = g.zeros::<i32>(v.len()).map_err(e)?;
    g.upload(b.ptr(), &v).map_err(e)?;
    Ok(b)
}

/// A buffer of `n` NaNs (every byte 0xFF).
fn poisoned(g: &Gpu, n: usize) -> Result<Buf<f32>, String> {
    let b = g.zeros::<f32>(n).map_err(e)?;
    g.memset(b.ptr(), 0xFF, n * 4).map_err(e)?;
    Ok(b)
}

fn down(g: &Gpu, b: &Buf<f32>) -> Result<Vec<f32>, String> {
    let mut v = vec![0.0; b.len()];
    g.download(&mut v, b.ptr()).map_err(e)?;
    Ok(v)
}

fn worst(errs: &[(&str, f64)]) -> (String, f64) {
    let mut w = ("".to_string(), 0.0);
    for (name, x) in errs {
        if x.is_nan() || *x > w.1 {
            w = (name.to_string(), *x);
        }
    }
    w
}

fn report(errs: &[(&str, f64)]) -> Res {
    let parts: Vec<String> = errs.iter().map(|(n, x)| format!("{n} {x:.1e}")).collect();
    let (_, w) = worst(errs);
    eprintln!("      {}", parts.join(", "));
    Ok(w)
}

/// Embedding forward and backward.
pub fn check_encoder(g: &Gpu, seed: u64) -> Res {
    let mut rng = Rng::new(seed);
    let (b, t, c, vp) = (3usize, 37usize, 96usize, 128usize);
    let inp: Vec<u32> = (0..b * t)
        .map(|i| if i % 5 == 0 { 7 } else { (rng.next_u64() % vp as u64) as u32 })
        .collect();
    let (wte, wpe) = (randn(vp * c, &mut rng, 1.0), randn(t * c, &mut rng, 1.0));
    let mut want = vec![0.0; b * t * c];
    encoder::forward(&mut want, &inp, &wte, &wpe, t, c);
    let (dwte, dwpe, din) = (up(g, &wte)?, up(g, &wpe)?, up_i32(g, &inp)?);
    let out = poisoned(g, b * t * c)?;
    kernels::encoder_fwd(g, out.ptr(), din.ptr(), dwte.ptr(), dwpe.ptr(), b * t, t, c).map_err(e)?;
    let fwd = rel(&down(g, &out)?, &want);
    // Backward accumulates into existing gradients.
    let dout = randn(b * t * c, &mut rng, 1.0);
    let (mut gte, mut gpe) = (randn(vp * c, &mut rng, 1.0), randn(t * c, &mut rng, 1.0));
    let (gte_d, gpe_d, dout_d) = (up(g, &gte)?, up(g, &gpe)?, up(g, &dout)?);
    encoder::backward(&mut gte, &mut gpe, &dout, &inp, t, c);
    let ids: Vec<i32> = inp.iter().map(|&i| i as i32).collect();
    let TokenGroups {
        order,
        starts,
        tokens: toks,
    } = TokenGroups::of(&ids);
    let ord = g.zeros::<i32>(order.len()).map_err(e)?;
    let st = g.zeros::<i32>(starts.len()).map_err(e)?;
    let tk = g.zeros::<i32>(toks.len()).map_err(e)?;
    g.upload(ord.ptr(), &order).map_err(e)?;
    g.upload(st.ptr(), &starts).map_err(e)?;
    g.upload(tk.ptr(), &toks).map_err(e)?;
    kernels::encoder_bwd_wpe(g, gpe_d.ptr(), dout_d.ptr(), b, t, c).map_err(e)?;
    kernels::encoder_bwd_wte(g, gte_d.ptr(), dout_d.ptr(), ord.ptr(), st.ptr(), tk.ptr(), toks.len(), c).map_err(e)?;
    report(&[
        ("fwd", fwd),
        ("dwte", rel(&down(g, &gte_d)?, &gte)),
        ("dwpe", rel(&down(g, &gpe_d)?, &gpe)),
    ])
}

/// LayerNorm forward and backward (dinp, dw, db accumulate).
pub fn check_layernorm(g: &Gpu, seed: u64) -> Res {
    let mut rng = Rng::new(seed);
    let (n, c) = (333usize, 768usize);
    let x: Vec<f32> = randn(n * c, &mut rng, 2.0).iter().map(|v| v + 0.5).collect();
    let (w, bias) = (randn(c, &mut rng, 1.0), randn(c, &mut rng, 1.0));
    let (mut out, mut mean, mut rstd) = (vec![0.0; n * c], vec![0.0; n], vec![0.0; n]);
    layernorm::forward(&mut out, &mut mean, &mut rstd, &x, &w, &bias);
    let (xd, wd, bd) = (up(g, &x)?, up(g, &w)?, up(g, &bias)?);
    let (od, md, rd) = (poisoned(g, n * c)?, poisoned(g, n)?, poisoned(g, n)?);
    kernels::layernorm_fwd(g, od.ptr(), md.ptr(), rd.ptr(), xd.ptr(), wd.ptr(), bd.ptr(), n, c).map_err(e)?;
    let (fo, fm, fr) = (rel(&down(g, &od)?, &out), rel(&down(g, &md)?, &mean), rel(&down(g, &rd)?, &rstd));
    let dout = randn(n * c, &mut rng, 1.0);
    let (mut dinp, mut dw, mut db) = (randn(n * c, &mut rng, 1.0), randn(c, &mut rng, 1.0), randn(c, &mut rng, 1.0));
    let (dinp_d, dw_d, db_d, dout_d) = (up(g, &dinp)?, up(g, &dw)?, up(g, &db)?, up(g, &dout)?);
    let mut scratch = vec![0.0; layernorm::scratch_len(n, c)];
    layernorm::backward(&mut dinp, &mut dw, &mut db, &dout, &x, &w, &mean, &rstd, &mut scratch);
    let part = poisoned(g, kernels::ln_part_rows(n) * 2 * c)?;
    kernels::layernorm_bwd(
        g,
        dinp_d.ptr(),
        dw_d.ptr(),
        db_d.ptr(),
        part.ptr(),
        dout_d.ptr(),
        xd.ptr(),
        wd.ptr(),
        md.ptr(),
        rd.ptr(),
        n,
        c,
    )
    .map_err(e)?;
    report(&[
        ("out", fo),
        ("mean", fm),
        ("rstd", fr),
        ("dinp", rel(&down(g, &dinp_d)?, &dinp)),
        ("dw", rel(&down(g, &dw_d)?, &dw)),
        ("db", rel(&down(g, &db_d)?, &db)),
    ])
}

/// GELU forward and backward, and the bias-gradient reduction.
pub fn check_gelu_bias(g: &Gpu, seed: u64) -> Res {
    let mut rng = Rng::new(seed);
    let n = 100_003usize;
    let x = randn(n, &mut rng, 3.0);
    let mut out = vec![0.0; n];
    gelu::forward(&mut out, &x);
    let xd = up(g, &x)?;
    let od = poisoned(g, n)?;
    kernels::gelu_fwd(g, od.ptr(), xd.ptr(), n).map_err(e)?;
    let fwd = rel(&down(g, &od)?, &out);
    let mut d = randn(n, &mut rng, 1.0);
    let dd = up(g, &d)?;
    gelu::backward_inplace(&mut d, &x);
    kernels::gelu_bwd(g, dd.ptr(), xd.ptr(), n).map_err(e)?;
    let bwd = rel(&down(g, &dd)?, &d);
    // Bias gradient: column sums of a [rows, cols] block inside stride ld.
    let (rows, cols, ld) = (1000usize, 300usize, 320usize);
    let m = randn(rows * ld, &mut rng, 1.0);
    let mut db = randn(cols, &mut rng, 1.0);
    let dbd = up(g, &db)?;
    for r in 0..rows {
        for c in 0..cols {
            db[c] += m[r * ld + c];
        }
    }
    let (md, part) = (up(g, &m)?, poisoned(g, rows.div_ceil(kernels::COL_ROWS) * cols)?);
    kernels::bias_grad(g, dbd.ptr(), part.ptr(), md.ptr(), rows, cols, ld).map_err(e)?;
    report(&[("gelu fwd", fwd), ("gelu bwd", bwd), ("bias grad", rel(&down(g, &dbd)?, &db))])
}

/// Softmax + cross-entropy forward and backward with a mask, f32 and bf16 gradients.
pub fn check_loss(g: &Gpu, seed: u64) -> Res {
    let mut rng = Rng::new(seed);
    let (n, v, vp) = (77usize, 50257usize, 50304usize);
    let logits = randn(n * vp, &mut rng, 3.0);
    let targets: Vec<u32> = (0..n).map(|_| (rng.next_u64() % v as u64) as u32).collect();
    let mask: Vec<u8> = (0..n).map(|i| (i % 4 != 1) as u8).collect();
    let (mut losses, mut lse) = (vec![0.0; n], vec![0.0; n]);
    loss::forward(&mut losses, &mut lse, &logits, &targets, Some(&mask), v, vp);
    let ld = up(g, &logits)?;
    let td = up_i32(g, &targets)?;
    let mk = g.zeros::<u8>(n).map_err(e)?;
    g.upload(mk.ptr(), &mask).map_err(e)?;
    let (lo, ls) = (poisoned(g, n)?, poisoned(g, n)?);
    kernels::ce_fwd(g, lo.ptr(), ls.ptr(), ld.ptr(), td.ptr(), mk.ptr(), n, v, vp).map_err(e)?;
    let (fl, fs) = (rel(&down(g, &lo)?, &losses), rel(&down(g, &ls)?, &lse));
    let count = loss::counted(n, Some(&mask));
    let scale = 0.5f32;
    let mut dl = logits.clone();
    loss::backward(&mut dl, &lse, &targets, Some(&mask), v, vp, scale);
    let d32 = poisoned(g, n * vp)?;
    let d16 = g.zeros::<u16>(n * vp).map_err(e)?;
    g.memset(d16.ptr(), 0xFF, n * vp * 2).map_err(e)?;
    kernels::ce_bwd(
        g,
        d16.ptr(),
        d32.ptr(),
        ld.ptr(),
        ls.ptr(),
        td.ptr(),
        mk.ptr(),
        scale / count as f32,
        n,
        v,
        vp,
    )
    .map_err(e)?;
    let mut h16 = vec![0u16; n * vp];
    g.download(&mut h16, d16.ptr()).map_err(e)?;
    let f16: Vec<f32> = h16.iter().map(|&b| f32::from_bits((b as u32) << 16)).collect();
    let b16 = rel(&f16, &dl);
    eprintln!("      dlogits bf16 {b16:.1e} (bound {TOL_BF16:.0e})");
    if b16.is_nan() || b16 >= TOL_BF16 {
        return Err(format!("bf16 dlogits error {b16:.2e}"));
    }
    report(&[("losses", fl), ("lse", fs), ("dlogits", rel(&down(g, &d32)?, &dl))])
}

/// Flash attention forward and backward against the CPU attention.
pub fn check_attention(g: &Gpu, seed: u64, b: usize, t: usize, nh: usize, hs: usize) -> Res {
    let mut rng = Rng::new(seed);
    let c = nh * hs;
    let qkv = randn(b * t * 3 * c, &mut rng, 1.0);
    let (mut out, mut lse) = (vec![0.0; b * t * c], vec![0.0; b * nh * t]);
    let mut scratch = vec![0.0; rayon::current_num_threads() * attention::scratch_per_worker(t)];
    attention::forward(&mut out, &mut lse, &qkv, b, t, nh, &mut scratch, false);
    let qd = up(g, &qkv)?;
    let (od, ld) = (poisoned(g, b * t * c)?, poisoned(g, b * nh * t)?);
    kernels::attn_fwd(g, od.ptr(), ld.ptr(), qd.ptr(), b, t, nh, hs).map_err(e)?;
    let (fo, fl) = (rel(&down(g, &od)?, &out), rel(&down(g, &ld)?, &lse));
    let dout = randn(b * t * c, &mut rng, 1.0);
    let mut dqkv = vec![0.0; b * t * 3 * c];
    attention::backward(&mut dqkv, &dout, &qkv, &out, &lse, b, t, nh, &mut scratch, false);
    let dd = up(g, &dout)?;
    let dq = poisoned(g, b * t * 3 * c)?;
    kernels::attn_bwd(g, dq.ptr(), dd.ptr(), qd.ptr(), od.ptr(), ld.ptr(), b, t, nh, hs).map_err(e)?;
    report(&[("out", fo), ("lse", fl), ("dqkv", rel(&down(g, &dq)?, &dqkv))])
}

/// KV-cache decode attention against a plain f64 softmax.
pub fn check_decode(g: &Gpu, seed: u64) -> Res {
    let mut rng = Rng::new(seed);
    let (b, nh, hs, tmax) = (3usize, 4usize, 64usize, 300usize);
    let lens: Vec<u32> = vec![1, 157, 300];
    let q = randn(b * nh * hs, &mut rng, 1.0);
    let k = randn(b * nh * tmax * hs, &mut rng, 1.0);
    let v = randn(b * nh * tmax * hs, &mut rng, 1.0);
    let mut want = vec![0.0f32; b * nh * hs];
    let scale = 1.0 / (hs as f64).sqrt();
    for bi in 0..b {
        for h in 0..nh {
            let base = (bi * nh + h) * tmax * hs;
            let qv = &q[(bi * nh + h) * hs..][..hs];
            let n = lens[bi] as usize;
            let s: Vec<f64> = (0..n)
                .map(|j| (0..hs).map(|d| qv[d] as f64 * k[base + j * hs + d] as f64).sum::<f64>() * scale)
                .collect();
            let mx = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let z: f64 = s.iter().map(|x| (x - mx).exp()).sum();
            for d in 0..hs {
                want[(bi * nh + h) * hs + d] = (0..n).map(|j| (s[j] - mx).exp() / z * v[base + j * hs + d] as f64).sum::<f64>() as f32;
            }
        }
    }
    let (qd, kd, vd, ln) = (up(g, &q)?, up(g, &k)?, up(g, &v)?, up_i32(g, &lens)?);
    let od = poisoned(g, b * nh * hs)?;
    kernels::attn_decode(g, od.ptr(), qd.ptr(), kd.ptr(), vd.ptr(), ln.ptr(), b, nh, hs, tmax).map_err(e)?;
    report(&[("decode", rel(&down(g, &od)?, &want))])
}

/// Three fused AdamW steps against the CPU optimizer (with decay, clip scale and the bf16 copy).
pub fn check_adamw(g: &Gpu, seed: u64) -> Res {
    let mut rng = Rng::new(seed);
    let n = 70_001usize;
    let cfg = AdamWConfig::default();
    let mut p = randn(n, &mut rng, 1.0);
    let pd = up(g, &p)?;
    let p16 = g.zeros::<u16>(n).map_err(e)?;
    let (md, vd) = (g.zeros::<f32>(n).map_err(e)?, g.zeros::<f32>(n).map_err(e)?);
    let mut opt = AdamW::new(cfg, n, std::iter::once(0..n / 2));
    for step in 1..=3u64 {
        let grads = randn(n, &mut rng, 0.1);
        let gd = up(g, &grads)?;
        let (lr, clip) = (1e-3f32 * step as f32, 0.7f32);
        opt.update(&mut p, &grads, lr, clip);
        let (step_size, inv_sqrt_bc2) = cfg.bias_corrected(step, lr);
        let s = AdamStep {
            beta1: cfg.beta1,
            beta2: cfg.beta2,
            eps: cfg.eps,
            step_size,
            inv_sqrt_bc2,
            grad_scale: clip,
        };
        let half = n / 2;
        kernels::adamw(
            g,
            pd.ptr(),
            p16.ptr(),
            gd.ptr(),
            md.ptr(),
            vd.ptr(),
            half,
            1.0 - lr * cfg.weight_decay,
            &s,
        )
        .map_err(e)?;
        kernels::adamw(
            g,
            pd.at(half),
            p16.at(half),
            gd.at(half),
            md.at(half),
            vd.at(half),
            n - half,
            1.0,
            &s,
        )
        .map_err(e)?;
    }
    let got = down(g, &pd)?;
    let mut h16 = vec![0u16; n];
    g.download(&mut h16, p16.ptr()).map_err(e)?;
    let f16: Vec<f32> = h16.iter().map(|&b| f32::from_bits((b as u32) << 16)).collect();
    let copy = rel(&f16, &got);
    eprintln!("      bf16 weight copy vs params {copy:.1e} (bound {TOL_BF16:.0e})");
    if copy.is_nan() || copy >= TOL_BF16 {
        return Err(format!("bf16 weight copy error {copy:.2e}"));
    }
    report(&[
        ("params", rel(&got, &p)),
        ("m", rel(&down(g, &md)?, &opt.m)),
        ("v", rel(&down(g, &vd)?, &opt.v)),
    ])
}

/// Linear forward and both backward products against f64 on the CPU, for f32 and bf16 operands.
pub fn check_linear(g: &Gpu, seed: u64, ops: Operands) -> Res {
    let mut rng = Rng::new(seed);
    let (n, c, oc) = (97usize, 128usize, 200usize);
    let x = randn(n * c, &mut rng, 1.0);
    let w = randn(oc * c, &mut rng, 0.1);
    let bias = randn(oc, &mut rng, 1.0);
    let res = randn(n * oc, &mut rng, 1.0);
    let dout = randn(n * oc, &mut rng, 1.0);
    let mut out = vec![0.0f32; n * oc];
    let mut dinp = vec![0.0f32; n * c];
    let mut dw = vec![0.0f32; oc * c];
    for r in 0..n {
        for o in 0..oc {
            let s: f64 = (0..c).map(|k| x[r * c + k] as f64 * w[o * c + k] as f64).sum();
            out[r * oc + o] = (s + bias[o] as f64 + res[r * oc + o] as f64) as f32;
        }
        for k in 0..c {
            dinp[r * c + k] = (0..oc).map(|o| dout[r * oc + o] as f64 * w[o * c + k] as f64).sum::<f64>() as f32;
        }
    }
    for o in 0..oc {
        for k in 0..c {
            dw[o * c + k] = (0..n).map(|r| dout[r * oc + o] as f64 * x[r * c + k] as f64).sum::<f64>() as f32;
        }
    }
    // Operands in their device type.
    let keep: Vec<Buf<f32>> = vec![up(g, &x)?, up(g, &w)?, up(g, &dout)?];
    let mut keep16: Vec<Buf<u16>> = vec![];
    let ptrs: Vec<u64> = match ops {
        Operands::F32 => keep.iter().map(|b| b.ptr()).collect(),
        Operands::Bf16 => {
            for (b, len) in keep.iter().zip([n * c, oc * c, n * oc]) {
                let d = g.zeros::<u16>(len).map_err(e)?;
                kernels::cast_bf16(g, d.ptr(), b.ptr(), len, 1, 1).map_err(e)?;
                keep16.push(d);
            }
            keep16.iter().map(|b| b.ptr()).collect()
        }
    };
    let (bd, rd) = (up(g, &bias)?, up(g, &res)?);
    let od = poisoned(g, n * oc)?;
    linear::forward(g, ops, od.ptr(), oc, ptrs[0], ptrs[1], bd.ptr(), rd.ptr(), n, c, oc).map_err(e)?;
    let di = poisoned(g, n * c)?;
    linear::backward_input(g, ops, di.ptr(), false, ptrs[2], oc, ptrs[1], n, c, oc).map_err(e)?;
    let dwd = g.zeros::<f32>(oc * c).map_err(e)?;
    linear::backward_weight(g, ops, dwd.ptr(), ptrs[2], oc, ptrs[0], n, c, oc).map_err(e)?;
    report(&[
        ("out", rel(&down(g, &od)?, &out)),
        ("dinp", rel(&down(g, &di)?, &dinp)),
        ("dw", rel(&down(g, &dwd)?, &dw)),
    ])
}

/// A small model that still has several heads, a padded vocabulary and T not a power of two.
pub fn small_config() -> GptConfig {
    GptConfig {
        n_layer: 2,
        n_head: 4,
        n_embd: 64,
        block_size: 48,
        vocab_size: 300,
        dropout: 0.0,
    }
}

fn batch(rng: &mut Rng, n: usize, v: usize) -> (Vec<u32>, Vec<u32>, Vec<u8>) {
    let inp: Vec<u32> = (0..n).map(|_| (rng.next_u64() % v as u64) as u32).collect();
    let tg: Vec<u32> = (0..n).map(|_| (rng.next_u64() % v as u64) as u32).collect();
    let mask: Vec<u8> = (0..n).map(|i| (i % 7 != 3) as u8).collect();
    (inp, tg, mask)
}

/// One forward + backward of the whole model against the CPU model: loss, logits, every gradient.
pub fn check_model(g: Gpu, seed: u64, ops: Operands) -> Res {
    let cfg = small_config();
    let (b, t) = (3usize, 45usize);
    let mut cpu = Gpt::new(cfg.clone(), Precision::F32, seed).map_err(e)?;
    let mut gpu = CudaGpt::from_cpu(g, &cpu, ops).map_err(e)?;
    let mut rng = Rng::new(seed ^ 0x5eed);
    let (inp, tg, mask) = batch(&mut rng, b * t, cfg.vocab_size);
    let lc = cpu.forward(&inp, Some(&tg), Some(&mask), b, t).map_err(e)?.unwrap_or(f32::NAN);
    let lg = gpu.forward(&inp, Some(&tg), Some(&mask), b, t).map_err(e)?.unwrap_or(f32::NAN);
    let logits = rel(&gpu.download_logits().map_err(e)?, cpu.logits());
    cpu.zero_grad();
    gpu.zero_grad().map_err(e)?;
    cpu.backward_scaled(0.5).map_err(e)?;
    gpu.backward_scaled(0.5).map_err(e)?;
    let gg = gpu.download_grads().map_err(e)?;
    let mut errs = vec![
        ("loss", ((lg - lc) / lc).abs() as f64),
        ("logits", logits),
        ("all grads", rel(&gg, &cpu.grads)),
    ];
    // The worst single tensor, so a wrong small tensor is not hidden by the total.
    let mut worst_t = (String::new(), 0.0f64);
    for ti in cpu.layout().tensors() {
        let r = ti.range();
        let x = rel(&gg[r.clone()], &cpu.grads[r]);
        if x.is_nan() || x > worst_t.1 {
            worst_t = (ti.name.clone(), x);
        }
    }
    eprintln!("      worst tensor gradient: {} {:.1e}", worst_t.0, worst_t.1);
    errs.push(("worst tensor", worst_t.1));
    report(&errs)
}

/// `steps` training steps of `small_config` on the CPU and the GPU from the same init and
/// data; returns the largest relative difference of the per-step losses.
pub fn check_trajectory(g: Gpu, seed: u64, ops: Operands, steps: usize) -> Res {
    let cfg = small_config();
    let (b, t) = (4usize, 48usize);
    let mut cpu = Gpt::new(cfg.clone(), Precision::F32, seed).map_err(e)?;
    let mut gpu = CudaGpt::from_cpu(g, &cpu, ops).map_err(e)?;
    let acfg = AdamWConfig::default();
    let mut copt = AdamW::new(acfg, cpu.params.len(), cpu.decay_ranges());
    let mut gopt = CudaAdamW::new(acfg, &gpu).map_err(e)?;
    let mut rng = Rng::new(seed ^ 0x7a7a);
    // A learnable stream: token i+1 = (token i · 7 + 3) mod V with noise, so the loss falls.
    let mut worst = 0f64;
    let mut line = Vec::new();
    for _ in 0..steps {
        let mut inp = Vec::with_capacity(b * t);
        let mut tg = Vec::with_capacity(b * t);
        for _ in 0..b {
            let mut x = (rng.next_u64() % cfg.vocab_size as u64) as u32;
            for _ in 0..t {
                let y = if rng.uniform() < 0.1 {
                    (rng.next_u64() % cfg.vocab_size as u64) as u32
                } else {
                    (x * 7 + 3) % cfg.vocab_size as u32
                };
                inp.push(x);
                tg.push(y);
                x = y;
            }
        }
        cpu.zero_grad();
        let lc = cpu.forward(&inp, Some(&tg), None, b, t).map_err(e)?.unwrap_or(f32::NAN);
        cpu.backward().map_err(e)?;
        let nc = kiln::train::grad_norm(&cpu.grads);
        copt.update(&mut cpu.params, &cpu.grads, 3e-3, kiln::train::adamw::clip_scale(nc, 1.0));
        gpu.zero_grad().map_err(e)?;
        let lg = gpu.forward(&inp, Some(&tg), None, b, t).map_err(e)?.unwrap_or(f32::NAN);
        gpu.backward_scaled(1.0).map_err(e)?;
        let ng = gpu.grad_norm().map_err(e)?;
        gopt.update(&mut gpu, 3e-3, kiln::train::adamw::clip_scale(ng, 1.0)).map_err(e)?;
        let d = ((lg - lc) / lc).abs() as f64;
        worst = if d.is_nan() { f64::INFINITY } else { worst.max(d) };
        line.push(format!("{lc:.4}/{lg:.4}"));
    }
    eprintln!("      cpu/gpu loss by step: {}", line.join(" "));
    Ok(worst)
}

/// Runs `steps` GPU steps straight, and `steps/2` + a save/restore through the host +
/// the rest; returns 0 when the final parameters and moments are bit-identical (and
/// identical to a second straight run), else 1.
pub fn check_resume(open: &dyn Fn() -> Result<Gpu, String>, seed: u64, ops: Operands, steps: usize) -> Res {
    let cfg = small_config();
    let (b, t) = (4usize, 48usize);
    let cpu = Gpt::new(cfg.clone(), Precision::F32, seed).map_err(e)?;
    let acfg = AdamWConfig::default();
    let data: Vec<_> = {
        let mut rng = Rng::new(seed ^ 0x1234);
        (0..steps).map(|_| batch(&mut rng, b * t, cfg.vocab_size)).collect()
    };
    let run = |from: usize, to: usize, state: Option<Snapshot>| -> Result<Snapshot, String> {
        let mut m = CudaGpt::from_cpu(open()?, &cpu, ops).map_err(e)?;
        let mut opt = CudaAdamW::new(acfg, &m).map_err(e)?;
        if let Some((p, mm, vv, st)) = state {
            m.upload_params(&p).map_err(e)?;
            opt.upload(m.gpu(), &mm, &vv, st).map_err(e)?;
        }
        for (inp, tg, mask) in &data[from..to] {
            m.zero_grad().map_err(e)?;
            m.forward(inp, Some(tg), Some(mask), b, t).map_err(e)?;
            m.backward_scaled(1.0).map_err(e)?;
            let norm = m.grad_norm().map_err(e)?;
            opt.update(&mut m, 1e-3, kiln::train::adamw::clip_scale(norm, 1.0)).map_err(e)?;
        }
        let (mm, vv) = opt.download(m.gpu()).map_err(e)?;
        Ok((m.download_params().map_err(e)?, mm, vv, opt.step))
    };
    let a = run(0, steps, None)?;
    let a2 = run(0, steps, None)?;
    let half = run(0, steps / 2, None)?;
    let c = run(steps / 2, steps, Some(half))?;
    let same = |x: &[f32], y: &[f32]| x.iter().zip(y).all(|(p, q)| p.to_bits() == q.to_bits());
    let det = same(&a.0, &a2.0) && same(&a.1, &a2.1);
    let res = same(&a.0, &c.0) && same(&a.1, &c.1) && same(&a.2, &c.2) && a.3 == c.3;
    eprintln!("      two straight runs identical: {det}; resumed run identical: {res}");
    Ok(if det && res { 0.0 } else { 1.0 })
}

/// Runs every check; prints `ok`/`FAIL` lines and returns the failures.
pub fn run_all(open: &dyn Fn() -> Result<Gpu, String>) -> Vec<String> {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1);
    eprintln!("GPU checks (seed {seed}: fresh random inputs each run)");
    let mut failures = Vec::new();
    let mut check = |name: &str, tol: f64, r: Res| match r {
        Ok(x) if x < tol => eprintln!("  ok    {name}: {x:.2e} < {tol:.0e}"),
        Ok(x) => {
            eprintln!("  FAIL  {name}: {x:.2e} ≥ {tol:.0e}");
            failures.push(format!("{name}: {x:.2e}"));
        }
        Err(m) => {
            eprintln!("  FAIL  {name}: {m}");
            failures.push(format!("{name}: {m}"));
        }
    };
    let g = match open() {
        Ok(g) => g,
        Err(m) => {
            check("open the GPU", 1.0, Err(m));
            return failures;
        }
    };
    check("encoder", TOL_F32, check_encoder(&g, seed));
    check("layernorm", TOL_F32, check_layernorm(&g, seed + 1));
    check("gelu + bias grad", TOL_F32, check_gelu_bias(&g, seed + 2));
    check("softmax cross-entropy", TOL_F32, check_loss(&g, seed + 3));
    check("attention B2 T5 NH2 HS8", TOL_F32, check_attention(&g, seed + 4, 2, 5, 2, 8));
    check("attention B2 T70 NH3 HS16", TOL_F32, check_attention(&g, seed + 5, 2, 70, 3, 16));
    check(
        "attention B2 T257 NH12 HS64",
        TOL_F32,
        check_attention(&g, seed + 6, 2, 257, 12, 64),
    );
    check(
        "attention B1 T1024 NH2 HS128",
        TOL_F32,
        check_attention(&g, seed + 7, 1, 1024, 2, 128),
    );
    check("decode attention", TOL_F32, check_decode(&g, seed + 8));
    check("adamw", TOL_F32, check_adamw(&g, seed + 9));
    check("linear f32", TOL_F32, check_linear(&g, seed + 10, Operands::F32));
    check("linear bf16", TOL_BF16, check_linear(&g, seed + 11, Operands::Bf16));
    drop(g);
    let with = |f: &dyn Fn(Gpu) -> Res| open().and_then(f);
    check("model f32 vs CPU", TOL_F32, with(&|g| check_model(g, seed + 12, Operands::F32)));
    check("model bf16 vs CPU", 3e-2, with(&|g| check_model(g, seed + 13, Operands::Bf16)));
    check(
        "20-step trajectory f32",
        1e-4,
        with(&|g| check_trajectory(g, seed + 14, Operands::F32, 20)),
    );
    check(
        "20-step trajectory bf16",
        2e-2,
        with(&|g| check_trajectory(g, seed + 15, Operands::Bf16, 20)),
    );
    check("resume bit-exact bf16", 0.5, check_resume(open, seed + 16, Operands::Bf16, 10));
    failures
}
