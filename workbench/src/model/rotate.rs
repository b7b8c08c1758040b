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

use anyhow::{bail, Context, Result};
use candle_core::Tensor;

use super::linear::{Linear, LinearConfig, TensorMap};
use super::llama::Model;
use crate::primitives::hadamard::FwhtPlan;
use crate::primitives::rotation::{input_signs, matrix, Rotation};
use wb_kernels::hadamard::{hadamard as hadamard_kernel, Direction, HadamardOp};
use wb_kernels::quant::{rotate_fake_quant, Bits, QuantConfig};

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

/// The normalised Hadamard transform `x ↦ x·diag(s)·H/√n` along the last axis
/// through the `hadamard` kernel (n·log n work instead of the n² of a dense
/// product; on the tensor's device): the same map as [`MatrixMap`] of
/// [`rotation_tensor`] for the Hadamard schemes, to float rounding.
pub struct HadamardMap {
    /// `x·(H/√n)`: the kernel's transposed direction (see `FwhtPlan`).
    op: HadamardOp,
    /// The random signs s, applied first (randomized Hadamard).
    signs: Option<Tensor>,
}

impl HadamardMap {
    /// `x ⊙ s`, the input of the unsigned transform.
    fn signed(&self, x: &Tensor) -> Result<Tensor> {
        Ok(match &self.signs {
            Some(s) => x.broadcast_mul(&s.to_dtype(x.dtype())?.to_device(x.device())?)?,
            None => x.clone(),
        })
    }

    /// The rotated `x` fake-quantized per token (symmetric, `bits` 4 or 8, the
    /// absmax times `clip_ratio` mapped to the largest code) in one pass of the
    /// fused `rotate_quantize` kernel; the result stays in the rotated basis.
    pub fn rotate_fake_quantize(&self, x: &Tensor, bits: u8, clip_ratio: f32) -> Result<Tensor> {
        let bits = match bits {
            4 => Bits::Int4,
            8 => Bits::Int8,
            _ => bail!("the fused rotate-and-quantize kernel takes 4 or 8 bits, not {bits}"),
        };
        let config = QuantConfig {
            bits,
            group: None,
            clip_ratio,
        };
        Ok(rotate_fake_quant(&self.signed(x)?, &self.op, &config)?)
    }
}

impl TensorMap for HadamardMap {
    fn apply(&self, x: &Tensor) -> Result<Tensor> {
        Ok(hadamard_kernel(&self.signed(x)?, &self.op)?)
    }

    fn describe(&self) -> String {
        format!(
            "x · {}H/√n (hadamard kernel, n = {})",
            if self.signs.is_some() {
                "diag(s)·"
            } else {
                ""
            },
            self.op.plan().n()
        )
    }
}

/// An online rotation of order n: the dense matrix (to fold into weights) and
/// the map applied to activations (the Hadamard kernel where the scheme is a
/// Hadamard one, else the dense product).
#[derive(Clone)]
pub struct OnlineRotation {
    /// The orthogonal matrix R, `[n, n]`.
    pub dense: Tensor,
    /// `x ↦ x·R` along the last axis.
    pub map: Arc<dyn TensorMap>,
    /// The same map as a Hadamard kernel, for the Hadamard schemes.
    pub kernel: Option<Arc<HadamardMap>>,
}

/// The scheme's online rotation of order n, or None where the order has no
/// construction.
pub fn online_rotation(rotation: Rotation, n: usize) -> Result<Option<OnlineRotation>> {
    let Some(dense) = rotation_tensor(rotation, n)? else {
        return Ok(None);
    };
    let kernel = match rotation {
        Rotation::Hadamard | Rotation::RandomHadamard { .. } => {
            let plan = FwhtPlan::new(n).map_err(anyhow::Error::msg)?;
            let op = HadamardOp::new(plan.kernel_plan().clone(), Direction::Transposed);
            let signs = input_signs(rotation, n)
                .map(|s| {
                    let s: Vec<f32> = s.into_iter().map(|v| v as f32).collect();
                    Tensor::from_vec(s, n, dense.device())
                })
                .transpose()?;
            Some(Arc::new(HadamardMap { op, signs }))
        }
        _ => None,
    };
    let map: Arc<dyn TensorMap> = match &kernel {
        Some(k) => k.clone(),
        None => Arc::new(MatrixMap(dense.clone())),
    };
    Ok(Some(OnlineRotation { dense, map, kernel }))
}

/// Rotates the MLP hidden activation online: `down` reads `h R` with weight
/// `W R`, so `(h R)(W R)ᵀ = h Wᵀ` while `h R` has spread-out channels.
pub fn online_down_rotation(model: &mut Model, r: &Tensor) -> Result<()> {
    let map = Arc::new(MatrixMap(r.clone()));
    online_down_rotation_by(
        model,
        &OnlineRotation {
            dense: r.clone(),
            map,
            kernel: None,
        },
    )
}

/// [`online_down_rotation`] with the activations rotated by `r.map`.
pub fn online_down_rotation_by(model: &mut Model, r: &OnlineRotation) -> Result<()> {
    let hidden = model.config.hidden_dim;
    if r.dense.dims() != [hidden, hidden] {
        bail!(
            "MLP rotation must be [{hidden}, {hidden}], got {:?}",
            r.dense.dims()
        );
    }
    for b in model.blocks.iter_mut() {
        let mut config: LinearConfig = b.down.config().clone();
        config.input_transform = Some(r.map.clone());
        let w = b.down.weight().matmul(&r.dense)?;
        b.down.set_weight(w)?;
        b.down.configure(config)?;
    }
    Ok(())
}

