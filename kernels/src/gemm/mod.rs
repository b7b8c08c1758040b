//! W8A8 matrix product: int8 A `[M, K]` × int8 B (K × N) with int32
//! accumulation, then per-row (per-token) × per-column (per-channel) scales
//! in f32, with a selectable order of output tiles ([`Schedule`]).
//!
//! # Layout
//! Codes are stored as u8 holding int8 two's complement (as
//! [`rotate_quantize`](crate::quant::rotate_quantize) writes them). A is
//! `[M, K]` row-major; B, the K × N weight, is stored column-major, i.e. as
//! a `[N, K]` tensor: the layout of `nn.Linear` weights and the only one
//! the integer tensor-core paths take without a transpose (K contiguous for
//! both operands: cuBLAS's int8 "TN" product, `mma.sync` row × col).
//!
//! # Results
//! [`gemm_w8a8_i32`] gives the exact int32 sums Σ_k a\[m,k\]·b\[n,k\] (exact for
//! K < 2^17, which is checked: |a·b| ≤ 2^14); [`gemm_w8a8`] gives
//! `(acc as f32 · row_scale[m]) · col_scale[n]`, rounded in that order on
//! every backend, so outputs are bit-identical across backends too.
//!
//! # Backends
//! - CPU: rayon workers take tiles in schedule order from a shared counter
//!   (as GPU blocks are dispatched), each tile a loop over K blocks of
//!   `tile_k` with int16-widened packed panels and an AVX2 `vpmaddwd`
//!   micro-kernel (portable code elsewhere); any tile sizes.
//! - CUDA: `mma.sync` m16n8k32 s8 tensor cores, a 4-stage `cp.async`
//!   pipeline, tile sizes from [`CUDA_TILES`], K step 64, K a multiple of 16.
//! - Metal: a threadgroup-tiled kernel with int32 dot products (Metal's
//!   `simdgroup_matrix` takes half, float and bfloat, not int8), 64 × 64
//!   tiles, K step 32.
//!
//! [`reference_i32`] is the plain triple loop the tests compare against.

mod cpu;
pub mod schedule;
#[cfg(test)]
mod tests;

pub use cpu::{gemm_i32_cpu, reference_i32, scale_output};
pub use schedule::{tile_map, Schedule};

use candle_core::backend::BackendStorage;
use candle_core::{bail, CpuStorage, CustomOp2, CustomOp3, DType, Layout, Result, Shape, Tensor};

use crate::elem::contiguous;

/// (tile_m, tile_n) pairs the CUDA kernel is compiled for (its K step is 64).
pub const CUDA_TILES: [(usize, usize); 8] = [
    (256, 128),
    (128, 128),
    (128, 64),
    (64, 128),
    (64, 64),
    (32, 128),
    (16, 128),
    (16, 64),
];

/// The Metal kernel's tile (its K step is 32).
pub const METAL_TILE: (usize, usize) = (64, 64);

/// Tile sizes and order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct GemmConfig {
    /// Output rows per tile.
    pub tile_m: usize,
    /// Output columns per tile.
    pub tile_n: usize,
    /// K elements per step (CPU: the panel depth kept in cache; CUDA must
    /// be 64, Metal 32).
    pub tile_k: usize,
    /// Order of the tiles.
    pub schedule: Schedule,
}

impl GemmConfig {
    /// A config with the given tile and schedule.
    pub fn new(tile_m: usize, tile_n: usize, tile_k: usize, schedule: Schedule) -> Self {
        GemmConfig {
            tile_m,
            tile_n,
            tile_k,
            schedule,
        }
    }

    /// The tile grid (tiles_m, tiles_n) of an M × N output.
    pub fn grid(&self, m: usize, n: usize) -> (usize, usize) {
        (m.div_ceil(self.tile_m), n.div_ceil(self.tile_n))
    }

    /// Checks the tile sizes (positive; tile_k a multiple of 16, the CPU
    /// micro-kernel's step).
    pub fn check(&self) -> Result<()> {
        if self.tile_m == 0 || self.tile_n == 0 || self.tile_k == 0 {
            bail!("gemm: tile sizes must be positive, got {self:?}");
        }
        if !self.tile_k.is_multiple_of(16) {
            bail!("gemm: tile_k must be a multiple of 16, got {}", self.tile_k);
        }
        if let Schedule::Grouped { group_m: 0 } = self.schedule {
            bail!("gemm: grouped schedule needs group_m ≥ 1");
        }
        Ok(())
    }
}

/// Problem sizes (M, N, K) of A `[M, K]` and B `[N, K]`, checked.
pub(crate) fn dims(a: &Layout, b: &Layout) -> Result<(usize, usize, usize)> {
    let (&[m, k], &[n, kb]) = (a.dims(), b.dims()) else {
        bail!(
            "gemm_w8a8: expected A [M, K] and B [N, K], got {:?} and {:?}",
            a.dims(),
            b.dims()
        );
    };
    if k != kb {
        bail!("gemm_w8a8: A is [{m}, {k}] but B is [{n}, {kb}]: K must agree");
    }
    if m == 0 || n == 0 || k == 0 {
        bail!("gemm_w8a8: empty problem M={m} N={n} K={k}");
    }
    if k >= 1 << 17 {
        bail!("gemm_w8a8: K = {k} could overflow int32 (K < 131072 is exact)");
    }
    Ok((m, n, k))
}

