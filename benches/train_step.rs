//! Training-step benchmark for the GPT-2 CPU core (issue 5).
//!
//! `cargo bench --bench train_step -- [CONFIG...] [--precision f32|bf16|both]
//!   [--steps N] [--threads N] [--curve STEPS] [--peaks]`
//!
//! CONFIG is `tiny` (4 layers, 4 heads, 256 dim, T 256, vocab 8192, B 8),
//! `small` (6/6/384, same T/vocab/B), `124m` (T 256, B 4), `124m-1024`
//! (T 1024, B 4) or `quickstart` (4/4/128, T 128, vocab 1024, B 16). Random tokens. Prints tokens/s, ms per step with a per-op
//! breakdown, achieved GFLOP/s against this CPU's f32 and bf16 peaks on
//! the same threads (measured first; `--peaks` prints them and stops), and
//! peak RSS.
//! FLOPs per token: 6·(12·L·C² + V·C) for the matmuls (LM head counted) plus
//! 12·L·T·C for attention (PaLM's count, no causal discount).
//!
//! `--curve STEPS` instead trains `tiny` for STEPS steps on a learnable
//! synthetic stream in f32 and in bf16 and reports how far the curves differ.

use kiln::backend::Precision;
use kiln::model::gpt::Timings;
use kiln::model::rng::Rng;
use kiln::model::{Gpt, GptConfig};
use kiln::train::adamw::clip_scale;
use kiln::train::{AdamW, AdamWConfig, grad_norm};
use std::time::{Duration, Instant};

/// fp32 FMA peak of 2 cores (3.6 GHz × 32 FLOP/cycle × 2), from
/// DEPENDENCIES.md: the figure for CPUs without AVX-512 (or whose AVX-512
/// FMAs run as two 256-bit halves). [`peaks`] measures this CPU's instead.
const PEAK_F32: f64 = 227.0;
/// bf16 dot-product peak (`vdpbf16ps`), 2 cores, likewise.
const PEAK_BF16: f64 = 453.0;

/// This CPU's peaks on `threads` threads, in GFLOP/s: f32 FMA and bf16
/// `vdpbf16ps`, each from 16 independent zmm accumulator chains per thread
/// (enough to cover the latency of two FMA ports), all threads at once.
/// The constants above where the CPU lacks the instructions. AMX's own
/// peak is higher than either; the bf16 percentages still use `vdpbf16ps`.
/// `PEAK_F32` and `PEAK_BF16` in the environment, if both are set, replace
/// the measurement (benches/train_sbs.sh measures once for a whole run).
fn peaks(threads: usize) -> (f64, f64) {
    let env = |k| std::env::var(k).ok().and_then(|v| v.parse::<f64>().ok());
    if let (Some(f), Some(b)) = (env("PEAK_F32"), env("PEAK_BF16")) {
        return (f, b);
    }
    #[cfg(target_arch = "x86_64")]
    {
        const ITERS: usize = 50_000_000;
        // Hand-written, so the compiler cannot shuffle the chains through
        // the stack: 16 accumulators zmm0–15, operands 1.0 in zmm16–17.
        macro_rules! chains {
            ($name:ident, $features:literal, $op:literal) => {
                #[target_feature(enable = $features)]
                unsafe fn $name() {
                    // SAFETY: registers only; every one written is declared clobbered.
                    unsafe {
                        std::arch::asm!(
                            "mov {one:e}, 0x3f800000",
                            "vpbroadcastd zmm16, {one:e}",
                            "vpbroadcastd zmm17, {one:e}",
                            "2:",
                            concat!($op, " zmm0, zmm16, zmm17"), concat!($op, " zmm1, zmm16, zmm17"),
                            concat!($op, " zmm2, zmm16, zmm17"), concat!($op, " zmm3, zmm16, zmm17"),
                            concat!($op, " zmm4, zmm16, zmm17"), concat!($op, " zmm5, zmm16, zmm17"),
                            concat!($op, " zmm6, zmm16, zmm17"), concat!($op, " zmm7, zmm16, zmm17"),
                            concat!($op, " zmm8, zmm16, zmm17"), concat!($op, " zmm9, zmm16, zmm17"),
                            concat!($op, " zmm10, zmm16, zmm17"), concat!($op, " zmm11, zmm16, zmm17"),
                            concat!($op, " zmm12, zmm16, zmm17"), concat!($op, " zmm13, zmm16, zmm17"),
                            concat!($op, " zmm14, zmm16, zmm17"), concat!($op, " zmm15, zmm16, zmm17"),
                            "dec {n}",
                            "jnz 2b",
                            one = out(reg) _,
                            n = inout(reg) ITERS => _,
                            out("zmm0") _, out("zmm1") _, out("zmm2") _, out("zmm3") _,
                            out("zmm4") _, out("zmm5") _, out("zmm6") _, out("zmm7") _,
                            out("zmm8") _, out("zmm9") _, out("zmm10") _, out("zmm11") _,
                            out("zmm12") _, out("zmm13") _, out("zmm14") _, out("zmm15") _,
                            out("zmm16") _, out("zmm17") _,
                            options(nostack, nomem),
                        );
                    }
                }
            };
        }
        chains!(fma, "avx512f", "vfmadd231ps");
        chains!(dot, "avx512f,avx512bf16", "vdpbf16ps");
        // 16 chains × 16 lanes × 2 FLOP per iteration; `vdpbf16ps` does two
        // products per lane.
        let once = |f: unsafe fn(), flop_per_lane: f64| {
            let t0 = Instant::now();
            let handles: Vec<_> = (0..threads)
                // SAFETY: called only where the CPU has the instructions.
                .map(|_| std::thread::spawn(move || unsafe { f() }))
                .collect();
            handles.into_iter().for_each(|h| h.join().expect("peak thread"));
            (threads * ITERS * 16 * 16) as f64 * flop_per_lane / t0.elapsed().as_secs_f64() / 1e9
        };
        // The best of three tries: a busy VM can only make a try slower.
        let time = |f: unsafe fn(), flop_per_lane: f64| (0..3).map(|_| once(f, flop_per_lane)).fold(0.0, f64::max);
        let f32_peak = if is_x86_feature_detected!("avx512f") {
            time(fma, 2.0)
        } else {
            PEAK_F32
        };
        let bf16_peak = if is_x86_feature_detected!("avx512bf16") {
            time(dot, 4.0)
        } else {
            PEAK_BF16
        };
        (f32_peak, bf16_peak)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = threads;
        (PEAK_F32, PEAK_BF16)
    }
}

