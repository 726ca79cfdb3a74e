//! The GPU benchmark and check runner (issue 8), built here and carried to
//! the GPU machine by `benches/gpu.sh`:
//!
//! `gpu [--checks] [--bench] [--batch 8,16,32] [--steps N]`
//!
//! 1. `--checks`: every kernel, the whole model, a 20-step trajectory and
//!    resume against the CPU backend (`benches/gpu/checks.rs`).
//! 2. `--bench`: measures the ceilings first (a bf16 cuBLAS product at
//!    8192³, a device-to-device copy), then times the attention and AdamW
//!    kernels against their memory-bandwidth floors and GPT-2 124M
//!    training steps (T 1024, bf16 operands) at each batch size, reporting
//!    tokens/s and MFU against the measured bf16 peak.
//!
//! Every time is a median over repetitions timed with device events after
//! warm-up; inputs are random (never zeros).

#[path = "gpu/checks.rs"]
mod checks;

use kiln::backend::Precision;
use kiln::backend::cuda::kernels::{self, AdamStep};
use kiln::backend::cuda::linear::{self, Operands};
use kiln::backend::cuda::{CudaAdamW, CudaGpt, Gpu};
use kiln::model::rng::Rng;
use kiln::model::{Gpt, GptConfig};
use kiln::train::AdamWConfig;
use std::time::Instant;

