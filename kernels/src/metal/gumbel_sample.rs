//! Gumbel sampling on Metal (kernels in `gumbel_sample.metal`).

use candle_core::backend::BackendStorage;
use candle_core::op::BackpropOp;
use candle_core::{DType, Layout, MetalStorage, Result, Storage, Tensor};

use super::hadamard::dtype_name;
use super::{dispatch, pipeline, size, upload, GUMBEL_SAMPLE};
use crate::sample::GumbelSampler;

/// Tokens per threadgroup.
const CHUNK: usize = 8192;

#[repr(C)]
#[derive(Clone, Copy)]
struct GumbelParams {
    vocab: u32,
    chunk: u32,
    chunks: u32,
    seed_lo: u32,
    seed_hi: u32,
    stream: u32,
    has_thr: u32,
    inv_t: f32,
}

pub(crate) fn sample(
    g: &GumbelSampler,
    s: &MetalStorage,
    layout: &Layout,
    batch: usize,
    vocab: usize,
    positions: &[u64],
) -> Result<(Tensor, Tensor)> {
    let dev = s.device().clone();
    let t = dtype_name(s.dtype())?;
    let x_off = layout.start_offset() * s.dtype().size_in_bytes();
    let pos = dev.new_buffer_with_data(positions)?;
    let chunks = vocab.div_ceil(CHUNK);
    let thresholds = dev.new_buffer(batch, DType::F32, "wb_topk")?;
    if let Some(k) = g.top_k {
        let p = pipeline(&dev, GUMBEL_SAMPLE, &format!("topk_threshold_{t}"))?;
        let (v, k) = (vocab as u32, k.min(u32::MAX as usize) as u32);
        dispatch(&dev, &p, size(batch, 1), size(1024, 1), |e| {
            e.set_input_buffer(0, Some(s.buffer()), x_off);
            e.set_output_buffer(1, Some(&thresholds), 0);
            e.set_bytes(2, &v);
            e.set_bytes(3, &k);
        })?;
    }
    let params = GumbelParams {
        vocab: vocab as u32,
        chunk: CHUNK as u32,
        chunks: chunks as u32,
        seed_lo: g.seed as u32,
        seed_hi: (g.seed >> 32) as u32,
        stream: g.stream,
        has_thr: g.top_k.is_some() as u32,
        inv_t: g.inv_temperature(),
    };
    let pscore = dev.new_buffer(batch * chunks, DType::F32, "wb_gumbel_pscore")?;
    let ptoken = dev.new_buffer(batch * chunks, DType::U32, "wb_gumbel_ptoken")?;
    let tab = upload(&dev, &crate::sample::bound::bucket_table())?;
    let p = pipeline(&dev, GUMBEL_SAMPLE, &format!("gumbel_partial_{t}"))?;
    dispatch(&dev, &p, size(chunks, batch), size(256, 1), |e| {
        e.set_input_buffer(0, Some(s.buffer()), x_off);
        e.set_input_buffer(1, Some(&pos), 0);
        e.set_input_buffer(2, Some(&thresholds), 0);
        e.set_output_buffer(3, Some(&pscore), 0);
        e.set_output_buffer(4, Some(&ptoken), 0);
        e.set_bytes(5, &params);
        e.set_input_buffer(6, Some(&*tab), 0);
    })?;
    let tokens = dev.new_buffer(batch, DType::U32, "wb_gumbel_tokens")?;
    let scores = dev.new_buffer(batch, DType::F32, "wb_gumbel_scores")?;
    let rows = batch as u32;
    let p = pipeline(&dev, GUMBEL_SAMPLE, "gumbel_finish")?;
    dispatch(&dev, &p, size(batch.div_ceil(64), 1), size(64, 1), |e| {
        e.set_input_buffer(0, Some(&pscore), 0);
        e.set_input_buffer(1, Some(&ptoken), 0);
        e.set_output_buffer(2, Some(&tokens), 0);
        e.set_output_buffer(3, Some(&scores), 0);
        e.set_bytes(4, &params);
        e.set_bytes(5, &rows);
    })?;
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
