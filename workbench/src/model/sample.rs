//! Sampling tokens from logits with the workbench's keyed Gumbel noise, so that a
//! sampled sequence is a pure function of (seed, position, logits).

use anyhow::Result;
use candle_core::Tensor;
use wb_kernels::philox;

/// Stream of the Gumbel noise used to sample from a model.
pub const STREAM_SAMPLE: u32 = 0x0005_0000;

/// `argmax(logits / T + G)` for each row of `logits` (`[batch, vocab]`), with G
/// keyed by `(seed, positions[row], token)`; `T = 0` takes the plain argmax.
pub fn gumbel_sample(
    logits: &Tensor,
    temperature: f64,
    seed: u64,
    positions: &[u64],
) -> Result<Vec<u32>> {
    let rows = logits.to_vec2::<f32>()?;
    Ok(rows
        .iter()
        .zip(positions)
        .map(|(row, &position)| {
            let mut best = (f64::NEG_INFINITY, 0u32);
            for (token, &l) in row.iter().enumerate() {
                let score = if temperature == 0.0 {
                    l as f64
                } else {
                    l as f64 / temperature
                        + philox::gumbel(seed, position, token as u32, STREAM_SAMPLE)
                };
                if score > best.0 {
                    best = (score, token as u32);
                }
            }
            best.1
        })
        .collect())
}
