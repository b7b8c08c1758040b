//! Streaming per-channel statistics of activations and weights, in mergeable
//! accumulators: chunks processed in parallel and merged give the same answer as
//! one pass (up to float rounding), so statistics over long token streams can be
//! split across threads and runs.
//!
//! Moments use Pébay's (2008) one-pass update and merge formulas for the mean and
//! the second to fourth central moments; |x| is also counted above fixed
//! thresholds (exact) and in a log-spaced histogram (quantiles to within one bin,
//! a factor 2^(1/8) ≈ 9%).

use anyhow::{bail, Result};
use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};
use wb_kernels::stats as stats_kernel;

/// Rows per partial of the `channel_stats` kernel: long enough to amortise the
/// merge, short enough that its f32 accumulation stays near f32 rounding.
const KERNEL_BLOCK_ROWS: usize = 256;

/// Thresholds on |x| counted exactly: 6 is LLM.int8()'s outlier magnitude, 100 the
/// scale of "massive activations" (Sun et al. 2024).
pub const THRESHOLDS: [f64; 4] = [1.0, 6.0, 20.0, 100.0];

/// Histogram bins per octave of |x|.
const BINS_PER_OCTAVE: i32 = 8;
/// Smallest and largest octave covered (|x| outside goes to the end bins).
const MIN_OCTAVE: i32 = -24;
const MAX_OCTAVE: i32 = 24;
const BINS: usize = ((MAX_OCTAVE - MIN_OCTAVE) * BINS_PER_OCTAVE) as usize + 1;

/// Moments and magnitude counts of one channel.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Moments {
    /// Values seen.
    pub count: u64,
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
    /// Values with |x| ≥ each of [`THRESHOLDS`].
    pub above: [u64; 4],
    /// Counts of |x| in log-spaced bins (bin 0: |x| below 2^MIN_OCTAVE, zeros included).
    pub histogram: Vec<u64>,
}

impl Default for Moments {
    fn default() -> Self {
        Moments {
            count: 0,
            mean: 0.0,
            m2: 0.0,
            m3: 0.0,
            m4: 0.0,
            absmax: 0.0,
            above: [0; 4],
            histogram: vec![0; BINS],
        }
    }
}

fn bin_of(a: f64) -> usize {
    // Zero and NaN fall in the lowest bin.
    if a.is_nan() || a <= 0.0 {
        return 0;
    }
    let b = ((a.log2() - MIN_OCTAVE as f64) * BINS_PER_OCTAVE as f64).floor();
    b.clamp(0.0, (BINS - 1) as f64) as usize
}

/// Lower edge of histogram bin `b ≥ 1` on the |x| axis (bin 0 starts at zero).
pub fn bin_lower_edge(b: usize) -> f64 {
    2f64.powf(MIN_OCTAVE as f64 + b as f64 / BINS_PER_OCTAVE as f64)
}

/// Upper edge of bin `b` on the |x| axis.
fn bin_upper(b: usize) -> f64 {
    2f64.powf(MIN_OCTAVE as f64 + (b as f64 + 1.0) / BINS_PER_OCTAVE as f64)
}

impl Moments {
    /// Adds one value.
    pub fn push(&mut self, x: f64) {
        let single = Moments {
            count: 1,
            mean: x,
            absmax: x.abs(),
            above: THRESHOLDS.map(|t| (x.abs() >= t) as u64),
            histogram: {
                let mut h = vec![0; BINS];
                h[bin_of(x.abs())] = 1;
                h
            },
            ..Moments::default()
        };
        self.merge(&single);
    }

    /// Adds the moments (count, mean, central sums, absmax) of values whose
    /// magnitude counts are added separately.
    fn merge_moments(&mut self, k: &stats_kernel::ChannelMoments) {
        if k.count == 0.0 {
            return;
        }
        let other = Moments {
            count: k.count as u64,
            mean: k.mean,
            m2: k.m2,
            m3: k.m3,
            m4: k.m4,
            absmax: k.absmax,
            above: [0; 4],
            histogram: Vec::new(),
        };
        let (above, histogram) = (self.above, std::mem::take(&mut self.histogram));
        self.merge(&other);
        self.above = above;
        self.histogram = histogram;
    }

