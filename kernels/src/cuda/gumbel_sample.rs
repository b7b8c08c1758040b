//! Gumbel sampling on CUDA (kernels in `gumbel_sample.cu`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use candle_core::backend::BackendStorage;
use candle_core::cuda::cudarc::driver::{CudaSlice, DeviceRepr};
use candle_core::op::BackpropOp;
use candle_core::{CudaDevice, CudaStorage, Layout, Result, Storage, Tensor};

use super::hadamard::dtype_name;
use super::{
    alloc, cfg, dptr, events_ms, launch, multiprocessors, storage_ptr, upload, GUMBEL_SAMPLE,
};
use crate::philox::{W0, W1};
use crate::sample::GumbelSampler;

/// Tokens per block of the approximate-noise and two-pass kernels: 256
/// threads × 4 tokens × 16 steps; a batch of 64 rows of 128k tokens makes 512
/// blocks, one wave at four blocks per multiprocessor.
const CHUNK: usize = 16384;

/// Tokens per block of the bits filter (`gumbel_bits_*`) for `rows` rows of
/// `vocab` tokens on `sms` multiprocessors: about two blocks a
/// multiprocessor (the kernel's launch bounds), in whole steps of the block
/// (4096 tokens), at most 8 steps. Each block pays a fixed price (the bucket
/// table, the first step's bound with no bar yet, the end), so fewer,
/// longer blocks win while the grid still fills the GPU: H100, [64, 131072]
/// f32, kernel 19.9–20.4 µs at 16384 tokens a block (512 blocks), 18.8–19.4
/// at 32768 (256 blocks), 24.7–25.1 at 8192, 22.5–23.4 at 49152–65536
/// (tuning runs of 2026-11-26, before the row bar was read a step ahead).
fn bits_chunk(rows: usize, vocab: usize, sms: usize) -> usize {
    const STEP: usize = 4096;
    let per_block = (rows * vocab).div_ceil(2 * sms.max(1));
    per_block.div_ceil(STEP).clamp(1, 8) * STEP
}

/// The filter of the sampling kernel, for benchmarks and parity tests: 0
/// the approximate noise alone (`gumbel_*`); 1, 2, 3 the two-pass filter on
/// the bucket bounds first (`gumbel_tab2_*`: 16 tokens a thread and step;
/// `gumbel_tab2p2_*`: 8, the next step's logits loaded ahead;
/// `gumbel_tab2p4_*`: 16, likewise); 4 the filter on the Philox bits
/// (`gumbel_bits_*`, `gumbel_prefilter.cuh`); see `gumbel_sample.cu`. Not
/// for normal use.
#[doc(hidden)]
pub static FILTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(AUTO);

/// [`FILTER`]'s default: [`DEFAULT_FILTER`].
#[doc(hidden)]
pub const AUTO: u32 = u32::MAX;

/// The filter used by default, from H100 measurements (kernels/gpu/README.md):
/// the filter on the Philox bits, [64, 131072] f32 14.3–14.9 µs a kernel in
/// the seventh round's runs (the two-pass filters 1–3 23.1–23.6, the
/// approximate noise alone 31.1–31.5); bf16 15.6–15.9 (two-pass 23.9–25.0).
const DEFAULT_FILTER: u32 = 4;

/// Rows per launch: their positions travel as kernel parameters (`MAXR` in
/// `gumbel_sample.cu`).
const MAXR: usize = 128;

/// `GumbelArgs` of `gumbel_sample.cu`: positions and Philox round keys.
#[repr(C)]
#[derive(Clone, Copy)]
struct GumbelArgs {
    pos: [u64; MAXR],
    k0: [u32; 10],
    k1: [u32; 10],
}

// SAFETY: plain old data with the layout of the CUDA struct (repr(C), u64
// array first, then two u32 arrays), passed by value as a kernel parameter.
unsafe impl DeviceRepr for GumbelArgs {}

impl GumbelArgs {
    fn new(seed: u64) -> Self {
        let (mut k0, mut k1) = ([0u32; 10], [0u32; 10]);
        let (mut a, mut b) = (seed as u32, (seed >> 32) as u32);
        for r in 0..10 {
            k0[r] = a;
            k1[r] = b;
            a = a.wrapping_add(W0);
            b = b.wrapping_add(W1);
        }
        GumbelArgs {
            pos: [0; MAXR],
            k0,
            k1,
        }
    }
}

/// Words between two rows' bars (`BAR_STRIDE` in `gumbel_prefilter.cuh`).
const BAR_STRIDE: usize = 16;

