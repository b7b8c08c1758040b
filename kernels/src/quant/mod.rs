//! Fused Hadamard rotation and symmetric integer quantization.
//!
//! [`rotate_quantize`] maps each row x (length n) to y = H x (a
//! [`HadamardOp`](crate::hadamard::HadamardOp): transform, signs,
//! direction) and quantizes y per group of `group` consecutive elements
//! (per token when the group is the whole row):
//!
//! - scale = clip · absmax(group) / qmax, qmax = 2^(bits−1) − 1 (127 or 7: the
//!   restricted symmetric grid of the workbench's quantizers);
//! - code = clamp(round_half_even(y · (1/scale)), −qmax, qmax), with 1/scale
//!   computed once per group as qmax / (clip · absmax);
//! - a group whose scale is not finite and positive (all zeros, or inf/NaN
//!   values) gets all codes 0 and keeps that scale (0, inf or NaN), so
//!   dequantizing shows the problem rather than hiding it; a NaN element gets
//!   code 0.
//!
//! Storage: codes as u8 `[rows, n]` (int8, two's complement) or `[rows, n/2]`
//! (int4: element 2i in the low nibble, 2i+1 in the high nibble, each 4-bit
//! two's complement); scales f32 `[rows, n/group]`. [`dequantize`] inverts
//! the storage (giving code·scale, still in the rotated basis), and
//! [`RotateFakeQuant`] is the round trip as one op with a straight-through
//! backward (the gradient of y = Q(Hx) is taken as that of Hx).
//!
//! Arithmetic is f32 on every backend; the rotation's rounding differs between
//! backends (different summation orders), so codes may differ by one where a
//! value lies on a rounding boundary.

mod cpu;
mod ops;
#[cfg(test)]
mod tests;

#[cfg(feature = "cuda")]
pub use ops::cuda_rotate_quantize_kernel_ms;
pub use ops::{dequantize, rotate_fake_quant, rotate_quantize, Dequantize, RotateFakeQuant};

use candle_core::{bail, Result};

/// Integer width of the codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Bits {
    /// 4-bit codes in −7..=7, two per byte.
    Int4,
    /// 8-bit codes in −127..=127, one per byte.
    Int8,
}

impl Bits {
    /// The largest code, 2^(bits−1) − 1.
    pub fn qmax(self) -> f32 {
        match self {
            Bits::Int4 => 7.0,
            Bits::Int8 => 127.0,
        }
    }

    /// Bytes per row of n codes.
    pub fn row_bytes(self, n: usize) -> usize {
        match self {
            Bits::Int4 => n / 2,
            Bits::Int8 => n,
        }
    }
}

/// How to quantize a rotated row.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct QuantConfig {
    /// Code width.
    pub bits: Bits,
    /// Elements per scale; None for one scale per row (per token).
    pub group: Option<usize>,
    /// Fraction of the absmax mapped to qmax, in (0, 1]; values beyond
    /// saturate.
    pub clip_ratio: f32,
}

impl QuantConfig {
    /// Per-token quantization with no clipping.
    pub fn per_token(bits: Bits) -> Self {
        QuantConfig {
            bits,
            group: None,
            clip_ratio: 1.0,
        }
    }

    /// The group size for rows of length n, after checking the config
    /// against n.
    pub fn group_len(&self, n: usize) -> Result<usize> {
        let g = self.group.unwrap_or(n);
        if g == 0 || n == 0 || !n.is_multiple_of(g) {
            bail!("quantize: group size {g} must be positive and divide the row length {n}");
        }
        if self.bits == Bits::Int4 && !g.is_multiple_of(2) {
            bail!("quantize: int4 packs two codes per byte, so the group size {g} must be even");
        }
        if !(self.clip_ratio > 0.0 && self.clip_ratio <= 1.0) {
            bail!(
                "quantize: clip_ratio must be in (0, 1], got {}",
                self.clip_ratio
            );
        }
        Ok(g)
    }
}

/// Scale and reciprocal for a group's absmax: (clip·absmax / qmax,
/// qmax / (clip·absmax)), or (that scale, 0) when it is not finite and
/// positive, which zeroes the codes.
#[inline(always)]
pub fn group_scale(absmax: f32, cfg: &QuantConfig) -> (f32, f32) {
    let range = cfg.clip_ratio * absmax;
    let qmax = cfg.bits.qmax();
    let scale = range / qmax;
    if scale.is_finite() && scale > 0.0 {
        (scale, qmax / range)
    } else {
        (scale, 0.0)
    }
}

/// The code of one rotated value, given the group's reciprocal scale:
/// clamp(round_half_even(y · inv), −qmax, qmax), NaN → 0.
///
/// Rounding is done as (v + 1.5·2^23) − 1.5·2^23 after clamping (qmax is an
/// integer, so clamping first gives the same code): the IEEE add rounds to
/// the nearest integer, ties to even, like CUDA's `rintf`, without the libm
/// call `round_ties_even` becomes on x86-64 before SSE4.1.
#[inline(always)]
pub fn code(y: f32, inv_scale: f32, qmax: f32) -> i32 {
    const MAGIC: f32 = 12_582_912.0;
    let v = y * inv_scale;
    if v.is_nan() {
        0
    } else {
        ((v.clamp(-qmax, qmax) + MAGIC) - MAGIC) as i32
    }
}