fn open() -> Result<Gpu, String> {
    Gpu::open(0).map_err(|e| e.to_string())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Median milliseconds of `f` over `reps` event-timed runs after `warm` untimed ones.
fn time_ms(g: &Gpu, warm: usize, reps: usize, f: &mut dyn FnMut() -> Result<(), String>) -> Result<f64, String> {
    for _ in 0..warm {
        f()?;
    }
    g.sync().map_err(|e| e.to_string())?;
    let mut v = Vec::new();
    for _ in 0..reps {
        let a = g.event().map_err(|e| e.to_string())?;
        f()?;
        let b = g.event().map_err(|e| e.to_string())?;
        b.synchronize().map_err(|e| e.to_string())?;
        v.push(a.elapsed_ms(&b).map_err(|e| e.to_string())? as f64);
    }
    Ok(median(v))
}

fn random_buf(g: &Gpu, n: usize, seed: u64) -> Result<kiln::backend::cuda::Buf<f32>, String> {
    let mut rng = Rng::new(seed);
    let host: Vec<f32> = (0..n).map(|_| rng.normal() as f32).collect();
    let b = g.zeros::<f32>(n).map_err(|e| e.to_string())?;
    g.upload(b.ptr(), &host).map_err(|e| e.to_string())?;
    Ok(b)
}

struct Ceilings {
    tflops: f64,
    gbps: f64,
}

fn ceilings(g: &Gpu, rows: &mut Vec<String>) -> Result<Ceilings, String> {
    let n = 8192usize;
    let a = random_buf(g, n * n, 1)?;
    let b = random_buf(g, n * n, 2)?;
    let (a16, b16) = (
        g.zeros::<u16>(n * n).map_err(|e| e.to_string())?,
        g.zeros::<u16>(n * n).map_err(|e| e.to_string())?,
    );
    kernels::cast_bf16(g, a16.ptr(), a.ptr(), n * n, 1, 1).map_err(|e| e.to_string())?;
    kernels::cast_bf16(g, b16.ptr(), b.ptr(), n * n, 1, 1).map_err(|e| e.to_string())?;
    let c = g.zeros::<f32>(n * n).map_err(|e| e.to_string())?;
    let ms = time_ms(g, 3, 10, &mut || {
        linear::gemm(
            g,
            false,
            false,
            n,
            n,
            n,
            a16.ptr(),
            n,
            b16.ptr(),
            n,
            c.ptr(),
            n,
            0.0,
            Operands::Bf16,
        )
        .map_err(|e| e.to_string())
    })?;
    let tflops = 2.0 * (n as f64).powi(3) / (ms * 1e-3) / 1e12;
    rows.push(format!(
        "bf16 cuBLAS 8192³ (f32 out)  {ms:8.3} ms  {tflops:7.1} TFLOP/s  (the MFU peak)"
    ));
    // Copy bandwidth: 1 GiB device to device, bytes read + written.
    let bytes = 1usize << 30;
    let src = random_buf(g, bytes / 4, 3)?;
    let dst = g.zeros::<f32>(bytes / 4).map_err(|e| e.to_string())?;
    let ms = time_ms(g, 3, 10, &mut || {
        // SAFETY: both buffers hold `bytes` bytes and are live.
        unsafe { cudarc::driver::result::memcpy_dtod_async(dst.ptr(), src.ptr(), bytes, g.stream().cu_stream()) }.map_err(|e| e.to_string())
    })?;
    let gbps = 2.0 * bytes as f64 / (ms * 1e-3) / 1e9;
    rows.push(format!(
        "device copy 1 GiB              {ms:8.3} ms  {gbps:7.0} GB/s (read + write)"
    ));
    Ok(Ceilings { tflops, gbps })
}

fn kernel_times(g: &Gpu, ceil: &Ceilings, rows: &mut Vec<String>) -> Result<(), String> {
    let (b, t, nh, hs) = (16usize, 1024usize, 12usize, 64usize);
    let c = nh * hs;
    let qkv = random_buf(g, b * t * 3 * c, 4)?;
    let out = g.zeros::<f32>(b * t * c).map_err(|e| e.to_string())?;
    let lse = g.zeros::<f32>(b * nh * t).map_err(|e| e.to_string())?;
    let dout = random_buf(g, b * t * c, 5)?;
    let dqkv = g.zeros::<f32>(b * t * 3 * c).map_err(|e| e.to_string())?;
    let causal_flops = 4.0 * (b * nh * hs) as f64 * (t * (t + 1) / 2) as f64;
    let fwd = time_ms(g, 3, 10, &mut || {
        kernels::attn_fwd(g, out.ptr(), lse.ptr(), qkv.ptr(), b, t, nh, hs).map_err(|e| e.to_string())
    })?;
    let fwd_bytes = 4.0 * (b * t * 4 * c + b * nh * t) as f64;
    rows.push(format!(
        "attention fwd B16 T1024 H12   {fwd:8.3} ms  {:7.1} TFLOP/s  floor {:.3} ms (bytes)",
        causal_flops / (fwd * 1e-3) / 1e12,
        fwd_bytes / (ceil.gbps * 1e9) * 1e3
    ));
    let bwd = time_ms(g, 3, 10, &mut || {
        kernels::attn_bwd(g, dqkv.ptr(), dout.ptr(), qkv.ptr(), out.ptr(), lse.ptr(), b, t, nh, hs).map_err(|e| e.to_string())
    })?;
    let bwd_bytes = 4.0 * (b * t * (3 * c + c + c + 3 * c) + b * nh * t) as f64;
    rows.push(format!(
        "attention bwd B16 T1024 H12   {bwd:8.3} ms  {:7.1} TFLOP/s  floor {:.3} ms (bytes)",
        2.5 * causal_flops / (bwd * 1e-3) / 1e12,
        bwd_bytes / (ceil.gbps * 1e9) * 1e3
    ));
    // AdamW over GPT-2 124M's parameter count.
    let n = 124_475_904usize;
    let p = random_buf(g, n, 6)?;
    let gr = random_buf(g, n, 7)?;
    let m = g.zeros::<f32>(n).map_err(|e| e.to_string())?;
    let v = g.zeros::<f32>(n).map_err(|e| e.to_string())?;
    let p16 = g.zeros::<u16>(n).map_err(|e| e.to_string())?;
    let s = AdamStep {
        beta1: 0.9,
        beta2: 0.95,
        eps: 1e-8,
        step_size: 1e-4,
        inv_sqrt_bc2: 1.0,
        grad_scale: 1.0,
    };
    let ms = time_ms(g, 3, 10, &mut || {
        kernels::adamw(g, p.ptr(), p16.ptr(), gr.ptr(), m.ptr(), v.ptr(), n, 0.9999, &s).map_err(|e| e.to_string())
    })?;
    // Reads p, g, m, v; writes p, m, v (f32) and the bf16 copy: 30 bytes a parameter.
    let floor = 30.0 * n as f64 / (ceil.gbps * 1e9) * 1e3;
    rows.push(format!(
        "AdamW 124M params              {ms:8.3} ms  floor {floor:.3} ms ({:.0}% of copy bandwidth)",
        floor / ms * 100.0
    ));
    Ok(())
}

fn train_bench(ceil: &Ceilings, batches: &[usize], steps: usize, rows: &mut Vec<String>) -> Result<(), String> {
    let t = 1024usize;
    let cfg = GptConfig {
        block_size: 1024,
        ..GptConfig::default()
    };
    let cpu = Gpt::new(cfg.clone(), Precision::F32, 42).map_err(|e| e.to_string())?;
    let flops_tok = kiln::train::pretrain::flops_per_token(&cpu, t);
    for &b in batches {
        let g = open()?;
        let mut m = CudaGpt::from_cpu(g, &cpu, Operands::Bf16).map_err(|e| e.to_string())?;
        let mut opt = CudaAdamW::new(AdamWConfig::default(), &m).map_err(|e| e.to_string())?;
        let mut rng = Rng::new(b as u64);
        let v = cfg.vocab_size as u64;
        let toks: Vec<u32> = (0..b * (t + 1) * 4).map(|_| (rng.next_u64() % v) as u32).collect();
        let mut step_ms = Vec::new();
        let (mut f_ms, mut b_ms, mut o_ms) = (Vec::new(), Vec::new(), Vec::new());
        let mut last = 0.0f32;
        for s in 0..steps + 3 {
            let k = s % 4;
            let inp = &toks[k * b * (t + 1)..][..b * t];
            let tg = &toks[k * b * (t + 1) + 1..][..b * t];
            let t0 = Instant::now();
            let e0 = m.gpu().event().map_err(|e| e.to_string())?;
            m.zero_grad().map_err(|e| e.to_string())?;
            last = m.forward(inp, Some(tg), None, b, t).map_err(|e| e.to_string())?.unwrap_or(f32::NAN);
            let e1 = m.gpu().event().map_err(|e| e.to_string())?;
            m.backward_scaled(1.0).map_err(|e| e.to_string())?;
            let norm = m.grad_norm().map_err(|e| e.to_string())?;
            let e2 = m.gpu().event().map_err(|e| e.to_string())?;
            opt.update(&mut m, 6e-4, kiln::train::adamw::clip_scale(norm, 1.0))
                .map_err(|e| e.to_string())?;
            let e3 = m.gpu().event().map_err(|e| e.to_string())?;
            e3.synchronize().map_err(|e| e.to_string())?;
            if s >= 3 {
                step_ms.push(t0.elapsed().as_secs_f64() * 1e3);
                f_ms.push(e0.elapsed_ms(&e1).map_err(|e| e.to_string())? as f64);
                b_ms.push(e1.elapsed_ms(&e2).map_err(|e| e.to_string())? as f64);
                o_ms.push(e2.elapsed_ms(&e3).map_err(|e| e.to_string())? as f64);
            }
        }
        let ms = median(step_ms);
        let tok_s = (b * t) as f64 / (ms * 1e-3);
        let mfu = tok_s * flops_tok / (ceil.tflops * 1e12);
        rows.push(format!(
            "GPT-2 124M B{b:<3} T1024 bf16     {ms:8.1} ms/step  {tok_s:9.0} tok/s  MFU {:.1}%  (fwd {:.1} + bwd {:.1} + adamw {:.1} ms; loss {last:.3})",
            mfu * 100.0,
            median(f_ms),
            median(b_ms),
            median(o_ms)
        ));
        let (total, free) = m.gpu().memory().map_err(|e| e.to_string())?;
        rows.push(format!(
            "    GPU memory in use {:.1} of {:.1} GiB",
            (total - free) as f64 / 2f64.powi(30),
            total as f64 / 2f64.powi(30)
        ));
    }
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |f: &str| args.iter().any(|a| a == f);
    let value = |f: &str| args.iter().position(|a| a == f).and_then(|i| args.get(i + 1)).cloned();
    let batches: Vec<usize> = value("--batch")
        .unwrap_or_else(|| "8,16,32".into())
        .split(',')
        .filter_map(|x| x.parse().ok())
        .collect();
    let steps: usize = value("--steps").and_then(|s| s.parse().ok()).unwrap_or(10);
    let (checks, bench) = match (flag("--checks"), flag("--bench")) {
        (false, false) => (true, true),
        x => x,
    };
    let mut failed = false;
    match open() {
        Ok(g) => eprintln!("{g:?}, NVRTC {:?}", kiln::backend::cuda::nvrtc::version()),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    }
    if checks {
        let f = checks::run_all(&open);
        eprintln!("checks: {} failed", f.len());
        failed = !f.is_empty();
    }
    if bench {
        let mut rows = Vec::new();
        let r = open().and_then(|g| {
            let ceil = ceilings(&g, &mut rows)?;
            if let Err(e) = kernel_times(&g, &ceil, &mut rows) {
                rows.push(format!("kernel timing failed: {e}"));
            }
            drop(g);
            train_bench(&ceil, &batches, steps, &mut rows)
        });
        if let Err(e) = r {
            rows.push(format!("benchmark failed: {e}"));
            failed = true;
        }
        println!("\n{}", rows.join("\n"));
    }
    if failed {
        std::process::exit(1);
    }
}