/// Per-device scratch kept between calls: a 16-byte word per row, the best
/// key and the count of blocks that offered one (zero between calls: the
/// kernel's last block of each row resets it), the row's shared bar (`RowBar` in `gumbel_prefilter.cuh`: words
/// tagged by the launch's epoch, so nothing resets them), the top-k
/// thresholds and the bucket table.
///
/// Their device addresses are taken once, when the scratch is made: each
/// `device_ptr` on candle's stream costs two stream operations (a wait for
/// the slice's last write, a record of a read), eight a call here before.
/// Only this module's kernels touch these buffers, all on the device's one
/// stream, whose order already orders them.
struct Scratch {
    rows: usize,
    epoch: u32,
    /// Multiprocessors of the device (for [`bits_chunk`]).
    sms: usize,
    ptr: ScratchPtrs,
    // The buffers behind `ptr`, kept alive.
    _keys: CudaSlice<u64>,
    _bars: CudaSlice<u64>,
    _thresholds: CudaSlice<f32>,
    _table: Arc<CudaSlice<f32>>,
}

/// Device addresses of a [`Scratch`]'s buffers.
#[derive(Clone, Copy)]
struct ScratchPtrs {
    keys: u64,
    bars: u64,
    thresholds: u64,
    table: u64,
}

impl Scratch {
    fn new(dev: &CudaDevice, rows: usize) -> Result<Self> {
        // Two words a row, 16-byte aligned (a 128-bit atomic).
        let keys = dev.alloc_zeros::<u64>(2 * rows)?;
        let bars = dev.alloc_zeros::<u64>(rows * BAR_STRIDE)?;
        let thresholds = alloc::<f32>(dev, rows)?;
        let table = upload(dev, &crate::sample::bound::bucket_table())?;
        let ptr = ScratchPtrs {
            keys: dptr(dev, &keys, 0),
            bars: dptr(dev, &bars, 0),
            thresholds: dptr(dev, &thresholds, 0),
            table: dptr(dev, &*table, 0),
        };
        Ok(Scratch {
            rows,
            epoch: 0,
            sms: multiprocessors(dev).unwrap_or(132),
            ptr,
            _keys: keys,
            _bars: bars,
            _thresholds: thresholds,
            _table: table,
        })
    }

    /// A fresh epoch for the next launch. Epoch 0 is what zeroed words
    /// carry, so it is never handed out; when the counter wraps, the bars
    /// are allocated zeroed again, so that a word left by a launch 2^32 launches ago
    /// cannot pass for the current one.
    fn next_epoch(&mut self, dev: &CudaDevice) -> Result<u32> {
        self.epoch = self.epoch.wrapping_add(1);
        if self.epoch == 0 {
            self._bars = dev.alloc_zeros::<u64>(self.rows * BAR_STRIDE)?;
            self.ptr.bars = dptr(dev, &self._bars, 0);
            self.epoch = 1;
        }
        Ok(self.epoch)
    }
}

type ScratchMap = HashMap<candle_core::cuda::DeviceId, Scratch>;

/// The scratch of `dev` with room for `rows` rows. The lock is held for the
/// whole call, so a concurrent call can neither share nor free it.
fn scratch<'a>(
    guard: &'a mut MutexGuard<'static, Option<ScratchMap>>,
    dev: &CudaDevice,
    rows: usize,
) -> Result<&'a mut Scratch> {
    let map = guard.get_or_insert_with(HashMap::new);
    let fresh = map.get(&dev.id()).is_none_or(|s| s.rows < rows);
    if fresh {
        let rows = rows.next_power_of_two().max(64);
        map.insert(dev.id(), Scratch::new(dev, rows)?);
    }
    Ok(map.get_mut(&dev.id()).expect("inserted above"))
}

static SCRATCH: Mutex<Option<ScratchMap>> = Mutex::new(None);

