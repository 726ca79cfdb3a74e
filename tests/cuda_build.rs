//! What the CUDA backend guarantees without a GPU (issue 8), run by CI:
//! every kernel in kernels/*.cu compiles with NVRTC for sm_80 and sm_90, and
//! opening a GPU where there is none is an error that names what is missing,
//! not a panic.
//!
//! NVRTC comes from the pip wheel `nvidia-cuda-nvrtc-cu12` (.ci/run installs
//! it): `KILN_NVRTC` names the library, else it is looked up beside
//! `python3`'s site-packages, else on the loader path. Without it the compile
//! test skips, printing why.
#![cfg(feature = "cuda")]

use kiln::backend::cuda::{Gpu, nvrtc};

/// Points `KILN_NVRTC` at the pip wheel's libnvrtc when the caller has not.
fn find_nvrtc() {
    if std::env::var_os("KILN_NVRTC").is_some() {
        return;
    }
    let out = std::process::Command::new("python3")
        .args(["-c", "import nvidia.cuda_nvrtc as m; print(list(m.__path__)[0])"])
        .output();
    if let Ok(o) = out
        && o.status.success()
    {
        let dir = std::path::PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()).join("lib");
        if let Ok(rd) = std::fs::read_dir(&dir) {
            for entry in rd.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.starts_with("libnvrtc.so") {
                    // SAFETY: set before any thread of this test reads the environment.
                    unsafe { std::env::set_var("KILN_NVRTC", entry.path()) };
                    return;
                }
            }
        }
    }
}

#[test]
fn every_kernel_compiles_for_sm80_and_sm90() {
    find_nvrtc();
    if let Err(e) = nvrtc::ensure_loaded() {
        eprintln!("skipping: {e}");
        return;
    }
    let (major, minor) = nvrtc::version().expect("NVRTC version");
    let mut failures = Vec::new();
    for src in nvrtc::SOURCES {
        for arch in ["sm_80", "sm_90"] {
            match nvrtc::compile(src, arch) {
                Ok(cubin) => {
                    assert!(
                        cubin.len() > 1000,
                        "kernels/{} for {arch}: a cubin of {} bytes",
                        src.file,
                        cubin.len()
                    );
                    eprintln!("kernels/{} for {arch}: {} bytes (NVRTC {major}.{minor})", src.file, cubin.len());
                }
                Err(e) => failures.push(e.to_string()),
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn every_listed_kernel_is_defined_in_its_file() {
    for src in nvrtc::SOURCES {
        for k in src.kernels {
            // `void NAME(`, or `NAME(` opening a line after `__launch_bounds__(...)`.
            assert!(
                src.text.contains(&format!("void {k}(")) || src.text.contains(&format!("\n{k}(")),
                "kernels/{} does not define `{k}`, which the backend loads",
                src.file
            );
        }
    }
}

#[test]
fn a_machine_without_a_gpu_gets_an_error_naming_what_is_missing() {
    find_nvrtc();
    match Gpu::open(0) {
        Ok(g) => eprintln!("this machine has a GPU: {g:?}"),
        Err(e) => {
            let m = e.to_string();
            eprintln!("{m}");
            assert!(
                ["driver", "GPU", "cuBLAS", "NVRTC"].iter().any(|w| m.contains(w)),
                "the error does not say what is missing: {m}"
            );
        }
    }
}
