//! W8A8 GEMM on Metal: the pass of `crate::metal_plan::gemm` (kernel in
//! `gemm.metal`), one threadgroup per 64 × 64 tile in the schedule's order.
//! Not run here (no Apple GPU): `tests/gemm_parity.rs` checks it on a Mac.

use candle_core::backend::BackendStorage;
use candle_core::{bail, DType, Layout, MetalStorage, Result, Shape};

use super::execute;
use crate::gemm::{check_scales, dims, GemmConfig};
use crate::metal_plan;

pub(crate) fn gemm(
    c: &GemmConfig,
    a: &MetalStorage,
    la: &Layout,
    b: &MetalStorage,
    lb: &Layout,
    scales: Option<(&MetalStorage, &Layout)>,
) -> Result<(MetalStorage, Shape)> {
    let (m, n, k) = dims(la, lb)?;
    metal_plan::gemm::check(c)?;
    if a.dtype() != DType::U8 || b.dtype() != DType::U8 {
        bail!("gemm_w8a8: A and B must be u8 (int8 codes)");
    }
    if let Some((s, l)) = scales {
        check_scales(l, m, n)?;
        if s.dtype() != DType::F32 {
            bail!("gemm_w8a8: scales must be f32");
        }
    }
    let dev = a.device().clone();
    let plan = metal_plan::gemm::gemm(c, (m, n, k), scales.is_some())?;
    let mut inputs = vec![
        (a.buffer(), la.start_offset()),
        (b.buffer(), lb.start_offset()),
    ];
    if let Some((s, l)) = scales {
        inputs.push((s.buffer(), l.start_offset() * 4));
    }
    let [out] = execute(&dev, &plan, &inputs)?;
    let dtype = plan.outputs[0].dtype;
    Ok((
        MetalStorage::new(out, dev, m * n, dtype),
        Shape::from((m, n)),
    ))
}
