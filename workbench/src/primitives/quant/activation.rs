//! Activation and KV-cache fake quantization.

use super::rtn::{Grid, Range};
use super::{check_bits, check_finite, check_len};

/// Symmetric activation quantizer for a row-major `[tokens, features]` matrix.
///
/// Uses the restricted symmetric grid of [`super::WeightQuantizer`]: codes
/// `−(2^(b−1)−1) ..= 2^(b−1)−1`.
/// * Dynamic (`static_scale: None`): the step is
///   `clip_ratio · absmax / (2^(b−1)−1)`, with `absmax` taken per token (row)
///   when `per_token`, else over the whole tensor. Values beyond the clipped
///   range saturate.
/// * Static (`static_scale: Some(s)`): the step is `s` for every element
///   (a calibrated scale); `per_token` and `clip_ratio` are then ignored,
///   since a fixed scale already encodes the chosen range.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ActivationQuantizer {
    /// Bits per activation, `4..=8`.
    pub bits: u8,
    /// One scale per token (row) instead of one per tensor.
    pub per_token: bool,
    /// Fraction of the absmax kept, in `(0, 1]`.
    pub clip_ratio: f32,
    /// Fixed quantization step (finite, positive), or `None` for dynamic.
    pub static_scale: Option<f32>,
}

impl ActivationQuantizer {
    /// Fake-quantize `x` (`[tokens, features]`, row-major); same shape out.
    ///
    /// Errors: `bits` outside `4..=8`, `clip_ratio` outside `(0, 1]`, a
    /// static scale that is not finite and positive, a shape mismatch, or
    /// non-finite activations.
    pub fn fake_quantize(
        &self,
        x: &[f32],
        tokens: usize,
        features: usize,
    ) -> Result<Vec<f32>, String> {
        check_bits("ActivationQuantizer", self.bits, 4, 8)?;
        if !(self.clip_ratio > 0.0 && self.clip_ratio <= 1.0) {
            return Err(format!(
                "ActivationQuantizer: clip_ratio must be in (0, 1], got {}",
                self.clip_ratio
            ));
        }
        check_len("ActivationQuantizer input", x.len(), &[tokens, features])?;
        check_finite("ActivationQuantizer input", x)?;
        if let Some(s) = self.static_scale {
            if !(s.is_finite() && s > 0.0) {
                return Err(format!(
                    "ActivationQuantizer: static_scale must be finite and positive, got {s}"
                ));
            }
            let grid = Grid::symmetric_with_scale(s as f64, self.bits);
            return Ok(x.iter().map(|&v| grid.fake(v)).collect());
        }
        if x.is_empty() {
            return Ok(Vec::new());
        }
        let chunk = if self.per_token { features } else { x.len() };
        let mut out = Vec::with_capacity(x.len());
        for row in x.chunks(chunk) {
            let grid = Range::of(row).grid(self.bits, true, self.clip_ratio as f64);
            out.extend(row.iter().map(|&v| grid.fake(v)));
        }
        Ok(out)
    }
}

