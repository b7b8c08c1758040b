//! The Hadamard transform on CUDA (kernels in `hadamard.cu`).

use candle_core::backend::BackendStorage;
use candle_core::cuda::CudaStorageSlice;
use candle_core::{bail, CudaDevice, CudaStorage, DType, Layout, Result, Shape};

use super::{alloc, cfg, dptr, launch, multiprocessors, storage_ptr, upload, HADAMARD};
use crate::hadamard::{Direction, HadamardOp};

/// The butterfly kernels' launch shape, as `FwhtCfg` in `fwht.cuh` computes
/// it: (rows per block, threads per block, shared bytes).
pub(crate) fn fwht_shape(log_n: u32, elem_bytes: usize) -> (usize, usize, usize) {
    fwht_shape_x(log_n, elem_bytes, 0)
}

/// [`fwht_shape`] with `extra` doublings of the elements per thread.
pub(crate) fn fwht_shape_x(log_n: u32, elem_bytes: usize, extra: u32) -> (usize, usize, usize) {
    let n = 1usize << log_n;
    let log_vec = if elem_bytes == 4 { 2 } else { 3 };
    let log_v = log_n.min(log_vec);
    let log_ept_min = if log_n >= 5 { (log_n - 4) / 2 } else { 0 };
    let ept = 1usize << (log_ept_min.max(log_v) + extra).min(log_n);
    let tpr = n / ept;
    let w = if tpr >= 32 { tpr / 32 } else { 1 };
    let rpb = if tpr >= 256 { 1 } else { 256 / tpr };
    let smem = if w > 1 { rpb * n * 4 } else { 0 };
    (rpb, rpb * tpr, smem)
}

/// The transpose kernels' launch shape (`FwhtT` in `fwht_t.cuh`): 32
/// elements per thread, 256 threads per block or one row.
pub(crate) fn fwht_t_shape(log_n: u32) -> (usize, usize, usize) {
    let n = 1usize << log_n;
    let tpr = n / 32;
    let rpb = if tpr >= 256 { 1 } else { 256 / tpr };
    (rpb, rpb * tpr, rpb * n * 4)
}

/// The staged kernels' launch shape (`FwhtS` in `fwht_s.cuh`): 32 elements
/// per thread, 256 threads per block or one row; shared memory for `stages`
/// padded row stages (and, for 16-bit rows, one f32 working buffer).
pub(crate) fn fwht_s_shape(log_n: u32, elem_bytes: usize, stages: usize) -> (usize, usize, usize) {
    let n = 1usize << log_n;
    let tpr = n / 32;
    let rpb = if tpr >= 256 { 1 } else { 256 / tpr };
    let ns = n + n / 32;
    let work = if elem_bytes == 4 {
        0
    } else {
        rpb * (n + n / 8 + n / 32) * 4
    };
    (rpb, rpb * tpr, stages * rpb * ns * elem_bytes + work)
}

/// Whether `hadamard_s<stages>_<dtype>_<log_n>` exists (hadamard.cu).
fn staged_exists(dtype: DType, log_n: u32, stages: usize) -> bool {
    match dtype {
        DType::F32 => {
            (10..=13).contains(&log_n) && (2..=4).contains(&stages)
                || log_n == 14 && (2..=3).contains(&stages)
        }
        DType::BF16 => (10..=14).contains(&log_n) && (2..=4).contains(&stages),
        _ => false,
    }
}

/// Blocks of `name` resident per multiprocessor times the multiprocessors:
/// the persistent grid (cached per device and kernel).
fn persistent_grid(dev: &CudaDevice, name: &str, block: usize, smem: usize) -> Result<usize> {
    use candle_core::cuda::cudarc::driver::sys;
    use candle_core::cuda::WrapErr;
    type Key = (candle_core::cuda::DeviceId, String);
    static CACHE: std::sync::Mutex<Option<std::collections::HashMap<Key, usize>>> =
        std::sync::Mutex::new(None);
    let key = (dev.id(), name.to_string());
    if let Some(&g) = CACHE
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get_or_insert_with(Default::default)
        .get(&key)
    {
        return Ok(g);
    }
    let func = dev.get_or_load_custom_func(name, HADAMARD.0, HADAMARD.1)?;
    if smem > 48 * 1024 {
        func.set_attribute(
            sys::CUfunction_attribute::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
            smem as i32,
        )
        .w()?;
    }
    let per_sm = func
        .occupancy_max_active_blocks_per_multiprocessor(block as u32, smem, None)
        .w()? as usize;
    let sms = multiprocessors(dev)?;
    if per_sm == 0 {
        bail!(
            "hadamard: {name} cannot be resident ({block} threads, {smem} bytes of shared memory)"
        );
    }
    let g = per_sm * sms;
    CACHE
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get_or_insert_with(Default::default)
        .insert(key, g);
    Ok(g)
}

/// The per-element vector width of the butterfly kernels (elements).
pub(crate) fn fwht_vec(log_n: u32, elem_bytes: usize) -> usize {
    1 << log_n.min(if elem_bytes == 4 { 2 } else { 3 })
}

