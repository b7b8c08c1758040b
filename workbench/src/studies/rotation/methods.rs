//! The study's vocabulary: schemes (rotations and SmoothQuant) and weight
//! methods (none, round-to-nearest, GPTQ).

use crate::model::transforms::parse_weight_quantizer;
use crate::primitives::quant::{gptq, WeightQuantizer};
use crate::primitives::rotation::{self, Rotation};

/// Scheme names a config may use.
pub const SCHEMES: [&str; 5] = [
    "none",
    "hadamard",
    "random_hadamard",
    "random_orthogonal",
    "smoothquant",
];

/// A change of basis before quantization.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Scheme {
    /// An orthogonal rotation (or none).
    Rotation(Rotation),
    /// SmoothQuant per-channel scaling with migration strength alpha.
    SmoothQuant(f64),
}

impl Scheme {
    /// The scheme a name stands for (random rotations seeded by `seed`).
    pub fn by_name(name: &str, seed: u64, alpha: f64) -> Option<Scheme> {
        if name == "smoothquant" {
            return Some(Scheme::SmoothQuant(alpha));
        }
        rotation::by_name(name, seed).map(Scheme::Rotation)
    }
}

/// How a weight is quantized.
#[derive(Clone, Debug, PartialEq)]
pub struct WeightMethod {
    /// The name as written.
    pub name: String,
    /// The grid, or None for full-precision weights (`f32`).
    pub quantizer: Option<WeightQuantizer>,
    /// Fit with GPTQ on calibration inputs instead of rounding to nearest.
    pub gptq: bool,
}

impl WeightMethod {
    /// Parses `f32` or `w<bits>[g<group>][a][mse][gptq]`.
    pub fn parse(name: &str) -> Result<WeightMethod, String> {
        if name == "f32" {
            return Ok(WeightMethod {
                name: name.into(),
                quantizer: None,
                gptq: false,
            });
        }
        let (grid, gptq) = match name.strip_suffix("gptq") {
            Some(rest) => (rest, true),
            None => (name, false),
        };
        let quantizer = parse_weight_quantizer(grid).map_err(|e| {
            format!("{e}; f32 and a `gptq` suffix (e.g. w4g32gptq) are also accepted here")
        })?;
        Ok(WeightMethod {
            name: name.into(),
            quantizer: Some(quantizer),
            gptq,
        })
    }

    /// Quantizes `w` (`[rows, cols]`, row-major); GPTQ uses the calibration
    /// inputs `x` (`[n, cols]`). Returns None for full-precision weights.
    pub fn quantize(
        &self,
        w: &[f32],
        rows: usize,
        cols: usize,
        calibration: Option<(&[f32], usize)>,
        damp: f64,
    ) -> Result<Option<Vec<f32>>, String> {
        let Some(quantizer) = &self.quantizer else {
            return Ok(None);
        };
        if !self.gptq {
            return quantizer.fake_quantize(w, rows, cols).map(Some);
        }
        let (x, n) = calibration.ok_or("GPTQ needs calibration inputs")?;
        gptq(w, rows, cols, x, n, quantizer, damp).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse() {
        for ok in ["f32", "w8", "w4g32", "w4gptq", "w3g8amsegptq"] {
            assert!(WeightMethod::parse(ok).is_ok(), "{ok}");
        }
        assert!(WeightMethod::parse("w4gptq").unwrap().gptq);
        assert!(WeightMethod::parse("f32").unwrap().quantizer.is_none());
        for bad in ["gptq", "w9gptq", "f16", "w4gptqx"] {
            assert!(WeightMethod::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            Scheme::by_name("smoothquant", 0, 0.5),
            Some(Scheme::SmoothQuant(0.5))
        );
        assert!(Scheme::by_name("rotate", 0, 0.5).is_none());
    }
}
