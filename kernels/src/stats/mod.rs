//! Per-channel statistics of a `[rows, channels]` tensor in one pass:
//! count, mean, and the central power sums M2 = Σ(x−mean)², M3, M4, and absmax.
//!
//! # Representation (why central moments)
//! The kernels produce *partials*: for each block of `block_rows` consecutive
//! rows and each channel, (count, mean, M2, M3, M4, absmax) of that block, in
//! f32 (`[blocks, channels, 6]`). Within a block they use Pébay's (2008)
//! one-value update, which stays accurate where raw power sums Σx^p would
//! cancel catastrophically (a channel with mean 1000 and spread 1 has Σx⁴
//! about 10^12 times its central M4). The partials are merged on the host in
//! f64 with Pébay's pairwise formulas ([`ChannelMoments::merge`]), the same
//! formulas as the workbench's accumulator (`primitives::channel_stats`), so
//! partials from any number of blocks, calls or devices combine into the
//! statistics of the whole stream.
//!
//! NaN values are skipped (not counted); ±inf are counted and make the
//! moments infinite or NaN, and absmax infinite.

mod cpu;
#[cfg(test)]
mod tests;

pub use cpu::reference;

use candle_core::backend::BackendStorage;
use candle_core::{bail, CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};

use crate::elem::{contiguous, unsupported_dtype};

/// Values per channel and partial: count, mean, M2, M3, M4, absmax.
pub const FIELDS: usize = 6;

/// The moments of one channel over some rows, in f64.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ChannelMoments {
    /// Values seen (NaN excluded).
    pub count: f64,
    /// Their mean.
    pub mean: f64,
    /// Σ (x − mean)².
    pub m2: f64,
    /// Σ (x − mean)³.
    pub m3: f64,
    /// Σ (x − mean)⁴.
    pub m4: f64,
    /// Largest |x|.
    pub absmax: f64,
}

impl ChannelMoments {
    /// Pébay's pairwise merge: the moments of the union of two disjoint sets
    /// of values.
    pub fn merge(&mut self, b: &ChannelMoments) {
        if b.count == 0.0 {
            return;
        }
        if self.count == 0.0 {
            *self = *b;
            return;
        }
        let a = *self;
        let (na, nb) = (a.count, b.count);
        let n = na + nb;
        let d = b.mean - a.mean;
        let (d2, d3, d4) = (d * d, d * d * d, d * d * d * d);
        self.count = n;
        self.mean = a.mean + d * nb / n;
        self.m2 = a.m2 + b.m2 + d2 * na * nb / n;
        self.m3 = a.m3
            + b.m3
            + d3 * na * nb * (na - nb) / (n * n)
            + 3.0 * d * (na * b.m2 - nb * a.m2) / n;
        self.m4 = a.m4
            + b.m4
            + d4 * na * nb * (na * na - na * nb + nb * nb) / (n * n * n)
            + 6.0 * d2 * (na * na * b.m2 + nb * nb * a.m2) / (n * n)
            + 4.0 * d * (na * b.m3 - nb * a.m3) / n;
        self.absmax = a.absmax.max(b.absmax);
    }

    /// Sample variance M2 / (count − 1) (NaN below two values).
    pub fn variance(&self) -> f64 {
        if self.count < 2.0 {
            f64::NAN
        } else {
            self.m2 / (self.count - 1.0)
        }
    }

    /// Kurtosis count·M4 / M2² (3 for a Gaussian).
    pub fn kurtosis(&self) -> f64 {
        self.count * self.m4 / (self.m2 * self.m2)
    }

    /// Skewness √count·M3 / M2^1.5.
    pub fn skewness(&self) -> f64 {
        self.count.sqrt() * self.m3 / self.m2.powf(1.5)
    }
}

/// The partials of `x` (`[rows, channels]`; f32, bf16 or f16): f32
/// `[ceil(rows / block_rows), channels, 6]`, see the module docs.
pub fn channel_stats(x: &Tensor, block_rows: usize) -> Result<Tensor> {
    x.contiguous()?
        .apply_op1_no_bwd(&ChannelStats { block_rows })
}

/// Merges partials (as returned by [`channel_stats`], on any device) into
/// one [`ChannelMoments`] per channel, in f64 on the host, block by block in
/// order.
pub fn merge_partials(partials: &Tensor) -> Result<Vec<ChannelMoments>> {
    let &[_, channels, FIELDS] = partials.dims() else {
        bail!(
            "merge_partials: expected [blocks, channels, {FIELDS}], got {:?}",
            partials.dims()
        );
    };
    let flat: Vec<f32> = partials
        .flatten_all()?
        .to_dtype(candle_core::DType::F32)?
        .to_vec1()?;
    let mut out = vec![ChannelMoments::default(); channels];
    for block in flat.chunks_exact(channels * FIELDS) {
        for (m, p) in out.iter_mut().zip(block.chunks_exact(FIELDS)) {
            m.merge(&ChannelMoments {
                count: f64::from(p[0]),
                mean: f64::from(p[1]),
                m2: f64::from(p[2]),
                m3: f64::from(p[3]),
                m4: f64::from(p[4]),
                absmax: f64::from(p[5]),
            });
        }
    }
    Ok(out)
}

/// The op behind [`channel_stats`].
#[derive(Clone, Debug)]
pub struct ChannelStats {
    /// Rows per partial (a block's count is exact in f32 up to 2^24).
    pub block_rows: usize,
}

impl ChannelStats {
    /// (rows, channels, blocks) after checking the layout and block size.
    pub(crate) fn check(&self, layout: &Layout) -> Result<(usize, usize, usize)> {
        let &[rows, channels] = layout.dims() else {
            bail!(
                "channel_stats: expected [rows, channels], got {:?}",
                layout.dims()
            );
        };
        if self.block_rows == 0 || self.block_rows > 1 << 24 {
            bail!(
                "channel_stats: block_rows must be in 1..=2^24, got {}",
                self.block_rows
            );
        }
        if rows == 0 || channels == 0 {
            bail!("channel_stats: empty input {:?}", layout.dims());
        }
        Ok((rows, channels, rows.div_ceil(self.block_rows)))
    }
}

impl CustomOp1 for ChannelStats {
    fn name(&self) -> &'static str {
        "channel_stats"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let (rows, channels, blocks) = self.check(layout)?;
        let mut out = vec![0f32; blocks * channels * FIELDS];
        match storage {
            CpuStorage::F32(d) => cpu::partials(
                contiguous("channel_stats", d, layout)?,
                rows,
                channels,
                self.block_rows,
                &mut out,
            ),
            CpuStorage::BF16(d) => cpu::partials(
                contiguous("channel_stats", d, layout)?,
                rows,
                channels,
                self.block_rows,
                &mut out,
            ),
            CpuStorage::F16(d) => cpu::partials(
                contiguous("channel_stats", d, layout)?,
                rows,
                channels,
                self.block_rows,
                &mut out,
            ),
            other => return unsupported_dtype("channel_stats", other.dtype(), "f32, bf16 or f16"),
        }
        Ok((
            CpuStorage::F32(out),
            Shape::from((blocks, channels, FIELDS)),
        ))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        storage: &candle_core::CudaStorage,
        layout: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        crate::cuda::channel_stats::partials(self, storage, layout)
    }

    #[cfg(feature = "metal")]
    fn metal_fwd(
        &self,
        storage: &candle_core::MetalStorage,
        layout: &Layout,
    ) -> Result<(candle_core::MetalStorage, Shape)> {
        crate::metal::channel_stats::partials(self, storage, layout)
    }
}
