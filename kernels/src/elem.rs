//! The floating-point element types the ops take in and give out. Arithmetic
//! is always f32; bf16 and f16 are converted on load and rounded to nearest
//! (ties to even) on store, as the GPU kernels' `__float2bfloat16_rn` /
//! `__float2half_rn` do.

use candle_core::{bail, DType, Layout, Result};
use half::{bf16, f16};

/// An element type with f32 conversions.
pub trait Elem: Copy + Send + Sync + 'static {
    /// Widens to f32 (exact for all three types).
    fn to_f32(self) -> f32;
    /// Rounds an f32 to this type (nearest, ties to even).
    fn from_f32(v: f32) -> Self;
    /// The slice as f32, when this type is f32 (lets f32 skip conversions).
    fn as_f32_mut(_s: &mut [Self]) -> Option<&mut [f32]> {
        None
    }
}

impl Elem for f32 {
    #[inline(always)]
    fn to_f32(self) -> f32 {
        self
    }
    #[inline(always)]
    fn from_f32(v: f32) -> Self {
        v
    }
    #[inline(always)]
    fn as_f32_mut(s: &mut [Self]) -> Option<&mut [f32]> {
        Some(s)
    }
}

impl Elem for bf16 {
    #[inline(always)]
    fn to_f32(self) -> f32 {
        bf16::to_f32(self)
    }
    #[inline(always)]
    fn from_f32(v: f32) -> Self {
        bf16::from_f32(v)
    }
}

impl Elem for f16 {
    #[inline(always)]
    fn to_f32(self) -> f32 {
        f16::to_f32(self)
    }
    #[inline(always)]
    fn from_f32(v: f32) -> Self {
        f16::from_f32(v)
    }
}

/// The contiguous elements a layout covers, or an error naming the op.
pub(crate) fn contiguous<'a, T>(op: &str, data: &'a [T], layout: &Layout) -> Result<&'a [T]> {
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => bail!("{op}: the input must be contiguous (call .contiguous() first)"),
    }
}

/// The contiguous elements a layout covers, mutably.
pub(crate) fn contiguous_mut<'a, T>(
    op: &str,
    data: &'a mut [T],
    layout: &Layout,
) -> Result<&'a mut [T]> {
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&mut data[start..end]),
        None => bail!("{op}: the tensor must be contiguous"),
    }
}

/// Error for a dtype an op does not take.
pub(crate) fn unsupported_dtype<T>(op: &str, dtype: DType, expected: &str) -> Result<T> {
    bail!("{op}: unsupported dtype {dtype:?}, expected {expected}")
}
