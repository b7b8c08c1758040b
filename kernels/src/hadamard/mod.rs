//! Fast normalised Hadamard transform along the last axis, for orders
//! n = m·2^k with a caller-supplied ±1 base matrix B of order m.
//!
//! # Convention
//! H = B ⊗ S, the Kronecker product of the base matrix B (order m, m = 1 for
//! pure powers of two) and the Sylvester matrix S of order s = 2^k. A row x is
//! viewed as the m×s matrix X with `X[a][i] = x[a·s + i]`; the transform is
//!
//! 1. the fast Walsh–Hadamard butterflies (X·S) on each length-s chunk, in
//!    Sylvester (natural) order, strides 1, 2, 4, … in that order;
//! 2. the m×m mix B·(X·S): output chunk a is Σ_b B\[a\]\[b\]·chunk_b, summed in
//!    order b = 0, 1, …, m − 1;
//! 3. the scale 1/√n (computed in f64, rounded once to f32).
//!
//! So [`HadamardPlan::apply`] with [`Direction::Forward`] maps each row x to
//! (H/√n)·x (the row vector x·(H/√n)ᵀ), and [`Direction::Transposed`] maps it to
//! (H/√n)ᵀ·x, the inverse, by using Bᵀ in step 2 (S is symmetric).
//!
//! The base matrices themselves (Paley, Williamson, …) are built by the
//! workbench; this crate only checks that what it is given is Hadamard.
//!
//! # Speed
//! The fast path (x86-64 with AVX2 and FMA, detected at run time) does the
//! first three butterfly levels inside 8-lane registers, then up to three more
//! across eight registers, then the remaining levels in radix-8 sweeps, with the
//! scale fused into the last sweep. Rows longer than 4096 floats first do all
//! levels inside each 16 KiB block (L1), then the few remaining levels across
//! blocks; a row of up to 2^15 floats (128 KiB) stays in L2 meanwhile,
//! so the batch crosses main memory once. The m×m mix
//! runs over packed panels of 16 columns with a table method (see `mix.rs`)
//! that needs about 4× fewer adds than the dense ±1 product for m = 172. The
//! fast path performs exactly the floating-point operations of the portable
//! code in the same order (adds and subtracts, or FMAs by ±1, which round the
//! same), so both give bit-identical results, which the tests check; the mix
//! differs from the plain dense sum only by rounding order. Rows are split over
//! rayon's threads.

mod avx2;
mod mix;
mod op;
mod scalar;
#[cfg(test)]
mod tests;

pub use op::{hadamard, hadamard_inplace, HadamardOp};

use candle_core::{bail, Result};
use rayon::prelude::*;
use std::sync::Arc;

/// The GPU mix matrices of a plan: (forward, transposed).
type MixPair = (Arc<[f32]>, Arc<[f32]>);

/// Which of the two transforms a plan applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// x ↦ (H/√n)·x.
    Forward,
    /// x ↦ (H/√n)ᵀ·x, the inverse of [`Direction::Forward`].
    Transposed,
}

impl Direction {
    /// The other direction (the inverse, and the backward pass).
    pub fn flip(self) -> Self {
        match self {
            Direction::Forward => Direction::Transposed,
            Direction::Transposed => Direction::Forward,
        }
    }
}

/// Which implementation a plan runs; chosen once from the CPU's features.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CpuPath {
    /// Plain loops (the compiler may still vectorise them).
    Portable,
    /// x86-64 AVX2 + FMA intrinsics.
    Avx2,
}

impl CpuPath {
    /// The fastest path this CPU supports.
    pub fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            return CpuPath::Avx2;
        }
        CpuPath::Portable
    }
}

