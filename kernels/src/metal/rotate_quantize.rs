//! Rotate-and-quantize, fake quant and dequantize on Metal: the passes of
//! `crate::metal_plan::rotate_quantize` (the rotation into an f32 buffer
//! with `hadamard.metal`, then `rotate_quantize.metal`).

use candle_core::backend::BackendStorage;
use candle_core::op::BackpropOp;
use candle_core::{bail, DType, Layout, MetalStorage, Result, Shape, Storage, Tensor};

use super::execute;
use crate::hadamard::HadamardOp;
use crate::metal_plan;
use crate::quant::{Dequantize, QuantConfig, RotateFakeQuant};

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
    let plan = metal_plan::rotate_quantize::quantize(op, qc, group, dtype, rows)?;
    let x = (s.buffer(), layout.start_offset() * dtype.size_in_bytes());
    let [codes, scales] = execute(&dev, &plan, &[x])?;
    let wrap = |buf, i: usize, dims: Vec<usize>| {
        let out = &plan.outputs[i];
        Tensor::from_storage(
            Storage::Metal(MetalStorage::new(buf, dev.clone(), out.count, out.dtype)),
            dims,
            BackpropOp::none(),
            false,
        )
    };
    Ok((wrap(codes, 0, code_dims), wrap(scales, 1, scale_dims)))
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
    let elems = layout.shape().elem_count();
    let rows = elems / q.op.plan().n();
    let plan = metal_plan::rotate_quantize::fake_quant(&q.op, &q.cfg, dtype, rows)?;
    let x = (s.buffer(), layout.start_offset() * dtype.size_in_bytes());
    let [out] = execute(&dev, &plan, &[x])?;
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
    let plan = metal_plan::rotate_quantize::dequantize(d.cfg.bits, d.n, group, rows);
    let codes = (s1.buffer(), l1.start_offset());
    let scales = (s2.buffer(), l2.start_offset() * 4);
    let [out] = execute(&dev, &plan, &[codes, scales])?;
    Ok((MetalStorage::new(out, dev, rows * d.n, DType::F32), shape))
}
