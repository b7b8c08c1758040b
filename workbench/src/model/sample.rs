//! Sampling tokens from logits with the workbench's keyed Gumbel noise, so that a
//! sampled sequence is a pure function of (seed, position, logits).
//!
//! The draw is the `gumbel_sample` kernel of `wb-kernels` (Philox4x32-10 noise
//! in f32, score `fma(logit, 1/T, G)`), so a sequence sampled here is the one a
//! CUDA or Metal device samples from the same logits, token for token.

use anyhow::Result;
use candle_core::{Tensor, D};
use wb_kernels::sample::GumbelSampler;

/// Stream of the Gumbel noise used to sample from a model.
pub const STREAM_SAMPLE: u32 = 0x0005_0000;

/// Revision of the sampling noise, part of the name of every cached sampled
/// corpus: 2 is the kernel's f32 noise (1 was an f64 formula, which picks a
/// different token only where two scores agree to about 1e-6).
pub const NOISE_REVISION: u32 = 2;

/// The kernel sampler for `temperature` (> 0) on stream `stream`.
pub fn sampler(seed: u64, stream: u32, temperature: f64) -> GumbelSampler {
    GumbelSampler {
        seed,
        stream,
        temperature: temperature as f32,
        top_k: None,
    }
}

/// `argmax(logits / T + G)` for each row of `logits` (`[batch, vocab]`), with G
/// keyed by `(seed, positions[row], token)`; `T = 0` takes the plain argmax.
pub fn gumbel_sample(
    logits: &Tensor,
    temperature: f64,
    seed: u64,
    positions: &[u64],
) -> Result<Vec<u32>> {
    if temperature == 0.0 {
        return Ok(logits.argmax(D::Minus1)?.to_vec1::<u32>()?);
    }
    let drawn = sampler(seed, STREAM_SAMPLE, temperature).sample(logits, positions)?;
    Ok(drawn.tokens.to_vec1::<u32>()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;
    use wb_kernels::{philox, sample::noise};

    /// The kernel's draw is the token maximising the f32 score built from
    /// Philox bits keyed by (seed, position, token), row by row.
    #[test]
    fn rows_are_keyed_gumbel_max_draws() {
        let (batch, vocab) = (5, 300);
        let values: Vec<f32> = (0..batch * vocab)
            .map(|i| ((i * 7919) % 1000) as f32 / 250.0 - 2.0)
            .collect();
        let logits = Tensor::from_vec(values.clone(), (batch, vocab), &Device::Cpu).unwrap();
        let positions = [3u64, 3, 17, 1 << 40, 0];
        let t = 0.7;
        let got = gumbel_sample(&logits, t, 42, &positions).unwrap();
        let inv_t = (1.0 / (t as f32) as f64) as f32;
        for (b, &position) in positions.iter().enumerate() {
            let row = &values[b * vocab..(b + 1) * vocab];
            let score = |v: usize| {
                noise::score(
                    row[v],
                    inv_t,
                    philox::bits(42, position, v as u32, STREAM_SAMPLE),
                )
            };
            let best = (0..vocab)
                .max_by(|&a, &b| score(a).total_cmp(&score(b)).then(b.cmp(&a)))
                .unwrap();
            assert_eq!(got[b] as usize, best, "row {b}");
        }
        // Equal positions and logits give equal tokens; T = 0 is the argmax.
        let greedy = gumbel_sample(&logits, 0.0, 42, &positions).unwrap();
        for (b, &g) in greedy.iter().enumerate() {
            let row = &values[b * vocab..(b + 1) * vocab];
            let max = row.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
            assert_eq!(row[g as usize], max);
        }
    }
}
