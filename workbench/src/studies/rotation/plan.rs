//! The rotation study's units: one per rotation scheme. Each collects every
//! linear layer's calibration inputs, rotates input and weight by the same
//! orthogonal Q (so the exact product is unchanged, X Wᵀ = (X Q)(W Q)ᵀ), fake-
//! quantizes both, and measures the output error against full precision.

use std::collections::BTreeMap;
use std::sync::Mutex;

use anyhow::Result;
use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::config::RotationConfig;
use crate::experiment::outputs::{Column, Table};
use crate::experiment::study::{Plan, UnitContext, UnitOutput};
use crate::model::cache::KvCache;
use crate::model::linear::Observer;
use crate::model::transforms::parse_weight_quantizer;
use crate::primitives::quant::ActivationQuantizer;
use crate::primitives::rotation::{self, Rotation};
use crate::studies::eval::plan::EvalPlan;

/// One layer under one (weights, activation bits) setting.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct LayerRow {
    /// Linear layer name.
    pub site: String,
    /// Block index (-1 for the head).
    pub layer: i64,
    /// Weight quantizer.
    pub weights: String,
    /// Activation bits (16 = none).
    pub activation_bits: u8,
    /// ‖Y − Ŷ‖ / ‖Y‖.
    pub rel_error: f64,
    /// 20 log10(‖Y‖ / ‖Y − Ŷ‖).
    pub sqnr_db: f64,
}

/// One scheme's output.
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
struct Inputs(Mutex<BTreeMap<String, Tensor>>);

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

/// The validated study point.
pub struct RotationPlan {
    config: RotationConfig,
}

impl RotationPlan {
    /// Plans a validated config.
    pub fn new(config: RotationConfig) -> Self {
        RotationPlan { config }
    }

    fn rotation(&self, scheme: &str) -> Rotation {
        match scheme {
            "hadamard" => Rotation::Hadamard,
            "random_hadamard" => Rotation::RandomHadamard {
                seed: self.config.seed,
            },
            "random_orthogonal" => Rotation::RandomOrthogonal {
                seed: self.config.seed,
            },
            _ => Rotation::None,
        }
    }
}

fn frobenius(t: &Tensor) -> Result<f64> {
    Ok(t.sqr()?.sum_all()?.to_scalar::<f32>()? as f64)
}

impl Plan for RotationPlan {
    fn resolved(&self) -> serde_json::Value {
        serde_json::to_value(&self.config).expect("config serialises")
    }

    fn seed(&self) -> u64 {
        self.config.seed
    }

    fn units(&self) -> Vec<String> {
        self.config
            .rotations
            .iter()
            .map(|r| format!("rotation={r}"))
            .collect()
    }

    fn run_unit(&self, index: usize, _context: &UnitContext) -> Result<UnitOutput> {
        let scheme = &self.config.rotations[index];
        let rotation = self.rotation(scheme);
        let eval = EvalPlan::new(self.config.as_eval())?;
        let mut model = eval.load()?;
        let seqs = eval.sequences(&model)?;
        let inputs = Inputs::default();
        let flat: Vec<u32> = seqs.iter().flatten().cloned().collect();
        let tokens = Tensor::from_vec(flat, (seqs.len(), seqs[0].len()), &Device::Cpu)?;
        model.forward(
            &tokens,
            &mut KvCache::new(model.config.n_layers),
            Some(&inputs),
        )?;
        let inputs = inputs.0.into_inner().unwrap();
        let mut rows = Vec::new();
        let mut skipped = Vec::new();
        let mut matrices: BTreeMap<usize, Option<Tensor>> = BTreeMap::new();
        for linear in model.linears_mut() {
            let Some(x) = inputs.get(&linear.name) else {
                continue;
            };
            let w = linear.weight().clone();
            let (out, n) = w.dims2()?;
            let q = matrices
                .entry(n)
                .or_insert_with(|| {
                    rotation::matrix(rotation, n).ok().map(|m| {
                        let m: Vec<f32> = m.iter().map(|&v| v as f32).collect();
                        Tensor::from_vec(m, (n, n), &Device::Cpu).expect("square matrix")
                    })
                })
                .clone();
            let Some(q) = q else {
                skipped.push(linear.name.clone());
                continue;
            };
            let y = x.matmul(&w.t()?)?;
            let y_norm = frobenius(&y)?;
            let (xr, wr) = (x.matmul(&q)?, w.matmul(&q)?);
            let layer = linear
                .name
                .strip_prefix("model.layers.")
                .and_then(|r| r.split('.').next())
                .and_then(|l| l.parse().ok())
                .unwrap_or(-1);
            let tokens = xr.dim(0)?;
            let xr_values = xr.flatten_all()?.to_vec1::<f32>()?;
            let wr_values = wr.flatten_all()?.to_vec1::<f32>()?;
            for spec in &self.config.weights {
                let quantizer = parse_weight_quantizer(spec).map_err(anyhow::Error::msg)?;
                let wq = match quantizer.fake_quantize(&wr_values, out, n) {
                    Ok(v) => Tensor::from_vec(v, (out, n), &Device::Cpu)?,
                    Err(e) => anyhow::bail!("{}: {e}", linear.name),
                };
                for &bits in &self.config.activation_bits {
                    let xq = if bits >= 16 {
                        xr.clone()
                    } else {
                        let aq = ActivationQuantizer {
                            bits,
                            per_token: true,
                            clip_ratio: 1.0,
                            static_scale: None,
                        };
                        let v = aq
                            .fake_quantize(&xr_values, tokens, n)
                            .map_err(anyhow::Error::msg)?;
                        Tensor::from_vec(v, (tokens, n), &Device::Cpu)?
                    };
                    let err = frobenius(&(xq.matmul(&wq.t()?)? - &y)?)?;
                    let rel = (err / y_norm).sqrt();
                    rows.push(LayerRow {
                        site: linear.name.clone(),
                        layer,
                        weights: spec.clone(),
                        activation_bits: bits,
                        rel_error: rel,
                        sqnr_db: -20.0 * rel.log10(),
                    });
                }
            }
        }
        Ok(serde_json::to_value(SchemeLayers {
            scheme: scheme.clone(),
            rows,
            skipped,
        })?)
    }