/// Launches the sampling kernel (with `exact_only`, its variant without the
/// approximate-noise filter) over all rows, `MAXR` rows per launch.
#[allow(clippy::too_many_arguments)]
fn launch_main(
    g: &GumbelSampler,
    dev: &CudaDevice,
    t: &str,
    x: u64,
    eb: usize,
    vec: i32,
    sc: &mut Scratch,
    thresholds: bool,
    tokens: u64,
    scores: u64,
    batch: usize,
    vocab: usize,
    positions: &[u64],
    exact_only: bool,
) -> Result<()> {
    let filter = match FILTER.load(std::sync::atomic::Ordering::Relaxed) {
        AUTO => DEFAULT_FILTER,
        v => v.min(4),
    };
    let name = match (exact_only, filter) {
        (true, _) => format!("gumbel_exact_{t}"),
        (false, 0) => format!("gumbel_{t}"),
        (false, 1) => format!("gumbel_tab2_{t}"),
        (false, 2) => format!("gumbel_tab2p2_{t}"),
        (false, 3) => format!("gumbel_tab2p4_{t}"),
        (false, _) => format!("gumbel_bits_{t}"),
    };
    let chunk = if !exact_only && filter == 4 {
        bits_chunk(batch.min(MAXR), vocab, sc.sms)
    } else {
        CHUNK
    };
    let mut args = GumbelArgs::new(g.seed);
    for r0 in (0..batch).step_by(MAXR) {
        let rows = (batch - r0).min(MAXR);
        args.pos[..rows].copy_from_slice(&positions[r0..r0 + rows]);
        let pt = if thresholds {
            sc.ptr.thresholds + (r0 * 4) as u64
        } else {
            0u64
        };
        let epoch = sc.next_epoch(dev)?;
        launch!(
            dev,
            GUMBEL_SAMPLE,
            name,
            cfg((vocab.div_ceil(chunk) as u32, rows as u32), 256, 0),
            x + (r0 * vocab * eb) as u64,
            pt,
            sc.ptr.keys + (r0 * 16) as u64,
            sc.ptr.bars + (r0 * BAR_STRIDE * 8) as u64,
            epoch,
            tokens + (r0 * 4) as u64,
            scores + (r0 * 4) as u64,
            vocab as u32,
            chunk as u32,
            g.stream,
            g.inv_temperature(),
            vec,
            sc.ptr.table,
            args
        );
    }
    Ok(())
}

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
    let mut guard = SCRATCH.lock().unwrap_or_else(|e| e.into_inner());
    let sc = scratch(&mut guard, &dev, batch)?;
    if let Some(k) = g.top_k {
        launch!(
            dev,
            GUMBEL_SAMPLE,
            format!("topk_threshold_{t}"),
            cfg((batch as u32, 1), 1024, 0),
            x,
            sc.ptr.thresholds,
            vocab as u32,
            k.min(u32::MAX as usize) as u32
        );
    }
    // Four logits per thread and step: vector loads when rows stay aligned.
    let vec = (vocab.is_multiple_of(4) && (start * eb).is_multiple_of(4 * eb)) as i32;
    let tokens = alloc::<u32>(&dev, batch)?;
    let scores = alloc::<f32>(&dev, batch)?;
    launch_main(
        g,
        &dev,
        t,
        x,
        eb,
        vec,
        sc,
        g.top_k.is_some(),
        dptr(&dev, &tokens, 0),
        dptr(&dev, &scores, 0),
        batch,
        vocab,
        positions,
        exact_only,
    )?;
    drop(guard);
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

/// Runs the exhaustive check of the bucket bounds on `dev`: (inputs whose
/// exact noise lies outside its bucket's bounds, smallest distance to a
/// bound) over all 2^32 inputs.
pub fn table_check(dev: &CudaDevice) -> Result<(u64, f32)> {
    let tab = upload(dev, &crate::sample::bound::bucket_table())?;
    let mut out = dev.alloc_zeros::<u32>(2)?;
    dev.memcpy_htod(&[0u32, f32::INFINITY.to_bits()], &mut out)?;
    let po = dptr(dev, &out, 0);
    let count: u64 = 1 << 32;
    launch!(
        dev,
        GUMBEL_SAMPLE,
        "gumbel_table_check",
        cfg((132 * 16, 1), 256, 0),
        dptr(dev, &*tab, 0),
        0u64,
        count,
        po
    );
    let host = dev.clone_dtoh(&out)?;
    Ok((u64::from(host[0]), f32::from_bits(host[1])))
}

/// Device time of the sampling kernel alone, in ms per launch: CUDA events
/// around `iters` back-to-back launches into outputs allocated once, so the
/// per-call output allocations and host work are left out.
pub(crate) fn main_kernel_ms(
    g: &GumbelSampler,
    s: &CudaStorage,
    layout: &Layout,
    batch: usize,
    vocab: usize,
    positions: &[u64],
    iters: usize,
) -> Result<f64> {
    let dev: CudaDevice = s.device.clone();
    let t = dtype_name(s.dtype())?;
    let start = layout.start_offset();
    let (x, eb) = storage_ptr(s, start)?;
    let vec = (vocab.is_multiple_of(4) && (start * eb).is_multiple_of(4 * eb)) as i32;
    let tokens = alloc::<u32>(&dev, batch)?;
    let scores = alloc::<f32>(&dev, batch)?;
    let (pt, ps) = (dptr(&dev, &tokens, 0), dptr(&dev, &scores, 0));
    let mut guard = SCRATCH.lock().unwrap_or_else(|e| e.into_inner());
    let sc = scratch(&mut guard, &dev, batch)?;
    events_ms(&dev, iters, || {
        launch_main(
            g, &dev, t, x, eb, vec, sc, false, pt, ps, batch, vocab, positions, false,
        )
    })
}