/// `n` copies of the square `r` on the diagonal.
fn block_diagonal(r: &Tensor, n: usize) -> Result<Tensor> {
    let d = r.dim(0)?;
    let values = r.to_dtype(candle_core::DType::F32)?.to_vec2::<f32>()?;
    let mut out = vec![0f32; n * d * n * d];
    for b in 0..n {
        for (i, row) in values.iter().enumerate() {
            let start = (b * d + i) * n * d + b * d;
            out[start..start + d].copy_from_slice(row);
        }
    }
    Ok(Tensor::from_vec(out, (n * d, n * d), r.device())?)
}

/// Rotates every attention head's values by the orthogonal `r`
/// (`[head_dim, head_dim]`): `v_proj` produces `v R` per head (weight `Rᵀ W`
/// per head block, bias `b R`) and `o_proj` reads `o R` (weight `W R` per head
/// block). Attention mixes positions, not head dimensions, so each head's
/// output is its old output times `R` and the model is unchanged (QuaRot's
/// per-head Hadamard on values and outputs).
pub fn rotate_value_heads(model: &mut Model, r: &Tensor) -> Result<()> {
    let c = &model.config;
    if r.dims() != [c.head_dim, c.head_dim] {
        bail!(
            "per-head rotation must be [{0}, {0}], got {1:?}",
            c.head_dim,
            r.dims()
        );
    }
    let kv_blocks = block_diagonal(r, c.n_kv_heads)?;
    let q_blocks = block_diagonal(r, c.n_heads)?;
    for b in model.blocks.iter_mut() {
        let w = kv_blocks.t()?.matmul(b.v.weight())?;
        b.v.set_weight(w)?;
        if let Some(bias) = b.v.bias().cloned() {
            let rotated = bias.unsqueeze(0)?.matmul(&kv_blocks)?.squeeze(0)?;
            b.v.set_bias(Some(rotated));
        }
        let w = b.o.weight().matmul(&q_blocks)?;
        b.o.set_weight(w)?;
    }
    Ok(())
}

/// Multiplies its input's last axis by fixed per-channel factors.
pub struct ChannelScale(pub Tensor);

impl TensorMap for ChannelScale {
    fn apply(&self, x: &Tensor) -> Result<Tensor> {
        Ok(x.broadcast_mul(&self.0)?)
    }

    fn describe(&self) -> String {
        format!("x · diag(1/s) ({} channels)", self.0.elem_count())
    }
}

/// SmoothQuant on one layer: its input is divided by `scales` per channel and
/// its weight's input columns multiplied by them, so `(x / s)(W diag(s))ᵀ =
/// x Wᵀ`. Deployed, `1/s` folds into the preceding norm or projection; applied
/// here as an input transform, the quantizers see the same numbers.
pub fn smooth_linear(linear: &mut Linear, scales: &Tensor) -> Result<()> {
    if linear.config().input_transform.is_some() {
        bail!(
            "{}: SmoothQuant on a layer that already has an input transform",
            linear.name
        );
    }
    let mut config = linear.config().clone();
    config.input_transform = Some(Arc::new(ChannelScale(scales.recip()?)));
    scale_columns(linear, scales)?;
    linear.configure(config)
}

/// What [`rotate_model`] applied beyond the residual rotation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Applied {
    /// An online rotation of the MLP hidden activation before `down_proj`.
    pub mlp_hidden: bool,
    /// A per-head rotation of values and attention outputs.
    pub value_heads: bool,
}

/// Applies a whole-model rotation, QuaRot-style: RMSNorm gains folded, the
/// residual stream rotated by the scheme's Q of the model width, the MLP hidden
/// activation rotated online before `down_proj`, and every head's values and
/// outputs rotated, the last two where their widths have a construction
/// (reported in [`Applied`]). The residual width must have one.
pub fn rotate_model(model: &mut Model, rotation: Rotation) -> Result<Applied> {
    if rotation == Rotation::None {
        return Ok(Applied::default());
    }
    let q = rotation_tensor(rotation, model.config.dim)?.with_context(|| {
        format!(
            "no {rotation:?} rotation of the model width {}",
            model.config.dim
        )
    })?;
    fold_norms(model)?;
    rotate_residual(model, &q)?;
    let mut applied = Applied::default();
    if let Some(r) = online_rotation(rotation, model.config.hidden_dim)? {
        online_down_rotation_by(model, &r)?;
        applied.mlp_hidden = true;
    }
    if let Some(r) = rotation_tensor(rotation, model.config.head_dim)? {
        rotate_value_heads(model, &r)?;
        applied.value_heads = true;
    }
    Ok(applied)
}

/// The scheme's orthogonal matrix of order n as an f32 tensor, or None where
/// the order has no construction.
pub fn rotation_tensor(rotation: Rotation, n: usize) -> Result<Option<Tensor>> {
    Ok(match matrix(rotation, n) {
        Ok(m) => Some(Tensor::from_vec(
            m.iter().map(|&v| v as f32).collect::<Vec<f32>>(),
            (n, n),
            &candle_core::Device::Cpu,
        )?),
        Err(_) => None,
    })
}
