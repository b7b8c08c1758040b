//! What the QAT study measures on a model: validation loss and KL to a
//! reference, the model quantized after training (with and without a
//! whole-model rotation), and outlier statistics of weights and activations.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use candle_core::{Device, Tensor, D};
use serde::{Deserialize, Serialize};

use super::data::Window;
use crate::model::cache::KvCache;
use crate::model::config::ModelConfig;
use crate::model::linear::{Observer, TensorMap};
use crate::model::llama::Model;
use crate::model::transforms::{weight_variant, QuantizeActivation};
use crate::model::weights::Weights;
use crate::primitives::channel_stats::ChannelStats;
use crate::primitives::quant::ActivationQuantizer;
use crate::train::fake_quant::quantized_layer;

/// Windows per forward pass when scoring.
const CHUNK: usize = 8;

/// A model built from named tensors.
pub fn model_of(config: &ModelConfig, tensors: &[(String, Tensor)]) -> Result<Model> {
    let mut w = Weights::new("qat");
    for (n, t) in tensors {
        w.insert(n.clone(), t.clone());
    }
    Model::from_weights(config.clone(), w)
}

/// Log-probabilities `[positions, vocab]` of `model` over `windows`, flattened.
pub fn log_probs(model: &Model, windows: &[Window]) -> Result<Vec<f32>> {
    let mut out = Vec::new();
    for chunk in windows.chunks(CHUNK) {
        let context = chunk[0].0.len();
        let inputs: Vec<u32> = chunk.iter().flat_map(|w| w.0.iter().cloned()).collect();
        let x = Tensor::from_vec(inputs, (chunk.len(), context), &Device::Cpu)?;
        let logits = model.forward(&x, &mut KvCache::new(model.config.n_layers), None)?;
        let lp = candle_nn::ops::log_softmax(&logits, D::Minus1)?;
        out.extend(lp.flatten_all()?.to_vec1::<f32>()?);
    }
    Ok(out)
}

/// Mean cross-entropy (nats/token) of `model` on `windows`, and its mean
/// KL(reference ‖ model) per position for each reference's log-probabilities.
pub fn score(model: &Model, windows: &[Window], references: &[&[f32]]) -> Result<(f64, Vec<f64>)> {
    let vocab = model.config.vocab_size;
    let lp = log_probs(model, windows)?;
    let targets: Vec<u32> = windows.iter().flat_map(|w| w.1.iter().cloned()).collect();
    let mut loss = 0.0;
    let mut kl = vec![0.0; references.len()];
    for (i, &t) in targets.iter().enumerate() {
        let row = &lp[i * vocab..(i + 1) * vocab];
        loss -= row[t as usize] as f64;
        for (k, r) in kl.iter_mut().zip(references) {
            let r = &r[i * vocab..(i + 1) * vocab];
            *k += r
                .iter()
                .zip(row)
                .map(|(&a, &b)| (a as f64).exp() * (a as f64 - b as f64))
                .sum::<f64>();
        }
    }
    let n = targets.len().max(1) as f64;
    Ok((loss / n, kl.into_iter().map(|k| k / n).collect()))
}

/// Applies a whole-model rotation by name (computational invariance): norms
/// folded, residual stream rotated, the MLP hidden activation rotated online
/// where its width has a construction.
pub fn rotate(model: &mut Model, name: &str, seed: u64) -> Result<()> {
    use crate::model::rotate::{
        fold_norms, online_down_rotation_by, online_rotation, rotate_residual, rotation_tensor,
    };
    use crate::primitives::rotation::{by_name, Rotation};
    let rotation = by_name(name, seed).context("unknown rotation")?;
    if rotation == Rotation::None {
        return Ok(());
    }
    let q = rotation_tensor(rotation, model.config.dim)?
        .with_context(|| format!("no {name} rotation of the model width {}", model.config.dim))?;
    fold_norms(model)?;
    rotate_residual(model, &q)?;
    if let Some(r) = online_rotation(rotation, model.config.hidden_dim)? {
        online_down_rotation_by(model, &r)?;
    }
    Ok(())
}

/// Post-training quantization with the shared quantizers: `weights` (a
/// `weight_variant` name, round to nearest) and per-token activations of
/// `activation_bits`, on the layers QAT quantizes. Online rotations are kept.
pub fn quantize(
    model: &mut Model,
    weights: &str,
    activation_bits: Option<u8>,
    quantize_head: bool,
) -> Result<()> {
    let transform = weight_variant(weights).map_err(anyhow::Error::msg)?;
    let activation: Option<Arc<dyn TensorMap>> = activation_bits.map(|bits| {
        Arc::new(QuantizeActivation(ActivationQuantizer {
            bits,
            per_token: true,
            clip_ratio: 1.0,
            static_scale: None,
        })) as Arc<dyn TensorMap>
    });
    for linear in model.linears_mut() {
        if linear.name == "lm_head" && !quantize_head {
            continue;
        }
        let mut config = linear.config().clone();
        config.weight_transform = transform.clone();
        config.activation_quantizer = activation.clone();
        linear.configure(config)?;
    }
    Ok(())
}

