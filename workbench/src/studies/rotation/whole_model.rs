//! Whole-model units: the scheme applied to the entire model (a QuaRot-style
//! rotation by computational invariance, or SmoothQuant scaling of every
//! linear input), then weights, activations and the KV cache quantized, and the
//! result compared with the full-precision model on the evaluation tokens.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::{Context, Result};
use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::layers::{collect_inputs, column_absmax};
use super::methods::Scheme;
use super::RotationPlan;
use crate::model::kv_quant::KvQuant;
use crate::model::linear::Linear;
use crate::model::llama::Model;
use crate::model::rotate::{online_rotation, rotate_model, smooth_linear};
use crate::model::transforms::QuantizeActivation;
use crate::primitives::rotation::{smoothquant_scales, Rotation};
use crate::studies::eval::plan::{compare, logits, SequenceSums};

/// One quantization setting of the whole model.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ModelSetting {
    /// Weight method.
    pub weights: String,
    /// Activation bits per token (16 = none).
    pub activation_bits: u8,
    /// KV-cache bits (16 = none).
    pub kv_bits: u8,
    /// Per evaluation sequence, against the full-precision model.
    pub sequences: Vec<SequenceSums>,
}

/// One scheme's whole-model output.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SchemeModel {
    /// Scheme name.
    pub scheme: String,
    /// What the scheme changed, in words.
    pub applied: String,
    /// Every setting.
    pub settings: Vec<ModelSetting>,
}

impl RotationPlan {
    /// The whole-model unit of one scheme.
    pub(super) fn model_unit(&self, scheme_name: &str) -> Result<SchemeModel> {
        let scheme = self.scheme(scheme_name);
        let eval = self.eval_plan()?;
        let reference = eval.load()?;
        let seqs = eval.sequences(&reference)?;
        let ref_logits = logits(&reference, &seqs)?;
        let calibration =
            eval.calibration_sequences(&reference, self.config.calibration_sequences)?;
        let c = reference.config.clone();
        let mut base = reference.clone();
        let (applied, key_rotation) = match scheme {
            Scheme::Rotation(Rotation::None) => ("nothing (the baseline)".to_string(), None),
            Scheme::Rotation(rotation) => {
                let done = rotate_model(&mut base, rotation)?;
                let mut parts = vec![format!(
                    "RMSNorm gains folded; residual stream rotated (order {})",
                    c.dim
                )];
                parts.push(if done.mlp_hidden {
                    format!(
                        "MLP hidden rotated online before down_proj (order {})",
                        c.hidden_dim
                    )
                } else {
                    format!(
                        "MLP hidden not rotated (no construction of order {})",
                        c.hidden_dim
                    )
                });
                parts.push(if done.value_heads {
                    format!(
                        "values and attention outputs rotated per head (order {})",
                        c.head_dim
                    )
                } else {
                    format!(
                        "values not rotated (no construction of order {})",
                        c.head_dim
                    )
                });
                let key_rotation = online_rotation(rotation, c.head_dim)?.map(|r| r.map);
                if key_rotation.is_some() && self.config.kv_bits.iter().any(|&b| b < 16) {
                    parts.push("queries and keys rotated per head before KV quantization".into());
                }
                (parts.join("; "), key_rotation)
            }
            Scheme::SmoothQuant(alpha) => {
                smooth_model(&mut base, &calibration, alpha)?;
                (
                    format!(
                        "SmoothQuant scales (alpha {alpha}) on every linear input, from {} calibration sequences",
                        calibration.len()
                    ),
                    None,
                )
            }
        };
        let methods = self.methods()?;
        let calib_inputs = if methods.iter().any(|m| m.gptq) {
            collect_inputs(&base, &calibration)?
        } else {
            BTreeMap::new()
        };
        let group = self.config.kv_group.unwrap_or(c.head_dim);
        let mut settings = Vec::new();
        for method in &methods {
            let mut quantized = base.clone();
            for linear in quantized.linears_mut() {
                quantize_weight(linear, method, calib_inputs.get(&linear.name), self)?;
            }
            for &abits in &self.config.activation_bits {
                let mut model = quantized.clone();
                if abits < 16 {
                    for linear in model.linears_mut() {
                        let mut config = linear.config().clone();
                        config.activation_quantizer = Some(Arc::new(QuantizeActivation(
                            self.activation_quantizer(abits),
                        )));
                        linear.configure(config)?;
                    }
                }
                for &kv in &self.config.kv_bits {
                    model.kv_quant = (kv < 16).then(|| KvQuant {
                        bits: kv,
                        group,
                        key_rotation: key_rotation.clone(),
                    });
                    let out = logits(&model, &seqs)?;
                    settings.push(ModelSetting {
                        weights: method.name.clone(),
                        activation_bits: abits,
                        kv_bits: kv,
                        sequences: compare(&seqs, &ref_logits, &out),
                    });
                }
            }
        }
        Ok(SchemeModel {
            scheme: scheme_name.to_string(),
            applied,
            settings,
        })
    }
}

/// Replaces a layer's weight by its quantized version (GPTQ on the layer's
/// calibration inputs in the already transformed model).
fn quantize_weight(
    linear: &mut Linear,
    method: &super::methods::WeightMethod,
    calibration: Option<&Tensor>,
    plan: &RotationPlan,
) -> Result<()> {
    let w = linear.weight().clone();
    let (rows, cols) = w.dims2()?;
    let values = w.flatten_all()?.to_vec1::<f32>()?;
    let calib = match calibration {
        Some(x) => Some((x.flatten_all()?.to_vec1::<f32>()?, x.dim(0)?)),
        None => None,
    };
    let quantized = method
        .quantize(
            &values,
            rows,
            cols,
            calib.as_ref().map(|(v, n)| (v.as_slice(), *n)),
            plan.config.gptq_damp,
        )
        .map_err(|e| anyhow::anyhow!("{}: {e}", linear.name))?;
    if let Some(q) = quantized {
        linear.set_weight(Tensor::from_vec(q, (rows, cols), &Device::Cpu)?)?;
    }
    Ok(())
}

/// SmoothQuant on every linear input. Layers that read the same activation
/// (q, k, v; gate, up) share one set of scales — computed from the largest
/// weight column over the group — as they would when `1/s` is folded into the
/// preceding RMSNorm.
fn smooth_model(model: &mut Model, calibration: &[Vec<u32>], alpha: f64) -> Result<()> {
    let inputs = collect_inputs(model, calibration)?;
    let absmax = |name: &str| -> Result<Vec<f32>> {
        column_absmax(
            inputs
                .get(name)
                .with_context(|| format!("no calibration input for {name}"))?,
        )
    };
    let smooth = |group: Vec<&mut Linear>| -> Result<()> {
        let x = absmax(&group[0].name)?;
        let mut w = vec![0f32; x.len()];
        for linear in &group {
            for (m, v) in w.iter_mut().zip(column_absmax(linear.weight())?) {
                *m = m.max(v);
            }
        }
        let s = smoothquant_scales(&x, &w, alpha).map_err(anyhow::Error::msg)?;
        let s = Tensor::from_vec(s, x.len(), &Device::Cpu)?;
        for linear in group {
            smooth_linear(linear, &s)?;
        }
        Ok(())
    };
    for b in model.blocks.iter_mut() {
        smooth(vec![&mut b.q, &mut b.k, &mut b.v])?;
        smooth(vec![&mut b.o])?;
        smooth(vec![&mut b.gate, &mut b.up])?;
        smooth(vec![&mut b.down])?;
    }
    smooth(vec![&mut model.head])?;
    Ok(())
}
