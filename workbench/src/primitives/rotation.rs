//! Orthogonal rotations for quantization (QuaRot-style) and the SmoothQuant
//! scaling baseline.
//!
//! A rotation Q (orthogonal, Q Qᵀ = I) applied to a linear layer's input and
//! folded into its weight leaves the output unchanged, `x W^T = (x Q)(W Q)^T`,
//! while spreading outlier channels over all channels, which makes both easier to
//! quantize.

use serde::{Deserialize, Serialize};
use wb_kernels::philox;

use super::hadamard;

/// Stream of the random signs and Gaussian entries of rotations.
const STREAM_ROTATION: u32 = 0x0007_0000;

/// Which rotation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Rotation {
    /// The identity.
    None,
    /// The normalised Hadamard matrix H/√n (Sylvester for 2^k, m·2^k by Kronecker
    /// product with a Paley or Williamson matrix of order m).
    Hadamard,
    /// diag(±1)·H/√n with seeded random signs applied to the input channels
    /// before the Hadamard mix (the paper's H·diag(±1) on column vectors).
    RandomHadamard {
        /// Seed of the signs.
        seed: u64,
    },
    /// A Haar-random orthogonal matrix: QR of a Gaussian matrix with the signs of
    /// R's diagonal moved into Q (without that fix Q is not Haar-distributed).
    RandomOrthogonal {
        /// Seed of the Gaussian matrix.
        seed: u64,
    },
}

/// Scheme names a config may use.
pub const SCHEMES: [&str; 4] = ["none", "hadamard", "random_hadamard", "random_orthogonal"];

/// The rotation a scheme name stands for (random schemes seeded by `seed`).
pub fn by_name(name: &str, seed: u64) -> Option<Rotation> {
    match name {
        "none" => Some(Rotation::None),
        "hadamard" => Some(Rotation::Hadamard),
        "random_hadamard" => Some(Rotation::RandomHadamard { seed }),
        "random_orthogonal" => Some(Rotation::RandomOrthogonal { seed }),
        _ => None,
    }
}

/// The rotation as a dense row-major `n × n` matrix in f64.
pub fn matrix(rotation: Rotation, n: usize) -> Result<Vec<f64>, String> {
    if n == 0 {
        return Err("a rotation needs a positive size".into());
    }
    Ok(match rotation {
        Rotation::None => {
            let mut q = vec![0.0; n * n];
            for i in 0..n {
                q[i * n + i] = 1.0;
            }
            q
        }
        Rotation::Hadamard | Rotation::RandomHadamard { .. } => {
            let h = hadamard::hadamard(n)?;
            let scale = 1.0 / (n as f64).sqrt();
            let mut q: Vec<f64> = h.entries.iter().map(|&v| v as f64 * scale).collect();
            if let Some(signs) = input_signs(rotation, n) {
                // Signs first, then the mix: x ↦ (x ⊙ s) H/√n, i.e. Q = diag(s) H/√n
                // (H·diag(s) acting on column vectors). Flipping signs after the
                // mix would leave every magnitude as plain Hadamard leaves it.
                for (row, sign) in q.chunks_exact_mut(n).zip(signs) {
                    row.iter_mut().for_each(|v| *v *= sign);
                }
            }
            q
        }
        Rotation::RandomOrthogonal { seed } => haar_orthogonal(n, seed),
    })
}

/// The random signs s of a randomized Hadamard rotation of order n (its matrix
/// is diag(s)·H/√n), or None for a rotation without them.
pub fn input_signs(rotation: Rotation, n: usize) -> Option<Vec<f64>> {
    match rotation {
        Rotation::RandomHadamard { seed } => Some(
            (0..n)
                .map(|i| {
                    if philox::bits(seed, i as u64, 0, STREAM_ROTATION) & 1 == 1 {
                        -1.0
                    } else {
                        1.0
                    }
                })
                .collect(),
        ),
        _ => None,
    }
}

