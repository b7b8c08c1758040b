//! What the tests and benchmarks of this crate share (its unit tests,
//! `tests/` and `benches/`): Hadamard base matrices (the workbench owns the
//! constructions its studies use) and the parity tests' error measure. Not
//! part of the API.

/// Paley I Hadamard matrix of order q + 1 for a prime q ≡ 3 (mod 4):
/// H = I + S with S = [[0, 1ᵀ], [−1, Q]], Q the Jacobsthal matrix.
pub fn paley_i(q: usize) -> Vec<i8> {
    assert!(q % 4 == 3);
    let chi = |a: usize| -> i8 {
        let a = a % q;
        if a == 0 {
            0
        } else if (1..q).any(|x| x * x % q == a) {
            1
        } else {
            -1
        }
    };
    let m = q + 1;
    let mut h = vec![0i8; m * m];
    for i in 0..m {
        for j in 0..m {
            let s = match (i, j) {
                (0, 0) => 0,
                (0, _) => 1,
                (_, 0) => -1,
                _ => chi(j + q - i),
            };
            h[i * m + j] = s + i8::from(i == j);
        }
    }
    h
}

/// A base matrix of order m for the tests: 1, 2 (Sylvester) or a Paley I order.
pub fn base(m: usize) -> Vec<i8> {
    match m {
        1 => vec![1],
        2 => vec![1, 1, 1, -1],
        _ => paley_i(m - 1),
    }
}

/// ‖a − b‖ / ‖b‖ in f64, infinite when either holds a NaN: the parity
/// tests' measure of a backend's result `a` against the CPU's `b`.
pub fn rel_err(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len());
    if a.iter().chain(b).any(|v| v.is_nan()) {
        return f64::INFINITY;
    }
    let num: f64 = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2))
        .sum();
    let den: f64 = b.iter().map(|&y| f64::from(y).powi(2)).sum();
    (num / den.max(1e-300)).sqrt()
}

/// The bits of an f32 tensor's elements (copied to the CPU first), for
/// comparisons that must be exact: the sampler's scores.
pub fn f32_bits(t: &candle_core::Tensor) -> Vec<u32> {
    t.to_device(&candle_core::Device::Cpu)
        .and_then(|t| t.flatten_all())
        .and_then(|t| t.to_vec1::<f32>())
        .expect("an f32 tensor")
        .iter()
        .map(|v| v.to_bits())
        .collect()
}
