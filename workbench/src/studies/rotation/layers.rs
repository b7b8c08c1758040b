//! Per-layer units: every linear layer's evaluation inputs X and weight W are
//! moved to the scheme's basis — X A and W B with A Bᵀ = I, so the exact product
//! is unchanged (a rotation has A = B = Q; SmoothQuant A = diag(1/s),
//! B = diag(s)) — then both are fake-quantized and the output compared with
//! full precision.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::methods::{Scheme, WeightMethod};
use super::RotationPlan;
use crate::model::cache::KvCache;
use crate::model::linear::Observer;
use crate::model::linear::TensorMap;
use crate::model::llama::Model;
use crate::model::rotate::{online_rotation, HadamardMap, OnlineRotation};
use crate::primitives::quant::ActivationQuantizer;
use crate::primitives::rotation::smoothquant_scales;

/// One layer under one (weights, activation bits) setting.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct LayerRow {
    /// Linear layer name.
    pub site: String,
    /// Block index (-1 for the head).
    pub layer: i64,
    /// Weight method.
    pub weights: String,
    /// Activation bits (16 = none).
    pub activation_bits: u8,
    /// ‖Y − Ŷ‖ / ‖Y‖.
    pub rel_error: f64,
    /// 20 log10(‖Y‖ / ‖Y − Ŷ‖).
    pub sqnr_db: f64,
    /// ‖W − Ŵ‖ / ‖W‖, with Ŵ mapped back to the original basis.
    #[serde(default)]
    pub weight_rel_error: f64,
    /// ‖X − X̂‖ / ‖X‖, with X̂ mapped back to the original basis.
    #[serde(default)]
    pub activation_rel_error: f64,
}

/// One scheme's per-layer output.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SchemeLayers {
    /// Scheme name.
    pub scheme: String,
    /// Every measured layer and setting.
    pub rows: Vec<LayerRow>,
    /// Layers whose width has no construction for this rotation.
    pub skipped: Vec<String>,
}

/// Keeps each linear layer's input (first call only; q, k and v share one).
#[derive(Default)]
pub(super) struct Inputs(pub Mutex<BTreeMap<String, Tensor>>);

impl Observer for Inputs {
    fn linear(&self, name: &str, input: &Tensor, _output: &Tensor) -> Result<()> {
        let n = *input.dims().last().unwrap_or(&1);
        let rows = input.elem_count() / n;
        self.0
            .lock()
            .unwrap()
            .insert(name.to_string(), input.reshape((rows, n))?);
        Ok(())
    }
}

/// Every linear layer's input `[tokens, in]` on `seqs`.
pub(super) fn collect_inputs(model: &Model, seqs: &[Vec<u32>]) -> Result<BTreeMap<String, Tensor>> {
    let inputs = Inputs::default();
    let flat: Vec<u32> = seqs.iter().flatten().cloned().collect();
    let tokens = Tensor::from_vec(flat, (seqs.len(), seqs[0].len()), &Device::Cpu)?;
    model.forward(
        &tokens,
        &mut KvCache::new(model.config.n_layers),
        Some(&inputs),
    )?;
    Ok(inputs.0.into_inner().unwrap())
}

/// Per-column absolute maximum of `[rows, cols]`.
pub(super) fn column_absmax(t: &Tensor) -> Result<Vec<f32>> {
    Ok(t.abs()?.max(0)?.to_vec1::<f32>()?)
}

/// The change of basis of one layer: X ↦ X A, W ↦ W B, and their inverses.
struct Basis {
    a: Tensor,
    a_inv: Tensor,
    b: Tensor,
    b_inv: Tensor,
    /// `x ↦ x·a` as a Hadamard kernel, for the Hadamard schemes.
    kernel: Option<Arc<HadamardMap>>,
}

fn diagonal(values: &[f32]) -> Result<Tensor> {
    let n = values.len();
    let mut m = vec![0f32; n * n];
    for (i, &v) in values.iter().enumerate() {
        m[i * n + i] = v;
    }
    Ok(Tensor::from_vec(m, (n, n), &Device::Cpu)?)
}

fn frobenius(t: &Tensor) -> Result<f64> {
    Ok(t.sqr()?.sum_all()?.to_scalar::<f32>()? as f64)
}

/// Block index from a layer name (-1 for the head).
pub(super) fn layer_index(name: &str) -> i64 {
    name.strip_prefix("model.layers.")
        .and_then(|r| r.split('.').next())
        .and_then(|l| l.parse().ok())
        .unwrap_or(-1)
}

