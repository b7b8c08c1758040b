//! Gumbel sampling (`gumbel_sample.metal`): the top-k thresholds (one
//! threadgroup of 1024 per row) when asked, the best token of each chunk of
//! a row, then the best of each row.

use candle_core::{DType, Result};

use super::{dtype_name, params, size, Arg, Buf, Module, Pass, Plan, Upload};
use crate::sample::GumbelSampler;

/// Tokens per threadgroup of the partial pass.
pub const CHUNK: usize = 8192;

params!(
    /// `GumbelParams` of `gumbel_sample.metal`.
    GumbelParams {
        vocab: u32,
        chunk: u32,
        chunks: u32,
        seed_lo: u32,
        seed_hi: u32,
        stream: u32,
        has_thr: u32,
        inv_t: f32,
    }
);

/// The plan of `GumbelSampler::sample` of input 0, `[batch, vocab]` logits
/// in `dtype`: output 0, the tokens (u32), and output 1, their scores (f32).
pub fn sample(
    g: &GumbelSampler,
    dtype: DType,
    (batch, vocab): (usize, usize),
    positions: &[u64],
) -> Result<Plan> {
    sample_in_chunks(g, dtype, (batch, vocab), positions, CHUNK)
}

/// [`sample`] with `chunk` tokens a threadgroup instead of [`CHUNK`]: the
/// host emulator's tests use short chunks to reach chunk edges in small
/// vocabularies.
pub fn sample_in_chunks(
    g: &GumbelSampler,
    dtype: DType,
    (batch, vocab): (usize, usize),
    positions: &[u64],
    chunk: usize,
) -> Result<Plan> {
    let t = dtype_name(dtype)?;
    let mut plan = Plan::default();
    let logits = Buf::Input(0);
    let pos = plan.upload(Upload::OnceU64(positions.to_vec()));
    let chunks = vocab.div_ceil(chunk);
    let thresholds = plan.temp(batch, DType::F32, "wb_topk");
    if let Some(k) = g.top_k {
        plan.passes.push(Pass {
            module: Module::GumbelSample,
            kernel: format!("topk_threshold_{t}"),
            threadgroups: size(batch, 1),
            threads: size(1024, 1),
            args: vec![
                (0, Arg::Read(logits, 0)),
                (1, Arg::Write(thresholds, 0)),
                (2, Arg::u32(vocab as u32)),
                (3, Arg::u32(k.min(u32::MAX as usize) as u32)),
            ],
            threadgroup_memory: vec![],
        });
    }
    let params = GumbelParams {
        vocab: vocab as u32,
        chunk: chunk as u32,
        chunks: chunks as u32,
        seed_lo: g.seed as u32,
        seed_hi: (g.seed >> 32) as u32,
        stream: g.stream,
        has_thr: g.top_k.is_some() as u32,
        inv_t: g.inv_temperature(),
    };
    let pscore = plan.temp(batch * chunks, DType::F32, "wb_gumbel_pscore");
    let ptoken = plan.temp(batch * chunks, DType::U32, "wb_gumbel_ptoken");
    let table = plan.upload(Upload::KeptF32(crate::sample::bound::bucket_table()));
    plan.passes.push(Pass {
        module: Module::GumbelSample,
        kernel: format!("gumbel_partial_{t}"),
        threadgroups: size(chunks, batch),
        threads: size(256, 1),
        args: vec![
            (0, Arg::Read(logits, 0)),
            (1, Arg::Read(pos, 0)),
            (2, Arg::Read(thresholds, 0)),
            (3, Arg::Write(pscore, 0)),
            (4, Arg::Write(ptoken, 0)),
            (5, Arg::Bytes(params.bytes())),
            (6, Arg::Read(table, 0)),
        ],
        threadgroup_memory: vec![],
    });
    let tokens = plan.output(batch, DType::U32, "wb_gumbel_tokens");
    let scores = plan.output(batch, DType::F32, "wb_gumbel_scores");
    plan.passes.push(Pass {
        module: Module::GumbelSample,
        kernel: "gumbel_finish".into(),
        threadgroups: size(batch.div_ceil(64), 1),
        threads: size(64, 1),
        args: vec![
            (0, Arg::Read(pscore, 0)),
            (1, Arg::Read(ptoken, 0)),
            (2, Arg::Write(tokens, 0)),
            (3, Arg::Write(scores, 0)),
            (4, Arg::Bytes(params.bytes())),
            (5, Arg::u32(batch as u32)),
        ],
        threadgroup_memory: vec![],
    });
    Ok(plan)
}
