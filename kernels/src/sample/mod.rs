//! Gumbel-max sampling keyed by Philox: for each row b of logits
//! `[batch, vocab]`, the token argmax_v (logit_v / T + G(seed, position_b, v)),
//! restricted to the top k logits if asked, and its score.
//!
//! The noise for token v at row b is [`noise::gumbel_f32`] of
//! `philox::bits(seed, position_b, v, stream)` (key = seed, counter =
//! (position, token / 4, stream), lane token % 4; see [`crate::philox`]), so
//! a drafter and a verifier on different devices draw the same noise for the
//! same (seed, position, token) without sharing state. Every backend computes
//! the scores with the same f32 operations (see [`noise`]) and picks the
//! winner by the same total order (highest score, then lowest index; NaN
//! never wins), so tokens and scores are bit-identical across backends and
//! thread counts.
//!
//! Top-k keeps the tokens whose logit is at least the k-th largest logit
//! (NaN logits excluded): ties at the threshold are all kept, so the set is
//! well defined without an order among equal logits. The threshold is found
//! on the logits before the temperature, which does not change the order.

pub mod bound;
mod cpu;
pub mod noise;
#[cfg(test)]
mod tests;

use candle_core::{bail, DType, Device, Result, Storage, Tensor};

pub use cpu::{reference_row, sample_rows};

/// Sampling parameters; the positions come with each call.
#[derive(Clone, Debug, PartialEq)]
pub struct GumbelSampler {
    /// The Philox key.
    pub seed: u64,
    /// The Philox stream (the fourth counter word), separating uses of one seed.
    pub stream: u32,
    /// Temperature T > 0 (finite).
    pub temperature: f32,
    /// Keep only the tokens with the k largest logits (ties kept), if set.
    pub top_k: Option<usize>,
}

/// The result of [`GumbelSampler::sample`].
#[derive(Clone, Debug)]
pub struct Sampled {
    /// The winning token of each row, u32 `[batch]` (u32::MAX for a row with
    /// no candidate, i.e. all logits NaN).
    pub tokens: Tensor,
    /// The winning score `fma(logit, 1/T, G)` of each row, f32 `[batch]`.
    pub scores: Tensor,
}

impl GumbelSampler {
    /// 1/T rounded once to f32 (computed in f64), the factor every backend
    /// multiplies the logits by.
    pub fn inv_temperature(&self) -> f32 {
        (1.0 / f64::from(self.temperature)) as f32
    }

    /// Checks the parameters and the shapes; returns (batch, vocab).
    pub fn check(&self, dims: &[usize], positions: &[u64]) -> Result<(usize, usize)> {
        if !(self.temperature.is_finite() && self.temperature > 0.0) {
            bail!(
                "gumbel_sample: temperature must be finite and positive, got {}",
                self.temperature
            );
        }
        if !self.inv_temperature().is_finite() {
            bail!(
                "gumbel_sample: temperature {} is too small (1/T overflows f32)",
                self.temperature
            );
        }
        if self.top_k == Some(0) {
            bail!("gumbel_sample: top_k must be at least 1");
        }
        let &[batch, vocab] = dims else {
            bail!("gumbel_sample: logits must be [batch, vocab], got shape {dims:?}");
        };
        if vocab == 0 || vocab > u32::MAX as usize / 2 {
            bail!("gumbel_sample: vocabulary size {vocab} must be in 1..2^31");
        }
        if positions.len() != batch {
            bail!(
                "gumbel_sample: {} positions for {batch} rows",
                positions.len()
            );
        }
        Ok((batch, vocab))
    }

