//! Metal glue: MSL sources beside this file, compiled at run time through
//! candle's Metal device (with `common.metal` prepended and fast math off, so
//! IEEE rounding holds: the Gumbel scores must be the CPU's bits), one
//! pipeline cache per device, and [`execute`], which runs the plans of
//! `crate::metal_plan`. The ops' decisions (passes, kernels, grids,
//! threadgroup sizes and memory, parameter bytes, buffer slots) live in
//! those plans, built on every platform; the files here check the tensors
//! (dtypes, layouts), bind them as the plans' inputs and wrap the outputs.
//!
//! Not run here: this machine has no Apple GPU. The sources mirror the CUDA
//! kernels' results (plainer algorithms where Metal's 32 KiB of threadgroup
//! memory or the lack of 64-bit atomics demand it). What is checked without
//! a Mac: CI compiles this code for `aarch64-apple-darwin --features metal`
//! (never run); `tests/msl_check.rs` compiles the MSL as C++ against a
//! stand-in `<metal_stdlib>` and runs `common.metal`'s arithmetic against
//! the Rust reference; `tests/msl_group_check.rs` runs the kernels on the
//! host with threadgroup semantics, executing the same plans as
//! [`execute`], against the CPU. [`execute`] itself and Metal's compiler
//! only run on a Mac, in `tests/gpu_parity.rs` and `tests/gemm_parity.rs`.

pub(crate) mod channel_stats;
pub(crate) mod gemm;
pub(crate) mod gumbel_sample;
pub(crate) mod hadamard;
pub(crate) mod rotate_quantize;

use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use candle_core::{bail, MetalDevice, Result};
use candle_metal_kernels::metal::{Buffer, ComputeCommandEncoder, ComputePipeline};
use objc2_metal::{MTLCompileOptions, MTLSize};

use crate::metal_plan::{Arg, Buf, Module, NewBuffer, Plan, Size, Upload};

const COMMON: &str = include_str!("common.metal");

/// The MSL of `module`.
fn source(module: Module) -> &'static str {
    match module {
        Module::Hadamard => include_str!("hadamard.metal"),
        Module::RotateQuantize => include_str!("rotate_quantize.metal"),
        Module::ChannelStats => include_str!("channel_stats.metal"),
        Module::GemmW8a8 => include_str!("gemm.metal"),
        Module::GumbelSample => include_str!("gumbel_sample.metal"),
    }
}

fn err(what: &str, e: impl std::fmt::Display) -> candle_core::Error {
    candle_core::Error::Msg(format!("wb-kernels metal: {what}: {e}"))
}

type PipelineKey = (candle_core::metal_backend::DeviceId, String);

