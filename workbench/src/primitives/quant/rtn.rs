//! Uniform grids and round-to-nearest weight quantization.

use super::{check_bits, check_finite, check_len, Clip, Granularity, WeightQuantizer};

/// One uniform quantization grid (a scale group's parameters).
///
/// Arithmetic is in `f64`: finite `f32` ranges cannot overflow there
/// (`max − min` of two large `f32`s can), and tiny scales do not underflow.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Grid {
    /// Step between adjacent levels; 0 only for an all-zero group.
    pub scale: f64,
    /// Integer zero point (0 for symmetric grids).
    pub zero: f64,
    /// Smallest and largest integer code.
    pub qmin: f64,
    pub qmax: f64,
}

impl Grid {
    /// Symmetric restricted-range grid covering `[−absmax, absmax]`.
    pub fn symmetric(absmax: f64, bits: u8) -> Grid {
        let qmax = ((1u32 << (bits - 1)) - 1) as f64;
        Grid {
            scale: absmax / qmax,
            zero: 0.0,
            qmin: -qmax,
            qmax,
        }
    }

    /// Symmetric grid with a given step (static activation scales).
    pub fn symmetric_with_scale(scale: f64, bits: u8) -> Grid {
        let qmax = ((1u32 << (bits - 1)) - 1) as f64;
        Grid {
            scale,
            zero: 0.0,
            qmin: -qmax,
            qmax,
        }
    }

    /// Asymmetric grid over `[min, max]` extended to contain zero, so the
    /// zero point is a valid unsigned `bits`-bit code.
    pub fn asymmetric(min: f64, max: f64, bits: u8) -> Grid {
        let (min, max) = (min.min(0.0), max.max(0.0));
        let qmax = ((1u32 << bits) - 1) as f64;
        let scale = (max - min) / qmax;
        let zero = if scale > 0.0 {
            (-min / scale).round().clamp(0.0, qmax)
        } else {
            0.0
        };
        Grid {
            scale,
            zero,
            qmin: 0.0,
            qmax,
        }
    }

    /// Quantize and dequantize one value.
    #[inline]
    pub fn fake(&self, x: f32) -> f32 {
        // A zero (or underflowed) scale only arises when the whole group is
        // (numerically) zero; dividing by it would give NaN/inf.
        if !(self.scale.is_finite() && self.scale > 0.0) {
            return 0.0;
        }
        let q = ((x as f64 / self.scale).round() + self.zero).clamp(self.qmin, self.qmax);
        ((q - self.zero) * self.scale) as f32
    }
}

/// Range statistics of a scale group.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Range {
    pub min: f64,
    pub max: f64,
}

impl Range {
    pub fn of(values: &[f32]) -> Range {
        let mut min = 0.0f64;
        let mut max = 0.0f64;
        // Starting at 0 already extends the range to contain zero, which both
        // grid kinds want (symmetric uses max(|min|, |max|)).
        for &v in values {
            let v = v as f64;
            min = min.min(v);
            max = max.max(v);
        }
        Range { min, max }
    }

    /// Grid for this range shrunk by `ratio` (1.0 = no clipping).
    pub fn grid(&self, bits: u8, symmetric: bool, ratio: f64) -> Grid {
        if symmetric {
            Grid::symmetric(self.min.abs().max(self.max) * ratio, bits)
        } else {
            Grid::asymmetric(self.min * ratio, self.max * ratio, bits)
        }
    }
}

impl WeightQuantizer {
    /// Round-to-nearest fake quantization of a row-major `[rows, cols]`
    /// matrix; returns the dequantized values in the same shape. See the
    /// type-level docs for the grid conventions.
    ///
    /// Errors: `bits` outside `2..=8`, a group size that is zero or does not
    /// divide `cols`, `w.len() != rows * cols`, or non-finite weights.
    pub fn fake_quantize(&self, w: &[f32], rows: usize, cols: usize) -> Result<Vec<f32>, String> {
        let chunk = self.validate(w, rows, cols)?;
        let mut out = Vec::with_capacity(w.len());
        if w.is_empty() {
            return Ok(out);
        }
        // Every scale group is a contiguous run of the row-major data
        // (whole tensor, one row, or `g` values inside a row).
        for group in w.chunks(chunk) {
            let grid = self.fit(group);
            out.extend(group.iter().map(|&v| grid.fake(v)));
        }
        Ok(out)
    }

