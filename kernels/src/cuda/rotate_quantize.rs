//! Rotate-and-quantize, fake quant and dequantize on CUDA (kernels in
//! `rotate_quantize.cu`).

use candle_core::backend::BackendStorage;
use candle_core::cuda::cudarc::driver::CudaSlice;
use candle_core::op::BackpropOp;
use candle_core::{bail, CudaDevice, CudaStorage, DType, Layout, Result, Shape, Storage, Tensor};

use super::hadamard::{
    alloc_float, contiguous_input, dtype_name, fwht_shape, fwht_vec, run as rotate,
};
use super::{alloc, cfg, dptr, events_ms, launch, storage_ptr, upload, ROTATE_QUANTIZE};
use crate::hadamard::{Direction, HadamardOp};
use crate::quant::{Bits, Dequantize, QuantConfig, RotateFakeQuant};

fn bits_of(b: Bits) -> u32 {
    match b {
        Bits::Int4 => 4,
        Bits::Int8 => 8,
    }
}

fn signs_ptr(op: &HadamardOp, dev: &candle_core::CudaDevice) -> Result<u64> {
    Ok(match op.signs_arc() {
        Some(s) => dptr(dev, &*upload(dev, s)?, 0),
        None => 0,
    })
}

/// Shared memory of the fused kernels: the butterflies' exchange plus the
/// warps' group maxima (one per 32 vectors of a row).
fn fused_shape(log_n: u32, eb: usize) -> (usize, usize, usize) {
    let (rpb, block, smem) = fwht_shape(log_n, eb);
    let nv = (1usize << log_n) / fwht_vec(log_n, eb);
    (rpb, block, smem + rpb * nv.div_ceil(32) * 4)
}