/// The pipeline of kernel `name` of `module` on `dev`, compiled on first use
/// (per device: libraries and pipelines belong to one MTLDevice).
fn pipeline(dev: &MetalDevice, module: Module, name: &str) -> Result<ComputePipeline> {
    static PIPELINES: Mutex<Option<HashMap<PipelineKey, ComputePipeline>>> = Mutex::new(None);
    static LIBRARIES: Mutex<Option<HashMap<PipelineKey, candle_metal_kernels::metal::Library>>> =
        Mutex::new(None);
    let key = (dev.id(), format!("{}::{name}", module.name()));
    if let Some(p) = PIPELINES
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get_or_insert_with(HashMap::new)
        .get(&key)
    {
        return Ok(p.clone());
    }
    let lib_key = (dev.id(), module.name().to_string());
    let library = {
        let mut libs = LIBRARIES.lock().unwrap_or_else(|e| e.into_inner());
        let libs = libs.get_or_insert_with(HashMap::new);
        match libs.get(&lib_key) {
            Some(l) => l.clone(),
            None => {
                let options = MTLCompileOptions::new();
                #[allow(deprecated)]
                options.setFastMathEnabled(false);
                let src = format!("{COMMON}\n{}", source(module));
                let l = dev
                    .device()
                    .new_library_with_source(&src, Some(&options))
                    .map_err(|e| err(module.name(), e))?;
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

/// Device copies of host arrays (signs, mix matrices, the bucket table,
/// tile maps), one per device and array, kept while the host array lives
/// (held by the cache, so that its address, the key, is not reused).
fn upload<T: Send + Sync + 'static>(dev: &MetalDevice, host: &Arc<[T]>) -> Result<Arc<Buffer>> {
    type Key = (candle_core::metal_backend::DeviceId, usize);
    type Uploads = HashMap<Key, (Box<dyn Any + Send>, Arc<Buffer>)>;
    static CACHE: Mutex<Option<Uploads>> = Mutex::new(None);
    let key = (dev.id(), Arc::as_ptr(host) as *const T as usize);
    let mut guard = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    let cache = guard.get_or_insert_with(HashMap::new);
    if let Some((_, b)) = cache.get(&key) {
        return Ok(b.clone());
    }
    let b = dev.new_buffer_with_data(&host[..])?;
    cache.insert(key, (Box::new(host.clone()), b.clone()));
    Ok(b)
}

fn mtl_size(s: Size) -> MTLSize {
    MTLSize {
        width: s.width,
        height: s.height,
        depth: 1,
    }
}

/// Encodes one dispatch of `threadgroups` groups of `threads` threads; `bind`
/// sets the arguments.
fn dispatch<F: FnOnce(&ComputeCommandEncoder)>(
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

/// Encodes `plan` on `dev`: allocates its outputs and temporaries, uploads
/// its host arrays, then dispatches its passes in order. `inputs[i]` is the
/// plan's input i: a buffer and the byte offset its data starts at. Returns
/// the `N` outputs; the temporaries are released once encoded (the command
/// buffer keeps what it uses alive, as before plans).
pub(crate) fn execute<const N: usize>(
    dev: &MetalDevice,
    plan: &Plan,
    inputs: &[(&Buffer, usize)],
) -> Result<[Arc<Buffer>; N]> {
    if plan.outputs.len() != N {
        bail!(
            "wb-kernels metal: a plan with {} outputs where {N} were expected",
            plan.outputs.len()
        );
    }
    let alloc = |b: &NewBuffer| dev.new_buffer(b.count, b.dtype, b.label);
    let outputs = plan.outputs.iter().map(alloc).collect::<Result<Vec<_>>>()?;
    let temps = plan.temps.iter().map(alloc).collect::<Result<Vec<_>>>()?;
    let uploads = plan
        .uploads
        .iter()
        .map(|u| match u {
            Upload::KeptF32(a) => upload(dev, a),
            Upload::KeptU32(a) => upload(dev, a),
            Upload::OnceU64(v) => dev.new_buffer_with_data(v),
        })
        .collect::<Result<Vec<_>>>()?;
    // A buffer and the byte offset its role starts at.
    let resolve = |b: Buf| -> (&Buffer, usize) {
        match b {
            Buf::Input(i) => inputs[i],
            Buf::Output(i) => (&outputs[i], 0),
            Buf::Temp(i) => (&temps[i], 0),
            Buf::Upload(i) => (&uploads[i], 0),
        }
    };
    for pass in &plan.passes {
        let p = pipeline(dev, pass.module, &pass.kernel)?;
        let (groups, threads) = (mtl_size(pass.threadgroups), mtl_size(pass.threads));
        dispatch(dev, &p, groups, threads, |e| {
            for (slot, arg) in &pass.args {
                match arg {
                    Arg::Read(b, offset) => {
                        let (buf, start) = resolve(*b);
                        e.set_input_buffer(*slot, Some(buf), start + offset);
                    }
                    Arg::Write(b, offset) => {
                        let (buf, start) = resolve(*b);
                        e.set_output_buffer(*slot, Some(buf), start + offset);
                    }
                    Arg::Unread(b) => e.set_input_buffer(*slot, Some(resolve(*b).0), 0),
                    Arg::Bytes(bytes) => {
                        e.set_bytes_directly(*slot, bytes.len(), bytes.as_ptr().cast())
                    }
                }
            }
            for &(slot, length) in &pass.threadgroup_memory {
                e.set_threadgroup_memory_length(slot, length);
            }
        })?;
    }
    Ok(outputs
        .try_into()
        .unwrap_or_else(|_| unreachable!("checked above")))
}
