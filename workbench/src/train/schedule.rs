//! The learning-rate schedule: linear warm-up, then cosine decay to a floor.

/// Learning rate at `step` (0-based) of `total` steps.
pub fn learning_rate(step: usize, total: usize, peak: f64, floor: f64, warmup: usize) -> f64 {
    if step < warmup {
        return peak * (step + 1) as f64 / warmup as f64;
    }
    let span = total.saturating_sub(warmup).max(1);
    let progress = ((step - warmup) as f64 / span as f64).min(1.0);
    floor + 0.5 * (peak - floor) * (1.0 + (std::f64::consts::PI * progress).cos())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warms_up_then_decays_to_the_floor() {
        assert!((learning_rate(0, 100, 1.0, 0.1, 10) - 0.1).abs() < 1e-12);
        assert!((learning_rate(9, 100, 1.0, 0.1, 10) - 1.0).abs() < 1e-12);
        assert!((learning_rate(10, 100, 1.0, 0.1, 10) - 1.0).abs() < 1e-12);
        assert!((learning_rate(55, 100, 1.0, 0.1, 10) - 0.55).abs() < 1e-12);
        assert!((learning_rate(100, 100, 1.0, 0.1, 10) - 0.1).abs() < 1e-12);
        let mut last = f64::INFINITY;
        for s in 10..100 {
            let lr = learning_rate(s, 100, 1.0, 0.1, 10);
            assert!(lr <= last);
            last = lr;
        }
    }
}
