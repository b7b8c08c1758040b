//! KV-cache fake quantization, applied to each new key and value as it enters
//! the cache (per head and position, in groups along the head dimension), with
//! an optional per-head rotation of queries and keys first.
//!
//! Keys and values are quantized once, when appended: groups never span
//! positions, so quantizing on entry equals quantizing the whole cache at every
//! step, and rollback needs no care.

use std::sync::Arc;

use anyhow::{bail, Result};
use candle_core::{DType, Tensor};

use super::linear::TensorMap;
use crate::primitives::quant::fake_quantize_kv;

/// How keys and values are stored.
#[derive(Clone)]
pub struct KvQuant {
    /// Bits per cached element, 2 to 8 (asymmetric, per group).
    pub bits: u8,
    /// Group size along the head dimension; must divide it.
    pub group: usize,
    /// An orthogonal map `x ↦ x R` (R `[head_dim, head_dim]`) applied to every
    /// head of q and k after RoPE (`q R (k R)ᵀ = q kᵀ`), so keys are quantized
    /// in a rotated basis (QuaRot's online key Hadamard; see
    /// [`crate::model::rotate::online_rotation`]).
    pub key_rotation: Option<Arc<dyn TensorMap>>,
}

impl std::fmt::Debug for KvQuant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KvQuant")
            .field("bits", &self.bits)
            .field("group", &self.group)
            .field(
                "key_rotation",
                &self.key_rotation.as_ref().map(|r| r.describe()),
            )
            .finish()
    }
}

impl KvQuant {
    /// q, k (rotated if configured) and v as the attention uses them; k and v
    /// fake-quantized. Shapes `[batch, heads, tokens, head_dim]`.
    pub fn apply(&self, q: Tensor, k: Tensor, v: Tensor) -> Result<(Tensor, Tensor, Tensor)> {
        let (q, k) = match &self.key_rotation {
            Some(r) => (r.apply(&q)?, r.apply(&k)?),
            None => (q, k),
        };
        Ok((q, self.quantize(&k)?, self.quantize(&v)?))
    }

    fn quantize(&self, x: &Tensor) -> Result<Tensor> {
        let (batch, heads, tokens, head_dim) = x.dims4()?;
        if !head_dim.is_multiple_of(self.group) || self.group == 0 {
            bail!(
                "KV-cache group size {} must divide the head dimension {head_dim}",
                self.group
            );
        }
        let values = x.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
        let q = fake_quantize_kv(
            &values,
            batch * heads,
            tokens,
            head_dim,
            self.bits,
            self.group,
        )
        .map_err(anyhow::Error::msg)?;
        Ok(
            Tensor::from_vec(q, (batch, heads, tokens, head_dim), x.device())?
                .to_dtype(x.dtype())?,
        )
    }
}