    /// Checks arguments and returns the length of one (contiguous) scale group.
    pub(crate) fn validate(&self, w: &[f32], rows: usize, cols: usize) -> Result<usize, String> {
        check_bits("WeightQuantizer", self.bits, 2, 8)?;
        check_len("WeightQuantizer weights", w.len(), &[rows, cols])?;
        check_finite("WeightQuantizer weights", w)?;
        match self.granularity {
            Granularity::PerTensor => Ok(w.len().max(1)),
            Granularity::PerChannel => Ok(cols.max(1)),
            Granularity::PerGroup(0) => Err("WeightQuantizer: group size must be positive".into()),
            Granularity::PerGroup(g) if !cols.is_multiple_of(g) => Err(format!(
                "WeightQuantizer: group size {g} does not divide cols = {cols}"
            )),
            Granularity::PerGroup(g) => Ok(g),
        }
    }

    /// Grid for one scale group, honouring the clipping policy.
    pub(crate) fn fit(&self, group: &[f32]) -> Grid {
        let range = Range::of(group);
        match self.clip {
            Clip::None => range.grid(self.bits, self.symmetric, 1.0),
            Clip::MseSearch => super::clipping::mse_search(group, range, self.bits, self.symmetric),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// SplitMix64: tiny deterministic generator for test data.
    pub struct Rng(pub u64);

    impl Rng {
        pub fn next_u64(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }
        /// Uniform in (0, 1).
        pub fn uniform(&mut self) -> f64 {
            ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
        }
        /// Standard normal via Box–Muller.
        pub fn normal(&mut self) -> f64 {
            let (u, v) = (self.uniform(), self.uniform());
            (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
        }
    }

    pub fn mse(a: &[f32], b: &[f32]) -> f64 {
        a.iter()
            .zip(b)
            .map(|(&x, &y)| (x as f64 - y as f64).powi(2))
            .sum::<f64>()
            / a.len() as f64
    }

    /// Gaussian matrix whose row `r` has standard deviation `row_scale(r)`
    /// and, within a row, groups of 16 with an extra varying factor.
    fn varying(rows: usize, cols: usize, seed: u64) -> Vec<f32> {
        let mut rng = Rng(seed);
        let mut w = Vec::with_capacity(rows * cols);
        for r in 0..rows {
            let rs = 0.05 * (1.0 + 3.0 * r as f64 / rows as f64).powi(2);
            for c in 0..cols {
                let gs = 1.0 + 2.0 * ((c / 16) % 4) as f64;
                w.push((rng.normal() * rs * gs) as f32);
            }
        }
        w
    }

    fn q(bits: u8, symmetric: bool, granularity: Granularity, clip: Clip) -> WeightQuantizer {
        WeightQuantizer {
            bits,
            symmetric,
            granularity,
            clip,
        }
    }

    #[test]
    fn rtn_levels_and_error_bound() {
        let (rows, cols) = (8, 64);
        let w = varying(rows, cols, 1);
        for bits in 2..=8u8 {
            for symmetric in [true, false] {
                for gran in [
                    Granularity::PerTensor,
                    Granularity::PerChannel,
                    Granularity::PerGroup(16),
                ] {
                    let wq = q(bits, symmetric, gran, Clip::None);
                    let out = wq.fake_quantize(&w, rows, cols).unwrap();
                    let chunk = wq.validate(&w, rows, cols).unwrap();
                    for (g_in, g_out) in w.chunks(chunk).zip(out.chunks(chunk)) {
                        let grid = wq.fit(g_in);
                        let mut distinct: Vec<f32> = g_out.to_vec();
                        distinct.sort_by(f32::total_cmp);
                        distinct.dedup();
                        assert!(distinct.len() <= 1 << bits, "{bits} {symmetric} {gran:?}");
                        if symmetric {
                            assert!(distinct.len() < 1 << bits);
                        }
                        let bound = grid.scale / 2.0 * (1.0 + 1e-6) + 1e-12;
                        for (&a, &b) in g_in.iter().zip(g_out) {
                            assert!(
                                ((a - b) as f64).abs() <= bound,
                                "{bits} {symmetric} {gran:?}: {a} -> {b}, scale {}",
                                grid.scale
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn finer_granularity_lowers_mse() {
        let (rows, cols) = (32, 128);
        let w = varying(rows, cols, 2);
        for bits in [3u8, 4] {
            for symmetric in [true, false] {
                let m = |g| {
                    let out = q(bits, symmetric, g, Clip::None)
                        .fake_quantize(&w, rows, cols)
                        .unwrap();
                    mse(&w, &out)
                };
                let (t, c, g) = (
                    m(Granularity::PerTensor),
                    m(Granularity::PerChannel),
                    m(Granularity::PerGroup(16)),
                );
                assert!(g < c && c < t, "bits {bits} sym {symmetric}: {g} {c} {t}");
            }
        }
    }

    #[test]
    fn asymmetric_zero_and_constant_groups() {
        // Zero must be exactly representable; constant groups exact.
        let w = [0.0f32, 0.3, 0.7, 1.0, 2.0, 2.0, 2.0, 2.0];
        let wq = q(2, false, Granularity::PerGroup(4), Clip::None);
        let out = wq.fake_quantize(&w, 2, 4).unwrap();
        assert_eq!(out[0], 0.0);
        assert_eq!(out[3], 1.0);
        assert_eq!(&out[4..], &[2.0; 4]);
        let z = q(4, true, Granularity::PerChannel, Clip::None)
            .fake_quantize(&[0.0; 6], 2, 3)
            .unwrap();
        assert_eq!(z, vec![0.0; 6]);
    }

    #[test]
    fn errors_not_panics() {
        let w = vec![0.5f32; 12];
        let ok = q(4, true, Granularity::PerGroup(4), Clip::None);
        assert!(ok.fake_quantize(&w, 3, 4).is_ok());
        assert!(q(1, true, Granularity::PerTensor, Clip::None)
            .fake_quantize(&w, 3, 4)
            .unwrap_err()
            .contains("bits"));
        assert!(q(9, true, Granularity::PerTensor, Clip::None)
            .fake_quantize(&w, 3, 4)
            .is_err());
        assert!(q(4, true, Granularity::PerGroup(3), Clip::None)
            .fake_quantize(&w, 3, 4)
            .unwrap_err()
            .contains("divide"));
        assert!(q(4, true, Granularity::PerGroup(0), Clip::None)
            .fake_quantize(&w, 3, 4)
            .is_err());
        assert!(ok.fake_quantize(&w, 4, 4).unwrap_err().contains("shape"));
        assert!(ok.fake_quantize(&w, usize::MAX, 4).is_err());
        let mut bad = w.clone();
        bad[5] = f32::NAN;
        assert!(ok
            .fake_quantize(&bad, 3, 4)
            .unwrap_err()
            .contains("non-finite"));
        bad[5] = f32::INFINITY;
        assert!(ok.fake_quantize(&bad, 3, 4).is_err());
        assert_eq!(ok.fake_quantize(&[], 0, 4).unwrap(), Vec::<f32>::new());
        // Extreme but finite values must not overflow the range arithmetic.
        let big = [f32::MAX, -f32::MAX, 1.0, 0.0];
        let out = q(8, false, Granularity::PerTensor, Clip::MseSearch)
            .fake_quantize(&big, 1, 4)
            .unwrap();
        assert!(out.iter().all(|v| v.is_finite()));
    }
}
