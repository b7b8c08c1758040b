//! Hadamard base matrices for the tests and benchmarks of this crate (its
//! unit tests, `tests/` and `benches/` share them); the workbench owns the
//! constructions its studies use. Not part of the API.

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
