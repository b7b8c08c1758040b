//! Simple weight transforms for the linear abstraction.

use anyhow::Result;
use candle_core::{DType, Tensor};

use super::linear::TensorMap;

/// Rounds a tensor to a narrower float type and back (bf16 or f16 weights
/// evaluated in f32): the simplest fake quantization.
pub struct RoundTo(pub DType);

impl TensorMap for RoundTo {
    fn apply(&self, x: &Tensor) -> Result<Tensor> {
        Ok(x.to_dtype(self.0)?.to_dtype(x.dtype())?)
    }

    fn describe(&self) -> String {
        format!("round to {:?}", self.0)
    }
}

/// Fake-quantizes a linear weight `[out, in]` with round-to-nearest
/// (per tensor, per output channel or per group along the input).
pub struct QuantizeWeight(pub crate::primitives::quant::WeightQuantizer);

impl TensorMap for QuantizeWeight {
    fn apply(&self, w: &Tensor) -> Result<Tensor> {
        let (rows, cols) = w.dims2()?;
        let values = w.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
        let q = self
            .0
            .fake_quantize(&values, rows, cols)
            .map_err(anyhow::Error::msg)?;
        Ok(Tensor::from_vec(q, (rows, cols), w.device())?.to_dtype(w.dtype())?)
    }

    fn describe(&self) -> String {
        format!("{:?}", self.0)
    }
}

/// Fake-quantizes activations `[..., features]` (per token or per tensor).
pub struct QuantizeActivation(pub crate::primitives::quant::ActivationQuantizer);

impl TensorMap for QuantizeActivation {
    fn apply(&self, x: &Tensor) -> Result<Tensor> {
        let shape = x.dims().to_vec();
        let features = *shape.last().unwrap_or(&1);
        let tokens = x.elem_count() / features.max(1);
        let values = x.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
        let q = self
            .0
            .fake_quantize(&values, tokens, features)
            .map_err(anyhow::Error::msg)?;
        Ok(Tensor::from_vec(q, shape, x.device())?.to_dtype(x.dtype())?)
    }

    fn describe(&self) -> String {
        format!("{:?}", self.0)
    }
}

/// Parses a weight variant name: `f32`, `bf16`, `f16`, or `w<bits>[g<group>][a][mse]`
/// (round-to-nearest with `bits` bits, per output channel or in groups of
/// `group` inputs, symmetric unless `a`, with MSE-optimal clipping if `mse`),
/// e.g. `w8`, `w4g32`, `w3g32mse`, `w4a`.
pub fn weight_variant(
    name: &str,
) -> std::result::Result<Option<std::sync::Arc<dyn TensorMap>>, String> {
    match name {
        "f32" => return Ok(None),
        "bf16" => return Ok(Some(std::sync::Arc::new(RoundTo(DType::BF16)))),
        "f16" => return Ok(Some(std::sync::Arc::new(RoundTo(DType::F16)))),
        _ => {}
    }
    Ok(Some(std::sync::Arc::new(QuantizeWeight(
        parse_weight_quantizer(name)?,
    ))))
}

/// Parses `w<bits>[g<group>][a][mse]` into a round-to-nearest weight quantizer.
pub fn parse_weight_quantizer(
    name: &str,
) -> std::result::Result<crate::primitives::quant::WeightQuantizer, String> {
    use crate::primitives::quant::{Clip, Granularity, WeightQuantizer};
    let bad = || {
        format!(
            "unknown weight variant `{name}`; expected f32, bf16, f16 or w<bits>[g<group>][a][mse] such as w4g32"
        )
    };
    let mut rest = name.strip_prefix('w').ok_or_else(bad)?;
    let digits = rest.chars().take_while(|c| c.is_ascii_digit()).count();
    let bits: u8 = rest[..digits].parse().map_err(|_| bad())?;
    if !(2..=8).contains(&bits) {
        return Err(format!(
            "weight variant `{name}`: {bits} bits; expected 2 to 8"
        ));
    }
    rest = &rest[digits..];
    let mut granularity = Granularity::PerChannel;
    if let Some(after) = rest.strip_prefix('g') {
        let d = after.chars().take_while(|c| c.is_ascii_digit()).count();
        let group: usize = after[..d].parse().map_err(|_| bad())?;
        granularity = Granularity::PerGroup(group);
        rest = &after[d..];
    }
    let symmetric = match rest.strip_prefix('a') {
        Some(after) => {
            rest = after;
            false
        }
        None => true,
    };
    let clip = match rest {
        "" => Clip::None,
        "mse" => Clip::MseSearch,
        _ => return Err(bad()),
    };
    Ok(WeightQuantizer {
        bits,
        symmetric,
        granularity,
        clip,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn weight_variants_parse_and_quantize() {
        for ok in [
            "f32", "bf16", "f16", "w8", "w4g32", "w3g32mse", "w4a", "w2g8amse",
        ] {
            assert!(weight_variant(ok).is_ok(), "{ok}");
        }
        assert!(weight_variant("f32").unwrap().is_none());
        for bad in ["w", "w9", "w1", "w4g", "w4x", "int4", "w4g32msee"] {
            assert!(weight_variant(bad).is_err(), "{bad}");
        }
        // w4 per channel: every row takes at most 15 distinct values.
        let w = Tensor::randn(0f32, 1.0, (6, 40), &Device::Cpu).unwrap();
        let q = weight_variant("w4").unwrap().unwrap().apply(&w).unwrap();
        for row in q.to_vec2::<f32>().unwrap() {
            let mut v: Vec<u32> = row.iter().map(|x| x.to_bits()).collect();
            v.sort();
            v.dedup();
            assert!(v.len() <= 15, "{}", v.len());
        }
        // Group sizes that do not divide the input width are reported, not panics.
        assert!(weight_variant("w4g7").unwrap().unwrap().apply(&w).is_err());
    }
}
