//! The GPU handle: driver context and stream, cuBLAS, the compiled kernel
//! modules, device buffers addressed llm.c-style (a base pointer plus an
//! element offset), and a raw kernel launcher.
//!
//! Everything runs on one stream, so ordering is the stream's and cudarc's
//! per-buffer event tracking is switched off: it would add two events to
//! every launch and buys nothing on one stream.

use super::{CudaError, nvrtc};
use cudarc::cublas::CudaBlas;
use cudarc::driver::{CudaContext, CudaFunction, CudaSlice, CudaStream, DevicePtr, DeviceRepr, ValidAsZeroBits};
use std::collections::HashMap;
use std::ffi::c_void;
use std::sync::Arc;

/// One GPU: context, stream, cuBLAS handle and kernels.
pub struct Gpu {
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    blas: CudaBlas,
    funcs: HashMap<&'static str, CudaFunction>,
    /// Device name as the driver reports it.
    pub name: String,
    /// Compute capability (major, minor).
    pub cc: (i32, i32),
    /// Launch-then-synchronise after every kernel (`KILN_CUDA_SYNC=1`), so a
    /// fault is reported at the kernel that caused it.
    sync_each: bool,
}

impl std::fmt::Debug for Gpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Gpu({}, sm_{}{})", self.name, self.cc.0, self.cc.1)
    }
}

/// A kernel argument: pointers, ints and floats, each passed in its own
/// 8-byte slot (the driver reads the parameter's own size from the slot's start).
#[derive(Debug, Clone, Copy)]
pub enum Arg {
    /// A device pointer (0 for a null pointer).
    P(u64),
    /// `int`.
    I(i32),
    /// `long`.
    L(i64),
    /// `float`.
    F(f32),
}

/// A device allocation of `len` elements of `T`.
pub struct Buf<T> {
    _slice: CudaSlice<T>,
    ptr: u64,
    len: usize,
}

impl<T> std::fmt::Debug for Buf<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Buf({} × {} B)", self.len, std::mem::size_of::<T>())
    }
}

impl<T> Buf<T> {
    /// The device address of element `off`.
    pub fn at(&self, off: usize) -> u64 {
        debug_assert!(off <= self.len, "offset {off} past a buffer of {}", self.len);
        self.ptr + (off * std::mem::size_of::<T>()) as u64
    }

    /// The device address of the first element.
    pub fn ptr(&self) -> u64 {
        self.ptr
    }

    /// Elements.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

fn drv(what: &str) -> impl FnOnce(cudarc::driver::DriverError) -> CudaError + '_ {
    move |e| CudaError(format!("{what}: {e}"))
}

impl Gpu {
    /// Opens GPU `ordinal`: checks that the driver, a device, cuBLAS and
    /// NVRTC are there (each missing piece is named), then compiles (or
    /// loads from the disk cache) the kernels for the device's compute capability.
    pub fn open(ordinal: usize) -> Result<Gpu, CudaError> {
        // cudarc panics when a library is missing: ask first.
        // SAFETY: is_culib_present only tries to dlopen the library.
        if !unsafe { cudarc::driver::sys::is_culib_present() } {
            return Err(CudaError(
                "no NVIDIA driver: libcuda.so could not be loaded (is this a machine with an NVIDIA GPU and its driver installed?)".into(),
            ));
        }
        cudarc::driver::result::init().map_err(drv("initialising the CUDA driver"))?;
        let count = CudaContext::device_count().map_err(drv("counting CUDA devices"))?;
        if count == 0 {
            return Err(CudaError("the NVIDIA driver is installed but sees no GPU".into()));
        }
        if ordinal >= count as usize {
            return Err(CudaError(format!("GPU {ordinal} does not exist: the driver sees {count}")));
        }
        // SAFETY: as above.
        if !unsafe { cudarc::cublas::sys::is_culib_present() } {
            return Err(CudaError(
                "cuBLAS is missing: libcublas.so could not be loaded (install the CUDA toolkit or `pip install nvidia-cublas-cu12`, and put its lib directory on LD_LIBRARY_PATH)".into(),
            ));
        }
        nvrtc::ensure_loaded()?;
        let ctx = CudaContext::new(ordinal).map_err(drv("creating a CUDA context"))?;
        // SAFETY: kiln uses one stream per context and never shares buffers
        // across streams, so cross-stream event tracking is not needed.
        unsafe { ctx.disable_event_tracking() };
        let cc = ctx.compute_capability().map_err(drv("reading the compute capability"))?;
        let name = ctx.name().map_err(drv("reading the device name"))?;
        let stream = ctx.default_stream();
        let blas = CudaBlas::new(stream.clone()).map_err(|e| CudaError(format!("creating a cuBLAS handle: {e}")))?;
        let arch = format!("sm_{}{}", cc.0, cc.1);
        let mut funcs = HashMap::new();
        for src in nvrtc::SOURCES {
            let image = nvrtc::compile_cached(src, &arch)?;
            let module = ctx
                .load_module(cudarc::nvrtc::Ptx::from_binary(image))
                .map_err(drv(&format!("loading kernels/{}", src.file)))?;
            for &f in src.kernels {
                let func = module
                    .load_function(f)
                    .map_err(drv(&format!("kernel `{f}` in kernels/{}", src.file)))?;
                funcs.insert(f, func);
            }
        }
        Ok(Gpu {
            ctx,
            stream,
            blas,
            funcs,
            name,
            cc,
            sync_each: std::env::var_os("KILN_CUDA_SYNC").is_some_and(|v| v != "0"),
        })
    }

