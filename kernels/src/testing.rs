//! Helpers shared by the unit tests: a tiny deterministic generator and f64
//! references (the Hadamard base matrices are in [`crate::test_support`],
//! which the integration tests and benchmarks use too).

pub(crate) use crate::test_support::base;

/// splitmix64, so the tests need no crates.
pub(crate) struct Rng(pub u64);

impl Rng {
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [-1, 1).
    pub(crate) fn uniform(&mut self) -> f32 {
        ((self.next_u64() >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }

    /// A value in 0..n.
    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    pub(crate) fn vec(&mut self, len: usize) -> Vec<f32> {
        (0..len).map(|_| self.uniform()).collect()
    }

    /// Values spread over many binades, with the sign random: what real
    /// activations with outliers look like.
    pub(crate) fn wide(&mut self, len: usize) -> Vec<f32> {
        (0..len)
            .map(|_| {
                let e = self.below(40) as i32 - 20;
                self.uniform() * 2f32.powi(e)
            })
            .collect()
    }
}

/// Dense f64 reference of the transform: row x ↦ (H/√n)·x (or (H/√n)ᵀ·x), with
/// H = B ⊗ S built entry by entry (S[i][j] = (−1)^popcount(i & j)).
pub(crate) fn dense(base: &[i8], m: usize, rows: &[f32], n: usize, transposed: bool) -> Vec<f64> {
    let s = n / m;
    let h = |r: usize, c: usize| -> f64 {
        let (r, c) = if transposed { (c, r) } else { (r, c) };
        let b = f64::from(base[(r / s) * m + c / s]);
        let sy = if ((r % s) & (c % s)).count_ones().is_multiple_of(2) {
            1.0
        } else {
            -1.0
        };
        b * sy
    };
    let scale = 1.0 / (n as f64).sqrt();
    let mut out = Vec::with_capacity(rows.len());
    for x in rows.chunks_exact(n) {
        for r in 0..n {
            let sum: f64 = (0..n).map(|c| h(r, c) * f64::from(x[c])).sum();
            out.push(sum * scale);
        }
    }
    out
}

/// ‖a − b‖ / ‖b‖.
pub(crate) fn rel_err(a: &[f32], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    let num: f64 = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| (f64::from(x) - y).powi(2))
        .sum();
    let den: f64 = b.iter().map(|y| y * y).sum();
    (num / den.max(f64::MIN_POSITIVE)).sqrt()
}
