//! Whole-model rotation by computational invariance (QuaRot, Ashkboos et al.
//! 2024): the same function computed in a rotated basis, where activations have
//! fewer outlier channels and quantize better.
//!
//! Row-vector convention, `y = x Wᵀ`:
//! - a layer that reads the residual stream sees `x Q` and keeps its output when
//!   its weight becomes `W Q`;
//! - a layer that writes to it must produce `y Q`, so its weight becomes `Qᵀ W`;
//! - RMSNorm commutes with Q once its gain is folded into the next layers
//!   (‖x Q‖ = ‖x‖), which is why the gains are folded first.

use std::sync::Arc;

use anyhow::{bail, Result};
use candle_core::Tensor;

use super::linear::{Linear, LinearConfig, TensorMap};
use super::llama::Model;

/// Multiplies a linear layer's weight columns by `gain` (`W diag(g)`).
fn scale_columns(linear: &mut Linear, gain: &Tensor) -> Result<()> {
    let w = linear.weight().broadcast_mul(&gain.unsqueeze(0)?)?;
    linear.set_weight(w)
}

/// Folds every RMSNorm gain into the layers that read the normalised stream and
/// sets the gains to one. The function is unchanged; the head no longer equals
/// the embedding when the final gain is not all ones.
pub fn fold_norms(model: &mut Model) -> Result<()> {
    for b in model.blocks.iter_mut() {
        for linear in [&mut b.q, &mut b.k, &mut b.v] {
            scale_columns(linear, &b.attn_norm)?;
        }
        for linear in [&mut b.gate, &mut b.up] {
            scale_columns(linear, &b.mlp_norm)?;
        }
        b.attn_norm = b.attn_norm.ones_like()?;
        b.mlp_norm = b.mlp_norm.ones_like()?;
    }
    scale_columns(&mut model.head, &model.norm)?;
    model.norm = model.norm.ones_like()?;
    Ok(())
}

/// Rotates the residual stream by the orthogonal `q` (`[dim, dim]`): embedding
/// rows, the inputs of q/k/v/gate/up/head, and the outputs of o/down. Call
/// [`fold_norms`] first.
pub fn rotate_residual(model: &mut Model, q: &Tensor) -> Result<()> {
    let dim = model.config.dim;
    if q.dims() != [dim, dim] {
        bail!(
            "residual rotation must be [{dim}, {dim}], got {:?}",
            q.dims()
        );
    }
    let ones = |t: &Tensor| -> Result<bool> {
        Ok((t - 1.0)?.abs()?.max_all()?.to_scalar::<f32>()? == 0.0)
    };
    for b in &model.blocks {
        if !ones(&b.attn_norm)? || !ones(&b.mlp_norm)? {
            bail!("fold the RMSNorm gains (fold_norms) before rotating the residual stream");
        }
    }
    model.embedding = model.embedding.matmul(q)?;
    let reads = |l: &mut Linear| -> Result<()> {
        let w = l.weight().matmul(q)?;
        l.set_weight(w)
    };
    let writes = |l: &mut Linear| -> Result<()> {
        let w = q.t()?.matmul(l.weight())?;
        l.set_weight(w)
    };
    for b in model.blocks.iter_mut() {
        for l in [&mut b.q, &mut b.k, &mut b.v, &mut b.gate, &mut b.up] {
            reads(l)?;
        }
        writes(&mut b.o)?;
        writes(&mut b.down)?;
    }
    reads(&mut model.head)?;
    Ok(())
}

/// Multiplies its input by a fixed matrix: an online rotation.
pub struct MatrixMap(pub Tensor);

impl TensorMap for MatrixMap {
    fn apply(&self, x: &Tensor) -> Result<Tensor> {
        Ok(x.broadcast_matmul(&self.0)?)
    }

    fn describe(&self) -> String {
        format!("x · R ({:?})", self.0.dims())
    }
}

/// Rotates the MLP hidden activation online: `down` reads `h R` with weight
/// `W R`, so `(h R)(W R)ᵀ = h Wᵀ` while `h R` has spread-out channels.
pub fn online_down_rotation(model: &mut Model, r: &Tensor) -> Result<()> {
    let hidden = model.config.hidden_dim;
    if r.dims() != [hidden, hidden] {
        bail!(
            "MLP rotation must be [{hidden}, {hidden}], got {:?}",
            r.dims()
        );
    }
    for b in model.blocks.iter_mut() {
        let mut config: LinearConfig = b.down.config().clone();
        config.input_transform = Some(Arc::new(MatrixMap(r.clone())));
        let w = b.down.weight().matmul(r)?;
        b.down.set_weight(w)?;
        b.down.configure(config)?;
    }
    Ok(())
}