/// A prepared transform of order n = m·2^k: the factorisation, the base
/// matrix and its transpose as ±1.0 floats, and the scale.
#[derive(Debug, Clone)]
pub struct HadamardPlan {
    n: usize,
    m: usize,
    s: usize,
    base: Arc<[f32]>,
    base_t: Arc<[f32]>,
    /// Table-method indices for B and Bᵀ (None when m = 1).
    mix: Option<Arc<(mix::MixPlan, mix::MixPlan)>>,
    /// The GPU kernels' mix matrices M[b][a] (coefficient of input chunk b in
    /// output a, columns padded to a multiple of 8) for each direction, made
    /// on first use. Owned by the plan, so device copies can be cached by
    /// this allocation for as long as it lives.
    gpu_mix: Arc<std::sync::OnceLock<MixPair>>,
    scale: f32,
    path: CpuPath,
}

/// The largest order a plan accepts: rows beyond this no longer fit a core's
/// cache, and no rotation in the workbench needs them.
pub const MAX_ORDER: usize = 1 << 24;

impl HadamardPlan {
    /// The plan for n = 2^k (base matrix `[1]`).
    pub fn pow2(n: usize) -> Result<Self> {
        Self::new(n, 1, &[1])
    }

    /// The plan for order `n` with the ±1 base matrix `base` (row-major, m×m):
    /// n must be m·2^k and B·Bᵀ = m·I must hold exactly. Errors name what is
    /// wrong.
    pub fn new(n: usize, m: usize, base: &[i8]) -> Result<Self> {
        if n == 0 || m == 0 {
            bail!("hadamard: order n = {n} and base order m = {m} must be positive");
        }
        if n > MAX_ORDER {
            bail!("hadamard: order {n} exceeds the supported maximum {MAX_ORDER}");
        }
        if !n.is_multiple_of(m) || !(n / m).is_power_of_two() {
            bail!("hadamard: order {n} is not the base order {m} times a power of two");
        }
        if base.len() != m * m {
            bail!(
                "hadamard: base matrix of order {m} needs {} entries, got {}",
                m * m,
                base.len()
            );
        }
        if let Some(v) = base.iter().find(|&&v| v != 1 && v != -1) {
            bail!("hadamard: base matrix entries must be ±1, found {v}");
        }
        // B·Bᵀ = m·I exactly (integer arithmetic): what makes H/√n orthogonal.
        for i in 0..m {
            for j in 0..i {
                let dot: i32 = (0..m)
                    .map(|c| i32::from(base[i * m + c]) * i32::from(base[j * m + c]))
                    .sum();
                if dot != 0 {
                    bail!("hadamard: base matrix of order {m} is not Hadamard (rows {j} and {i} are not orthogonal)");
                }
            }
        }
        let b: Vec<f32> = base.iter().map(|&v| f32::from(v)).collect();
        let bt: Vec<f32> = (0..m * m).map(|idx| b[(idx % m) * m + idx / m]).collect();
        let mix = (m > 1).then(|| Arc::new((mix::MixPlan::new(&b, m), mix::MixPlan::new(&bt, m))));
        Ok(HadamardPlan {
            mix,
            gpu_mix: Arc::default(),
            n,
            m,
            s: n / m,
            base: b.into(),
            base_t: bt.into(),
            // Computed in f64 so the only rounding is the final cast.
            scale: (1.0 / (n as f64).sqrt()) as f32,
            path: CpuPath::detect(),
        })
    }

    /// The same plan forced onto one implementation (tests and benchmarks);
    /// asking for AVX2 on a CPU without it gives the portable path.
    pub fn with_path(mut self, path: CpuPath) -> Self {
        self.path = if path == CpuPath::Avx2 && CpuPath::detect() != CpuPath::Avx2 {
            CpuPath::Portable
        } else {
            path
        };
        self
    }

    /// The order n.
    pub fn n(&self) -> usize {
        self.n
    }

    /// The base order m (1 for a power of two).
    pub fn m(&self) -> usize {
        self.m
    }

    /// The power-of-two factor s = n / m.
    pub fn s(&self) -> usize {
        self.s
    }

    /// The normalisation 1/√n as applied (f32).
    pub fn scale(&self) -> f32 {
        self.scale
    }

    /// The implementation in use.
    pub fn path(&self) -> CpuPath {
        self.path
    }