    /// Makes this GPU's context current on the calling thread (a no-op when
    /// it already is): the raw driver calls below need it, and the engine may
    /// call from a thread other than the one that opened the GPU.
    pub(crate) fn bind(&self) -> Result<(), CudaError> {
        self.ctx.bind_to_thread().map_err(drv("binding the CUDA context"))
    }

    /// The stream everything runs on.
    pub fn stream(&self) -> &Arc<CudaStream> {
        &self.stream
    }

    /// The cuBLAS handle (bound to [`Gpu::stream`]).
    pub fn blas(&self) -> &CudaBlas {
        &self.blas
    }

    /// Allocates `len` zeroed elements.
    pub fn zeros<T: DeviceRepr + ValidAsZeroBits>(&self, len: usize) -> Result<Buf<T>, CudaError> {
        let slice = self
            .stream
            .alloc_zeros::<T>(len.max(1))
            .map_err(|e| CudaError(format!("allocating {} MiB on the GPU: {e}", (len * std::mem::size_of::<T>()) >> 20)))?;
        let ptr = slice.device_ptr(&self.stream).0;
        Ok(Buf { _slice: slice, ptr, len })
    }

    /// Copies `src` to the device at `dst`.
    pub fn upload<T: DeviceRepr>(&self, dst: u64, src: &[T]) -> Result<(), CudaError> {
        if src.is_empty() {
            return Ok(());
        }
        self.bind()?;
        // SAFETY: the callers pass an address inside a live `Buf` with room for `src`.
        unsafe { cudarc::driver::result::memcpy_htod_async(dst, src, self.stream.cu_stream()) }.map_err(drv("copying to the GPU"))
    }

    /// Copies `dst.len()` elements from the device at `src`; waits for the stream.
    pub fn download<T: DeviceRepr>(&self, dst: &mut [T], src: u64) -> Result<(), CudaError> {
        if dst.is_empty() {
            return Ok(());
        }
        self.bind()?;
        // SAFETY: the callers pass an address inside a live `Buf` holding `dst.len()` elements.
        unsafe { cudarc::driver::result::memcpy_dtoh_async(dst, src, self.stream.cu_stream()) }.map_err(drv("copying from the GPU"))?;
        self.sync()
    }

    /// Sets `bytes` bytes at `dst` to `byte`.
    pub fn memset(&self, dst: u64, byte: u8, bytes: usize) -> Result<(), CudaError> {
        self.bind()?;
        // SAFETY: the callers pass a range inside a live `Buf`.
        unsafe { cudarc::driver::result::memset_d8_async(dst, byte, bytes, self.stream.cu_stream()) }.map_err(drv("memset on the GPU"))
    }

    /// Waits for all queued work and reports any fault it raised.
    pub fn sync(&self) -> Result<(), CudaError> {
        self.stream.synchronize().map_err(drv("GPU work failed"))
    }

    /// Launches kernel `name` on `grid` × `block` threads with `shared` bytes of
    /// dynamic shared memory.
    pub fn launch(&self, name: &'static str, grid: (u32, u32, u32), block: u32, shared: u32, args: &[Arg]) -> Result<(), CudaError> {
        if grid.0 == 0 || grid.1 == 0 || grid.2 == 0 {
            return Ok(()); // an empty batch: nothing to launch
        }
        let func = self
            .funcs
            .get(name)
            .ok_or_else(|| CudaError(format!("kernel `{name}` is not in any kernels/*.cu")))?;
        let mut slots: Vec<u64> = args
            .iter()
            .map(|a| match *a {
                Arg::P(p) => p,
                Arg::I(i) => i as u32 as u64,
                Arg::L(l) => l as u64,
                Arg::F(f) => f.to_bits() as u64,
            })
            .collect();
        let mut ptrs: Vec<*mut c_void> = slots.iter_mut().map(|s| s as *mut u64 as *mut c_void).collect();
        self.bind()?;
        // SAFETY: the argument list matches the kernel's signature (each
        // wrapper in kernels.rs mirrors its kernel), every pointer is a live
        // device allocation, and `slots` outlives the call (the driver copies
        // the parameters at launch).
        unsafe {
            cudarc::driver::result::launch_kernel(func.cu_function(), grid, (block, 1, 1), shared, self.stream.cu_stream(), &mut ptrs)
        }
        .map_err(drv(name))?;
        if self.sync_each {
            self.stream
                .synchronize()
                .map_err(|e| CudaError(format!("kernel `{name}` failed: {e}")))?;
        }
        Ok(())
    }

    /// Total and free device memory in bytes.
    pub fn memory(&self) -> Result<(usize, usize), CudaError> {
        let (free, total) = self.ctx.mem_get_info().map_err(drv("reading GPU memory"))?;
        Ok((total, free))
    }

    /// Records an event now (for timing).
    pub fn event(&self) -> Result<cudarc::driver::CudaEvent, CudaError> {
        self.stream
            .record_event(Some(cudarc::driver::sys::CUevent_flags::CU_EVENT_DEFAULT))
            .map_err(drv("recording an event"))
    }
}
