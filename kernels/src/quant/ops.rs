//! The quantization ops on tensors.

use candle_core::backend::BackendStorage;
use candle_core::{
    bail, CpuStorage, CustomOp1, CustomOp2, Device, Layout, Result, Shape, Storage, Tensor,
};

use super::{cpu, QuantConfig};
use crate::elem::{contiguous, unsupported_dtype};
use crate::hadamard::{hadamard, HadamardOp};

/// The shapes of codes and scales for an input shape: the last dimension n
/// becomes the code bytes and the group count.
fn out_shapes(
    dims: &[usize],
    cfg: &QuantConfig,
    n: usize,
    group: usize,
) -> (Vec<usize>, Vec<usize>) {
    let lead = &dims[..dims.len() - 1];
    let mut c = lead.to_vec();
    c.push(cfg.bits.row_bytes(n));
    let mut s = lead.to_vec();
    s.push(n / group);
    (c, s)
}

fn check_last(dims: &[usize], n: usize, what: &str) -> Result<()> {
    match dims.last() {
        Some(&d) if d == n => Ok(()),
        Some(&d) => bail!("{what}: last dimension is {d}, the rotation's order is {n}"),
        None => bail!("{what}: needs at least one dimension"),
    }
}

/// Rotates the rows of `x` (f32, bf16 or f16, last dimension n) by `op` and
/// quantizes them: (codes u8, scales f32), see the module docs.
pub fn rotate_quantize(x: &Tensor, op: &HadamardOp, cfg: &QuantConfig) -> Result<(Tensor, Tensor)> {
    let n = op.plan().n();
    let group = cfg.group_len(n)?;
    check_last(x.dims(), n, "rotate_quantize")?;
    let x = x.contiguous()?;
    let (code_dims, scale_dims) = out_shapes(x.dims(), cfg, n, group);
    let rows = x.elem_count() / n;
    let (storage, layout) = x.storage_and_layout();
    match &*storage {
        Storage::Cpu(s) => {
            let mut codes = vec![0u8; rows * cfg.bits.row_bytes(n)];
            let mut scales = vec![0f32; rows * (n / group)];
            match s {
                CpuStorage::F32(d) => cpu::quantize_rows(
                    op,
                    cfg,
                    group,
                    contiguous("rotate_quantize", d, layout)?,
                    &mut codes,
                    &mut scales,
                ),
                CpuStorage::BF16(d) => cpu::quantize_rows(
                    op,
                    cfg,
                    group,
                    contiguous("rotate_quantize", d, layout)?,
                    &mut codes,
                    &mut scales,
                ),
                CpuStorage::F16(d) => cpu::quantize_rows(
                    op,
                    cfg,
                    group,
                    contiguous("rotate_quantize", d, layout)?,
                    &mut codes,
                    &mut scales,
                ),
                other => {
                    return unsupported_dtype("rotate_quantize", other.dtype(), "f32, bf16 or f16")
                }
            }
            Ok((
                Tensor::from_vec(codes, code_dims, &Device::Cpu)?,
                Tensor::from_vec(scales, scale_dims, &Device::Cpu)?,
            ))
        }
        #[cfg(feature = "cuda")]
        Storage::Cuda(s) => crate::cuda::rotate_quantize::quantize(
            op, cfg, group, s, layout, rows, code_dims, scale_dims,
        ),
        #[cfg(feature = "metal")]
        Storage::Metal(s) => crate::metal::rotate_quantize::quantize(
            op, cfg, group, s, layout, rows, code_dims, scale_dims,
        ),
        #[allow(unreachable_patterns)]
        _ => bail!(
            "rotate_quantize: no kernel for {:?} (build wb-kernels with the cuda or metal feature)",
            x.device()
        ),
    }
}

/// Device time of [`rotate_quantize`]'s CUDA kernels alone, ms per call over
/// `iters` calls into outputs allocated once. For benchmarks.
#[cfg(feature = "cuda")]
#[doc(hidden)]
pub fn cuda_rotate_quantize_kernel_ms(
    x: &Tensor,
    op: &HadamardOp,
    cfg: &QuantConfig,
    iters: usize,
) -> Result<f64> {
    let n = op.plan().n();
    let group = cfg.group_len(n)?;
    check_last(x.dims(), n, "rotate_quantize")?;
    let x = x.contiguous()?;
    let rows = x.elem_count() / n;
    let (storage, layout) = x.storage_and_layout();
    let Storage::Cuda(s) = &*storage else {
        bail!("cuda_rotate_quantize_kernel_ms: x is not on a CUDA device");
    };
    crate::cuda::rotate_quantize::quantize_kernel_ms(op, cfg, group, s, layout, rows, iters)
}

/// code·scale from the output of [`rotate_quantize`] (f32, still rotated);
/// `n` is the row length the codes were made from.
pub fn dequantize(codes: &Tensor, scales: &Tensor, cfg: &QuantConfig, n: usize) -> Result<Tensor> {
    codes
        .contiguous()?
        .apply_op2_no_bwd(&scales.contiguous()?, &Dequantize { cfg: *cfg, n })
}

