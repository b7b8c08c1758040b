//! Fast normalised Hadamard transform for orders n = m·2^k.
//!
//! With H = B ⊗ S (B the base matrix of order m, S the Sylvester matrix of
//! order s = 2^k, see [`super::hadamard`]) and a row x viewed as the m×s
//! matrix X with `X[a][i] = x[a·s + i]`, the column-vector product H·x reshapes
//! to B·X·Sᵀ = B·X·S (S is symmetric). So the transform is: a fast
//! Walsh–Hadamard butterfly (X·S) on each of the m contiguous length-s chunks,
//! then the dense m×m product B·(X·S) mixing the chunks, then the scale
//! 1/√n. That costs n·k + m·n additions per row instead of n².
//!
//! Convention (checked against the dense product in the tests):
//! [`FwhtPlan::apply_rows`] maps each row x to (H/√n)·x, i.e. the row vector
//! x·(H/√n)ᵀ, and [`FwhtPlan::apply_rows_transposed`] maps x to x·(H/√n).
//! H/√n is orthogonal, so each undoes the other. When H is symmetric (the
//! pure powers of two, and the Paley II bases 36 and 52 times any 2^k) the
//! two coincide and the transform is its own inverse.

use super::{base_matrix, factor, unsupported};

/// A prepared transform of order n: the factorisation n = m·2^k and the base
/// matrix as ±1.0 floats, so repeated calls skip the construction.
#[derive(Debug, Clone)]
pub struct FwhtPlan {
    n: usize,
    m: usize,
    s: usize,
    /// Base matrix B, row-major, as ±1.0.
    base: Vec<f32>,
    /// Bᵀ, row-major, so the transposed transform also reads rows
    /// contiguously.
    base_t: Vec<f32>,
    scale: f32,
}

impl FwhtPlan {
    /// Prepares the transform of order n; Err for an unsupported n (same
    /// message as [`super::hadamard`]).
    pub fn new(n: usize) -> Result<Self, String> {
        let (m, k) = factor(n).ok_or_else(|| unsupported(n))?;
        let b = base_matrix(m).ok_or_else(|| unsupported(n))?;
        let base: Vec<f32> = b.iter().map(|&v| f32::from(v)).collect();
        let base_t = (0..m * m)
            .map(|idx| base[(idx % m) * m + idx / m])
            .collect();
        Ok(FwhtPlan {
            n,
            m,
            s: 1 << k,
            base,
            base_t,
            // Computed in f64 so the only rounding is the final cast.
            scale: (1.0 / (n as f64).sqrt()) as f32,
        })
    }

    /// The order n.
    pub fn n(&self) -> usize {
        self.n
    }

    /// In place, each length-n row x of `data` becomes x·(H/√n)ᵀ = (H/√n)·x.
    pub fn apply_rows(&self, data: &mut [f32]) -> Result<(), String> {
        self.apply(data, &self.base)
    }

    /// In place, each length-n row x of `data` becomes x·(H/√n) = (H/√n)ᵀ·x,
    /// the inverse of [`Self::apply_rows`].
    pub fn apply_rows_transposed(&self, data: &mut [f32]) -> Result<(), String> {
        self.apply(data, &self.base_t)
    }

    fn apply(&self, data: &mut [f32], base: &[f32]) -> Result<(), String> {
        if !data.len().is_multiple_of(self.n) {
            return Err(format!(
                "fast Hadamard transform: data length {} is not a multiple of n = {}",
                data.len(),
                self.n
            ));
        }
        // One scratch row reused across rows: the m×m mix cannot be done in
        // place because every output chunk reads every input chunk.
        let mut scratch = vec![0.0f32; if self.m > 1 { self.n } else { 0 }];
        for row in data.chunks_exact_mut(self.n) {
            for chunk in row.chunks_exact_mut(self.s) {
                butterflies(chunk);
            }
            if self.m > 1 {
                mix(row, &mut scratch, base, self.m, self.s);
                row.copy_from_slice(&scratch);
            }
            for v in row.iter_mut() {
                *v *= self.scale;
            }
        }
        Ok(())
    }
}

/// Unnormalised fast Walsh–Hadamard transform in Sylvester (natural) order:
/// x ↦ S·x for S of order x.len() (a power of two). Each pass combines pairs
/// at distance h, which is one Kronecker factor [[1, 1], [1, −1]] applied to
/// one bit of the index; after all bits this is S = ⊗[[1, 1], [1, −1]].
fn butterflies(x: &mut [f32]) {
    let mut h = 1;
    while h < x.len() {
        for block in x.chunks_exact_mut(2 * h) {
            let (lo, hi) = block.split_at_mut(h);
            for (a, b) in lo.iter_mut().zip(hi.iter_mut()) {
                let (u, v) = (*a, *b);
                *a = u + v;
                *b = u - v;
            }
        }
        h *= 2;
    }
}

/// out = B·Z with Z the m×s matrix `z` (row-major), B given row-major.
fn mix(z: &[f32], out: &mut [f32], base: &[f32], m: usize, s: usize) {
    if s == 1 {
        // Plain matrix–vector product: dot products over contiguous rows.
        for (o, brow) in out.iter_mut().zip(base.chunks_exact(m)) {
            *o = brow.iter().zip(z).map(|(b, v)| b * v).sum();
        }
        return;
    }
    // Output chunk a is Σ_b B[a][b]·(chunk b of z): whole-chunk axpys, which
    // read and write contiguously and vectorise.
    for (ochunk, brow) in out.chunks_exact_mut(s).zip(base.chunks_exact(m)) {
        ochunk.fill(0.0);
        for (&sign, zchunk) in brow.iter().zip(z.chunks_exact(s)) {
            for (o, &v) in ochunk.iter_mut().zip(zchunk) {
                *o += sign * v;
            }
        }
    }
}