/// Reinterprets int8 codes stored as u8.
pub fn as_i8(codes: &[u8]) -> &[i8] {
    // SAFETY: u8 and i8 have the same size and alignment, and every bit
    // pattern is a valid i8.
    unsafe { std::slice::from_raw_parts(codes.as_ptr().cast::<i8>(), codes.len()) }
}

/// Exact int32 sums of A `[M, K]` × B `[N, K]`ᵀ (u8 holding int8): an I32
/// tensor `[M, N]` on the inputs' device.
pub fn gemm_w8a8_i32(a: &Tensor, b: &Tensor, cfg: &GemmConfig) -> Result<Tensor> {
    a.contiguous()?
        .apply_op2_no_bwd(&b.contiguous()?, &GemmOp { cfg: *cfg })
}

/// The scaled product `(Σ_k a·b as f32 · row_scale[m]) · col_scale[n]`: F32
/// `[M, N]`. `row_scale` has M elements, `col_scale` N (f32).
pub fn gemm_w8a8(
    a: &Tensor,
    b: &Tensor,
    row_scale: &Tensor,
    col_scale: &Tensor,
    cfg: &GemmConfig,
) -> Result<Tensor> {
    // One scale vector [M + N], so the op fits candle's three-input form.
    let scales = Tensor::cat(
        &[
            row_scale.flatten_all()?.to_dtype(DType::F32)?,
            col_scale.flatten_all()?.to_dtype(DType::F32)?,
        ],
        0,
    )?;
    a.contiguous()?
        .apply_op3_no_bwd(&b.contiguous()?, &scales, &ScaledGemmOp { cfg: *cfg })
}

fn codes<'a>(s: &'a CpuStorage, l: &Layout, what: &str) -> Result<&'a [u8]> {
    match s {
        CpuStorage::U8(d) => contiguous("gemm_w8a8", d, l),
        other => bail!(
            "gemm_w8a8: {what} must be u8 (int8 codes), got {:?}",
            other.dtype()
        ),
    }
}

/// The op behind [`gemm_w8a8_i32`].
#[derive(Clone, Debug)]
pub struct GemmOp {
    /// Tiles and order.
    pub cfg: GemmConfig,
}

impl CustomOp2 for GemmOp {
    fn name(&self) -> &'static str {
        "gemm_w8a8_i32"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (m, n, k) = dims(l1, l2)?;
        self.cfg.check()?;
        let (a, b) = (codes(s1, l1, "A")?, codes(s2, l2, "B")?);
        let mut out = vec![0i32; m * n];
        gemm_i32_cpu(as_i8(a), as_i8(b), m, n, k, &self.cfg, &mut out)?;
        Ok((CpuStorage::I32(out), Shape::from((m, n))))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &candle_core::CudaStorage,
        l1: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        crate::cuda::gemm::gemm(&self.cfg, s1, l1, s2, l2, None)
    }

    #[cfg(feature = "metal")]
    fn metal_fwd(
        &self,
        s1: &candle_core::MetalStorage,
        l1: &Layout,
        s2: &candle_core::MetalStorage,
        l2: &Layout,
    ) -> Result<(candle_core::MetalStorage, Shape)> {
        crate::metal::gemm::gemm(&self.cfg, s1, l1, s2, l2, None)
    }
}

/// The op behind [`gemm_w8a8`] (third input: row scales then column scales).
#[derive(Clone, Debug)]
pub struct ScaledGemmOp {
    /// Tiles and order.
    pub cfg: GemmConfig,
}

/// Checks the scale vector's length against M + N.
pub(crate) fn check_scales(l: &Layout, m: usize, n: usize) -> Result<()> {
    if l.shape().elem_count() != m + n {
        bail!(
            "gemm_w8a8: expected {m} row scales and {n} column scales, got {} values",
            l.shape().elem_count() as i64 - n as i64
        );
    }
    Ok(())
}

impl CustomOp3 for ScaledGemmOp {
    fn name(&self) -> &'static str {
        "gemm_w8a8"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (m, n, k) = dims(l1, l2)?;
        self.cfg.check()?;
        check_scales(l3, m, n)?;
        let (a, b) = (codes(s1, l1, "A")?, codes(s2, l2, "B")?);
        let CpuStorage::F32(sc) = s3 else {
            bail!("gemm_w8a8: scales must be f32");
        };
        let sc = contiguous("gemm_w8a8", sc, l3)?;
        let mut acc = vec![0i32; m * n];
        gemm_i32_cpu(as_i8(a), as_i8(b), m, n, k, &self.cfg, &mut acc)?;
        Ok((
            CpuStorage::F32(scale_output(&acc, &sc[..m], &sc[m..], n)),
            Shape::from((m, n)),
        ))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &candle_core::CudaStorage,
        l1: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
        s3: &candle_core::CudaStorage,
        l3: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        crate::cuda::gemm::gemm(&self.cfg, s1, l1, s2, l2, Some((s3, l3)))
    }

    #[cfg(feature = "metal")]
    fn metal_fwd(
        &self,
        s1: &candle_core::MetalStorage,
        l1: &Layout,
        s2: &candle_core::MetalStorage,
        l2: &Layout,
        s3: &candle_core::MetalStorage,
        l3: &Layout,
    ) -> Result<(candle_core::MetalStorage, Shape)> {
        crate::metal::gemm::gemm(&self.cfg, s1, l1, s2, l2, Some((s3, l3)))
    }
}
