//! The Hadamard transform as candle ops: [`HadamardOp`] (a `CustomOp1` with
//! backward) and its in-place form (`InplaceOp1`), on f32, bf16 and f16 with f32
//! arithmetic, and optional random signs.

use std::sync::Arc;

use candle_core::backend::BackendStorage;
use candle_core::{bail, CpuStorage, CustomOp1, InplaceOp1, Layout, Result, Shape, Tensor};
use half::{bf16, f16};
use rayon::prelude::*;

use super::{mix::Scratch, Direction, HadamardPlan};
use crate::elem::{contiguous, contiguous_mut, unsupported_dtype, Elem};

/// The normalised Hadamard transform along the last axis, with optional
/// signs D = diag(±1):
///
/// - [`Direction::Forward`]: y = (H/√n)·D·x (signs on the input, then the
///   transform), the paper's "random Hadamard" H·diag(±1);
/// - [`Direction::Transposed`]: y = D·(H/√n)ᵀ·x, the inverse of the above.
///
/// Its backward pass is the op of the other direction with the same signs
/// (the transform is orthogonal, so its transpose is its inverse).
#[derive(Clone, Debug)]
pub struct HadamardOp {
    plan: Arc<HadamardPlan>,
    dir: Direction,
    signs: Option<Arc<[f32]>>,
}

impl HadamardOp {
    /// The op for a plan and a direction, without signs.
    pub fn new(plan: Arc<HadamardPlan>, dir: Direction) -> Self {
        HadamardOp {
            plan,
            dir,
            signs: None,
        }
    }

    /// The same op with signs (n entries, each +1.0 or −1.0).
    pub fn with_signs(mut self, signs: &[f32]) -> Result<Self> {
        if signs.len() != self.plan.n() {
            bail!(
                "hadamard: {} signs for order n = {}",
                signs.len(),
                self.plan.n()
            );
        }
        if let Some(v) = signs.iter().find(|&&v| v != 1.0 && v != -1.0) {
            bail!("hadamard: signs must be +1 or -1, found {v}");
        }
        self.signs = Some(signs.into());
        Ok(self)
    }

    /// The inverse (and backward) op: the other direction, the same signs.
    pub fn inverse(&self) -> Self {
        HadamardOp {
            plan: self.plan.clone(),
            dir: self.dir.flip(),
            signs: self.signs.clone(),
        }
    }

    /// The plan.
    pub fn plan(&self) -> &Arc<HadamardPlan> {
        &self.plan
    }

    /// The direction.
    pub fn direction(&self) -> Direction {
        self.dir
    }

    /// The signs, if any.
    pub fn signs(&self) -> Option<&[f32]> {
        self.signs.as_deref()
    }

    /// The signs as shared storage (GPU backends cache device copies by it).
    pub(crate) fn signs_arc(&self) -> Option<&Arc<[f32]>> {
        self.signs.as_ref()
    }

    fn check_shape(&self, layout: &Layout) -> Result<()> {
        let n = self.plan.n();
        match layout.dims().last() {
            Some(&last) if last == n => Ok(()),
            Some(&last) => bail!("hadamard: last dimension is {last}, the plan's order is {n}"),
            None => bail!("hadamard: needs at least one dimension"),
        }
    }

    /// On slices, out of place: `dst` gets the transform of each row of `src`
    /// (rows split over rayon's threads, whole blocks per task).
    pub fn run_cpu<T: Elem>(&self, src: &[T], dst: &mut [T]) -> Result<()> {
        if src.len() != dst.len() {
            bail!(
                "hadamard: source has {} elements, destination {}",
                src.len(),
                dst.len()
            );
        }
        self.plan.check_len(src.len())?;
        let block = self.plan.rows_per_block() * self.plan.n();
        dst.par_chunks_mut(block)
            .zip(src.par_chunks(block))
            .for_each_init(
                || (self.plan.scratch(), Vec::new()),
                |(scratch, buf), (d, s)| self.block(s, d, scratch, buf),
            );
        Ok(())
    }

    /// On a slice, in place.
    pub fn run_cpu_inplace<T: Elem>(&self, data: &mut [T]) -> Result<()> {
        self.plan.check_len(data.len())?;
        let block = self.plan.rows_per_block() * self.plan.n();
        data.par_chunks_mut(block).for_each_init(
            || (self.plan.scratch(), Vec::new()),
            |(scratch, buf), d| {
                buf.clear();
                buf.extend(d.iter().map(|v| v.to_f32()));
                self.transform_f32(buf, scratch);
                for (o, &v) in d.iter_mut().zip(buf.iter()) {
                    *o = T::from_f32(v);
                }
            },
        );
        Ok(())
    }

    /// One block of rows from `src` to `dst`: f32 goes straight into `dst` and
    /// is transformed there while in cache; other types through `buf`.
    fn block<T: Elem>(&self, src: &[T], dst: &mut [T], scratch: &mut Scratch, buf: &mut Vec<f32>) {
        if let Some(d) = T::as_f32_mut(dst) {
            for (o, v) in d.iter_mut().zip(src) {
                *o = v.to_f32();
            }
            self.transform_f32(d, scratch);
        } else {
            buf.clear();
            buf.extend(src.iter().map(|v| v.to_f32()));
            self.transform_f32(buf, scratch);
            for (o, &v) in dst.iter_mut().zip(buf.iter()) {
                *o = T::from_f32(v);
            }
        }
    }

