//! Gumbel sampling on CUDA (kernels in `gumbel_sample.cu`).

use candle_core::backend::BackendStorage;
use candle_core::op::BackpropOp;
use candle_core::{CudaDevice, CudaStorage, Layout, Result, Storage, Tensor};

use super::hadamard::dtype_name;
use super::{alloc, cfg, dptr, launch, storage_ptr, GUMBEL_SAMPLE};
use crate::sample::GumbelSampler;

/// Tokens per block: 256 threads × 4 tokens × 8 rounds; small enough that a
/// batch of 64 rows of 128k tokens makes about 8 blocks per multiprocessor.
const CHUNK: usize = 8192;

#[allow(clippy::too_many_arguments)]
pub(crate) fn sample_with(
    g: &GumbelSampler,
    s: &CudaStorage,
    layout: &Layout,
    batch: usize,
    vocab: usize,
    positions: &[u64],
    exact_only: bool,
) -> Result<(Tensor, Tensor)> {
    let dev: CudaDevice = s.device.clone();
    let t = dtype_name(s.dtype())?;
    let start = layout.start_offset();
    let (x, eb) = storage_ptr(s, start)?;
    let mut pos = alloc::<u64>(&dev, batch)?;
    dev.memcpy_htod(positions, &mut pos)?;
    let pp = dptr(&dev, &pos, 0);
    let thresholds = alloc::<f32>(&dev, batch)?;
    let pt = if let Some(k) = g.top_k {
        let pt = dptr(&dev, &thresholds, 0);
        launch!(
            dev,
            GUMBEL_SAMPLE,
            format!("topk_threshold_{t}"),
            cfg((batch as u32, 1), 1024, 0),
            x,
            pt,
            vocab as u32,
            k.min(u32::MAX as usize) as u32
        );
        pt
    } else {
        0u64
    };
    let keys = dev.alloc_zeros::<u64>(batch)?;
    let pk = dptr(&dev, &keys, 0);
    let (seed_lo, seed_hi) = (g.seed as u32, (g.seed >> 32) as u32);
    let inv_t = g.inv_temperature();
    // Four logits per thread and step: vector loads when rows stay aligned.
    let vec = (vocab.is_multiple_of(4) && (start * eb).is_multiple_of(4 * eb)) as i32;
    let name = if exact_only {
        format!("gumbel_exact_{t}")
    } else {
        format!("gumbel_{t}")
    };
    launch!(
        dev,
        GUMBEL_SAMPLE,
        name,
        cfg((vocab.div_ceil(CHUNK) as u32, batch as u32), 256, 0),
        x,
        pp,
        pt,
        pk,
        vocab as u32,
        CHUNK as u32,
        seed_lo,
        seed_hi,
        g.stream,
        inv_t,
        vec
    );
    let tokens = alloc::<u32>(&dev, batch)?;
    let scores = alloc::<f32>(&dev, batch)?;
    launch!(
        dev,
        GUMBEL_SAMPLE,
        format!("gumbel_finish_{t}"),
        cfg((batch.div_ceil(128) as u32, 1), 128, 0),
        x,
        pp,
        pk,
        dptr(&dev, &tokens, 0),
        dptr(&dev, &scores, 0),
        batch as u32,
        vocab as u32,
        seed_lo,
        seed_hi,
        g.stream,
        inv_t
    );
    let wrap =
        |st: CudaStorage| Tensor::from_storage(Storage::Cuda(st), batch, BackpropOp::none(), false);
    Ok((
        wrap(CudaStorage::wrap_cuda_slice(tokens, dev.clone())),
        wrap(CudaStorage::wrap_cuda_slice(scores, dev.clone())),
    ))
}

pub(crate) fn sample(
    g: &GumbelSampler,
    s: &CudaStorage,
    layout: &Layout,
    batch: usize,
    vocab: usize,
    positions: &[u64],
) -> Result<(Tensor, Tensor)> {
    sample_with(g, s, layout, batch, vocab, positions, false)
}

/// Runs the exhaustive check of the approximate-noise margin on `dev`:
/// (largest |G_approx − G| where trusted, number of untrusted inputs) over
/// all 2^32 inputs.
pub fn margin_check(dev: &CudaDevice) -> Result<(f32, u64)> {
    let out = dev.alloc_zeros::<u32>(2)?;
    let po = dptr(dev, &out, 0);
    let count: u64 = 1 << 32;
    launch!(
        dev,
        GUMBEL_SAMPLE,
        "gumbel_margin_check",
        cfg((132 * 16, 1), 256, 0),
        0u64,
        count,
        po
    );
    let host = dev.clone_dtoh(&out)?;
    Ok((f32::from_bits(host[0]), u64::from(host[1])))
}

/// Device time of the main sampling kernel alone, in ms per launch: CUDA
/// events around `iters` back-to-back launches on buffers set up once, so
/// the per-call allocations, the positions upload and the finishing kernel
/// are left out (they cost more than the kernel at [64, 131072]).
pub(crate) fn main_kernel_ms(
    g: &GumbelSampler,
    s: &CudaStorage,
    layout: &Layout,
    batch: usize,
    vocab: usize,
    positions: &[u64],
    iters: usize,
) -> Result<f64> {
    use candle_core::cuda::cudarc::driver::sys::CUevent_flags;
    use candle_core::cuda::WrapErr;
    let dev: CudaDevice = s.device.clone();
    let t = dtype_name(s.dtype())?;
    let start = layout.start_offset();
    let (x, eb) = storage_ptr(s, start)?;
    let mut pos = alloc::<u64>(&dev, batch)?;
    dev.memcpy_htod(positions, &mut pos)?;
    let pp = dptr(&dev, &pos, 0);
    let keys = dev.alloc_zeros::<u64>(batch)?;
    let pk = dptr(&dev, &keys, 0);
    let (seed_lo, seed_hi) = (g.seed as u32, (g.seed >> 32) as u32);
    let vec = (vocab.is_multiple_of(4) && (start * eb).is_multiple_of(4 * eb)) as i32;
    let stream = dev.cuda_stream();
    let launch_once = || -> Result<()> {
        launch!(
            dev,
            GUMBEL_SAMPLE,
            format!("gumbel_{t}"),
            cfg((vocab.div_ceil(CHUNK) as u32, batch as u32), 256, 0),
            x,
            pp,
            0u64,
            pk,
            vocab as u32,
            CHUNK as u32,
            seed_lo,
            seed_hi,
            g.stream,
            g.inv_temperature(),
            vec
        );
        Ok(())
    };
    launch_once()?;
    let e0 = stream
        .record_event(Some(CUevent_flags::CU_EVENT_DEFAULT))
        .w()?;
    for _ in 0..iters {
        launch_once()?;
    }
    let e1 = stream
        .record_event(Some(CUevent_flags::CU_EVENT_DEFAULT))
        .w()?;
    Ok(f64::from(e0.elapsed_ms(&e1).w()?) / iters as f64)
}