/// Codes and scales for `rows` rows, and their device addresses.
fn outputs(
    dev: &CudaDevice,
    op: &HadamardOp,
    qc: &QuantConfig,
    group: usize,
    rows: usize,
) -> Result<(CudaSlice<u8>, CudaSlice<f32>, u64, u64)> {
    let n = op.plan().n();
    let codes = alloc::<u8>(dev, rows * qc.bits.row_bytes(n))?;
    let scales = alloc::<f32>(dev, rows * (n / group))?;
    let (pc, ps) = (dptr(dev, &codes, 0), dptr(dev, &scales, 0));
    Ok((codes, scales, pc, ps))
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn quantize(
    op: &HadamardOp,
    qc: &QuantConfig,
    group: usize,
    s: &CudaStorage,
    layout: &Layout,
    rows: usize,
    code_dims: Vec<usize>,
    scale_dims: Vec<usize>,
) -> Result<(Tensor, Tensor)> {
    let dev = s.device.clone();
    let (codes, scales, pc, ps) = outputs(&dev, op, qc, group, rows)?;
    launch_quantize(op, qc, group, s, layout, rows, pc, ps)?;
    let wrap = |st: CudaStorage, dims: Vec<usize>| {
        Tensor::from_storage(Storage::Cuda(st), dims, BackpropOp::none(), false)
    };
    Ok((
        wrap(CudaStorage::wrap_cuda_slice(codes, dev.clone()), code_dims),
        wrap(
            CudaStorage::wrap_cuda_slice(scales, dev.clone()),
            scale_dims,
        ),
    ))
}

/// Device time of [`quantize`]'s kernels alone, ms per call: CUDA events
/// around `iters` calls into codes and scales allocated once, so the output
/// allocations are left out.
pub(crate) fn quantize_kernel_ms(
    op: &HadamardOp,
    qc: &QuantConfig,
    group: usize,
    s: &CudaStorage,
    layout: &Layout,
    rows: usize,
    iters: usize,
) -> Result<f64> {
    let dev = s.device.clone();
    // Kept alive while the kernels write them.
    let (_codes, _scales, pc, ps) = outputs(&dev, op, qc, group, rows)?;
    events_ms(&dev, iters, || {
        launch_quantize(op, qc, group, s, layout, rows, pc, ps)
    })
}

/// Launches the kernels that write `rows` rows' codes and scales to the
/// device addresses `pc` and `ps`.
#[allow(clippy::too_many_arguments)]
fn launch_quantize(
    op: &HadamardOp,
    qc: &QuantConfig,
    group: usize,
    s: &CudaStorage,
    layout: &Layout,
    rows: usize,
    pc: u64,
    ps: u64,
) -> Result<()> {
    let (x, eb) = contiguous_input(s, layout, "rotate_quantize")?;
    let dev = s.device.clone();
    let dtype = s.dtype();
    let plan = op.plan();
    let n = plan.n();
    let bits = bits_of(qc.bits);
    if rows == 0 {
        return Ok(());
    }
    if plan.m() == 1 && n > 1 {
        let log_n = n.trailing_zeros();
        let (rpb, block, smem) = fused_shape(log_n, eb);
        let signs_after = (op.direction() == Direction::Transposed) as i32;
        launch!(
            dev,
            ROTATE_QUANTIZE,
            format!("rq{bits}_{}_{log_n}", dtype_name(dtype)?),
            cfg((rows.div_ceil(rpb) as u32, 1), block as u32, smem as u32),
            x,
            pc,
            ps,
            signs_ptr(op, &dev)?,
            rows as i64,
            plan.scale(),
            signs_after,
            group as i32,
            qc.clip_ratio
        );
    } else {
        let tmp = alloc::<f32>(&dev, rows * n)?;
        let y = dptr(&dev, &tmp, 0);
        rotate(op, &dev, x, dtype, y, DType::F32, rows)?;
        let groups = rows * n / group;
        launch!(
            dev,
            ROTATE_QUANTIZE,
            format!("quantize_f32_{bits}"),
            cfg((groups.div_ceil(8) as u32, 1), 256, 0),
            y,
            pc,
            ps,
            groups as i64,
            group as i32,
            qc.clip_ratio
        );
    }
    Ok(())
}

pub(crate) fn fake_quant(
    q: &RotateFakeQuant,
    s: &CudaStorage,
    layout: &Layout,
) -> Result<(CudaStorage, Shape)> {
    let (x, eb) = contiguous_input(s, layout, "rotate_fake_quant")?;
    let dev = s.device.clone();
    let dtype = s.dtype();
    let plan = q.op.plan();
    let n = plan.n();
    let group = q.cfg.group_len(n)?;
    let elems = layout.shape().elem_count();
    let rows = elems / n;
    let out = alloc_float(&dev, dtype, elems, "rotate_fake_quant")?;
    let out = CudaStorage {
        slice: out,
        device: dev.clone(),
    };
    let (y, _) = storage_ptr(&out, 0)?;
    let qmax = q.cfg.bits.qmax();
    if rows > 0 {
        if plan.m() == 1 && n > 1 {
            let log_n = n.trailing_zeros();
            let (rpb, block, smem) = fused_shape(log_n, eb);
            let signs_after = (q.op.direction() == Direction::Transposed) as i32;
            launch!(
                dev,
                ROTATE_QUANTIZE,
                format!("rfq_{}_{log_n}", dtype_name(dtype)?),
                cfg((rows.div_ceil(rpb) as u32, 1), block as u32, smem as u32),
                x,
                y,
                signs_ptr(&q.op, &dev)?,
                rows as i64,
                plan.scale(),
                signs_after,
                group as i32,
                q.cfg.clip_ratio,
                qmax
            );
        } else {
            let tmp = alloc::<f32>(&dev, elems)?;
            let t = dptr(&dev, &tmp, 0);
            rotate(&q.op, &dev, x, dtype, t, DType::F32, rows)?;
            let groups = elems / group;
            launch!(
                dev,
                ROTATE_QUANTIZE,
                format!("fake_f32_{}", dtype_name(dtype)?),
                cfg((groups.div_ceil(8) as u32, 1), 256, 0),
                t,
                y,
                groups as i64,
                group as i32,
                q.cfg.clip_ratio,
                qmax
            );
        }
    }
    Ok((out, layout.shape().clone()))
}

pub(crate) fn dequantize(
    d: &Dequantize,
    s1: &CudaStorage,
    l1: &Layout,
    s2: &CudaStorage,
    l2: &Layout,
) -> Result<(CudaStorage, Shape)> {
    let (rows, group, shape) = d.check(l1, l2)?;
    if s1.dtype() != DType::U8 || s2.dtype() != DType::F32 {
        bail!(
            "dequantize: expected u8 codes and f32 scales, got {:?} and {:?}",
            s1.dtype(),
            s2.dtype()
        );
    }
    let dev = s1.device.clone();
    let (c, _) = storage_ptr(s1, l1.start_offset())?;
    let (sc, _) = storage_ptr(s2, l2.start_offset())?;
    let total = rows * d.n;
    let out = alloc::<f32>(&dev, total)?;
    let o = dptr(&dev, &out, 0);
    if total > 0 {
        let grid = total.div_ceil(256).min(65_535 * 8) as u32;
        launch!(
            dev,
            ROTATE_QUANTIZE,
            format!("dequantize_{}", bits_of(d.cfg.bits)),
            cfg((grid, 1), 256, 0),
            c,
            sc,
            o,
            total as i64,
            group as i32
        );
    }
    Ok((CudaStorage::wrap_cuda_slice(out, dev), shape))
}
