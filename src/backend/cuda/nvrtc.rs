//! Run-time compilation of `kernels/*.cu` with NVRTC, for the device's own
//! compute capability, cached on disk by a hash of (source, options, NVRTC
//! version) so that only the first run on a machine pays the compile.
//!
//! NVRTC is found the way cudarc finds it (`libnvrtc.so[.12]` on the loader
//! path), or at the absolute path in `KILN_NVRTC`, which is loaded first so
//! that cudarc's lookup by name then finds it already in the process. The
//! pip wheel `nvidia-cuda-nvrtc-cu12` ships no CUDA headers, so every kernel
//! file is compiled with `kernels/common.cuh` prepended and includes nothing.

use super::CudaError;
use std::ffi::CString;
use std::path::PathBuf;

/// One kernel file and the kernels it defines.
#[derive(Debug, Clone, Copy)]
pub struct Source {
    /// File name under `kernels/`.
    pub file: &'static str,
    /// Its text.
    pub text: &'static str,
    /// The `extern "C"` kernels the backend loads from it.
    pub kernels: &'static [&'static str],
}

/// The shared prelude prepended to every kernel file.
pub const COMMON: &str = include_str!("../../../kernels/common.cuh");

/// Every kernel file, compiled into one module each.
pub const SOURCES: &[Source] = &[
    Source {
        file: "train.cu",
        text: include_str!("../../../kernels/train.cu"),
        kernels: &[
            "encoder_fwd",
            "encoder_bwd_wpe",
            "encoder_bwd_wte",
            "layernorm_fwd",
            "layernorm_bwd",
            "reduce_cols_add",
            "col_partial",
            "gelu_fwd",
            "gelu_bwd",
            "seed_bias_residual",
            "cast_bf16",
            "residual_add",
            "ce_fwd",
            "ce_bwd",
            "sumsq_partial",
            "sum_final",
            "adamw",
        ],
    },
    Source {
        file: "attention.cu",
        text: include_str!("../../../kernels/attention.cu"),
        kernels: &["flash_attn_fwd", "flash_attn_bwd", "flash_attn_bwd_dq", "attn_decode"],
    },
];

/// Loads NVRTC (from `KILN_NVRTC` when set), or says what is missing.
pub fn ensure_loaded() -> Result<(), CudaError> {
    if let Some(path) = std::env::var_os("KILN_NVRTC") {
        let c = CString::new(path.to_string_lossy().as_bytes()).map_err(|_| CudaError("KILN_NVRTC holds a NUL byte".into()))?;
        // SAFETY: dlopen of a path; the handle is kept for the life of the
        // process (never closed), so cudarc's later lookup by soname finds it.
        let h = unsafe { libc::dlopen(c.as_ptr(), libc::RTLD_NOW | libc::RTLD_GLOBAL) };
        if h.is_null() {
            return Err(CudaError(format!(
                "KILN_NVRTC={}: the library could not be loaded",
                path.to_string_lossy()
            )));
        }
    }
    // SAFETY: only tries to dlopen the library.
    if unsafe { cudarc::nvrtc::sys::is_culib_present() } {
        Ok(())
    } else {
        Err(CudaError(
            "NVRTC is missing: libnvrtc.so could not be loaded (install the CUDA toolkit or `pip install nvidia-cuda-nvrtc-cu12`, then put its lib directory on LD_LIBRARY_PATH or set KILN_NVRTC to the library's path)".into(),
        ))
    }
}

/// NVRTC's version (major, minor).
pub fn version() -> Result<(i32, i32), CudaError> {
    ensure_loaded()?;
    let (mut major, mut minor) = (0, 0);
    // SAFETY: two out-pointers to live ints.
    unsafe { cudarc::nvrtc::sys::nvrtcVersion(&mut major, &mut minor) }
        .result()
        .map_err(|e| CudaError(format!("nvrtcVersion: {e}")))?;
    Ok((major, minor))
}

