//! Fake quantization inside candle's autograd, for quantization-aware training.
//!
//! Two estimators, both on the restricted symmetric grid of
//! [`crate::primitives::quant::WeightQuantizer`] (integer codes `−Q..=Q`, `Q =
//! 2^(b−1) − 1`), so that a model trained with them is the model the post-training
//! quantizers evaluate:
//!
//! - **STE** (straight-through estimator): the step is `clip · absmax / Q` of each
//!   scale group (a weight row or group of `g` inputs, an activation token), the
//!   forward value is exactly what the RTN quantizers of `primitives::quant` give
//!   (without clipping they compute it, one pass over the values, three times
//!   faster on a CPU than ten tensor operations in f64; with clipping the same
//!   f64 arithmetic runs as tensor operations), and the gradient is the identity for values
//!   inside the clipping range and zero for values that saturate. Written as
//!   `q.detach() + (x − x.detach()) · mask`, whose value is `q` to the bit and
//!   whose derivative is `mask`. The step itself gets no gradient.
//! - **LSQ** (Esser et al. 2020, learned step size): the step `s` is a trained
//!   variable; `v = x / s`, forward `round(clamp(v, −Q, Q)) · s`; the gradient is
//!   the identity inside `[−Q, Q]` and zero outside for `x`, and
//!   `g · (round(v) − v)` inside, `g · (±Q)` outside for `s`, with the gradient
//!   scale `g = 1 / √(N · Q)` (N values share the step).
//!
//! Both are [`TensorMap`]s, so they plug into [`crate::model::linear::Linear`] as
//! a weight transform (re-applied after every optimizer step, see
//! [`refresh_weights`]) or an activation quantizer.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::{bail, Result};
use candle_core::{DType, Tensor, Var, D};
use serde::{Deserialize, Serialize};

use crate::model::linear::{LinearConfig, TensorMap};
use crate::model::llama::Model;
use crate::primitives::quant::{Clip, Granularity, WeightQuantizer};

/// Largest code of the restricted symmetric `bits`-bit grid.
pub fn qmax(bits: u8) -> f64 {
    ((1u32 << (bits - 1)) - 1) as f64
}

/// What a QAT run fake-quantizes and how.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QatSpec {
    /// Weight bits (2..=8); `None` keeps weights in full precision.
    pub weight_bits: Option<u8>,
    /// Inputs per weight scale group; `None` is one scale per output channel.
    pub weight_group: Option<usize>,
    /// Activation bits (4..=8), per token; `None` keeps activations in full precision.
    pub activation_bits: Option<u8>,
    /// Learned step sizes (LSQ) instead of absmax steps: one per weight scale
    /// group, one per layer input (per tensor) for activations.
    pub lsq: bool,
    /// Quantize the output head too (off by default: it shares the embedding,
    /// which Muon does not train).
    pub quantize_head: bool,
}

/// STE fake quantization of the rows of `x` viewed as `[groups, group_len]`,
/// each row with its own absmax step (times `clip`, in `(0, 1]`).
pub fn ste_rows(x: &Tensor, group_len: usize, bits: u8, clip: f64) -> Result<Tensor> {
    let shape = x.shape().clone();
    let n = x.elem_count();
    if group_len == 0 || !n.is_multiple_of(group_len) {
        bail!("fake quantization: group of {group_len} does not divide {n} values");
    }
    let rows = x.reshape((n / group_len, group_len))?;
    let quantized = match (clip == 1.0).then(|| rtn_rows(&rows, bits)).transpose()? {
        Some(Some(q)) => q,
        _ => return Ok(ste_tensor(&rows, bits, clip)?.reshape(shape)?),
    };
    let through = (&rows - rows.detach())?;
    Ok((quantized + through)?.reshape(shape)?)
}

/// [`ste_rows`] in tensor operations on `[groups, group_len]`: clipping, and
/// non-finite values (carried through as NaN).
pub fn ste_tensor(rows: &Tensor, bits: u8, clip: f64) -> Result<Tensor> {
    let q = qmax(bits);
    let exact = rows.detach().to_dtype(DType::F64)?;
    // Same arithmetic as primitives::quant (f64; step = (absmax · clip) / Q).
    let step = ((exact.abs()?.max_keepdim(1)? * clip)? / q)?;
    // An all-zero group has step 0: divide by 1 instead (its values are 0 anyway).
    let safe = step
        .eq(0.0)?
        .where_cond(&step.ones_like()?, &step)?
        .broadcast_as(exact.shape())?;
    let v = (&exact / &safe)?;
    let quantized = (v.round()?.clamp(-q, q)? * &safe)?.to_dtype(rows.dtype())?;
    let through = (rows - rows.detach())?;
    let through = if clip < 1.0 {
        let inside = v.abs()?.le(q)?.to_dtype(rows.dtype())?;
        (through * inside)?
    } else {
        through
    };
    Ok((quantized + through)?)
}