struct Bench {
    name: &'static str,
    cfg: GptConfig,
    b: usize,
    t: usize,
}

fn bench(name: &str) -> Option<Bench> {
    let gpt = |l, h, c, t, v| GptConfig {
        n_layer: l,
        n_head: h,
        n_embd: c,
        block_size: t,
        vocab_size: v,
        dropout: 0.0,
    };
    Some(match name {
        "tiny" => Bench {
            name: "tiny",
            cfg: gpt(4, 4, 256, 256, 8192),
            b: 8,
            t: 256,
        },
        "small" => Bench {
            name: "small",
            cfg: gpt(6, 6, 384, 256, 8192),
            b: 8,
            t: 256,
        },
        "124m" => Bench {
            name: "124m",
            cfg: gpt(12, 12, 768, 256, 50257),
            b: 4,
            t: 256,
        },
        "124m-1024" => Bench {
            name: "124m-1024",
            cfg: gpt(12, 12, 768, 1024, 50257),
            b: 4,
            t: 1024,
        },
        // The quickstart's model: what its 10-minute budget buys.
        "quickstart" => Bench {
            name: "quickstart",
            cfg: gpt(4, 4, 128, 128, 1024),
            b: 16,
            t: 128,
        },
        _ => return None,
    })
}

fn flops_per_token(cfg: &GptConfig, t: usize) -> f64 {
    let (l, c, v) = (cfg.n_layer as f64, cfg.n_embd as f64, cfg.vocab_size as f64);
    6.0 * (12.0 * l * c * c + v * c) + 12.0 * l * t as f64 * c
}

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

/// One optimizer step; returns (loss, optimizer time).
fn step(m: &mut Gpt, opt: &mut AdamW, inp: &[u32], tgt: &[u32], b: usize, t: usize, lr: f32) -> (f32, Duration) {
    m.zero_grad();
    let loss = m.forward(inp, Some(tgt), None, b, t).expect("valid batch").expect("targets given");
    m.backward().expect("forward had targets");
    let t0 = Instant::now();
    let scale = clip_scale(grad_norm(&m.grads), 1.0);
    opt.update(&mut m.params, &m.grads, lr, scale);
    (loss, t0.elapsed())
}

fn random_batch(n: usize, vocab: usize, seed: u64) -> Vec<u32> {
    let mut r = Rng::new(seed);
    (0..n).map(|_| (r.next_u64() % vocab as u64) as u32).collect()
}

