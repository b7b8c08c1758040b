//! Confidence intervals and goodness-of-fit tests for Monte-Carlo results.

use statrs::distribution::{ChiSquared, ContinuousCDF};

/// The 0.975 quantile of the standard normal: the half-width factor of a 95% interval.
pub const Z_95: f64 = 1.959_963_984_540_054;

/// Wilson score interval for a binomial proportion at 95% confidence.
///
/// Unlike the normal approximation it stays inside [0, 1] and is sensible at
/// 0 or n successes, which the identical-distribution cases hit.
pub fn wilson_interval(successes: u64, trials: u64) -> (f64, f64) {
    if trials == 0 {
        return (0.0, 1.0);
    }
    let n = trials as f64;
    let phat = successes as f64 / n;
    let z2 = Z_95 * Z_95;
    let centre = (phat + z2 / (2.0 * n)) / (1.0 + z2 / n);
    let half = Z_95 / (1.0 + z2 / n) * (phat * (1.0 - phat) / n + z2 / (4.0 * n * n)).sqrt();
    // At 0 or n successes the interval ends exactly at 0 or 1 (rounding aside).
    let low = if successes == 0 {
        0.0
    } else {
        (centre - half).max(0.0)
    };
    let high = if successes == trials {
        1.0
    } else {
        (centre + half).min(1.0)
    };
    (low, high)
}

/// Trials needed so that a 95% interval of a proportion has half-width at most
/// `half_width` whatever the proportion (worst case 1/2).
pub fn trials_for_half_width(half_width: f64) -> u64 {
    (Z_95 * Z_95 * 0.25 / (half_width * half_width)).ceil() as u64
}

/// Mean and 95% normal interval of a sample given its sum, sum of squares and count.
pub fn mean_interval(sum: f64, sum_sq: f64, n: u64) -> (f64, f64, f64) {
    if n == 0 {
        return (f64::NAN, f64::NAN, f64::NAN);
    }
    let nf = n as f64;
    let mean = sum / nf;
    let var = if n > 1 {
        ((sum_sq - nf * mean * mean) / (nf - 1.0)).max(0.0)
    } else {
        0.0
    };
    let half = Z_95 * (var / nf).sqrt();
    (mean, mean - half, mean + half)
}

/// A chi-square goodness-of-fit test of observed counts against probabilities.
#[derive(Clone, Debug, PartialEq)]
pub struct ChiSquare {
    /// The statistic.
    pub statistic: f64,
    /// Degrees of freedom (bins - 1).
    pub dof: usize,
    /// P-value; 0 when a token of probability zero was observed.
    pub p_value: f64,
}

/// Minimum expected count per bin for the chi-square approximation to hold.
pub const MIN_EXPECTED: f64 = 5.0;

/// Tests `counts` against `p`. Tokens are pooled, in order of decreasing
/// probability, into bins of expected count at least [`MIN_EXPECTED`], so large
/// vocabularies with few trials still give a valid test. A count on a token of
/// probability zero gives p-value 0 (the rule emitted an impossible token).
pub fn chi_square(counts: &[u64], p: &[f64]) -> ChiSquare {
    let n: u64 = counts.iter().sum();
    let impossible: u64 = counts
        .iter()
        .zip(p)
        .filter(|(_, &pi)| pi == 0.0)
        .map(|(c, _)| c)
        .sum();
    if impossible > 0 {
        return ChiSquare {
            statistic: f64::INFINITY,
            dof: 0,
            p_value: 0.0,
        };
    }
    let mut order: Vec<usize> = (0..p.len()).filter(|&i| p[i] > 0.0).collect();
    order.sort_by(|&a, &b| p[b].total_cmp(&p[a]).then(a.cmp(&b)));
    let nf = n as f64;
    let mut bins: Vec<(f64, f64)> = Vec::new(); // (expected, observed)
    let mut current = (0.0, 0.0);
    for &i in &order {
        current.0 += nf * p[i];
        current.1 += counts[i] as f64;
        if current.0 >= MIN_EXPECTED {
            bins.push(current);
            current = (0.0, 0.0);
        }
    }
    if current.0 > 0.0 || current.1 > 0.0 {
        match bins.last_mut() {
            Some(last) => {
                last.0 += current.0;
                last.1 += current.1;
            }
            None => bins.push(current),
        }
    }
    if bins.len() < 2 {
        // Everything in one bin: no test is possible, and nothing contradicts p.
        return ChiSquare {
            statistic: 0.0,
            dof: 0,
            p_value: 1.0,
        };
    }
    let statistic: f64 = bins.iter().map(|(e, o)| (o - e) * (o - e) / e).sum();
    let dof = bins.len() - 1;
    let p_value = ChiSquared::new(dof as f64)
        .map(|d| d.sf(statistic))
        .unwrap_or(f64::NAN);
    ChiSquare {
        statistic,
        dof,
        p_value,
    }
}

/// Total variation between the empirical distribution of `counts` and `p`.
pub fn empirical_tv(counts: &[u64], p: &[f64]) -> f64 {
    let n: u64 = counts.iter().sum();
    if n == 0 {
        return f64::NAN;
    }
    0.5 * counts
        .iter()
        .zip(p)
        .map(|(&c, &pi)| (c as f64 / n as f64 - pi).abs())
        .sum::<f64>()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wilson_contains_the_truth_and_has_the_right_width() {
        let (lo, hi) = wilson_interval(5000, 10_000);
        assert!(lo < 0.5 && hi > 0.5);
        assert!(((hi - lo) / 2.0 - Z_95 * 0.005).abs() < 1e-4);
        let (lo, hi) = wilson_interval(0, 100);
        assert_eq!(lo, 0.0);
        assert!(hi > 0.0 && hi < 0.05);
        let (lo, hi) = wilson_interval(100, 100);
        assert!(lo > 0.95 && hi == 1.0);
    }

    #[test]
    fn default_trials_give_half_width_0_005() {
        let n = trials_for_half_width(0.005);
        assert_eq!(n, 38_415);
        let (lo, hi) = wilson_interval(n / 2, n);
        assert!((hi - lo) / 2.0 <= 0.005);
    }

    #[test]
    fn chi_square_accepts_a_fit_and_rejects_a_misfit() {
        let p = [0.5, 0.3, 0.2];
        let fit = chi_square(&[5000, 3000, 2000], &p);
        assert_eq!(fit.dof, 2);
        assert!(fit.statistic < 1e-12 && fit.p_value > 0.999);
        let misfit = chi_square(&[6000, 2500, 1500], &p);
        assert!(misfit.p_value < 1e-10);
        let impossible = chi_square(&[10, 0, 0, 1], &[0.5, 0.3, 0.2, 0.0]);
        assert_eq!(impossible.p_value, 0.0);
        // Known value: (5^2 + 5^2) / 50 = 1 with 1 dof has p = 0.3173.
        let one = chi_square(&[55, 45], &[0.5, 0.5]);
        assert!((one.statistic - 1.0).abs() < 1e-12);
        assert!((one.p_value - 0.317_310_507_9).abs() < 1e-6);
    }

    #[test]
    fn pools_rare_tokens() {
        let p: Vec<f64> = vec![1.0 / 1000.0; 1000];
        let counts = vec![1u64; 1000];
        let test = chi_square(&counts, &p);
        assert_eq!(test.dof, 199); // 1000 trials / 5 per bin = 200 bins
        assert!(test.p_value > 0.99);
    }
}