    fn tables(&self, outputs: &[UnitOutput]) -> Result<Vec<Table>> {
        let results: Vec<SchemeLayers> = outputs
            .iter()
            .map(|o| serde_json::from_value(o.clone()))
            .collect::<Result<_, _>>()?;
        let mut r: Vec<(&str, &LayerRow)> = Vec::new();
        for s in &results {
            for row in &s.rows {
                r.push((&s.scheme, row));
            }
        }
        let layers = Table::new("rotation_layers")
            .with(
                "scheme",
                Column::Str(r.iter().map(|x| Some(x.0.to_string())).collect()),
            )
            .with(
                "site",
                Column::Str(r.iter().map(|x| Some(x.1.site.clone())).collect()),
            )
            .with(
                "layer",
                Column::I64(r.iter().map(|x| Some(x.1.layer)).collect()),
            )
            .with(
                "weights",
                Column::Str(r.iter().map(|x| Some(x.1.weights.clone())).collect()),
            )
            .with(
                "activation_bits",
                Column::I64(r.iter().map(|x| Some(x.1.activation_bits as i64)).collect()),
            )
            .with(
                "rel_error",
                Column::F64(r.iter().map(|x| Some(x.1.rel_error)).collect()),
            )
            .with(
                "sqnr_db",
                Column::F64(r.iter().map(|x| Some(x.1.sqnr_db)).collect()),
            );
        // Mean and worst SQNR over layers per setting.
        let mut keys: Vec<(String, String, u8)> = Vec::new();
        for (s, row) in &r {
            let k = (s.to_string(), row.weights.clone(), row.activation_bits);
            if !keys.contains(&k) {
                keys.push(k);
            }
        }
        let stat = |k: &(String, String, u8)| {
            let v: Vec<f64> = r
                .iter()
                .filter(|(s, row)| *s == k.0 && row.weights == k.1 && row.activation_bits == k.2)
                .map(|(_, row)| row.sqnr_db)
                .collect();
            (
                v.iter().sum::<f64>() / v.len() as f64,
                v.iter().cloned().fold(f64::INFINITY, f64::min),
                v.len(),
            )
        };
        let stats: Vec<(f64, f64, usize)> = keys.iter().map(stat).collect();
        let summary = Table::new("rotation_summary")
            .with(
                "scheme",
                Column::Str(keys.iter().map(|k| Some(k.0.clone())).collect()),
            )
            .with(
                "weights",
                Column::Str(keys.iter().map(|k| Some(k.1.clone())).collect()),
            )
            .with(
                "activation_bits",
                Column::I64(keys.iter().map(|k| Some(k.2 as i64)).collect()),
            )
            .with(
                "layers",
                Column::I64(stats.iter().map(|s| Some(s.2 as i64)).collect()),
            )
            .with(
                "mean_sqnr_db",
                Column::F64(stats.iter().map(|s| Some(s.0)).collect()),
            )
            .with(
                "worst_sqnr_db",
                Column::F64(stats.iter().map(|s| Some(s.1)).collect()),
            );
        Ok(vec![layers, summary])
    }
}