/// The rows of a `[groups, group_len]` tensor quantized by the shared RTN code
/// (one pass, no autograd); `None` for non-finite input, which the tensor path
/// carries through as NaN so that a diverging run is recorded, not aborted.
fn rtn_rows(rows: &Tensor, bits: u8) -> Result<Option<Tensor>> {
    let (groups, len) = rows.dims2()?;
    let values = rows
        .detach()
        .to_dtype(DType::F32)?
        .flatten_all()?
        .to_vec1::<f32>()?;
    if values.iter().any(|v| !v.is_finite()) {
        return Ok(None);
    }
    let quantizer = WeightQuantizer {
        bits,
        symmetric: true,
        granularity: Granularity::PerChannel,
        clip: Clip::None,
    };
    let q = quantizer
        .fake_quantize(&values, groups, len)
        .map_err(anyhow::Error::msg)?;
    Ok(Some(
        Tensor::from_vec(q, (groups, len), rows.device())?.to_dtype(rows.dtype())?,
    ))
}

/// LSQ fake quantization of `x` with step `step` (broadcast against `x`), code
/// range `[−Q, Q]` and gradient scale `grad_scale` on the step.
pub fn lsq(x: &Tensor, step: &Tensor, bits: u8, grad_scale: f64) -> Result<Tensor> {
    let q = qmax(bits);
    // Value `step`, gradient `grad_scale` times the incoming one.
    let scaled = (step * grad_scale)?;
    let s = (step.detach() + (&scaled - scaled.detach())?)?;
    let v = x.broadcast_div(&s)?;
    let inside = v.ge(-q)?.mul(&v.le(q)?)?;
    let clamped = v.clamp(-q, q)?.detach();
    let vc = inside.where_cond(&v, &clamped)?;
    let rounded = (vc.round()?.detach() + (&vc - vc.detach())?)?;
    Ok(rounded.broadcast_mul(&s)?)
}

/// A weight fake quantizer `[out, in]` → same shape.
pub struct FakeQuantWeight {
    /// Bits, 2..=8.
    pub bits: u8,
    /// Inputs per scale group (`None`: the whole row).
    pub group: Option<usize>,
    /// Fraction of the absmax kept by the STE grid (1 = no clipping).
    pub clip: f64,
    /// LSQ step `[out, in / group]`, when learned.
    pub step: Option<Var>,
}

impl FakeQuantWeight {
    fn group_len(&self, cols: usize) -> usize {
        self.group.unwrap_or(cols)
    }

    /// The LSQ step that reproduces the absmax grid of `w` (training starts from
    /// the RTN-quantized model).
    pub fn initial_step(w: &Tensor, bits: u8, group: Option<usize>) -> Result<Tensor> {
        let (rows, cols) = w.dims2()?;
        let g = group.unwrap_or(cols);
        if g == 0 || !cols.is_multiple_of(g) {
            bail!("weight group {g} does not divide {cols} inputs");
        }
        let absmax = w.reshape((rows, cols / g, g))?.abs()?.max(D::Minus1)?;
        // A zero group would get a zero step and divide by zero: floor it.
        Ok((absmax / qmax(bits))?.maximum(1e-8)?)
    }
}

impl TensorMap for FakeQuantWeight {
    fn apply(&self, w: &Tensor) -> Result<Tensor> {
        let (rows, cols) = w.dims2()?;
        let g = self.group_len(cols);
        match &self.step {
            None => ste_rows(w, g, self.bits, self.clip),
            Some(step) => {
                let grouped = w.reshape((rows, cols / g, g))?;
                let s = step.as_tensor().unsqueeze(2)?;
                let scale = 1.0 / ((g as f64) * qmax(self.bits)).sqrt();
                Ok(lsq(&grouped, &s, self.bits, scale)?.reshape((rows, cols))?)
            }
        }
    }

    fn describe(&self) -> String {
        format!(
            "fake-quant weights w{}{} ({})",
            self.bits,
            self.group.map(|g| format!("g{g}")).unwrap_or_default(),
            if self.step.is_some() { "LSQ" } else { "STE" }
        )
    }
}

/// An activation fake quantizer `[..., features]`: per-token absmax steps (STE),
/// or one learned step per tensor (LSQ).
pub struct FakeQuantActivation {
    /// Bits, 4..=8.
    pub bits: u8,
    /// Fraction of each token's absmax kept (1 = no clipping).
    pub clip: f64,
    /// LSQ step (a single value), when learned.
    pub step: Option<Var>,
}

impl TensorMap for FakeQuantActivation {
    fn apply(&self, x: &Tensor) -> Result<Tensor> {
        let features = *x.dims().last().unwrap_or(&1);
        match &self.step {
            None => ste_rows(x, features, self.bits, self.clip),
            Some(step) => {
                // LSQ's activation gradient scale uses the layer's feature count.
                let scale = 1.0 / ((features as f64) * qmax(self.bits)).sqrt();
                lsq(x, step.as_tensor(), self.bits, scale)
            }
        }
    }