    /// Adds everything `other` saw (Pébay's pairwise formulas).
    pub fn merge(&mut self, other: &Moments) {
        if other.count == 0 {
            return;
        }
        if self.count == 0 {
            *self = other.clone();
            return;
        }
        let (na, nb) = (self.count as f64, other.count as f64);
        let n = na + nb;
        let d = other.mean - self.mean;
        let (d2, d3, d4) = (d * d, d * d * d, d * d * d * d);
        let m2 = self.m2 + other.m2 + d2 * na * nb / n;
        let m3 = self.m3
            + other.m3
            + d3 * na * nb * (na - nb) / (n * n)
            + 3.0 * d * (na * other.m2 - nb * self.m2) / n;
        let m4 = self.m4
            + other.m4
            + d4 * na * nb * (na * na - na * nb + nb * nb) / (n * n * n)
            + 6.0 * d2 * (na * na * other.m2 + nb * nb * self.m2) / (n * n)
            + 4.0 * d * (na * other.m3 - nb * self.m3) / n;
        self.mean += d * nb / n;
        self.m2 = m2;
        self.m3 = m3;
        self.m4 = m4;
        self.count += other.count;
        self.absmax = self.absmax.max(other.absmax);
        for (a, b) in self.above.iter_mut().zip(&other.above) {
            *a += b;
        }
        for (a, b) in self.histogram.iter_mut().zip(&other.histogram) {
            *a += b;
        }
    }

    /// Population variance.
    pub fn variance(&self) -> f64 {
        if self.count == 0 {
            f64::NAN
        } else {
            self.m2 / self.count as f64
        }
    }

    /// Skewness (third standardised moment).
    pub fn skewness(&self) -> f64 {
        let n = self.count as f64;
        (n.sqrt() * self.m3) / self.m2.powf(1.5)
    }

    /// Kurtosis (fourth standardised moment; 3 for a Gaussian, not excess).
    pub fn kurtosis(&self) -> f64 {
        let n = self.count as f64;
        n * self.m4 / (self.m2 * self.m2)
    }

    /// Quantile `q` of |x|, as the upper edge of the histogram bin holding it.
    pub fn abs_quantile(&self, q: f64) -> f64 {
        if self.count == 0 {
            return f64::NAN;
        }
        let target = (q.clamp(0.0, 1.0) * self.count as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (b, &c) in self.histogram.iter().enumerate() {
            seen += c;
            if seen >= target {
                return bin_upper(b).min(self.absmax);
            }
        }
        self.absmax
    }
}

/// Statistics of every channel (column) of row-major `[rows, channels]` data.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChannelStats {
    /// One accumulator per channel.
    pub channels: Vec<Moments>,
}

impl ChannelStats {
    /// Empty statistics for `channels` channels.
    pub fn new(channels: usize) -> Self {
        ChannelStats {
            channels: vec![Moments::default(); channels],
        }
    }

    /// Adds the rows of `data` (`rows × channels`, row-major).
    pub fn push_rows(&mut self, data: &[f32]) -> Result<()> {
        let c = self.channels.len();
        if c == 0 || !data.len().is_multiple_of(c) {
            bail!(
                "channel statistics: {} values do not make rows of {c} channels",
                data.len()
            );
        }
        let x = Tensor::from_slice(data, (data.len() / c, c), &Device::Cpu)?;
        self.push_moments(&x)?;
        self.push_counts(data);
        Ok(())
    }

    /// Adds the rows of `x` (`[..., channels]`, f32, bf16 or f16, on any
    /// device): the moments come from the `channel_stats` kernel on the
    /// tensor's device, the magnitude counts from a copy on the host.
    pub fn push_tensor(&mut self, x: &Tensor) -> Result<()> {
        let c = self.channels.len();
        if x.dims().last() != Some(&c) {
            bail!(
                "channel statistics: expected [..., {c}] values, got shape {:?}",
                x.dims()
            );
        }
        let rows = x.elem_count() / c.max(1);
        let x = x.reshape((rows, c))?;
        self.push_moments(&x)?;
        let host: Vec<f32> = x
            .to_dtype(candle_core::DType::F32)?
            .flatten_all()?
            .to_vec1()?;
        self.push_counts(&host);
        Ok(())
    }

