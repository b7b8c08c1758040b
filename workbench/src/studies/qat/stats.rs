//! Small-sample statistics for the QAT tables: t intervals over seeds, and the
//! choice of each optimizer's best learning rate.

use statrs::distribution::{ContinuousCDF, StudentsT};

/// Mean and 95% Student-t interval of `values` (the interval is NaN for fewer
/// than two values: one seed says nothing about the spread).
pub fn mean_t_interval(values: &[f64]) -> (f64, f64, f64) {
    let n = values.len();
    if n == 0 {
        return (f64::NAN, f64::NAN, f64::NAN);
    }
    let mean = values.iter().sum::<f64>() / n as f64;
    if n < 2 {
        return (mean, f64::NAN, f64::NAN);
    }
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    let t = StudentsT::new(0.0, 1.0, (n - 1) as f64)
        .expect("positive degrees of freedom")
        .inverse_cdf(0.975);
    let half = t * (var / n as f64).sqrt();
    (mean, mean - half, mean + half)
}

/// Index of the smallest mean, treating non-finite means (diverged runs) as
/// worst; ties go to the first (the smaller learning rate, as listed).
pub fn argmin_finite(means: &[f64]) -> Option<usize> {
    let key = |v: f64| if v.is_finite() { v } else { f64::INFINITY };
    (0..means.len()).min_by(|&a, &b| key(means[a]).total_cmp(&key(means[b])))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn t_interval_of_a_known_sample() {
        // Mean 2, sd 1, n 3: half-width t(0.975, 2) · 1/√3 = 4.3027 / 1.7321.
        let (m, lo, hi) = mean_t_interval(&[1.0, 2.0, 3.0]);
        assert!((m - 2.0).abs() < 1e-12);
        assert!((hi - m - 4.302_652_7 / 3f64.sqrt()).abs() < 1e-6, "{hi}");
        assert!((m - lo - (hi - m)).abs() < 1e-12);
        assert!(mean_t_interval(&[5.0]).1.is_nan());
        assert_eq!(argmin_finite(&[3.0, f64::NAN, 1.0, 1.0]), Some(2));
        assert_eq!(argmin_finite(&[f64::NAN, 4.0]), Some(1));
    }
}
