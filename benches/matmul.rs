//! Matmul benchmark for the CPU backend (issue 5): the `tiny` model's linear
//! layers (T·B = 2048 rows) in the three products a training step runs —
//! forward `x·wᵀ`, input gradient `dy·w`, weight gradient `dyᵀ·x` — through
//! our f32 kernel, the `gemm` crate it replaced, and the bf16 kernel.
//!
//! `cargo bench --bench matmul -- [--threads N] [--reps N] [--model tiny|small|124m]
//!   [--only LABEL]`
//!
//! `--model small` runs the `small` model's layers (C 384) at the same rows;
//! `--model 124m` runs GPT-2 124M's layers instead (C 768, vocab 50304,
//! B·T = 1024 rows: batch 4 at T 256); `--only` keeps the kernels whose
//! label contains LABEL (`f32`, `bf16`, `gemm`). Prints GFLOP/s per shape
//! and product, and the total ms of one pass over
//! all shapes (the median of `--reps` passes, default 5).

use kiln::backend::{Backend, CpuBackend, MatRef, Precision};
use std::time::Instant;

/// (C, OC) of the tiny model's layers: qkv, attention projection, MLP up,
/// MLP down, LM head (vocab 8192).
const SHAPES: [(usize, usize); 5] = [(256, 768), (256, 256), (256, 1024), (1024, 256), (256, 8192)];
const ROWS: usize = 2048;
/// The same for GPT-2 124M (padded vocab 50304) at B·T = 1024.
const SHAPES_124M: [(usize, usize); 5] = [(768, 2304), (768, 768), (768, 3072), (3072, 768), (768, 50304)];
const ROWS_124M: usize = 1024;
/// The `small` model's (C 384), at the same 2048 rows as `tiny`.
const SHAPES_SMALL: [(usize, usize); 5] = [(384, 1152), (384, 384), (384, 1536), (1536, 384), (384, 8192)];

/// The value after `name` on the command line.
fn named(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned()
}

fn arg(name: &str, default: usize) -> usize {
    named(name)
        .map(|v| v.parse().unwrap_or_else(|_| panic!("{name} takes a number")))
        .unwrap_or(default)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let threads = arg("--threads", 2);
    let reps = arg("--reps", 5).max(1);
    let (shapes, rows) = match named("--model").as_deref() {
        None | Some("tiny") => (SHAPES, ROWS),
        Some("small") => (SHAPES_SMALL, ROWS),
        Some("124m") => (SHAPES_124M, ROWS_124M),
        Some(other) => panic!("--model takes tiny, small or 124m, not {other}"),
    };
    let only = named("--only").unwrap_or_default();
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("thread pool");
    println!("threads {threads}; {rows} rows; median of {reps}");
    pool.install(|| {
        for (label, mut be) in [
            ("kiln f32", CpuBackend::new(Precision::F32)),
            ("gemm crate f32", CpuBackend::f32_on_gemm_crate()),
            ("kiln bf16", CpuBackend::new(Precision::Bf16)),
        ] {
            if !label.contains(only.as_str()) {
                continue;
            }
            let mut total = 0.0;
            for &(c, oc) in &shapes {
                let inp = vec![0.5f32; rows * c];
                let w = vec![0.25f32; oc * c];
                let dout = vec![0.1f32; rows * oc];
                let (mut out, mut dinp, mut dw) = (vec![0.0f32; rows * oc], vec![0.0f32; rows * c], vec![0.0f32; oc * c]);
                let flop = 2.0 * (rows * c * oc) as f64;
                let mut time = |f: &mut dyn FnMut(&mut CpuBackend)| {
                    f(&mut be);
                    median(
                        (0..reps)
                            .map(|_| {
                                let t = Instant::now();
                                f(&mut be);
                                t.elapsed().as_secs_f64()
                            })
                            .collect(),
                    )
                };
                let fwd = time(&mut |be| {
                    be.matmul(
                        rows,
                        oc,
                        c,
                        &mut out,
                        oc,
                        false,
                        MatRef::row_major(&inp, c),
                        MatRef::transposed(&w, c),
                    )
                });
                let din = time(&mut |be| {
                    be.matmul(
                        rows,
                        c,
                        oc,
                        &mut dinp,
                        c,
                        false,
                        MatRef::row_major(&dout, oc),
                        MatRef::row_major(&w, c),
                    )
                });
                let dwt = time(&mut |be| {
                    be.matmul(
                        oc,
                        c,
                        rows,
                        &mut dw,
                        c,
                        true,
                        MatRef::transposed(&dout, oc),
                        MatRef::row_major(&inp, c),
                    )
                });
                total += fwd + din + dwt;
                println!(
                    "{label:<15} C {c:5} OC {oc:5}: fwd {:6.1} GFLOP/s  dinp {:6.1}  dw {:6.1}",
                    flop / fwd / 1e9,
                    flop / din / 1e9,
                    flop / dwt / 1e9
                );
            }
            println!("{label:<15} all shapes, three products: {:.1} ms", total * 1e3);
        }
    });
}