    /// Merges the kernel's per-block moments of `x` (`[rows, channels]`) into
    /// the accumulators. Blocks of [`KERNEL_BLOCK_ROWS`] rows are accumulated
    /// in f32 by the kernel and merged in f64 in order, so the result does not
    /// depend on the thread count.
    fn push_moments(&mut self, x: &Tensor) -> Result<()> {
        let partials = stats_kernel::channel_stats(x, KERNEL_BLOCK_ROWS)?;
        for (m, k) in self
            .channels
            .iter_mut()
            .zip(stats_kernel::merge_partials(&partials)?)
        {
            m.merge_moments(&k);
        }
        Ok(())
    }

    /// Counts |x| above the thresholds and in the histogram bins.
    fn push_counts(&mut self, data: &[f32]) {
        let c = self.channels.len();
        for row in data.chunks_exact(c) {
            for (m, &x) in self.channels.iter_mut().zip(row) {
                // NaN is skipped, as the kernel skips it in the moments.
                if x.is_nan() {
                    continue;
                }
                let a = (x as f64).abs();
                for (count, t) in m.above.iter_mut().zip(THRESHOLDS) {
                    *count += (a >= t) as u64;
                }
                m.histogram[bin_of(a)] += 1;
            }
        }
    }

    /// Adds everything `other` saw (same channel count).
    pub fn merge(&mut self, other: &ChannelStats) {
        for (a, b) in self.channels.iter_mut().zip(&other.channels) {
            a.merge(b);
        }
    }

    /// All channels pooled.
    pub fn pooled(&self) -> Moments {
        let mut all = Moments::default();
        for m in &self.channels {
            all.merge(m);
        }
        all
    }

    /// Channels whose absmax is at least `ratio` times the median channel absmax.
    pub fn outlier_channels(&self, ratio: f64) -> Vec<usize> {
        let mut maxes: Vec<f64> = self.channels.iter().map(|m| m.absmax).collect();
        maxes.sort_by(f64::total_cmp);
        let median = maxes.get(maxes.len() / 2).cloned().unwrap_or(0.0);
        (0..self.channels.len())
            .filter(|&i| self.channels[i].absmax >= ratio * median && self.channels[i].absmax > 0.0)
            .collect()
    }

    /// LLM.int8()-style outlier features: channels where at least `token_share`
    /// of the values reach |x| ≥ 6 (Dettmers et al. use 6% of tokens, counted
    /// across at least 25% of layers — the caller combines layers).
    pub fn int8_outlier_features(&self, token_share: f64) -> Vec<usize> {
        (0..self.channels.len())
            .filter(|&i| {
                let m = &self.channels[i];
                m.count > 0 && m.above[1] as f64 >= token_share * m.count as f64
            })
            .collect()
    }

