//! Weight and activation quantizers as *fake quantization* in `f32`.
//!
//! Every function here takes plain row-major slices with explicit shapes and
//! returns the dequantized values (quantize, then immediately map the integer
//! codes back to real numbers). That is what accuracy studies need: the
//! numerical effect of a quantization grid without an integer storage format.
//! Tensor wrappers live elsewhere; this module has no tensor dependency.
//!
//! Contents:
//! * [`WeightQuantizer`]: round-to-nearest (RTN) weight quantization with
//!   per-tensor, per-channel or per-group scales, symmetric or asymmetric,
//!   optionally with an MSE-optimal clipping search ([`Clip::MseSearch`]).
//! * [`lloyd_max_gaussian`] / [`quantize_codebook`]: the MSE-optimal
//!   non-uniform scalar codebook for a standard Gaussian and its use.
//! * [`ActivationQuantizer`]: symmetric per-token or per-tensor activation
//!   quantization, dynamic or static.
//! * [`fake_quantize_kv`]: grouped asymmetric KV-cache quantization.
//! * [`gptq`]: GPTQ (Frantar et al. 2022) with the same grids as RTN.
//!
//! Errors (bits out of range, bad group sizes, shape mismatches, non-finite
//! inputs) are returned as `Err(String)`; nothing here panics on bad input.

mod activation;
mod clipping;
mod gptq;
mod lloyd_max;
mod rtn;

pub use activation::{fake_quantize_kv, ActivationQuantizer};
pub use gptq::gptq;
pub use lloyd_max::{lloyd_max_gaussian, quantize_codebook, try_lloyd_max_gaussian};

/// How scales are shared between the values of a `[rows, cols]` weight.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Granularity {
    /// One scale (and zero point) for the whole matrix.
    PerTensor,
    /// One scale per row, i.e. per output channel of a `[out, in]` weight.
    PerChannel,
    /// One scale per group of `g` consecutive values along each row; `g` must
    /// be positive and divide `cols`.
    PerGroup(usize),
}

/// Clipping policy for the range a scale group is quantized over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Clip {
    /// Use the full range of the group (absmax, or min and max).
    None,
    /// Per scale group, try the clipping ratios `1.00, 0.99, …, 0.50`
    /// ([`MSE_CLIP_GRID`] steps of 0.01) applied to the range (absmax for
    /// symmetric; both min and max for asymmetric) and keep the one with the
    /// smallest squared error of that group. Ratio 1.0 is tried first and only
    /// a strictly better ratio replaces it, so the result is never worse than
    /// [`Clip::None`] group by group.
    MseSearch,
}

/// Number of clipping ratios [`Clip::MseSearch`] tries: `1.00` down to `0.50`.
pub const MSE_CLIP_GRID: usize = 51;

/// Uniform round-to-nearest weight quantizer.
///
/// Grid conventions (shared by [`gptq`]):
/// * **Symmetric**: restricted range, integer levels `−(2^(b−1)−1) ..=
///   2^(b−1)−1` times `scale = absmax / (2^(b−1)−1)`. The code `−2^(b−1)` is
///   deliberately not used, so the grid is symmetric about zero and has
///   `2^b − 1` levels (for 2 bits: `{−s, 0, s}`), as in most per-channel
///   int weight schemes.
/// * **Asymmetric**: the range is first extended to contain zero
///   (`min ≤ 0 ≤ max`, as in the GPTQ reference code) so that the integer
///   zero point `z = round(−min/scale)` lies in `[0, 2^b−1]` and zero is
///   exactly representable; `scale = (max − min)/(2^b − 1)`, codes are
///   `clamp(round(x/scale) + z, 0, 2^b−1)` and dequantize to
///   `(q − z)·scale`.
///
/// Without clipping every element is within `scale/2` of its dequantized
/// value. An all-zero group dequantizes to zeros.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WeightQuantizer {
    /// Bits per weight, `2..=8`.
    pub bits: u8,
    /// Symmetric (no zero point) or asymmetric (integer zero point).
    pub symmetric: bool,
    /// How scales are shared.
    pub granularity: Granularity,
    /// Range clipping policy.
    pub clip: Clip,
}

/// Checks that `len == a * b` without overflowing, naming the shape in the error.
fn check_len(what: &str, len: usize, dims: &[usize]) -> Result<(), String> {
    let mut expected: usize = 1;
    for &d in dims {
        expected = expected
            .checked_mul(d)
            .ok_or_else(|| format!("{what}: shape {dims:?} overflows usize"))?;
    }
    if expected != len {
        return Err(format!(
            "{what}: shape {dims:?} needs {expected} values, got {len}"
        ));
    }
    Ok(())
}

/// Rejects NaN and infinities, which would silently poison every scale.
fn check_finite(what: &str, x: &[f32]) -> Result<(), String> {
    match x.iter().position(|v| !v.is_finite()) {
        Some(i) => Err(format!("{what}: non-finite value {} at index {i}", x[i])),
        None => Ok(()),
    }
}

fn check_bits(what: &str, bits: u8, lo: u8, hi: u8) -> Result<(), String> {
    if (lo..=hi).contains(&bits) {
        Ok(())
    } else {
        Err(format!("{what}: bits must be in {lo}..={hi}, got {bits}"))
    }
}