    /// Samples one token per row of `logits` (f32, bf16 or f16, `[batch,
    /// vocab]`) at the given positions (one per row), on the logits' device.
    pub fn sample(&self, logits: &Tensor, positions: &[u64]) -> Result<Sampled> {
        let logits = logits.contiguous()?;
        let (batch, vocab) = self.check(logits.dims(), positions)?;
        let (storage, layout) = logits.storage_and_layout();
        let (tokens, scores) = match &*storage {
            Storage::Cpu(s) => {
                let winners = match s {
                    candle_core::CpuStorage::F32(d) => cpu::sample_rows(self, crate::elem::contiguous("gumbel_sample", d, layout)?, vocab, positions),
                    candle_core::CpuStorage::BF16(d) => cpu::sample_rows(self, crate::elem::contiguous("gumbel_sample", d, layout)?, vocab, positions),
                    candle_core::CpuStorage::F16(d) => cpu::sample_rows(self, crate::elem::contiguous("gumbel_sample", d, layout)?, vocab, positions),
                    _ => bail!("gumbel_sample: unsupported dtype {:?}, expected f32, bf16 or f16", logits.dtype()),
                };
                let (t, s): (Vec<u32>, Vec<f32>) = winners.into_iter().unzip();
                (
                    Tensor::from_vec(t, batch, &Device::Cpu)?,
                    Tensor::from_vec(s, batch, &Device::Cpu)?,
                )
            }
            #[cfg(feature = "cuda")]
            Storage::Cuda(s) => crate::cuda::gumbel_sample::sample(self, s, layout, batch, vocab, positions)?,
            #[cfg(feature = "metal")]
            Storage::Metal(s) => crate::metal::gumbel_sample::sample(self, s, layout, batch, vocab, positions)?,
            #[allow(unreachable_patterns)]
            _ => bail!("gumbel_sample: no kernel for {:?} (build wb-kernels with the cuda or metal feature)", logits.device()),
        };
        debug_assert_eq!(tokens.dtype(), DType::U32);
        Ok(Sampled { tokens, scores })
    }

    /// [`Self::sample`] on CUDA without the approximate-noise filter (every
    /// token's exact score), to check that the filter never changes a result.
    #[cfg(feature = "cuda")]
    pub fn sample_cuda_exact_only(&self, logits: &Tensor, positions: &[u64]) -> Result<Sampled> {
        let logits = logits.contiguous()?;
        let (batch, vocab) = self.check(logits.dims(), positions)?;
        let (storage, layout) = logits.storage_and_layout();
        let Storage::Cuda(s) = &*storage else {
            bail!("sample_cuda_exact_only: logits are not on a CUDA device");
        };
        let (tokens, scores) = crate::cuda::gumbel_sample::sample_with(
            self, s, layout, batch, vocab, positions, true,
        )?;
        Ok(Sampled { tokens, scores })
    }
}

/// Device time of the CUDA sampling kernel alone (no top-k), ms per launch
/// over `iters` launches; see `src/cuda/gumbel_sample.rs`. For benchmarks.
#[cfg(feature = "cuda")]
pub fn cuda_main_kernel_ms(
    s: &GumbelSampler,
    logits: &Tensor,
    positions: &[u64],
    iters: usize,
) -> Result<f64> {
    let logits = logits.contiguous()?;
    let (batch, vocab) = s.check(logits.dims(), positions)?;
    let (storage, layout) = logits.storage_and_layout();
    let Storage::Cuda(st) = &*storage else {
        bail!("cuda_main_kernel_ms: logits are not on a CUDA device");
    };
    crate::cuda::gumbel_sample::main_kernel_ms(s, st, layout, batch, vocab, positions, iters)
}

/// The exhaustive check of the CUDA sampler's bucket bounds ([`bound`]):
/// (inputs whose exact noise lies outside its bucket's bounds, smallest
/// distance to a bound) over all 2^32 inputs.
#[cfg(feature = "cuda")]
pub fn cuda_table_check(dev: &candle_core::CudaDevice) -> Result<(u64, f32)> {
    crate::cuda::gumbel_sample::table_check(dev)
}

/// The exhaustive check of the CUDA filter's premise (see
/// `src/cuda/gumbel_sample.cu`): the largest |G_approx − G| over trusted
/// inputs and the count of untrusted ones, over all 2^32 inputs.
#[cfg(feature = "cuda")]
pub fn cuda_margin_check(dev: &candle_core::CudaDevice) -> Result<(f32, u64)> {
    crate::cuda::gumbel_sample::margin_check(dev)
}