impl RotationPlan {
    /// The per-layer unit of one scheme.
    pub(super) fn layer_unit(&self, scheme_name: &str) -> Result<SchemeLayers> {
        let scheme = self.scheme(scheme_name);
        let eval = self.eval_plan()?;
        let mut model = eval.load()?;
        let seqs = eval.sequences(&model)?;
        let calibration = eval.calibration_sequences(&model, self.config.calibration_sequences)?;
        let inputs = collect_inputs(&model, &seqs)?;
        let needs_calibration =
            matches!(scheme, Scheme::SmoothQuant(_)) || self.methods()?.iter().any(|m| m.gptq);
        let calib_inputs = if needs_calibration {
            collect_inputs(&model, &calibration)?
        } else {
            BTreeMap::new()
        };
        let methods = self.methods()?;
        let mut rows = Vec::new();
        let mut skipped = Vec::new();
        let mut rotations: BTreeMap<usize, Option<OnlineRotation>> = BTreeMap::new();
        for linear in model.linears_mut() {
            let Some(x) = inputs.get(&linear.name) else {
                continue;
            };
            let w = linear.weight().clone();
            let (out, n) = w.dims2()?;
            let basis = match scheme {
                Scheme::Rotation(rotation) => {
                    let q = match rotations.get(&n) {
                        Some(q) => q.clone(),
                        None => {
                            let q = online_rotation(rotation, n)?;
                            rotations.insert(n, q.clone());
                            q
                        }
                    };
                    let Some(q) = q else {
                        skipped.push(linear.name.clone());
                        continue;
                    };
                    let qt = q.dense.t()?.contiguous()?;
                    Basis {
                        a: q.dense.clone(),
                        a_inv: qt.clone(),
                        b: q.dense,
                        b_inv: qt,
                        kernel: q.kernel,
                    }
                }
                Scheme::SmoothQuant(alpha) => {
                    let xc = calib_inputs
                        .get(&linear.name)
                        .with_context(|| format!("no calibration input for {}", linear.name))?;
                    let s = smoothquant_scales(&column_absmax(xc)?, &column_absmax(&w)?, alpha)
                        .map_err(anyhow::Error::msg)?;
                    let inv: Vec<f32> = s.iter().map(|v| 1.0 / v).collect();
                    Basis {
                        a: diagonal(&inv)?,
                        a_inv: diagonal(&s)?,
                        b: diagonal(&s)?,
                        b_inv: diagonal(&inv)?,
                        kernel: None,
                    }
                }
            };
            let y = x.matmul(&w.t()?)?;
            let (y_norm, w_norm, x_norm) = (frobenius(&y)?, frobenius(&w)?, frobenius(x)?);
            // Hadamard schemes rotate activations with the kernels (the fast
            // transform, and the fused rotate-and-quantize below).
            let xr = match &basis.kernel {
                Some(k) => k.apply(x)?,
                None => x.matmul(&basis.a)?,
            };
            let wr = w.matmul(&basis.b)?;
            let tokens = xr.dim(0)?;
            let xr_values = xr.flatten_all()?.to_vec1::<f32>()?;
            let wr_values = wr.flatten_all()?.to_vec1::<f32>()?;
            let calib = match calib_inputs.get(&linear.name) {
                Some(xc) if methods.iter().any(|m| m.gptq) => {
                    let xcr = xc.matmul(&basis.a)?;
                    Some((xcr.flatten_all()?.to_vec1::<f32>()?, xcr.dim(0)?))
                }
                _ => None,
            };
            for method in &methods {
                let wq = match method.quantize(
                    &wr_values,
                    out,
                    n,
                    calib.as_ref().map(|(v, r)| (v.as_slice(), *r)),
                    self.config.gptq_damp,
                ) {
                    Ok(Some(v)) => Tensor::from_vec(v, (out, n), &Device::Cpu)?,
                    Ok(None) => wr.clone(),
                    Err(e) => anyhow::bail!("{}: {e}", linear.name),
                };
                let weight_err = frobenius(&(&wq - &wr)?.matmul(&basis.b_inv)?)?;
                for &bits in &self.config.activation_bits {
                    if method.quantizer.is_none() && bits >= 16 {
                        continue; // nothing quantized: the exact product
                    }
                    let quantizer = self.activation_quantizer(bits);
                    let fused = basis
                        .kernel
                        .as_ref()
                        .filter(|_| quantizer.per_token && (bits == 4 || bits == 8));
                    let xq = if bits >= 16 {
                        xr.clone()
                    } else if let Some(k) = fused {
                        k.rotate_fake_quantize(x, bits, quantizer.clip_ratio)?
                    } else {
                        let v = self
                            .activation_quantizer(bits)
                            .fake_quantize(&xr_values, tokens, n)
                            .map_err(anyhow::Error::msg)?;
                        Tensor::from_vec(v, (tokens, n), &Device::Cpu)?
                    };
                    let act_err = frobenius(&(&xq - &xr)?.matmul(&basis.a_inv)?)?;
                    let err = frobenius(&(xq.matmul(&wq.t()?)? - &y)?)?;
                    let rel = (err / y_norm).sqrt();
                    rows.push(LayerRow {
                        site: linear.name.clone(),
                        layer: layer_index(&linear.name),
                        weights: method.name.clone(),
                        activation_bits: bits,
                        rel_error: rel,
                        sqnr_db: -20.0 * rel.log10(),
                        weight_rel_error: (weight_err / w_norm).sqrt(),
                        activation_rel_error: (act_err / x_norm).sqrt(),
                    });
                }
            }
        }
        Ok(SchemeLayers {
            scheme: scheme_name.to_string(),
            rows,
            skipped,
        })
    }

    /// The weight methods of the config.
    pub(super) fn methods(&self) -> Result<Vec<WeightMethod>> {
        self.config
            .weights
            .iter()
            .map(|w| WeightMethod::parse(w).map_err(anyhow::Error::msg))
            .collect()
    }
}

impl RotationPlan {
    /// The configured dynamic symmetric activation quantizer with `bits` bits.
    pub(super) fn activation_quantizer(&self, bits: u8) -> ActivationQuantizer {
        ActivationQuantizer {
            bits,
            per_token: self.config.activation_granularity == "token",
            clip_ratio: self.config.activation_clip_ratio as f32,
            static_scale: None,
        }
    }
}