    /// The GPU mix matrix for `dir` (see the field's docs).
    pub(crate) fn gpu_mix_matrix(&self, dir: Direction) -> &Arc<[f32]> {
        let pair = self.gpu_mix.get_or_init(|| {
            let m = self.m;
            let m8 = m.div_ceil(8) * 8;
            // Forward: output a = Σ_b B[a][b] z_b, so M[b][a] = B[a][b] = Bᵀ[b][a];
            // transposed: M[b][a] = Bᵀ[a][b] = B[b][a].
            let make = |src: &[f32]| -> Arc<[f32]> {
                let mut out = vec![0.0f32; m * m8];
                for b in 0..m {
                    out[b * m8..b * m8 + m].copy_from_slice(&src[b * m..(b + 1) * m]);
                }
                out.into()
            };
            (make(&self.base_t), make(&self.base))
        });
        match dir {
            Direction::Forward => &pair.0,
            Direction::Transposed => &pair.1,
        }
    }

    /// The base matrix for `dir` (B or Bᵀ), row-major ±1.0.
    pub fn base(&self, dir: Direction) -> &[f32] {
        match dir {
            Direction::Forward => &self.base,
            Direction::Transposed => &self.base_t,
        }
    }

    /// In place, on the calling thread: each length-n row of `data` becomes
    /// its transform. Err if `data.len()` is not a multiple of n.
    pub fn apply_seq(&self, data: &mut [f32], dir: Direction) -> Result<()> {
        self.check_len(data.len())?;
        let mut scratch = self.scratch();
        for block in data.chunks_mut(self.rows_per_block() * self.n) {
            self.apply_block(block, dir, &mut scratch);
        }
        Ok(())
    }

    /// In place, rows split over rayon's threads (whole blocks of rows per
    /// task, so results do not depend on the thread count).
    pub fn apply(&self, data: &mut [f32], dir: Direction) -> Result<()> {
        self.check_len(data.len())?;
        data.par_chunks_mut(self.rows_per_block() * self.n)
            .for_each_init(
                || self.scratch(),
                |scratch, block| self.apply_block(block, dir, scratch),
            );
        Ok(())
    }

    /// Per-thread buffers for [`Self::apply_block`].
    pub(crate) fn scratch(&self) -> mix::Scratch {
        mix::Scratch::new(self.mix.as_deref().map(|(f, _)| f))
    }

    pub(crate) fn check_len(&self, len: usize) -> Result<()> {
        if !len.is_multiple_of(self.n) {
            bail!(
                "hadamard: data length {len} is not a multiple of the order n = {}",
                self.n
            );
        }
        Ok(())
    }

    /// Rows handled together: about 64 KiB, so a block stays in L2 between the
    /// butterflies and the mix, and small rows share the mix's packed panels.
    pub(crate) fn rows_per_block(&self) -> usize {
        ((1 << 14) / self.n).max(1)
    }

    /// Transforms a block of whole rows in place.
    pub(crate) fn apply_block(
        &self,
        block: &mut [f32],
        dir: Direction,
        scratch: &mut mix::Scratch,
    ) {
        debug_assert!(block.len().is_multiple_of(self.n));
        // With a mix, the scale is applied when the mix writes back.
        let butterfly_scale = if self.m == 1 { Some(self.scale) } else { None };
        if self.m == 1 || !mix::fuses_butterflies(self.s) {
            for chunk in block.chunks_exact_mut(self.s) {
                butterflies(chunk, butterfly_scale, self.path);
            }
        }
        if let Some(plans) = &self.mix {
            let plan = match dir {
                Direction::Forward => &plans.0,
                Direction::Transposed => &plans.1,
            };
            mix::mix_rows(block, self.n, self.s, plan, self.scale, scratch, self.path);
        }
    }
}

/// Unnormalised fast Walsh–Hadamard transform of `x` (a power-of-two length)
/// in Sylvester order, optionally scaled at the end.
pub(crate) fn butterflies(x: &mut [f32], scale: Option<f32>, path: CpuPath) {
    debug_assert!(x.len().is_power_of_two());
    match path {
        CpuPath::Avx2 if x.len() >= 8 => avx2::butterflies(x, scale),
        _ => scalar::butterflies(x, scale),
    }
}
