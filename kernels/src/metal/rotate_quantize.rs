//! Rotate-and-quantize, fake quant and dequantize on Metal: the rotation
//! into an f32 buffer (`hadamard.metal`), then `rotate_quantize.metal`.

use candle_core::backend::BackendStorage;
use candle_core::op::BackpropOp;
use candle_core::{bail, DType, Layout, MetalStorage, Result, Shape, Storage, Tensor};

use super::hadamard::{dtype_name, run as rotate};
use super::{dispatch, pipeline, size, ROTATE_QUANTIZE};
use crate::hadamard::HadamardOp;
use crate::quant::{Bits, Dequantize, QuantConfig, RotateFakeQuant};

#[repr(C)]
#[derive(Clone, Copy)]
struct QuantParams {
    groups: u64,
    group: u32,
    clip: f32,
    qmax: f32,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct DequantParams {
    total: u64,
    group: u32,
}

fn bits_of(b: Bits) -> u32 {
    match b {
        Bits::Int4 => 4,
        Bits::Int8 => 8,
    }
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn quantize(
    op: &HadamardOp,
    qc: &QuantConfig,
    group: usize,
    s: &MetalStorage,
    layout: &Layout,
    rows: usize,
    code_dims: Vec<usize>,
    scale_dims: Vec<usize>,
) -> Result<(Tensor, Tensor)> {
    let dev = s.device().clone();
    let dtype = s.dtype();
    let n = op.plan().n();
    let y = dev.new_buffer(rows * n, DType::F32, "wb_rq_rotated")?;
    let codes = dev.new_buffer(rows * qc.bits.row_bytes(n), DType::U8, "wb_rq_codes")?;
    let scales = dev.new_buffer(rows * (n / group), DType::F32, "wb_rq_scales")?;
    if rows > 0 {
        rotate(
            op,
            &dev,
            s.buffer(),
            layout.start_offset() * dtype.size_in_bytes(),
            dtype,
            &y,
            0,
            DType::F32,
            rows,
        )?;
        let groups = rows * n / group;
        let params = QuantParams {
            groups: groups as u64,
            group: group as u32,
            clip: qc.clip_ratio,
            qmax: qc.bits.qmax(),
        };
        let p = pipeline(
            &dev,
            ROTATE_QUANTIZE,
            &format!("quantize_f32_{}", bits_of(qc.bits)),
        )?;
        dispatch(&dev, &p, size(groups.div_ceil(8), 1), size(256, 1), |e| {
            e.set_input_buffer(0, Some(&y), 0);
            e.set_output_buffer(1, Some(&codes), 0);
            e.set_output_buffer(2, Some(&scales), 0);
            e.set_bytes(3, &params);
        })?;
    }
    let codes_len = rows * qc.bits.row_bytes(n);
    let wrap = |buf, count, dt, dims: Vec<usize>| {
        Tensor::from_storage(
            Storage::Metal(MetalStorage::new(buf, dev.clone(), count, dt)),
            dims,
            BackpropOp::none(),
            false,
        )
    };
    Ok((
        wrap(codes, codes_len, DType::U8, code_dims),
        wrap(scales, rows * (n / group), DType::F32, scale_dims),
    ))
}

pub(crate) fn fake_quant(
    q: &RotateFakeQuant,
    s: &MetalStorage,
    layout: &Layout,
) -> Result<(MetalStorage, Shape)> {
    if !layout.is_contiguous() {
        bail!("rotate_fake_quant: the input must be contiguous");
    }
    let dev = s.device().clone();
    let dtype = s.dtype();
    let n = q.op.plan().n();
    let group = q.cfg.group_len(n)?;
    let elems = layout.shape().elem_count();
    let rows = elems / n;
    let y = dev.new_buffer(elems, DType::F32, "wb_rfq_rotated")?;
    let out = dev.new_buffer(elems, dtype, "wb_rfq")?;
    if rows > 0 {
        rotate(
            &q.op,
            &dev,
            s.buffer(),
            layout.start_offset() * dtype.size_in_bytes(),
            dtype,
            &y,
            0,
            DType::F32,
            rows,
        )?;
        let groups = elems / group;
        let params = QuantParams {
            groups: groups as u64,
            group: group as u32,
            clip: q.cfg.clip_ratio,
            qmax: q.cfg.bits.qmax(),
        };
        let p = pipeline(
            &dev,
            ROTATE_QUANTIZE,
            &format!("fake_f32_{}", dtype_name(dtype)?),
        )?;
        dispatch(&dev, &p, size(groups.div_ceil(8), 1), size(256, 1), |e| {
            e.set_input_buffer(0, Some(&y), 0);
            e.set_output_buffer(1, Some(&out), 0);
            e.set_bytes(2, &params);
        })?;
    }
    Ok((
        MetalStorage::new(out, dev, elems, dtype),
        layout.shape().clone(),
    ))
}

pub(crate) fn dequantize(
    d: &Dequantize,
    s1: &MetalStorage,
    l1: &Layout,
    s2: &MetalStorage,
    l2: &Layout,
) -> Result<(MetalStorage, Shape)> {
    let (rows, group, shape) = d.check(l1, l2)?;
    if s1.dtype() != DType::U8 || s2.dtype() != DType::F32 {
        bail!(
            "dequantize: expected u8 codes and f32 scales, got {:?} and {:?}",
            s1.dtype(),
            s2.dtype()
        );
    }
    let dev = s1.device().clone();
    let total = rows * d.n;
    let out = dev.new_buffer(total, DType::F32, "wb_dequantize")?;
    if total > 0 {
        let params = DequantParams {
            total: total as u64,
            group: group as u32,
        };
        let p = pipeline(
            &dev,
            ROTATE_QUANTIZE,
            &format!("dequantize_{}", bits_of(d.cfg.bits)),
        )?;
        dispatch(&dev, &p, size(total.div_ceil(256), 1), size(256, 1), |e| {
            e.set_input_buffer(0, Some(s1.buffer()), l1.start_offset());
            e.set_input_buffer(1, Some(s2.buffer()), l2.start_offset() * 4);
            e.set_output_buffer(2, Some(&out), 0);
            e.set_bytes(3, &params);
        })?;
    }
    Ok((MetalStorage::new(out, dev, total, DType::F32), shape))
}