    /// `buf` becomes the transform of the whole rows `src`, in f32.
    pub(crate) fn rotate_f32<T: Elem>(&self, src: &[T], buf: &mut Vec<f32>, scratch: &mut Scratch) {
        buf.clear();
        buf.extend(src.iter().map(|v| v.to_f32()));
        self.transform_f32(buf, scratch);
    }

    /// Signs and transform, in place on whole rows in f32.
    pub(crate) fn transform_f32(&self, rows: &mut [f32], scratch: &mut Scratch) {
        let n = self.plan.n();
        if let (Some(signs), Direction::Forward) = (&self.signs, self.dir) {
            for row in rows.chunks_exact_mut(n) {
                row.iter_mut().zip(signs.iter()).for_each(|(v, s)| *v *= s);
            }
        }
        self.plan.apply_block(rows, self.dir, scratch);
        if let (Some(signs), Direction::Transposed) = (&self.signs, self.dir) {
            for row in rows.chunks_exact_mut(n) {
                row.iter_mut().zip(signs.iter()).for_each(|(v, s)| *v *= s);
            }
        }
    }
}

/// Applies `op` to `x` along its last axis (with backward). The input is made
/// contiguous first if it is not.
pub fn hadamard(x: &Tensor, op: &HadamardOp) -> Result<Tensor> {
    x.contiguous()?.apply_op1(op.clone())
}

/// Applies `op` to `x` in place (no backward); `x` must be contiguous.
pub fn hadamard_inplace(x: &Tensor, op: &HadamardOp) -> Result<()> {
    x.inplace_op1(op)
}

impl CustomOp1 for HadamardOp {
    fn name(&self) -> &'static str {
        "hadamard"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        self.check_shape(layout)?;
        fn go<T: Elem>(op: &HadamardOp, data: &[T], layout: &Layout) -> Result<Vec<T>> {
            let src = contiguous("hadamard", data, layout)?;
            let mut dst = vec![T::from_f32(0.0); src.len()];
            op.run_cpu(src, &mut dst)?;
            Ok(dst)
        }
        let out = match storage {
            CpuStorage::F32(d) => CpuStorage::F32(go(self, d, layout)?),
            CpuStorage::BF16(d) => CpuStorage::BF16(go(self, d, layout)?),
            CpuStorage::F16(d) => CpuStorage::F16(go(self, d, layout)?),
            other => return unsupported_dtype("hadamard", other.dtype(), "f32, bf16 or f16"),
        };
        Ok((out, layout.shape().clone()))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        storage: &candle_core::CudaStorage,
        layout: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        self.check_shape(layout)?;
        crate::cuda::hadamard::forward(self, storage, layout)
    }

    #[cfg(feature = "metal")]
    fn metal_fwd(
        &self,
        storage: &candle_core::MetalStorage,
        layout: &Layout,
    ) -> Result<(candle_core::MetalStorage, Shape)> {
        self.check_shape(layout)?;
        crate::metal::hadamard::forward(self, storage, layout)
    }

    fn bwd(&self, _arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(hadamard(grad_res, &self.inverse())?))
    }
}

impl InplaceOp1 for HadamardOp {
    fn name(&self) -> &'static str {
        "hadamard_inplace"
    }

    fn cpu_fwd(&self, storage: &mut CpuStorage, layout: &Layout) -> Result<()> {
        self.check_shape(layout)?;
        match storage {
            CpuStorage::F32(d) => {
                let d = contiguous_mut("hadamard", d, layout)?;
                // f32 needs no conversion buffer: transform the rows directly.
                self.plan.check_len(d.len())?;
                let block = self.plan.rows_per_block() * self.plan.n();
                d.par_chunks_mut(block).for_each_init(
                    || self.plan.scratch(),
                    |scratch, rows| self.transform_f32(rows, scratch),
                );
                Ok(())
            }
            CpuStorage::BF16(d) => {
                self.run_cpu_inplace::<bf16>(contiguous_mut("hadamard", d, layout)?)
            }
            CpuStorage::F16(d) => {
                self.run_cpu_inplace::<f16>(contiguous_mut("hadamard", d, layout)?)
            }
            other => unsupported_dtype("hadamard", other.dtype(), "f32, bf16 or f16"),
        }
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(&self, storage: &mut candle_core::CudaStorage, layout: &Layout) -> Result<()> {
        self.check_shape(layout)?;
        crate::cuda::hadamard::inplace(self, storage, layout)
    }

    #[cfg(feature = "metal")]
    fn metal_fwd(&self, storage: &mut candle_core::MetalStorage, layout: &Layout) -> Result<()> {
        self.check_shape(layout)?;
        crate::metal::hadamard::inplace(self, storage, layout)
    }
}