pub(crate) fn dtype_name(dtype: DType) -> Result<&'static str> {
    Ok(match dtype {
        DType::F32 => "f32",
        DType::BF16 => "bf16",
        DType::F16 => "f16",
        other => bail!("unsupported dtype {other:?}, expected f32, bf16 or f16"),
    })
}

/// Cached device copies of an op's signs and mix matrix (0 where absent).
fn device_arrays(op: &HadamardOp, dev: &CudaDevice) -> Result<(u64, u64)> {
    let signs = match op.signs_arc() {
        Some(s) => dptr(dev, &*upload(dev, s)?, 0),
        None => 0,
    };
    let mix = if op.plan().m() > 1 {
        dptr(
            dev,
            &*upload(dev, op.plan().gpu_mix_matrix(op.direction()))?,
            0,
        )
    } else {
        0
    };
    Ok((signs, mix))
}

/// The power-of-two kernel variant, for benchmarks and parity tests: 0 the
/// base kernel; 1 or 2 extra doublings of the elements per thread (f32→f32
/// and bf16→bf16, n = 2^8 .. 2^15); 3 the software-pipelined kernel; 4 the
/// shared-memory transpose kernel (`fwht_t.cuh`; same dtype in and out,
/// n = 2^10 .. 2^15); 5, 6, 7 the staged transpose kernel with 2, 3, 4
/// stages (`fwht_s.cuh`; f32 or bf16 in and out, n = 2^10 .. 2^14 where the
/// stages fit in shared memory). Where a variant does not apply the base
/// kernel runs.
/// Not for normal use.
#[doc(hidden)]
pub static EPT_SHIFT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(AUTO);

/// [`EPT_SHIFT`]'s default: the variant measured fastest for each case.
#[doc(hidden)]
pub const AUTO: u32 = u32::MAX;

/// The variant used by default, from H100 measurements (notes in
/// `kernels/gpu/README.md`, in place, fractions of copy bandwidth): one
/// extra doubling for bf16 rows of 512 (0.81 instead of 0.68; 0.90–0.91
/// instead of 0.75 since the outputs are stored 16 bytes at a time); the staged
/// kernel for bf16 rows of 2^10 .. 2^13 with two stages (0.88–0.90 instead
/// of 0.68–0.74) and 2^14 with four (0.83 instead of 0.66), and for f32
/// rows of 2^14 with three (0.92 instead of 0.77); the base kernel
/// elsewhere (f32 2^10 .. 2^13: 0.94–0.98 against the staged kernel's
/// 0.92–0.93).
fn default_variant(dtype: DType, log_s: u32) -> u32 {
    match (dtype, log_s) {
        (DType::BF16, 9) => 1,
        (DType::BF16, 10..=13) => 5,
        (DType::BF16, 14) => 7,
        (DType::F32, 14) => 6,
        _ => 0,
    }
}

