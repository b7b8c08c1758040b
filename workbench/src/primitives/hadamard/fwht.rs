//! Fast normalised Hadamard transform for orders n = m·2^k.
//!
//! With H = B ⊗ S (B the base matrix of order m, S the Sylvester matrix of
//! order s = 2^k, see [`super::hadamard`]) and a row x viewed as the m×s
//! matrix X with `X[a][i] = x[a·s + i]`, the column-vector product H·x reshapes
//! to B·X·Sᵀ = B·X·S (S is symmetric). So the transform is: a fast
//! Walsh–Hadamard butterfly (X·S) on each of the m contiguous length-s chunks,
//! then the m×m product B·(X·S) mixing the chunks, then the scale 1/√n. That
//! costs n·k + m·n additions per row instead of n² (the kernel's table method
//! cuts the m·n further). The arithmetic lives in `wb_kernels::hadamard`; this
//! module supplies the base matrices.
//!
//! Convention (checked against the dense product in the tests):
//! [`FwhtPlan::apply_rows`] maps each row x to (H/√n)·x, i.e. the row vector
//! x·(H/√n)ᵀ, and [`FwhtPlan::apply_rows_transposed`] maps x to x·(H/√n).
//! H/√n is orthogonal, so each undoes the other. When H is symmetric (the
//! pure powers of two, and the Paley II bases 36 and 52 times any 2^k) the
//! two coincide and the transform is its own inverse.

use std::sync::Arc;

use wb_kernels::hadamard::{Direction, HadamardPlan};

use super::{base_matrix, factor, unsupported};

/// A prepared transform of order n: the factorisation n = m·2^k and the base
/// matrix, handed to the kernel crate's [`HadamardPlan`] (AVX2 butterflies and
/// a table-method m×m mix, rows split over rayon's threads; see
/// `wb_kernels::hadamard`), so repeated calls skip the construction.
#[derive(Debug, Clone)]
pub struct FwhtPlan {
    n: usize,
    plan: Arc<HadamardPlan>,
}

impl FwhtPlan {
    /// Prepares the transform of order n; Err for an unsupported n (same
    /// message as [`super::hadamard`]).
    pub fn new(n: usize) -> Result<Self, String> {
        let (m, _) = factor(n).ok_or_else(|| unsupported(n))?;
        let b = base_matrix(m).ok_or_else(|| unsupported(n))?;
        let plan = HadamardPlan::new(n, m, &b).map_err(|e| e.to_string())?;
        Ok(FwhtPlan {
            n,
            plan: Arc::new(plan),
        })
    }

    /// The order n.
    pub fn n(&self) -> usize {
        self.n
    }

    /// The kernel plan, for callers that use the kernel's candle ops.
    pub fn kernel_plan(&self) -> &Arc<HadamardPlan> {
        &self.plan
    }

    /// In place, each length-n row x of `data` becomes x·(H/√n)ᵀ = (H/√n)·x.
    pub fn apply_rows(&self, data: &mut [f32]) -> Result<(), String> {
        self.apply(data, Direction::Forward)
    }

    /// In place, each length-n row x of `data` becomes x·(H/√n) = (H/√n)ᵀ·x,
    /// the inverse of [`Self::apply_rows`].
    pub fn apply_rows_transposed(&self, data: &mut [f32]) -> Result<(), String> {
        self.apply(data, Direction::Transposed)
    }

    fn apply(&self, data: &mut [f32], dir: Direction) -> Result<(), String> {
        if !data.len().is_multiple_of(self.n) {
            return Err(format!(
                "fast Hadamard transform: data length {} is not a multiple of n = {}",
                data.len(),
                self.n
            ));
        }
        self.plan.apply(data, dir).map_err(|e| e.to_string())
    }
}
