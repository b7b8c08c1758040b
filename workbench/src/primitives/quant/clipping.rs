//! MSE-optimal clipping-ratio search for one scale group.
//!
//! Outliers stretch a round-to-nearest grid; shrinking the range trades a
//! large clipping error on a few values for a smaller rounding error on all
//! others. At low bit widths on bell-shaped data the optimum is well inside
//! the full range, so a grid search per group pays off.

use super::rtn::{Grid, Range};
use super::MSE_CLIP_GRID;

/// Squared error of quantizing `group` on `grid`.
pub(crate) fn squared_error(group: &[f32], grid: &Grid) -> f64 {
    group
        .iter()
        .map(|&v| {
            let d = v as f64 - grid.fake(v) as f64;
            d * d
        })
        .sum()
}

/// Best grid over clipping ratios `1.00, 0.99, …, 0.50`.
///
/// The unclipped grid is the incumbent and only a strictly smaller error
/// replaces it, so the result is never worse than no clipping.
pub(crate) fn mse_search(group: &[f32], range: Range, bits: u8, symmetric: bool) -> Grid {
    let mut best = range.grid(bits, symmetric, 1.0);
    let mut best_err = squared_error(group, &best);
    for k in 1..MSE_CLIP_GRID {
        // Integer step count avoids accumulating 0.01 rounding drift.
        let ratio = 1.0 - 0.01 * k as f64;
        let grid = range.grid(bits, symmetric, ratio);
        let err = squared_error(group, &grid);
        if err < best_err {
            best = grid;
            best_err = err;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::super::rtn::tests::{mse, Rng};
    use super::super::{Clip, Granularity, WeightQuantizer};

    #[test]
    fn clipping_never_hurts_and_helps_at_3_bits() {
        let (rows, cols) = (16, 256);
        let mut rng = Rng(7);
        let w: Vec<f32> = (0..rows * cols).map(|_| rng.normal() as f32).collect();
        let mut gain_3bit_sym_channel = 0.0;
        for bits in 2..=8u8 {
            for symmetric in [true, false] {
                for granularity in [
                    Granularity::PerTensor,
                    Granularity::PerChannel,
                    Granularity::PerGroup(32),
                ] {
                    let mk = |clip| WeightQuantizer {
                        bits,
                        symmetric,
                        granularity,
                        clip,
                    };
                    let plain = mk(Clip::None).fake_quantize(&w, rows, cols).unwrap();
                    let clipped = mk(Clip::MseSearch).fake_quantize(&w, rows, cols).unwrap();
                    let (m0, m1) = (mse(&w, &plain), mse(&w, &clipped));
                    assert!(m1 <= m0, "{bits} {symmetric} {granularity:?}: {m1} > {m0}");
                    if bits == 3 {
                        // Gaussian tails make the full range clearly suboptimal.
                        assert!(m1 < 0.9 * m0, "{symmetric} {granularity:?}: {m1} vs {m0}");
                        if symmetric && granularity == Granularity::PerChannel {
                            gain_3bit_sym_channel = m1 / m0;
                        }
                    }
                }
            }
        }
        eprintln!("3-bit symmetric per-channel MSE ratio clip/no-clip: {gain_3bit_sym_channel:.4}");
    }
}
