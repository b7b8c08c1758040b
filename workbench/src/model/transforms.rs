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