/// Fake-quantized rotation Q(op(x)) with a straight-through backward; same
/// dtype and shape as `x`.
pub fn rotate_fake_quant(x: &Tensor, op: &HadamardOp, cfg: &QuantConfig) -> Result<Tensor> {
    cfg.group_len(op.plan().n())?;
    x.contiguous()?.apply_op1(RotateFakeQuant {
        op: op.clone(),
        cfg: *cfg,
    })
}

/// The op behind [`dequantize`]: codes (u8) and scales (f32) to f32.
#[derive(Clone, Debug)]
pub struct Dequantize {
    /// The config the codes were made with.
    pub cfg: QuantConfig,
    /// The row length.
    pub n: usize,
}

impl Dequantize {
    /// Checks the two layouts; returns (rows, group, output shape).
    pub(crate) fn check(&self, codes: &Layout, scales: &Layout) -> Result<(usize, usize, Shape)> {
        let group = self.cfg.group_len(self.n)?;
        let bytes = self.cfg.bits.row_bytes(self.n);
        let (cd, sd) = (codes.dims(), scales.dims());
        if cd.is_empty() || cd.last() != Some(&bytes) {
            bail!("dequantize: codes {cd:?} must end in {bytes} bytes per row");
        }
        let mut want = cd.to_vec();
        *want.last_mut().unwrap() = self.n / group;
        if sd != want.as_slice() {
            bail!("dequantize: scales {sd:?} do not match codes {cd:?} (expected {want:?})");
        }
        let mut out = cd.to_vec();
        *out.last_mut().unwrap() = self.n;
        let rows = codes.shape().elem_count() / bytes;
        Ok((rows, group, Shape::from(out)))
    }
}

impl CustomOp2 for Dequantize {
    fn name(&self) -> &'static str {
        "dequantize"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (rows, group, shape) = self.check(l1, l2)?;
        let (CpuStorage::U8(c), CpuStorage::F32(s)) = (s1, s2) else {
            bail!(
                "dequantize: expected u8 codes and f32 scales, got {:?} and {:?}",
                s1.dtype(),
                s2.dtype()
            );
        };
        let mut out = vec![0f32; rows * self.n];
        cpu::dequantize_rows(
            &self.cfg,
            self.n,
            group,
            contiguous("dequantize", c, l1)?,
            contiguous("dequantize", s, l2)?,
            &mut out,
        );
        Ok((CpuStorage::F32(out), shape))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &candle_core::CudaStorage,
        l1: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        crate::cuda::rotate_quantize::dequantize(self, s1, l1, s2, l2)
    }

    #[cfg(feature = "metal")]
    fn metal_fwd(
        &self,
        s1: &candle_core::MetalStorage,
        l1: &Layout,
        s2: &candle_core::MetalStorage,
        l2: &Layout,
    ) -> Result<(candle_core::MetalStorage, Shape)> {
        crate::metal::rotate_quantize::dequantize(self, s1, l1, s2, l2)
    }
}

/// The op behind [`rotate_fake_quant`].
#[derive(Clone, Debug)]
pub struct RotateFakeQuant {
    /// The rotation.
    pub op: HadamardOp,
    /// The quantizer.
    pub cfg: QuantConfig,
}

impl CustomOp1 for RotateFakeQuant {
    fn name(&self) -> &'static str {
        "rotate_fake_quant"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let n = self.op.plan().n();
        check_last(layout.dims(), n, "rotate_fake_quant")?;
        let group = self.cfg.group_len(n)?;
        fn go<T: crate::elem::Elem>(
            q: &RotateFakeQuant,
            group: usize,
            d: &[T],
            l: &Layout,
        ) -> Result<Vec<T>> {
            let x = contiguous("rotate_fake_quant", d, l)?;
            let mut out = vec![T::from_f32(0.0); x.len()];
            cpu::fake_quant_rows(&q.op, &q.cfg, group, x, &mut out);
            Ok(out)
        }
        let out = match storage {
            CpuStorage::F32(d) => CpuStorage::F32(go(self, group, d, layout)?),
            CpuStorage::BF16(d) => CpuStorage::BF16(go(self, group, d, layout)?),
            CpuStorage::F16(d) => CpuStorage::F16(go(self, group, d, layout)?),
            other => {
                return unsupported_dtype("rotate_fake_quant", other.dtype(), "f32, bf16 or f16")
            }
        };
        Ok((out, layout.shape().clone()))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        storage: &candle_core::CudaStorage,
        layout: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        check_last(layout.dims(), self.op.plan().n(), "rotate_fake_quant")?;
        crate::cuda::rotate_quantize::fake_quant(self, storage, layout)
    }

    #[cfg(feature = "metal")]
    fn metal_fwd(
        &self,
        storage: &candle_core::MetalStorage,
        layout: &Layout,
    ) -> Result<(candle_core::MetalStorage, Shape)> {
        check_last(layout.dims(), self.op.plan().n(), "rotate_fake_quant")?;
        crate::metal::rotate_quantize::fake_quant(self, storage, layout)
    }

    /// Straight through the quantizer: the gradient of Hx, i.e. the inverse
    /// rotation of the incoming gradient.
    fn bwd(&self, _arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(hadamard(grad_res, &self.op.inverse())?))
    }
}
