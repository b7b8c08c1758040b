//! Keyed draws for speculative decoding: Gumbel-max samples and uniforms from
//! Philox, one stream per purpose so that no two draws share noise unless the
//! rule says so.

use wb_kernels::philox;

use crate::model::sample::STREAM_SAMPLE;

/// The target's own sample at a position (shared with plain decoding and with
/// the drafter under the `gumbel` rule).
pub const STREAM_TARGET: u32 = STREAM_SAMPLE;
/// The drafter's independent samples (`standard`, `naive`).
pub const STREAM_DRAFT: u32 = 0x0005_0001;
/// The uniform of the standard rule's accept test.
pub const STREAM_ACCEPT: u32 = 0x0005_0002;
/// The standard rule's residual sample after a rejection.
pub const STREAM_RESIDUAL: u32 = 0x0005_0003;

/// Softmax of `logits / temperature` in f64 (one-hot argmax at T = 0).
pub fn distribution(logits: &[f32], temperature: f64) -> Vec<f64> {
    if temperature == 0.0 {
        let best = argmax(logits.iter().map(|&l| l as f64));
        let mut p = vec![0.0; logits.len()];
        p[best] = 1.0;
        return p;
    }
    let max = logits.iter().cloned().fold(f32::NEG_INFINITY, f32::max) as f64;
    let e: Vec<f64> = logits
        .iter()
        .map(|&l| ((l as f64 - max) / temperature).exp())
        .collect();
    let s: f64 = e.iter().sum();
    e.into_iter().map(|v| v / s).collect()
}

/// Index of the largest value, lowest index on ties.
pub fn argmax(values: impl Iterator<Item = f64>) -> usize {
    let mut best = (f64::NEG_INFINITY, 0);
    for (i, v) in values.enumerate() {
        if v > best.0 {
            best = (v, i);
        }
    }
    best.1
}

/// `argmax(logits / T + G)` with G keyed by (seed, position, token, stream):
/// a sample of softmax(logits / T); the argmax at T = 0. The same formula as
/// [`crate::model::sample::gumbel_sample`], so plain and speculative decoding
/// draw identical tokens from identical logits.
pub fn gumbel_max(logits: &[f32], temperature: f64, seed: u64, position: u64, stream: u32) -> u32 {
    if temperature == 0.0 {
        return argmax(logits.iter().map(|&l| l as f64)) as u32;
    }
    argmax(logits.iter().enumerate().map(|(token, &l)| {
        l as f64 / temperature + philox::gumbel(seed, position, token as u32, stream)
    })) as u32
}

/// A sample of the distribution proportional to `weights` (non-negative), by
/// Gumbel-max on their logarithms.
pub fn sample_weights(weights: &[f64], seed: u64, position: u64, stream: u32) -> u32 {
    argmax(weights.iter().enumerate().map(|(token, &w)| {
        if w > 0.0 {
            w.ln() + philox::gumbel(seed, position, token as u32, stream)
        } else {
            f64::NEG_INFINITY
        }
    })) as u32
}

/// A uniform in (0, 1) keyed by (seed, position, stream).
pub fn uniform(seed: u64, position: u64, stream: u32) -> f64 {
    philox::uniform(seed, position, 0, stream)
}