/// A standard normal keyed by (seed, index).
fn gaussian(seed: u64, index: u64) -> f64 {
    let u1 = philox::uniform(seed, index, 0, STREAM_ROTATION + 1);
    let u2 = philox::uniform(seed, index, 1, STREAM_ROTATION + 1);
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// Haar-random orthogonal matrix by modified Gram–Schmidt on the columns of a
/// Gaussian matrix (equivalent to QR with a positive-diagonal R).
fn haar_orthogonal(n: usize, seed: u64) -> Vec<f64> {
    // Columns of A, then orthonormalised in place; twice for numerical safety.
    let mut cols: Vec<Vec<f64>> = (0..n)
        .map(|j| (0..n).map(|i| gaussian(seed, (j * n + i) as u64)).collect())
        .collect();
    for j in 0..n {
        for _ in 0..2 {
            for k in 0..j {
                let dot: f64 = cols[j].iter().zip(&cols[k]).map(|(a, b)| a * b).sum();
                let (head, tail) = cols.split_at_mut(j);
                for (a, b) in tail[0].iter_mut().zip(&head[k]) {
                    *a -= dot * b;
                }
            }
        }
        let norm: f64 = cols[j].iter().map(|v| v * v).sum::<f64>().sqrt();
        for v in cols[j].iter_mut() {
            *v /= norm;
        }
    }
    let mut q = vec![0.0; n * n];
    for (j, col) in cols.iter().enumerate() {
        for (i, v) in col.iter().enumerate() {
            q[i * n + j] = *v;
        }
    }
    q
}

/// SmoothQuant's per-input-channel scales `s_j = max|X_j|^α / max|W_j|^(1−α)`:
/// the input is divided by s and the weight's input columns multiplied by it,
/// moving quantization difficulty from activations to weights by `alpha`.
pub fn smoothquant_scales(
    act_absmax: &[f32],
    weight_absmax: &[f32],
    alpha: f64,
) -> Result<Vec<f32>, String> {
    if act_absmax.len() != weight_absmax.len() {
        return Err(format!(
            "{} activation channels but {} weight input channels",
            act_absmax.len(),
            weight_absmax.len()
        ));
    }
    if !(0.0..=1.0).contains(&alpha) {
        return Err(format!("migration strength alpha {alpha}; expected 0 to 1"));
    }
    Ok(act_absmax
        .iter()
        .zip(weight_absmax)
        .map(|(&a, &w)| {
            let s = (a.max(1e-5) as f64).powf(alpha) / (w.max(1e-5) as f64).powf(1.0 - alpha);
            s.clamp(1e-5, 1e5) as f32
        })
        .collect())
}

/// `Q Qᵀ` minus the identity, largest absolute entry (0 for an exact rotation).
pub fn orthogonality_error(q: &[f64], n: usize) -> f64 {
    let mut worst: f64 = 0.0;
    for i in 0..n {
        for j in 0..n {
            let dot: f64 = (0..n).map(|k| q[i * n + k] * q[j * n + k]).sum();
            let target = if i == j { 1.0 } else { 0.0 };
            worst = worst.max((dot - target).abs());
        }
    }
    worst
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rotation_is_orthogonal_and_exactly_invertible() {
        for n in [1usize, 2, 8, 12, 64, 172] {
            for rotation in [
                Rotation::None,
                Rotation::Hadamard,
                Rotation::RandomHadamard { seed: 3 },
                Rotation::RandomOrthogonal { seed: 3 },
            ] {
                let q = matrix(rotation, n).unwrap();
                let err = orthogonality_error(&q, n);
                assert!(err < 1e-12, "{rotation:?} n={n}: Q Qᵀ − I = {err}");
                // x Q Qᵀ = x: the rotation is undone by its transpose.
                let x: Vec<f64> = (0..n).map(|i| gaussian(9, i as u64)).collect();
                let y: Vec<f64> = (0..n)
                    .map(|j| (0..n).map(|i| x[i] * q[i * n + j]).sum())
                    .collect();
                let back: Vec<f64> = (0..n)
                    .map(|i| (0..n).map(|j| y[j] * q[i * n + j]).sum())
                    .collect();
                let diff = x
                    .iter()
                    .zip(&back)
                    .fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
                assert!(diff < 1e-12, "{rotation:?} n={n}: round trip error {diff}");
            }
        }
        assert!(matrix(Rotation::Hadamard, 44).is_err());
        assert_ne!(
            matrix(Rotation::RandomOrthogonal { seed: 1 }, 8).unwrap(),
            matrix(Rotation::RandomOrthogonal { seed: 2 }, 8).unwrap()
        );
    }

    #[test]
    fn rotation_spreads_an_outlier_channel() {
        // All the energy in one channel: after a Hadamard rotation every channel
        // carries exactly a 1/√n share of it, the flattest a rotation can make it.
        let n = 64;
        let mut x = vec![0.0f64; n];
        x[5] = 10.0;
        let q = matrix(Rotation::Hadamard, n).unwrap();
        for j in 0..n {
            let y: f64 = (0..n).map(|i| x[i] * q[i * n + j]).sum();
            assert!((y.abs() - 10.0 / (n as f64).sqrt()).abs() < 1e-12, "{y}");
        }
    }

    #[test]
    fn smoothquant_balances_the_ranges() {
        let s = smoothquant_scales(&[100.0, 1.0], &[1.0, 1.0], 0.5).unwrap();
        assert!((s[0] - 10.0).abs() < 1e-4 && (s[1] - 1.0).abs() < 1e-6);
        assert!(smoothquant_scales(&[1.0], &[1.0, 2.0], 0.5).is_err());
        assert!(smoothquant_scales(&[1.0], &[1.0], 1.5).is_err());
    }
}
