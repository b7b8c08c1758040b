//! Gumbel sampling on Metal: the passes of `crate::metal_plan::gumbel_sample`
//! (kernels in `gumbel_sample.metal`).

use candle_core::backend::BackendStorage;
use candle_core::op::BackpropOp;
use candle_core::{DType, Layout, MetalStorage, Result, Storage, Tensor};

use super::execute;
use crate::metal_plan;
use crate::sample::GumbelSampler;

pub(crate) fn sample(
    g: &GumbelSampler,
    s: &MetalStorage,
    layout: &Layout,
    batch: usize,
    vocab: usize,
    positions: &[u64],
) -> Result<(Tensor, Tensor)> {
    let dev = s.device().clone();
    let plan = metal_plan::gumbel_sample::sample(g, s.dtype(), (batch, vocab), positions)?;
    let x = (
        s.buffer(),
        layout.start_offset() * s.dtype().size_in_bytes(),
    );
    let [tokens, scores] = execute(&dev, &plan, &[x])?;
    let wrap = |buf, dt| {
        Tensor::from_storage(
            Storage::Metal(MetalStorage::new(buf, dev.clone(), batch, dt)),
            batch,
            BackpropOp::none(),
            false,
        )
    };
    Ok((wrap(tokens, DType::U32), wrap(scores, DType::F32)))
}
