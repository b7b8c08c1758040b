//! Lloyd–Max (MSE-optimal, non-uniform) scalar quantizer for a Gaussian.
//!
//! The codebook is computed on the exact standard normal density rather than
//! on samples, so the distortion values are exact up to the iteration
//! tolerance (used e.g. as the NF-style "optimal" reference for 4-bit codes).

use statrs::function::erf::erfc;
use std::f64::consts::{FRAC_1_SQRT_2, PI};

/// Largest supported bit width: 256 levels already converge slowly, and
/// larger codebooks are of no practical interest for fake quantization.
const MAX_BITS: u8 = 8;

/// Standard normal density.
fn pdf(x: f64) -> f64 {
    if x.is_infinite() {
        0.0
    } else {
        (-0.5 * x * x).exp() / (2.0 * PI).sqrt()
    }
}

/// Upper tail `P(X > x)`, accurate far into the tail (erfc, not 1 − erf).
fn upper_tail(x: f64) -> f64 {
    0.5 * erfc(x * FRAC_1_SQRT_2)
}

/// `P(a < X ≤ b)` for `a ≤ b`, computed in whichever tail avoids cancellation.
fn mass(a: f64, b: f64) -> f64 {
    if a >= 0.0 {
        upper_tail(a) - upper_tail(b)
    } else if b <= 0.0 {
        upper_tail(-b) - upper_tail(-a)
    } else {
        1.0 - upper_tail(b) - upper_tail(-a)
    }
}

/// Partial moments of the standard normal on `(a, b]`: `(∫φ, ∫xφ, ∫x²φ)`.
fn moments(a: f64, b: f64) -> (f64, f64, f64) {
    let m0 = mass(a, b);
    let m1 = pdf(a) - pdf(b);
    // ∫x²φ = m0 + aφ(a) − bφ(b); the boundary terms vanish at ±∞.
    let edge = |x: f64| if x.is_infinite() { 0.0 } else { x * pdf(x) };
    (m0, m1, m0 + edge(a) - edge(b))
}