/// Grouped asymmetric KV-cache fake quantization.
///
/// `x` is row-major `[heads, positions, head_dim]`; each vector of one head
/// at one position is split into groups of `group` consecutive channels along
/// `head_dim`, and each group gets its own asymmetric grid (min/max extended
/// to contain zero, integer zero point, codes `0 ..= 2^bits − 1`; see
/// [`super::WeightQuantizer`]). Every element ends up within
/// `(max − min) / (2^bits − 1) / 2` of its input.
///
/// Errors: `bits` outside `2..=8`, `group` zero or not dividing `head_dim`,
/// a shape mismatch, or non-finite values.
pub fn fake_quantize_kv(
    x: &[f32],
    heads: usize,
    positions: usize,
    head_dim: usize,
    bits: u8,
    group: usize,
) -> Result<Vec<f32>, String> {
    check_bits("fake_quantize_kv", bits, 2, 8)?;
    if group == 0 || !head_dim.is_multiple_of(group) {
        return Err(format!(
            "fake_quantize_kv: group size {group} must be positive and divide head_dim = {head_dim}"
        ));
    }
    check_len(
        "fake_quantize_kv input",
        x.len(),
        &[heads, positions, head_dim],
    )?;
    check_finite("fake_quantize_kv input", x)?;
    // Groups never straddle a (head, position) vector because group | head_dim,
    // so they are simply consecutive chunks of the flat buffer.
    let mut out = Vec::with_capacity(x.len());
    for g in x.chunks(group) {
        let grid = Range::of(g).grid(bits, false, 1.0);
        out.extend(g.iter().map(|&v| grid.fake(v)));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::rtn::tests::{mse, Rng};
    use super::*;

    fn aq(bits: u8, per_token: bool) -> ActivationQuantizer {
        ActivationQuantizer {
            bits,
            per_token,
            clip_ratio: 1.0,
            static_scale: None,
        }
    }

    #[test]
    fn per_token_beats_per_tensor_with_outlier_token() {
        let (tokens, features) = (32, 64);
        let mut rng = Rng(3);
        let mut x: Vec<f32> = (0..tokens * features)
            .map(|_| rng.normal() as f32)
            .collect();
        // Token 5 is an attention-sink-like outlier, 100x larger.
        for v in &mut x[5 * features..6 * features] {
            *v *= 100.0;
        }
        // The outlier token's own error is the same either way; the damage of
        // a shared scale is to the ordinary tokens, so measure those, and
        // check the total does not get worse either.
        let ordinary = |v: &[f32]| -> Vec<f32> {
            v.chunks(features)
                .enumerate()
                .filter(|(t, _)| *t != 5)
                .flat_map(|(_, r)| r.to_vec())
                .collect()
        };
        let xo = ordinary(&x);
        for bits in 4..=8u8 {
            let pt = aq(bits, true).fake_quantize(&x, tokens, features).unwrap();
            let tt = aq(bits, false).fake_quantize(&x, tokens, features).unwrap();
            let (t, g) = (mse(&xo, &ordinary(&pt)), mse(&xo, &ordinary(&tt)));
            assert!(t < 0.1 * g, "{bits}: per-token {t} per-tensor {g}");
            assert!(mse(&x, &pt) <= mse(&x, &tt));
            if bits == 8 {
                eprintln!(
                    "activation 8-bit mse on ordinary tokens: per-token {t:.3e} per-tensor {g:.3e}"
                );
            }
        }
    }

    #[test]
    fn activation_grid_properties() {
        let (tokens, features) = (4, 16);
        let mut rng = Rng(4);
        let x: Vec<f32> = (0..tokens * features)
            .map(|_| rng.normal() as f32)
            .collect();
        // Dynamic, unclipped: error ≤ step/2 per token.
        let out = aq(4, true).fake_quantize(&x, tokens, features).unwrap();
        for (r, o) in x.chunks(features).zip(out.chunks(features)) {
            let amax = r.iter().fold(0f32, |m, v| m.max(v.abs()));
            let step = amax as f64 / 7.0;
            for (&a, &b) in r.iter().zip(o) {
                assert!(((a - b) as f64).abs() <= step / 2.0 * (1.0 + 1e-6));
            }
        }
        // Clipping saturates at clip_ratio · absmax.
        let clipped = ActivationQuantizer {
            clip_ratio: 0.5,
            ..aq(8, false)
        }
        .fake_quantize(&x, tokens, features)
        .unwrap();
        let amax = x.iter().fold(0f32, |m, v| m.max(v.abs()));
        assert!(clipped.iter().all(|v| v.abs() <= 0.5 * amax * (1.0 + 1e-6)));
        // Static scale: values on the multiples of s, saturating at 127·s.
        let s = 0.01f32;
        let st = ActivationQuantizer {
            static_scale: Some(s),
            ..aq(8, true)
        }
        .fake_quantize(&x, tokens, features)
        .unwrap();
        for (&a, &b) in x.iter().zip(&st) {
            let k = b / s;
            assert!((k - k.round()).abs() < 1e-3 && k.abs() <= 127.0 + 1e-3);
            if a.abs() < 1.27 {
                assert!((a - b).abs() <= s / 2.0 + 1e-6);
            }
        }
    }

    #[test]
    fn activation_errors() {
        let x = [1.0f32; 8];
        assert!(aq(3, true).fake_quantize(&x, 2, 4).is_err());
        assert!(aq(9, true).fake_quantize(&x, 2, 4).is_err());
        assert!(aq(8, true).fake_quantize(&x, 3, 4).is_err());
        for c in [0.0, -0.1, 1.5, f32::NAN] {
            let q = ActivationQuantizer {
                clip_ratio: c,
                ..aq(8, true)
            };
            assert!(q.fake_quantize(&x, 2, 4).is_err());
        }
        for s in [0.0, -1.0, f32::INFINITY, f32::NAN] {
            let q = ActivationQuantizer {
                static_scale: Some(s),
                ..aq(8, true)
            };
            assert!(q.fake_quantize(&x, 2, 4).is_err());
        }
        let mut bad = x;
        bad[2] = f32::NAN;
        assert!(aq(8, true).fake_quantize(&bad, 2, 4).is_err());
        assert_eq!(
            aq(8, true).fake_quantize(&[], 0, 4).unwrap(),
            Vec::<f32>::new()
        );
    }

    #[test]
    fn kv_error_bounds() {
        let (heads, positions, head_dim) = (4, 16, 64);
        let mut rng = Rng(5);
        let x: Vec<f32> = (0..heads * positions * head_dim)
            .map(|i| (rng.normal() + if i % 7 == 0 { 3.0 } else { 0.0 }) as f32)
            .collect();
        let mut last = f64::INFINITY;
        for bits in 2..=8u8 {
            for group in [8, 32, 64] {
                let out = fake_quantize_kv(&x, heads, positions, head_dim, bits, group).unwrap();
                for (gi, go) in x.chunks(group).zip(out.chunks(group)) {
                    let (mn, mx) = gi
                        .iter()
                        .fold((0f32, 0f32), |(a, b), &v| (a.min(v), b.max(v)));
                    let step = (mx as f64 - mn as f64) / ((1u32 << bits) - 1) as f64;
                    let mut distinct = go.to_vec();
                    distinct.sort_by(f32::total_cmp);
                    distinct.dedup();
                    assert!(distinct.len() <= 1 << bits);
                    for (&a, &b) in gi.iter().zip(go) {
                        assert!(((a - b) as f64).abs() <= step / 2.0 * (1.0 + 1e-6) + 1e-12);
                    }
                }
            }
            // More bits, less error.
            let m = mse(
                &x,
                &fake_quantize_kv(&x, heads, positions, head_dim, bits, 32).unwrap(),
            );
            assert!(m < last);
            last = m;
        }
        assert!(fake_quantize_kv(&x, heads, positions, head_dim, 4, 48).is_err());
        assert!(fake_quantize_kv(&x, heads, positions, head_dim, 4, 0).is_err());
        assert!(fake_quantize_kv(&x, heads, positions + 1, head_dim, 4, 32).is_err());
        assert!(fake_quantize_kv(&x, heads, positions, head_dim, 1, 32).is_err());
    }
}