fn options(arch: &str) -> Vec<String> {
    vec![format!("--gpu-architecture={arch}"), "--std=c++17".into()]
}

/// Compiles `src` for `arch` (`sm_90`, ...) and returns the cubin. A compile
/// error is returned with NVRTC's log, which names the file and line.
pub fn compile(src: &Source, arch: &str) -> Result<Vec<u8>, CudaError> {
    ensure_loaded()?;
    let text = format!("{COMMON}\n#line 1 \"kernels/{}\"\n{}", src.file, src.text);
    let code = CString::new(text).map_err(|_| CudaError(format!("kernels/{} holds a NUL byte", src.file)))?;
    let name = CString::new(src.file).map_err(|_| CudaError("kernel file name holds a NUL byte".into()))?;
    let prog = cudarc::nvrtc::result::create_program(&code, Some(&name)).map_err(|e| CudaError(format!("NVRTC: {e}")))?;
    let opts = options(arch);
    // SAFETY: `prog` was just created and is destroyed once, below.
    let compiled = unsafe { cudarc::nvrtc::result::compile_program(prog, &opts) };
    // SAFETY: as above.
    let log = unsafe { cudarc::nvrtc::result::get_program_log(prog) }
        .map(|l| {
            let bytes: Vec<u8> = l.iter().take_while(|&&c| c != 0).map(|&c| c as u8).collect();
            String::from_utf8_lossy(&bytes).into_owned()
        })
        .unwrap_or_default();
    let out = compiled
        .map_err(|e| CudaError(format!("kernels/{} does not compile for {arch} ({e}):\n{log}", src.file)))
        .and_then(|()| {
            let mut size = 0usize;
            // SAFETY: `prog` compiled; `size` is a live out-pointer, and the
            // buffer is sized from it.
            unsafe {
                cudarc::nvrtc::sys::nvrtcGetCUBINSize(prog, &mut size)
                    .result()
                    .map_err(|e| CudaError(format!("nvrtcGetCUBINSize: {e}")))?;
                let mut buf = vec![0u8; size];
                cudarc::nvrtc::sys::nvrtcGetCUBIN(prog, buf.as_mut_ptr() as *mut std::ffi::c_char)
                    .result()
                    .map_err(|e| CudaError(format!("nvrtcGetCUBIN: {e}")))?;
                Ok(buf)
            }
        });
    // SAFETY: destroyed once.
    let _ = unsafe { cudarc::nvrtc::result::destroy_program(prog) };
    out
}

/// Where compiled kernels are kept: `$KILN_CACHE_DIR/kernels`, else
/// `$XDG_CACHE_HOME/kiln/kernels`, else `~/.cache/kiln/kernels`.
pub fn cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("KILN_CACHE_DIR") {
        return PathBuf::from(d).join("kernels");
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("kiln").join("kernels")
}

/// [`compile`] through the disk cache. A cache that cannot be written is
/// not an error (the kernels are still compiled); a corrupt entry is
/// caught by the driver's load and then by the hash of the next compile.
pub fn compile_cached(src: &Source, arch: &str) -> Result<Vec<u8>, CudaError> {
    let (major, minor) = version()?;
    let mut h = blake3::Hasher::new();
    for part in [COMMON, src.text, &options(arch).join(" "), &format!("nvrtc {major}.{minor}")] {
        h.update(part.as_bytes());
        h.update(&[0]);
    }
    let dir = cache_dir();
    let stem = src.file.trim_end_matches(".cu");
    let path = dir.join(format!("{stem}-{arch}-{}.cubin", &h.finalize().to_hex()[..16]));
    if let Ok(bytes) = std::fs::read(&path)
        && !bytes.is_empty()
    {
        return Ok(bytes);
    }
    let cubin = compile(src, arch)?;
    if std::fs::create_dir_all(&dir).is_ok() {
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        if std::fs::write(&tmp, &cubin).is_ok() {
            let _ = std::fs::rename(&tmp, &path);
        }
    }
    Ok(cubin)
}