/// Transforms `rows` rows at device address `x` (dtype `dtype`) into `y`
/// (dtype `out`, may equal `x`); `tmp` is an f32 scratch of the same element
/// count when m > 1 and `out` is not f32.
#[allow(clippy::too_many_arguments)]
pub(crate) fn run(
    op: &HadamardOp,
    dev: &CudaDevice,
    x: u64,
    dtype: DType,
    y: u64,
    out: DType,
    rows: usize,
) -> Result<()> {
    let plan = op.plan();
    let (n, m, s) = (plan.n(), plan.m(), plan.s());
    let log_s = s.trailing_zeros();
    let (signs, mix) = device_arrays(op, dev)?;
    let fwd_signs = if op.direction() == Direction::Forward {
        signs
    } else {
        0
    };
    let in_bytes = dtype.size_in_bytes();
    let (rpb, block, smem) = fwht_shape(log_s, in_bytes);
    let tin = super::hadamard::dtype_name(dtype)?;
    if m == 1 {
        let shift = match EPT_SHIFT.load(std::sync::atomic::Ordering::Relaxed) {
            AUTO => default_variant(dtype, log_s),
            v => v.min(7),
        };
        let same = dtype == out && matches!(dtype, DType::F32 | DType::BF16);
        let pipelined = shift == 3
            && same
            && match dtype {
                DType::F32 => (13..=15).contains(&log_s),
                _ => (11..=15).contains(&log_s),
            };
        let variant = (1..=2).contains(&shift) && same && (8..=15).contains(&log_s);
        let transpose = shift == 4 && dtype == out && (10..=15).contains(&log_s);
        let stages = shift.saturating_sub(3) as usize;
        let staged = shift >= 5 && dtype == out && staged_exists(dtype, log_s, stages);
        let (name, block, smem, grid) = if staged {
            let (rpb, block, smem) = fwht_s_shape(log_s, in_bytes, stages);
            let name = format!("hadamard_s{stages}_{tin}_{log_s}");
            let grid = persistent_grid(dev, &name, block, smem)?.min(rows.div_ceil(rpb));
            (name, block, smem, grid)
        } else if transpose {
            let (rpb, block, smem) = fwht_t_shape(log_s);
            (
                format!("hadamard_t_{tin}_{log_s}"),
                block,
                smem,
                rows.div_ceil(rpb),
            )
        } else if pipelined {
            // Persistent blocks: two per multiprocessor at most.
            let sms = multiprocessors(dev).unwrap_or(132);
            (
                format!("hadamard_p_{tin}_{log_s}"),
                block,
                smem,
                rows.min(2 * sms),
            )
        } else if variant {
            let (rpb, block, smem) = fwht_shape_x(log_s, in_bytes, shift);
            (
                format!("hadamard_x{shift}_{tin}_{log_s}"),
                block,
                smem,
                rows.div_ceil(rpb),
            )
        } else {
            let name = format!("hadamard_{tin}_{}_{log_s}", dtype_name(out)?);
            (name, block, smem, rows.div_ceil(rpb))
        };
        let signs_after = (op.direction() == Direction::Transposed) as i32;
        launch!(
            dev,
            HADAMARD,
            name,
            cfg((grid as u32, 1), block as u32, smem as u32),
            x,
            y,
            signs,
            rows as i64,
            plan.scale(),
            signs_after,
            1i32
        );
        return Ok(());
    }
    // Butterflies of every length-s chunk into f32 (unscaled), then the mix.
    let tmp_holder;
    let mid = if out == DType::F32 {
        y
    } else {
        tmp_holder = alloc::<f32>(dev, rows * n)?;
        dptr(dev, &tmp_holder, 0)
    };
    let chunks = rows * m;
    let grid = chunks.div_ceil(rpb) as u32;
    launch!(
        dev,
        HADAMARD,
        format!("hadamard_{tin}_f32_{log_s}"),
        cfg((grid, 1), block as u32, smem as u32),
        x,
        mid,
        fwd_signs,
        chunks as i64,
        1.0f32,
        0i32,
        m as i32
    );
    let m8 = m.div_ceil(8) * 8;
    let after = (op.direction() == Direction::Transposed) as i32;
    let cols = rows * s;
    launch!(
        dev,
        HADAMARD,
        format!("mix_{}", dtype_name(out)?),
        cfg((cols.div_ceil(32) as u32, 1), 256, (m * 32 * 4) as u32),
        mid,
        y,
        mix,
        signs,
        rows as i64,
        m as i32,
        m8 as i32,
        s as i32,
        plan.scale(),
        after
    );
    Ok(())
}

/// The device address and element size of a contiguous input that starts on
/// a 16-byte boundary (the kernels' vector loads); `what` names the op in
/// errors.
pub(crate) fn contiguous_input(
    s: &CudaStorage,
    layout: &Layout,
    what: &str,
) -> Result<(u64, usize)> {
    let (start, _) = layout
        .contiguous_offsets()
        .ok_or_else(|| candle_core::Error::Msg(format!("{what}: the input must be contiguous")))?;
    let (x, eb) = storage_ptr(s, start)?;
    if !(start * eb).is_multiple_of(16) {
        bail!("{what}: the CUDA input must start on a 16-byte boundary (copy the tensor first)");
    }
    Ok((x, eb))
}

/// An uninitialised buffer of `elems` elements of `dtype` (f32, bf16 or
/// f16) on `dev`.
pub(crate) fn alloc_float(
    dev: &CudaDevice,
    dtype: DType,
    elems: usize,
    what: &str,
) -> Result<CudaStorageSlice> {
    Ok(match dtype {
        DType::F32 => CudaStorageSlice::F32(alloc::<f32>(dev, elems)?),
        DType::BF16 => CudaStorageSlice::BF16(alloc::<half::bf16>(dev, elems)?),
        DType::F16 => CudaStorageSlice::F16(alloc::<half::f16>(dev, elems)?),
        other => bail!("{what}: unsupported dtype {other:?}, expected f32, bf16 or f16"),
    })
}

pub(crate) fn forward(
    op: &HadamardOp,
    storage: &CudaStorage,
    layout: &Layout,
) -> Result<(CudaStorage, Shape)> {
    let (x, _) = contiguous_input(storage, layout, "hadamard")?;
    let dev = storage.device.clone();
    let dtype = storage.dtype();
    let elems = layout.shape().elem_count();
    let rows = elems / op.plan().n();
    let out = alloc_float(&dev, dtype, elems, "hadamard")?;
    let out = CudaStorage {
        slice: out,
        device: dev.clone(),
    };
    let (y, _) = storage_ptr(&out, 0)?;
    if rows > 0 {
        run(op, &dev, x, dtype, y, dtype, rows)?;
    }
    Ok((out, layout.shape().clone()))
}

pub(crate) fn inplace(op: &HadamardOp, storage: &mut CudaStorage, layout: &Layout) -> Result<()> {
    let (x, _) = contiguous_input(storage, layout, "hadamard")?;
    let dev = storage.device.clone();
    let dtype = storage.dtype();
    let rows = layout.shape().elem_count() / op.plan().n();
    if rows > 0 {
        run(op, &dev, x, dtype, x, dtype, rows)?;
    }
    Ok(())
}
