//! GPU tests (issue 8): every kernel, the whole model's gradients, a 20-step
//! loss trajectory and resume against the CPU backend. They need an NVIDIA
//! GPU, so they are `#[ignore]`d: run them with
//! `cargo test --release --features cuda --test cuda_gpu -- --ignored` on a
//! GPU machine (benches/gpu.sh runs the same checks from a carried binary).
#![cfg(feature = "cuda")]

#[path = "../benches/gpu/checks.rs"]
mod checks;

#[test]
#[ignore = "needs an NVIDIA GPU"]
fn every_kernel_and_the_model_match_the_cpu_backend() {
    let failures = checks::run_all(&|| kiln::backend::cuda::Gpu::open(0).map_err(|e| e.to_string()));
    assert!(failures.is_empty(), "GPU checks failed:\n{}", failures.join("\n"));
}