/// Summary of outlier statistics over a model's sites.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Outliers {
    /// Mean over linear-layer inputs of their pooled kurtosis (3 = Gaussian).
    #[serde(deserialize_with = "crate::experiment::nan_f64::de")]
    pub act_kurtosis_mean: f64,
    /// Largest pooled kurtosis of a linear-layer input.
    #[serde(deserialize_with = "crate::experiment::nan_f64::de")]
    pub act_kurtosis_max: f64,
    /// Largest |x| over linear-layer inputs.
    #[serde(deserialize_with = "crate::experiment::nan_f64::de")]
    pub act_absmax: f64,
    /// Mean over linear-layer inputs of max/median channel absmax.
    #[serde(deserialize_with = "crate::experiment::nan_f64::de")]
    pub act_max_over_median: f64,
    /// Largest pooled kurtosis of the residual stream after a block.
    #[serde(deserialize_with = "crate::experiment::nan_f64::de")]
    pub residual_kurtosis_max: f64,
    /// Largest |x| of the residual stream.
    #[serde(deserialize_with = "crate::experiment::nan_f64::de")]
    pub residual_absmax: f64,
    /// Mean over quantized weights of their pooled kurtosis.
    #[serde(deserialize_with = "crate::experiment::nan_f64::de")]
    pub weight_kurtosis_mean: f64,
    /// Largest pooled kurtosis of a quantized weight.
    #[serde(deserialize_with = "crate::experiment::nan_f64::de")]
    pub weight_kurtosis_max: f64,
    /// Largest |w|.
    #[serde(deserialize_with = "crate::experiment::nan_f64::de")]
    pub weight_absmax: f64,
    /// Mean over quantized weights of max/median input-channel absmax.
    #[serde(deserialize_with = "crate::experiment::nan_f64::de")]
    pub weight_max_over_median: f64,
}

/// Streams linear inputs (one site per distinct input: q, o, gate, down, head)
/// and the residual stream into per-channel statistics.
struct Collector(Mutex<BTreeMap<String, ChannelStats>>);

impl Collector {
    fn record(&self, site: String, x: &Tensor) -> Result<()> {
        let n = *x.dims().last().unwrap_or(&1);
        let mut stats = self.0.lock().unwrap();
        stats
            .entry(site)
            .or_insert_with(|| ChannelStats::new(n))
            .push_tensor(x)
    }
}

impl Observer for Collector {
    fn linear(&self, name: &str, input: &Tensor, _output: &Tensor) -> Result<()> {
        let shared =
            name.ends_with("k_proj") || name.ends_with("v_proj") || name.ends_with("up_proj");
        if shared {
            return Ok(());
        }
        self.record(format!("input:{name}"), input)
    }

    fn residual(&self, layer: usize, x: &Tensor) -> Result<()> {
        self.record(format!("residual:{layer}"), x)
    }
}

/// Pooled kurtosis, absmax and max/median channel absmax of one site.
fn summarise(stats: &ChannelStats) -> (f64, f64, f64) {
    let pooled = stats.pooled();
    let mut maxes: Vec<f64> = stats.channels.iter().map(|m| m.absmax).collect();
    maxes.sort_by(f64::total_cmp);
    let median = maxes[maxes.len() / 2].max(f64::MIN_POSITIVE);
    (
        pooled.kurtosis(),
        pooled.absmax,
        maxes[maxes.len() - 1] / median,
    )
}

/// Outlier statistics of `model` (unquantized): activations over `windows`,
/// and the weights of the layers QAT quantizes, by input channel.
pub fn outliers(model: &Model, windows: &[Window], quantize_head: bool) -> Result<Outliers> {
    let collector = Collector(Mutex::new(BTreeMap::new()));
    let context = windows[0].0.len();
    let inputs: Vec<u32> = windows.iter().flat_map(|w| w.0.iter().cloned()).collect();
    let x = Tensor::from_vec(inputs, (windows.len(), context), &Device::Cpu)?;
    model.forward(
        &x,
        &mut KvCache::new(model.config.n_layers),
        Some(&collector),
    )?;
    let sites = collector.0.into_inner().unwrap();
    let mut o = Outliers::default();
    let mut act = Vec::new();
    for (site, stats) in &sites {
        let (k, absmax, ratio) = summarise(stats);
        if site.starts_with("residual:") {
            o.residual_kurtosis_max = o.residual_kurtosis_max.max(k);
            o.residual_absmax = o.residual_absmax.max(absmax);
        } else {
            act.push((k, ratio));
            o.act_kurtosis_max = o.act_kurtosis_max.max(k);
            o.act_absmax = o.act_absmax.max(absmax);
        }
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    o.act_kurtosis_mean = mean(&act.iter().map(|a| a.0).collect::<Vec<_>>());
    o.act_max_over_median = mean(&act.iter().map(|a| a.1).collect::<Vec<_>>());
    let spec = crate::train::fake_quant::QatSpec {
        weight_bits: None,
        weight_group: None,
        activation_bits: None,
        lsq: false,
        quantize_head,
    };
    let mut weights = Vec::new();
    let layers = model
        .blocks
        .iter()
        .flat_map(|b| [&b.q, &b.k, &b.v, &b.o, &b.gate, &b.up, &b.down])
        .chain(std::iter::once(&model.head));
    for linear in layers.filter(|l| quantized_layer(&l.name, &spec)) {
        let w = linear.weight();
        let mut stats = ChannelStats::new(w.dim(1)?);
        stats.push_tensor(w)?;
        let (k, absmax, ratio) = summarise(&stats);
        weights.push((k, ratio));
        o.weight_kurtosis_max = o.weight_kurtosis_max.max(k);
        o.weight_absmax = o.weight_absmax.max(absmax);
    }
    o.weight_kurtosis_mean = mean(&weights.iter().map(|a| a.0).collect::<Vec<_>>());
    o.weight_max_over_median = mean(&weights.iter().map(|a| a.1).collect::<Vec<_>>());
    Ok(o)
}