fn run(bench: &Bench, precision: Precision, steps: usize, (peak_f32, peak_bf16): (f64, f64)) {
    let (b, t) = (bench.b, bench.t);
    let mut m = Gpt::new(bench.cfg.clone(), precision, 1337).expect("bench config is valid");
    let mut opt = AdamW::new(AdamWConfig::default(), m.params.len(), m.decay_ranges());
    let data = random_batch(b * t + 1, bench.cfg.vocab_size, 42);
    let (inp, tgt) = (&data[..b * t], &data[1..]);
    // Two warm-up steps: allocation of activations, page faults, packing buffers.
    for _ in 0..2 {
        step(&mut m, &mut opt, inp, tgt, b, t, 1e-4);
    }
    m.timings = Some(Timings::default());
    let mut opt_time = Duration::ZERO;
    let t0 = Instant::now();
    let mut loss = 0.0;
    for _ in 0..steps {
        let (l, o) = step(&mut m, &mut opt, inp, tgt, b, t, 1e-4);
        loss = l;
        opt_time += o;
    }
    let total = t0.elapsed().as_secs_f64();
    let per = total / steps as f64;
    let tok_s = (b * t) as f64 / per;
    let gflops = flops_per_token(&bench.cfg, t) * tok_s / 1e9;
    let tm = m.timings.clone().unwrap_or_default();
    let ms = |d: Duration| d.as_secs_f64() * 1e3 / steps as f64;
    let prec = match m.precision() {
        Precision::F32 => "f32",
        Precision::Bf16 => "bf16",
    };
    println!(
        "{:<10} {:<4} tokens/s {:>8.0}  ms/step {:>8.1}  GFLOP/s {:>6.1} ({:>4.1}% of f32 peak, {:>4.1}% of bf16 peak)  loss {:.3}  peak RSS {:.0} MiB",
        bench.name,
        prec,
        tok_s,
        per * 1e3,
        gflops,
        100.0 * gflops / peak_f32,
        100.0 * gflops / peak_bf16,
        loss,
        peak_rss_mib()
    );
    println!(
        "           breakdown ms/step: matmul fwd {:.1} bwd {:.1} | attention fwd {:.1} bwd {:.1} | other fwd {:.1} bwd {:.1} | optimizer {:.1}",
        ms(tm.matmul_fwd),
        ms(tm.matmul_bwd),
        ms(tm.attention_fwd),
        ms(tm.attention_bwd),
        ms(tm.other_fwd),
        ms(tm.other_bwd),
        ms(opt_time)
    );
}

/// A learnable stream: each token is an affine function of the previous
/// one, with 10% random tokens, so the loss falls well below ln V.
fn synthetic_stream(n: usize, vocab: usize) -> Vec<u32> {
    let mut r = Rng::new(7);
    let mut out = Vec::with_capacity(n);
    let mut prev = 1u64;
    for _ in 0..n {
        let next = if r.uniform() < 0.1 {
            r.next_u64() % vocab as u64
        } else {
            (prev * 31 + 7) % vocab as u64
        };
        out.push(next as u32);
        prev = next;
    }
    out
}

fn curve(steps: usize) {
    let Some(bench) = bench("tiny") else { return };
    let (b, t) = (bench.b, bench.t);
    let stream = synthetic_stream(steps * b * t + 1, bench.cfg.vocab_size);
    let mut curves = Vec::new();
    for precision in [Precision::F32, Precision::Bf16] {
        let mut m = Gpt::new(bench.cfg.clone(), precision, 1337).expect("valid");
        let mut opt = AdamW::new(AdamWConfig::default(), m.params.len(), m.decay_ranges());
        let mut losses = Vec::with_capacity(steps);
        for s in 0..steps {
            let off = s * b * t;
            let (l, _) = step(
                &mut m,
                &mut opt,
                &stream[off..off + b * t],
                &stream[off + 1..off + 1 + b * t],
                b,
                t,
                1e-3,
            );
            losses.push(l);
        }
        curves.push(losses);
    }
    let rel: Vec<f64> = curves[0].iter().zip(&curves[1]).map(|(a, b)| ((b - a) / a).abs() as f64).collect();
    let max = rel.iter().cloned().fold(0.0, f64::max);
    let mean = rel.iter().sum::<f64>() / rel.len() as f64;
    for s in (0..steps).step_by((steps / 10).max(1)).chain([steps - 1]) {
        println!("step {s:>4}: f32 {:.4}  bf16 {:.4}", curves[0][s], curves[1][s]);
    }
    println!(
        "bf16 vs f32 over {steps} steps: max relative difference {:.2}%, mean {:.3}%",
        100.0 * max,
        100.0 * mean
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let mut names = Vec::new();
    let (mut precisions, mut steps, mut threads, mut curve_steps) = (vec![Precision::F32, Precision::Bf16], None, 2usize, None);
    let mut peaks_only = false;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = || it.next().cloned().unwrap_or_default();
        match a.as_str() {
            "--precision" => {
                precisions = match val().as_str() {
                    "f32" => vec![Precision::F32],
                    "bf16" => vec![Precision::Bf16],
                    _ => vec![Precision::F32, Precision::Bf16],
                }
            }
            "--steps" => steps = val().parse().ok(),
            "--threads" => threads = val().parse().unwrap_or(2),
            "--curve" => curve_steps = val().parse().ok(),
            "--peaks" => peaks_only = true,
            name if bench(name).is_some() => names.push(name.to_string()),
            other => eprintln!("ignoring unknown argument {other}"),
        }
    }
    if names.is_empty() {
        names = vec!["tiny".into(), "small".into()];
    }
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("thread pool");
    pool.install(|| {
        if let Some(n) = curve_steps {
            curve(n);
            return;
        }
        let peaks = peaks(threads);
        println!(
            "threads {threads}; peaks: f32 FMA {:.0} GFLOP/s, bf16 vdpbf16ps {:.0} GFLOP/s",
            peaks.0, peaks.1
        );
        if peaks_only {
            return;
        }
        for name in &names {
            let Some(b) = bench(name) else { continue };
            let steps = steps.unwrap_or(if b.cfg.n_layer >= 12 { 3 } else { 5 });
            for &p in &precisions {
                run(&b, p, steps, peaks);
            }
        }
    });
}