    fn describe(&self) -> String {
        format!(
            "fake-quant activations a{} per {}",
            self.bits,
            if self.step.is_some() {
                "tensor (LSQ)"
            } else {
                "token (STE)"
            }
        )
    }
}

/// Whether a linear layer is quantized under `spec` (hidden projections always,
/// the head only if asked).
pub fn quantized_layer(name: &str, spec: &QatSpec) -> bool {
    name != "lm_head" || spec.quantize_head
}

/// Names of the LSQ step variables of linear layer `layer`.
pub fn step_names(layer: &str) -> (String, String) {
    (
        format!("qat.{layer}.weight_step"),
        format!("qat.{layer}.input_step"),
    )
}

/// Installs the fake quantizers of `spec` on every quantized linear layer of
/// `model`, with LSQ steps taken from `steps` by [`step_names`]. Input
/// transforms already configured (online rotations) are kept.
pub fn install(model: &mut Model, spec: &QatSpec, steps: &BTreeMap<String, Var>) -> Result<()> {
    for linear in model.linears_mut() {
        if !quantized_layer(&linear.name, spec) {
            continue;
        }
        let (w_name, a_name) = step_names(&linear.name);
        let lookup = |name: &str| -> Result<Option<Var>> {
            if !spec.lsq {
                return Ok(None);
            }
            match steps.get(name) {
                Some(v) => Ok(Some(v.clone())),
                None => bail!("no LSQ step `{name}`"),
            }
        };
        let mut config: LinearConfig = linear.config().clone();
        config.weight_transform = match spec.weight_bits {
            Some(bits) => Some(Arc::new(FakeQuantWeight {
                bits,
                group: spec.weight_group,
                clip: 1.0,
                step: lookup(&w_name)?,
            })),
            None => None,
        };
        config.activation_quantizer = match spec.activation_bits {
            Some(bits) => Some(Arc::new(FakeQuantActivation {
                bits,
                clip: 1.0,
                step: lookup(&a_name)?,
            })),
            None => None,
        };
        linear.configure(config)?;
    }
    Ok(())
}

/// Records the mean |x| of each linear layer's input.
struct MeanAbs(std::sync::Mutex<BTreeMap<String, f64>>);

impl crate::model::linear::Observer for MeanAbs {
    fn linear(&self, name: &str, input: &Tensor, _output: &Tensor) -> Result<()> {
        let m = input
            .abs()?
            .mean_all()?
            .to_dtype(DType::F64)?
            .to_scalar::<f64>()?;
        self.0.lock().unwrap().insert(name.to_string(), m);
        Ok(())
    }
}

/// Initial LSQ steps for `model` under `spec` (empty unless `spec.lsq`): each
/// weight group's absmax grid (so training starts from the RTN model), and LSQ's
/// `2 · mean|x| / √Q` per layer input, measured on `tokens` (`[batch, context]`).
pub fn initial_steps(
    model: &Model,
    spec: &QatSpec,
    tokens: &[u32],
    shape: (usize, usize),
) -> Result<Vec<(String, Tensor)>> {
    let mut out = Vec::new();
    if !spec.lsq {
        return Ok(out);
    }
    let observed = MeanAbs(Default::default());
    if spec.activation_bits.is_some() {
        let x = Tensor::from_slice(tokens, shape, &candle_core::Device::Cpu)?;
        let mut cache = crate::model::cache::KvCache::new(model.config.n_layers);
        model.forward(&x, &mut cache, Some(&observed))?;
    }
    let observed = observed.0.into_inner().unwrap();
    let linears = model
        .blocks
        .iter()
        .flat_map(|b| [&b.q, &b.k, &b.v, &b.o, &b.gate, &b.up, &b.down])
        .chain(std::iter::once(&model.head));
    for linear in linears {
        if !quantized_layer(&linear.name, spec) {
            continue;
        }
        let (w_name, a_name) = step_names(&linear.name);
        if let Some(bits) = spec.weight_bits {
            let step = FakeQuantWeight::initial_step(linear.weight(), bits, spec.weight_group)?;
            out.push((w_name, step));
        }
        if let Some(bits) = spec.activation_bits {
            let mean = observed.get(&linear.name).cloned().unwrap_or(1.0);
            let step = (2.0 * mean / qmax(bits).sqrt()).max(1e-8) as f32;
            out.push((a_name, Tensor::new(&[step], &candle_core::Device::Cpu)?));
        }
    }
    Ok(out)
}

/// Re-applies every weight transform to the current weights. Training calls it
/// before each forward pass: the optimizer updates the weights in place, and the
/// fake-quantized copy (with its autograd graph back to the weights) must follow.
pub fn refresh_weights(model: &mut Model) -> Result<()> {
    for linear in model.linears_mut() {
        if linear.config().weight_transform.is_some() {
            let w = linear.weight().clone();
            linear.set_weight(w)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
