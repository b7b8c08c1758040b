//! Metal glue: MSL sources beside this file, compiled at run time through
//! candle's Metal device (with `common.metal` prepended and fast math off, so
//! IEEE rounding holds: the Gumbel scores must be the CPU's bits), one
//! pipeline cache per device, and encoding helpers.
//!
//! Not run here: this machine has no Apple GPU. The sources mirror the CUDA
//! kernels' results (plainer algorithms where Metal's 32 KiB of threadgroup
//! memory or the lack of 64-bit atomics demand it); CI keeps the Rust side
//! compiling for `aarch64-apple-darwin --features metal`, compiles the MSL
//! as C++ against a stand-in `<metal_stdlib>` and runs `common.metal`'s
//! arithmetic against the Rust reference (`tests/msl_check.rs`), and
//! `tests/gpu_parity.rs` runs the same parity tests as on CUDA on a Mac.

pub(crate) mod channel_stats;
pub(crate) mod gemm;
pub(crate) mod gumbel_sample;
pub(crate) mod hadamard;
pub(crate) mod rotate_quantize;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use candle_core::{MetalDevice, Result};
use candle_metal_kernels::metal::{Buffer, ComputeCommandEncoder, ComputePipeline};
use objc2_metal::{MTLCompileOptions, MTLSize};

const COMMON: &str = include_str!("common.metal");
/// (library name, MSL) of each op.
pub(crate) const HADAMARD: (&str, &str) = ("hadamard", include_str!("hadamard.metal"));
pub(crate) const ROTATE_QUANTIZE: (&str, &str) =
    ("rotate_quantize", include_str!("rotate_quantize.metal"));
pub(crate) const CHANNEL_STATS: (&str, &str) =
    ("channel_stats", include_str!("channel_stats.metal"));
pub(crate) const GEMM_W8A8: (&str, &str) = ("gemm_w8a8", include_str!("gemm.metal"));
pub(crate) const GUMBEL_SAMPLE: (&str, &str) =
    ("gumbel_sample", include_str!("gumbel_sample.metal"));

fn err(what: &str, e: impl std::fmt::Display) -> candle_core::Error {
    candle_core::Error::Msg(format!("wb-kernels metal: {what}: {e}"))
}

type PipelineKey = (candle_core::metal_backend::DeviceId, String);

/// The pipeline of kernel `name` of `module` on `dev`, compiled on first use
/// (per device: libraries and pipelines belong to one MTLDevice).
pub(crate) fn pipeline(
    dev: &MetalDevice,
    module: (&str, &str),
    name: &str,
) -> Result<ComputePipeline> {
    static PIPELINES: Mutex<Option<HashMap<PipelineKey, ComputePipeline>>> = Mutex::new(None);
    static LIBRARIES: Mutex<Option<HashMap<PipelineKey, candle_metal_kernels::metal::Library>>> =
        Mutex::new(None);
    let key = (dev.id(), format!("{}::{name}", module.0));
    if let Some(p) = PIPELINES
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get_or_insert_with(HashMap::new)
        .get(&key)
    {
        return Ok(p.clone());
    }
    let lib_key = (dev.id(), module.0.to_string());
    let library = {
        let mut libs = LIBRARIES.lock().unwrap_or_else(|e| e.into_inner());
        let libs = libs.get_or_insert_with(HashMap::new);
        match libs.get(&lib_key) {
            Some(l) => l.clone(),
            None => {
                let options = MTLCompileOptions::new();
                #[allow(deprecated)]
                options.setFastMathEnabled(false);
                let src = format!("{COMMON}\n{}", module.1);
                let l = dev
                    .device()
                    .new_library_with_source(&src, Some(&options))
                    .map_err(|e| err(module.0, e))?;
                libs.insert(lib_key, l.clone());
                l
            }
        }
    };
    let function = library.get_function(name, None).map_err(|e| err(name, e))?;
    let p = dev
        .device()
        .new_compute_pipeline_state_with_function(&function)
        .map_err(|e| err(name, e))?;
    PIPELINES
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get_or_insert_with(HashMap::new)
        .insert(key, p.clone());
    Ok(p)
}

/// Device copies of host arrays (signs, mix matrices), one per device and
/// array, kept while the host array lives (held by the cache).
pub(crate) fn upload(dev: &MetalDevice, host: &Arc<[f32]>) -> Result<Arc<Buffer>> {
    type Key = (candle_core::metal_backend::DeviceId, usize);
    type Uploads = HashMap<Key, (Arc<[f32]>, Arc<Buffer>)>;
    static CACHE: Mutex<Option<Uploads>> = Mutex::new(None);
    let key = (dev.id(), Arc::as_ptr(host) as *const f32 as usize);
    let mut guard = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    let cache = guard.get_or_insert_with(HashMap::new);
    if let Some((_, b)) = cache.get(&key) {
        return Ok(b.clone());
    }
    let b = dev.new_buffer_with_data(&host[..])?;
    cache.insert(key, (host.clone(), b.clone()));
    Ok(b)
}

/// A 1-, 2- or 3-d size.
pub(crate) fn size(w: usize, h: usize) -> MTLSize {
    MTLSize {
        width: w,
        height: h,
        depth: 1,
    }
}

/// Encodes one dispatch of `threadgroups` groups of `threads` threads; `bind`
/// sets the arguments.
pub(crate) fn dispatch<F: FnOnce(&ComputeCommandEncoder)>(
    dev: &MetalDevice,
    p: &ComputePipeline,
    threadgroups: MTLSize,
    threads: MTLSize,
    bind: F,
) -> Result<()> {
    let guard = dev.command_encoder()?;
    let enc: &ComputeCommandEncoder = guard.as_ref();
    enc.set_compute_pipeline_state(p);
    bind(enc);
    enc.dispatch_thread_groups(threadgroups, threads);
    Ok(())
}