/// Inverse standard normal CDF by bisection-refined Newton on `erfc`; only
/// used for initialisation, so moderate accuracy is plenty.
fn probit(p: f64) -> f64 {
    let (mut lo, mut hi) = (-40.0f64, 40.0f64);
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if 1.0 - upper_tail(mid) < p {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    0.5 * (lo + hi)
}

/// Lloyd–Max codebook for a standard Gaussian with `2^bits` levels.
///
/// Returns `(levels, thresholds, mse)`: the `2^bits` reconstruction levels in
/// ascending order, the `2^bits − 1` interior decision thresholds (the outer
/// ones are ±∞ and omitted), and the mean squared error per unit variance.
/// Scale the levels by σ for a Gaussian of standard deviation σ.
///
/// Computed by iterating the two optimality conditions (thresholds at
/// midpoints of adjacent levels; levels at the conditional means
/// `(φ(a) − φ(b)) / (Φ(b) − Φ(a))` of their cells) on the exact density,
/// starting from the Panter–Dite companding approximation (levels at normal
/// quantiles with variance 3), until the levels move by less than 1e-13.
/// `bits = 0` gives the single level 0 with MSE 1. Bit widths above 8 are
/// clamped to 8; use [`try_lloyd_max_gaussian`] to get an error instead.
pub fn lloyd_max_gaussian(bits: u8) -> (Vec<f64>, Vec<f64>, f64) {
    match try_lloyd_max_gaussian(bits.min(MAX_BITS)) {
        Ok(r) => r,
        // Unreachable after clamping; a degenerate codebook beats a panic.
        Err(_) => (vec![0.0], Vec::new(), 1.0),
    }
}

/// [`lloyd_max_gaussian`] that rejects `bits > 8` instead of clamping.
pub fn try_lloyd_max_gaussian(bits: u8) -> Result<(Vec<f64>, Vec<f64>, f64), String> {
    if bits > MAX_BITS {
        return Err(format!(
            "lloyd_max_gaussian: bits must be in 0..={MAX_BITS}, got {bits}"
        ));
    }
    let n = 1usize << bits;
    // Panter–Dite: the asymptotically optimal point density ∝ φ^(1/3) is
    // a normal with variance 3; its quantiles start Lloyd close to the fixed
    // point, which matters because plain Lloyd converges slowly for many levels.
    let mut levels: Vec<f64> = (0..n)
        .map(|i| 3f64.sqrt() * probit((i as f64 + 0.5) / n as f64))
        .collect();
    if n == 1 {
        levels[0] = 0.0;
    }
    let mut thresholds = vec![0.0; n - 1];
    for _ in 0..1_000_000 {
        for (i, t) in thresholds.iter_mut().enumerate() {
            *t = 0.5 * (levels[i] + levels[i + 1]);
        }
        let mut moved = 0.0f64;
        for (i, y) in levels.iter_mut().enumerate() {
            let a = if i == 0 {
                f64::NEG_INFINITY
            } else {
                thresholds[i - 1]
            };
            let b = if i == n - 1 {
                f64::INFINITY
            } else {
                thresholds[i]
            };
            let (m0, m1, _) = moments(a, b);
            // Cells far in the tail can have underflowed mass; keep the old
            // level there rather than divide 0 by 0.
            if m0 > 0.0 {
                let c = m1 / m0;
                moved = moved.max((c - *y).abs());
                *y = c;
            }
        }
        // Enforce exact antisymmetry (the density is symmetric), which also
        // cancels rounding drift between the two halves.
        for i in 0..n / 2 {
            let s = 0.5 * (levels[n - 1 - i] - levels[i]);
            levels[i] = -s;
            levels[n - 1 - i] = s;
        }
        if moved < 1e-13 {
            break;
        }
    }
    for (i, t) in thresholds.iter_mut().enumerate() {
        *t = 0.5 * (levels[i] + levels[i + 1]);
    }
    let mut mse = 0.0;
    for (i, &y) in levels.iter().enumerate() {
        let a = if i == 0 {
            f64::NEG_INFINITY
        } else {
            thresholds[i - 1]
        };
        let b = if i == n - 1 {
            f64::INFINITY
        } else {
            thresholds[i]
        };
        let (m0, m1, m2) = moments(a, b);
        // ∫(x − y)²φ over the cell, exact even if not fully converged.
        mse += m2 - 2.0 * y * m1 + y * y * m0;
    }
    Ok((levels, thresholds, mse))
}

/// Quantize values to the nearest level of `levels · scale`.
///
/// `levels` need not be sorted. Ties between two levels go to the lower one.
/// NaN inputs stay NaN. An empty codebook or a non-finite `scale` gives NaN
/// outputs (there is no meaningful nearest level); a negative scale mirrors
/// the codebook and still returns the nearest scaled level.
pub fn quantize_codebook(x: &[f32], levels: &[f64], scale: f64) -> Vec<f32> {
    if levels.is_empty() || !scale.is_finite() || levels.iter().any(|l| !l.is_finite()) {
        return vec![f32::NAN; x.len()];
    }
    let mut scaled: Vec<f64> = levels.iter().map(|l| l * scale).collect();
    scaled.sort_by(f64::total_cmp);
    // Decision thresholds are the midpoints; a binary search over them finds
    // the nearest level in O(log n).
    let mids: Vec<f64> = scaled.windows(2).map(|p| 0.5 * (p[0] + p[1])).collect();
    x.iter()
        .map(|&v| {
            if v.is_nan() {
                return f32::NAN;
            }
            let i = mids.partition_point(|&t| t < v as f64);
            scaled[i] as f32
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sig3(a: f64, b: f64) -> bool {
        // Same value to 3 significant digits (relative difference < 5e-4).
        // Note: the exact 4-bit value is 0.0095010 (checked by quadrature);
        // Max's 1960 table entry 0.009497 is off in the 4th digit.
        ((a - b) / b).abs() < 5e-4
    }

    #[test]
    fn known_gaussian_distortions() {
        let known = [0.3634, 0.1175, 0.03454, 0.009497];
        for (bits, &k) in (1u8..=4).zip(&known) {
            let (levels, thresholds, mse) = lloyd_max_gaussian(bits);
            eprintln!("Lloyd-Max {bits} bit(s): mse {mse:.6}, levels {levels:.5?}");
            assert_eq!(levels.len(), 1 << bits);
            assert_eq!(thresholds.len(), (1 << bits) - 1);
            assert!(levels.windows(2).all(|p| p[0] < p[1]));
            assert!(sig3(mse, k), "{bits} bits: {mse} vs {k}");
        }
        let (l1, t1, m1) = lloyd_max_gaussian(1);
        let c = (2.0 / PI).sqrt();
        assert!((l1[0] + c).abs() < 1e-12 && (l1[1] - c).abs() < 1e-12);
        assert_eq!(t1, vec![0.0]);
        assert!((m1 - (1.0 - 2.0 / PI)).abs() < 1e-12);
        // Known 2-bit codebook: ±0.4528, ±1.5104.
        let (l2, _, _) = lloyd_max_gaussian(2);
        assert!((l2[2] - 0.4528).abs() < 1e-4 && (l2[3] - 1.5104).abs() < 1e-4);
    }

    #[test]
    fn edge_bit_widths() {
        let (l0, t0, m0) = lloyd_max_gaussian(0);
        assert_eq!((l0, t0), (vec![0.0], vec![]));
        assert!((m0 - 1.0).abs() < 1e-12);
        let (l8, _, m8) = lloyd_max_gaussian(8);
        assert_eq!(l8.len(), 256);
        // High-rate (Panter–Dite) approximation: √3·π/2 · 4^-b.
        let pd = 3f64.sqrt() * PI / 2.0 / 4f64.powi(8);
        assert!(m8 < pd && m8 > 0.8 * pd, "{m8} vs {pd}");
        assert!(try_lloyd_max_gaussian(9).is_err());
        assert_eq!(lloyd_max_gaussian(200).0.len(), 256);
    }

    #[test]
    fn codebook_quantization() {
        let (levels, _, mse) = lloyd_max_gaussian(3);
        let scale = 2.5;
        let x: Vec<f32> = (-100..=100).map(|i| i as f32 * 0.1).collect();
        let q = quantize_codebook(&x, &levels, scale);
        for (&v, &o) in x.iter().zip(&q) {
            let best = levels
                .iter()
                .map(|l| (l * scale - v as f64).abs())
                .fold(f64::INFINITY, f64::min);
            assert!(((o - v) as f64).abs() <= best + 1e-5);
        }
        // Empirical distortion on Gaussian samples matches the exact value.
        let mut rng = super::super::rtn::tests::Rng(11);
        let s: Vec<f32> = (0..200_000).map(|_| rng.normal() as f32).collect();
        let qs = quantize_codebook(&s, &levels, 1.0);
        let emp = super::super::rtn::tests::mse(&s, &qs);
        assert!((emp - mse).abs() < 0.05 * mse, "{emp} vs {mse}");
        assert!(quantize_codebook(&[1.0], &[], 1.0)[0].is_nan());
        assert!(quantize_codebook(&[f32::NAN], &levels, 1.0)[0].is_nan());
        assert_eq!(quantize_codebook(&[3.0], &[1.0, -1.0], -2.0), vec![2.0]);
    }
}
