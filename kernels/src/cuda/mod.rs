//! CUDA glue: PTX built from the `.cu` files beside this one by `build.rs`,
//! loaded once per device through candle's module cache
//! ([`CudaDevice::get_or_load_custom_func`]), and launch helpers.
//!
//! Kernels take raw device pointers: all work runs on the device's one
//! stream, in order, so candle's per-buffer event tracking has nothing to
//! add.

pub(crate) mod channel_stats;
pub(crate) mod gemm;
pub mod gumbel_sample;
pub mod hadamard;
pub(crate) mod rotate_quantize;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use candle_core::cuda::cudarc::driver::{CudaSlice, DevicePtr, DeviceRepr, LaunchConfig};
use candle_core::cuda::CudaStorageSlice;
use candle_core::{bail, CudaDevice, CudaStorage, Result};

/// (module name, PTX) of each source file.
pub(crate) const HADAMARD: (&str, &str) = (
    "wb_hadamard",
    include_str!(concat!(env!("OUT_DIR"), "/hadamard.ptx")),
);
pub(crate) const ROTATE_QUANTIZE: (&str, &str) = (
    "wb_rotate_quantize",
    include_str!(concat!(env!("OUT_DIR"), "/rotate_quantize.ptx")),
);
pub(crate) const CHANNEL_STATS: (&str, &str) = (
    "wb_channel_stats",
    include_str!(concat!(env!("OUT_DIR"), "/channel_stats.ptx")),
);
pub(crate) const GEMM_W8A8: (&str, &str) = (
    "wb_gemm_w8a8",
    include_str!(concat!(env!("OUT_DIR"), "/gemm_w8a8.ptx")),
);
pub(crate) const GUMBEL_SAMPLE: (&str, &str) = (
    "wb_gumbel_sample",
    include_str!(concat!(env!("OUT_DIR"), "/gumbel_sample.ptx")),
);

/// The device address of element `offset` of a slice.
pub(crate) fn dptr<T: DeviceRepr>(dev: &CudaDevice, s: &CudaSlice<T>, offset: usize) -> u64 {
    let stream = dev.cuda_stream();
    let (p, _sync) = s.device_ptr(&stream);
    p + (offset * std::mem::size_of::<T>()) as u64
}

/// The device address of element `offset` of a storage of any dtype, and
/// the element size.
pub(crate) fn storage_ptr(s: &CudaStorage, offset: usize) -> Result<(u64, usize)> {
    let d = &s.device;
    Ok(match &s.slice {
        CudaStorageSlice::F32(x) => (dptr(d, x, offset), 4),
        CudaStorageSlice::BF16(x) => (dptr(d, x, offset), 2),
        CudaStorageSlice::F16(x) => (dptr(d, x, offset), 2),
        CudaStorageSlice::U8(x) => (dptr(d, x, offset), 1),
        CudaStorageSlice::U32(x) => (dptr(d, x, offset), 4),
        _ => bail!("wb-kernels: unsupported CUDA dtype"),
    })
}

/// A launch shape.
pub(crate) fn cfg(grid: (u32, u32), block: u32, smem: u32) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (grid.0, grid.1, 1),
        block_dim: (block, 1, 1),
        shared_mem_bytes: smem,
    }
}

/// Launches `name` from `module` with the given arguments (each a
/// `DeviceRepr` value: device addresses as u64, sizes, scalars).
macro_rules! launch {
    ($dev:expr, $module:expr, $name:expr, $cfg:expr, $($arg:expr),* $(,)?) => {{
        #[allow(unused_imports)]
        use candle_core::cuda::cudarc::driver::PushKernelArg;
        #[allow(unused_imports)]
        use candle_core::cuda::WrapErr;
        let func = $dev.get_or_load_custom_func(&$name, $module.0, $module.1)?;
        let cfg: candle_core::cuda::cudarc::driver::LaunchConfig = $cfg;
        if cfg.shared_mem_bytes > 48 * 1024 {
            func.set_attribute(
                candle_core::cuda::cudarc::driver::sys::CUfunction_attribute::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                cfg.shared_mem_bytes as i32,
            )
            .w()?;
        }
        let mut b = func.builder();
        $( let arg = $arg; b.arg(&arg); )*
        // SAFETY: the argument list matches the kernel's signature in the .cu
        // file (checked by the GPU parity tests), and every address points into
        // a live allocation of the size the kernel indexes.
        unsafe { b.launch(cfg) }.w()?;
    }};
}
pub(crate) use launch;

/// Device copies of host arrays (signs, mix matrices), one per device and
/// array, kept while the host array lives (the cache holds it, so its address
/// is never reused for other data).
type UploadKey = (candle_core::cuda::DeviceId, usize);
type Uploads = HashMap<UploadKey, (Arc<[f32]>, Arc<CudaSlice<f32>>)>;

pub(crate) fn upload(dev: &CudaDevice, host: &Arc<[f32]>) -> Result<Arc<CudaSlice<f32>>> {
    static CACHE: Mutex<Option<Uploads>> = Mutex::new(None);
    let key = (dev.id(), Arc::as_ptr(host) as *const f32 as usize);
    let mut guard = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    let cache = guard.get_or_insert_with(HashMap::new);
    if let Some((_, d)) = cache.get(&key) {
        return Ok(d.clone());
    }
    let mut d = unsafe { dev.alloc::<f32>(host.len().max(1)) }?;
    dev.memcpy_htod(&host[..], &mut d)?;
    let d = Arc::new(d);
    cache.insert(key, (host.clone(), d.clone()));
    Ok(d)
}

/// Device time of `launch` in ms per call: CUDA events around `iters` calls
/// after one warm-up call, on the device's stream (for benchmarks of the
/// kernels alone).
pub(crate) fn events_ms<F: FnMut() -> Result<()>>(
    dev: &CudaDevice,
    iters: usize,
    mut launch: F,
) -> Result<f64> {
    use candle_core::cuda::cudarc::driver::sys::CUevent_flags;
    use candle_core::cuda::WrapErr;
    launch()?;
    let stream = dev.cuda_stream();
    let e0 = stream
        .record_event(Some(CUevent_flags::CU_EVENT_DEFAULT))
        .w()?;
    for _ in 0..iters {
        launch()?;
    }
    let e1 = stream
        .record_event(Some(CUevent_flags::CU_EVENT_DEFAULT))
        .w()?;
    Ok(f64::from(e0.elapsed_ms(&e1).w()?) / iters.max(1) as f64)
}

/// The device's multiprocessor count.
pub(crate) fn multiprocessors(dev: &CudaDevice) -> Result<usize> {
    use candle_core::cuda::cudarc::driver::sys::CUdevice_attribute;
    use candle_core::cuda::WrapErr;
    Ok(dev
        .cuda_stream()
        .context()
        .attribute(CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)
        .w()? as usize)
}

/// Fresh device memory of `len` elements (uninitialised: the kernels write
/// every element they are responsible for, which the parity tests check by
/// poisoning freed memory first).
pub(crate) fn alloc<T: DeviceRepr>(dev: &CudaDevice, len: usize) -> Result<CudaSlice<T>> {
    // SAFETY: the memory is written by a kernel before anything reads it.
    unsafe { dev.alloc::<T>(len.max(1)) }
}