    /// Massive activations (Sun et al. 2024): channels holding a value with
    /// |x| ≥ 100 and at least 1000 times the median |x| of all channels.
    pub fn massive_activations(&self) -> Vec<usize> {
        let median = self.pooled().abs_quantile(0.5);
        (0..self.channels.len())
            .filter(|&i| {
                let m = &self.channels[i];
                m.absmax >= THRESHOLDS[3] && m.absmax >= 1000.0 * median
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wb_kernels::philox;

    fn normal(i: u64, stream: u32) -> f64 {
        let u1 = philox::uniform(1, i, 0, stream);
        let u2 = philox::uniform(1, i, 1, stream);
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-9 * (1.0 + a.abs().max(b.abs()))
    }

    #[test]
    fn merged_chunks_equal_one_pass() {
        let rows = 3000;
        let channels = 5;
        let data: Vec<f32> = (0..rows * channels)
            .map(|i| (normal(i as u64, 3) * (1.0 + (i % channels) as f64) + 0.5) as f32)
            .collect();
        let mut whole = ChannelStats::new(channels);
        whole.push_rows(&data).unwrap();
        let mut merged = ChannelStats::new(channels);
        for chunk in data.chunks(channels * 700) {
            let mut part = ChannelStats::new(channels);
            part.push_rows(chunk).unwrap();
            merged.merge(&part);
        }
        for (c, (a, b)) in whole.channels.iter().zip(&merged.channels).enumerate() {
            assert_eq!(a.count, b.count);
            // The kernel accumulates blocks of rows in f32: chunking changes the
            // blocks, so the moments agree to f32 rounding.
            let near = |x: f64, y: f64| (x - y).abs() <= 1e-5 * (1.0 + x.abs().max(y.abs()));
            assert!(near(a.mean, b.mean) && near(a.variance(), b.variance()));
            assert!(near(a.skewness(), b.skewness()) && near(a.kurtosis(), b.kurtosis()));
            // And they agree with the f64 one-value updates.
            let mut exact = Moments::default();
            for row in data.chunks_exact(channels) {
                exact.push(row[c] as f64);
            }
            assert!(near(a.mean, exact.mean) && near(a.variance(), exact.variance()));
            assert!(near(a.kurtosis(), exact.kurtosis()) && near(a.skewness(), exact.skewness()));
            assert_eq!(a.histogram, exact.histogram);
            assert_eq!(a.absmax, b.absmax);
            assert_eq!(a.above, b.above);
            assert_eq!(a.histogram, b.histogram);
        }
        // A Gaussian channel: kurtosis near 3, skewness near 0, variance near the scale².
        let c0 = &whole.channels[0];
        assert!((c0.kurtosis() - 3.0).abs() < 0.3, "{}", c0.kurtosis());
        assert!(c0.skewness().abs() < 0.15);
        assert!((c0.variance() - 1.0).abs() < 0.1);
        // The median of |N(0,1)| is 0.674; one histogram bin is 9% wide.
        let mut g = Moments::default();
        for i in 0..20000 {
            g.push(normal(i, 7));
        }
        let median = g.abs_quantile(0.5);
        assert!(median > 0.674 && median < 0.674 * 1.1, "{median}");
    }

    #[test]
    fn known_moments_of_a_small_sample() {
        let mut m = Moments::default();
        for x in [1.0, 2.0, 3.0, 4.0, 10.0] {
            m.push(x);
        }
        // mean 4; deviations -3, -2, -1, 0, 6.
        assert!(close(m.mean, 4.0));
        assert!(close(m.m2, 9.0 + 4.0 + 1.0 + 36.0));
        assert!(close(m.m3, -27.0 - 8.0 - 1.0 + 216.0));
        assert!(close(m.m4, 81.0 + 16.0 + 1.0 + 1296.0));
        assert_eq!(m.above, [5, 1, 0, 0]);
        assert_eq!(m.absmax, 10.0);
    }

    #[test]
    fn planted_outliers_are_found_by_each_criterion() {
        let rows = 2000;
        let channels = 64;
        let mut data: Vec<f32> = (0..rows * channels)
            .map(|i| normal(i as u64, 5) as f32)
            .collect();
        // Channel 17: a systematic outlier feature (every token around 8);
        // channel 40: one massive activation.
        for r in 0..rows {
            data[r * channels + 17] = 8.0 + 0.1 * data[r * channels + 17];
        }
        data[123 * channels + 40] = 2500.0;
        let mut s = ChannelStats::new(channels);
        s.push_rows(&data).unwrap();
        assert_eq!(s.int8_outlier_features(0.06), vec![17]);
        assert_eq!(s.massive_activations(), vec![40]);
        let wide = s.outlier_channels(2.0);
        assert!(wide.contains(&17) && wide.contains(&40), "{wide:?}");
        assert!(s.channels[40].kurtosis() > 100.0);
    }
}
