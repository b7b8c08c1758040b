//! The evaluation study's units: one per weight variant, each compared with the
//! full-precision model on the same sampled sequences.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::config::EvalConfig;
use crate::data;
use crate::experiment::outputs::Table;
use crate::experiment::study::{Plan, UnitContext, UnitOutput};
use crate::model::cache::KvCache;
use crate::model::llama::Model;
use crate::model::sample::{gumbel_sample, NOISE_REVISION};
use crate::model::{hf, llama2c};
use crate::primitives::acceptance::exact;
use crate::results::store::write_atomic;

/// Sums over one sequence's predicted positions.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct SequenceSums {
    /// Predicted positions.
    pub positions: u64,
    /// Σ −log q(next token) of the evaluated model.
    pub cross_entropy: f64,
    /// Σ −log p(next token) of the reference.
    pub reference_cross_entropy: f64,
    /// Σ KL(p_ref ‖ q_model), computed from the full distributions.
    pub kl: f64,
    /// Positions where both argmaxes agree.
    pub top1: f64,
    /// Σ (1 − TV(p, q)): the standard rule's acceptance with the model drafting.
    pub accept_standard: f64,
    /// Σ Gumbel-coupling acceptance.
    pub accept_gumbel: f64,
}

/// One variant's result.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct VariantResult {
    /// Whole-model rotation applied first.
    #[serde(default)]
    pub rotation: String,
    /// Weight variant.
    pub weights: String,
    /// Per sequence.
    pub sequences: Vec<SequenceSums>,
}

/// The validated study point.
pub struct EvalPlan {
    config: EvalConfig,
}

impl EvalPlan {
    /// Plans a validated config (its checkpoint resolved); records the
    /// checkpoint's sha256 in the resolved config.
    pub fn new(mut config: EvalConfig) -> Result<Self> {
        let path = config
            .model
            .resolved_path
            .clone()
            .context("unresolved checkpoint")?;
        config.model.sha256 = Some(digest(&path)?);
        Ok(EvalPlan { config })
    }

    pub(crate) fn load(&self) -> Result<Model> {
        let path = self.config.model.resolved_path.as_ref().expect("resolved");
        let (config, weights) = if path.is_dir() {
            hf::load(path, &Device::Cpu)?
        } else {
            llama2c::load(path, &Device::Cpu)?
        };
        let model = Model::from_weights(config, weights)?;
        if self.config.data.length > model.config.max_seq_len {
            anyhow::bail!(
                "data.length {} exceeds the model's max_seq_len {}",
                self.config.data.length,
                model.config.max_seq_len
            );
        }
        Ok(model)
    }

    /// The evaluation sequences, sampled from the full-precision model and cached
    /// in the data cache under a name derived from everything they depend on.
    pub(crate) fn sequences(&self, model: &Model) -> Result<Vec<Vec<u32>>> {
        let d = &self.config.data;
        if d.source == "text" {
            return self.text_windows(model, TextPart::Evaluation, d.sequences);
        }
        self.sampled(model, self.config.seed, d.sequences)
    }

    /// Calibration sequences disjoint from the evaluation ones: sampled with a
    /// seed derived from the config's, or text windows from the training part
    /// of the split (after the evaluation windows when there is no split).
    pub(crate) fn calibration_sequences(
        &self,
        model: &Model,
        count: usize,
    ) -> Result<Vec<Vec<u32>>> {
        if self.config.data.source == "text" {
            return self.text_windows(model, TextPart::Calibration, count);
        }
        self.sampled(model, calibration_seed(self.config.seed), count)
    }

    fn sampled(&self, model: &Model, seed: u64, count: usize) -> Result<Vec<Vec<u32>>> {
        let d = &self.config.data;
        let key = format!(
            "{}-{}-{}-{}-{}-noise{}",
            self.config.model.sha256.as_deref().unwrap_or("?"),
            seed,
            count,
            d.length,
            d.temperature,
            NOISE_REVISION
        );
        let name: String = Sha256::digest(key.as_bytes())
            .iter()
            .take(12)
            .map(|b| format!("{b:02x}"))
            .collect();
        let path = data::cache_dir()
            .join("samples")
            .join(format!("{name}.json"));
        if let Ok(text) = std::fs::read_to_string(&path) {
            if let Ok(seqs) = serde_json::from_str::<Vec<Vec<u32>>>(&text) {
                if seqs.len() == count && seqs.iter().all(|s| s.len() == d.length) {
                    return Ok(seqs);
                }
            }
        }
        let mut seqs: Vec<Vec<u32>> = vec![vec![1]; count]; // BOS
        let mut cache = KvCache::new(model.config.n_layers);
        let mut input: Vec<u32> = vec![1; count];
        for t in 1..d.length {
            let tokens = Tensor::new(input.as_slice(), &Device::Cpu)?.unsqueeze(1)?;
            let logits = model.forward(&tokens, &mut cache, None)?.squeeze(1)?;
            let positions: Vec<u64> = (0..count).map(|s| (s * d.length + t) as u64).collect();
            input = gumbel_sample(&logits, d.temperature, seed, &positions)?;
            for (seq, &token) in seqs.iter_mut().zip(&input) {
                seq.push(token);
            }
        }
        write_atomic(&path, serde_json::to_string(&seqs)?.as_bytes())?;
        Ok(seqs)
    }
}

impl EvalPlan {
    /// Consecutive windows of `length` tokens of the text, at most `count`.
    fn text_windows(&self, model: &Model, which: TextPart, count: usize) -> Result<Vec<Vec<u32>>> {
        let d = &self.config.data;
        let path = d.resolved_text.as_ref().context("unresolved text")?;
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        // Calibration never sees evaluation tokens: it reads the training part of
        // the split, or the windows after the evaluation ones.
        let (part, skip) = match (d.valid_fraction, which) {
            (Some(f), TextPart::Evaluation) => (crate::text::split_text(&text, f).1, 0),
            (Some(f), TextPart::Calibration) => (crate::text::split_text(&text, f).0, 0),
            (None, TextPart::Evaluation) => (text.as_str(), 0),
            (None, TextPart::Calibration) => (text.as_str(), d.sequences),
        };
        let tokenizer =
            crate::text::TextTokenizer::load(d.tokenizer.as_ref().context("no tokenizer")?)?;
        if tokenizer.vocab_size() > model.config.vocab_size {
            anyhow::bail!(
                "the tokenizer has {} entries but the model only {}",
                tokenizer.vocab_size(),
                model.config.vocab_size
            );
        }
        let tokens = tokenizer.encode(part)?;
        let windows: Vec<Vec<u32>> = tokens
            .chunks_exact(d.length)
            .skip(skip)
            .take(count)
            .map(|w| w.to_vec())
            .collect();
        if windows.is_empty() {
            anyhow::bail!(
                "the text has {} tokens, fewer than one window of {}",
                tokens.len(),
                d.length
            );
        }
        Ok(windows)
    }
}

/// Which tokens of a text a window list comes from.
#[derive(Clone, Copy)]
enum TextPart {
    Evaluation,
    Calibration,
}

/// The seed of calibration samples: distinct from the evaluation seed.
fn calibration_seed(seed: u64) -> u64 {
    seed ^ 0xca1b_5eed_0000_0000
}

/// Applies a whole-model rotation by name (see [`crate::model::rotate::rotate_model`]).
fn rotate_whole_model(model: &mut Model, name: &str, seed: u64) -> Result<()> {
    let rotation = crate::primitives::rotation::by_name(name, seed).context("unknown rotation")?;
    crate::model::rotate::rotate_model(model, rotation)?;
    Ok(())
}

/// sha256 of a file, or of every file of a folder in name order.
fn digest(path: &Path) -> Result<String> {
    if path.is_file() {
        return data::sha256_file(path);
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(path)
        .with_context(|| format!("reading {}", path.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    let mut h = Sha256::new();
    for f in files {
        h.update(data::sha256_file(&f)?.as_bytes());
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// Softmax of a row of logits, in f64.
fn softmax(row: &[f32]) -> Vec<f64> {
    let max = row.iter().cloned().fold(f32::NEG_INFINITY, f32::max) as f64;
    let e: Vec<f64> = row.iter().map(|&l| (l as f64 - max).exp()).collect();
    let s: f64 = e.iter().sum();
    e.into_iter().map(|v| v / s).collect()
}

/// Per-sequence sums of a model's logits against the reference's on `seqs`.
pub(crate) fn compare(
    seqs: &[Vec<u32>],
    ref_logits: &[Vec<Vec<f32>>],
    model_logits: &[Vec<Vec<f32>>],
) -> Vec<SequenceSums> {
    let mut sequences = Vec::with_capacity(seqs.len());
    for (s, seq) in seqs.iter().enumerate() {
        let mut sums = SequenceSums::default();
        for t in 0..seq.len() - 1 {
            let p = softmax(&ref_logits[s][t]);
            let q = softmax(&model_logits[s][t]);
            let next = seq[t + 1] as usize;
            sums.positions += 1;
            sums.cross_entropy -= q[next].ln();
            sums.reference_cross_entropy -= p[next].ln();
            sums.kl += p
                .iter()
                .zip(&q)
                .filter(|(pi, _)| **pi > 0.0)
                .map(|(pi, qi)| pi * (pi / qi).ln())
                .sum::<f64>();
            let agree = crate::primitives::distribution::argmax(&p)
                == crate::primitives::distribution::argmax(&q);
            sums.top1 += agree as u8 as f64;
            sums.accept_standard += exact::standard(&p, &q);
            sums.accept_gumbel += exact::gumbel(&p, &q);
        }
        sequences.push(sums);
    }
    sequences
}

/// Logits `[sequences, length, vocab]` of `model` on all sequences in one pass.
pub(crate) fn logits(model: &Model, seqs: &[Vec<u32>]) -> Result<Vec<Vec<Vec<f32>>>> {
    let flat: Vec<u32> = seqs.iter().flatten().cloned().collect();
    let tokens = Tensor::from_vec(flat, (seqs.len(), seqs[0].len()), &Device::Cpu)?;
    Ok(model
        .forward(&tokens, &mut KvCache::new(model.config.n_layers), None)?
        .to_vec3::<f32>()?)
}

impl Plan for EvalPlan {
    fn resolved(&self) -> serde_json::Value {
        serde_json::to_value(&self.config).expect("config serialises")
    }

    fn seed(&self) -> u64 {
        self.config.seed
    }

    fn units(&self) -> Vec<String> {
        let mut units = Vec::new();
        for r in &self.config.rotations {
            for w in &self.config.weights {
                // Without rotations the keys stay as before (finished units are reused).
                units.push(if r == "none" {
                    format!("weights={w}")
                } else {
                    format!("rotation={r} weights={w}")
                });
            }
        }
        units
    }

    fn run_unit(&self, index: usize, _context: &UnitContext) -> Result<UnitOutput> {
        let count = self.config.weights.len();
        let rotation_name = &self.config.rotations[index / count];
        let variant = &self.config.weights[index % count];
        let reference = self.load()?;
        let seqs = self.sequences(&reference)?;
        let ref_logits = logits(&reference, &seqs)?;
        let mut model = self.load()?;
        rotate_whole_model(&mut model, rotation_name, self.config.seed)?;
        if let Some(transform) =
            crate::model::transforms::weight_variant(variant).map_err(anyhow::Error::msg)?
        {
            for linear in model.linears_mut() {
                // Keep what is already configured (an online rotation, say).
                let mut config = linear.config().clone();
                config.weight_transform = Some(transform.clone());
                linear.configure(config)?;
            }
        }
        let model_logits = logits(&model, &seqs)?;
        let sequences = compare(&seqs, &ref_logits, &model_logits);
        Ok(serde_json::to_value(VariantResult {
            rotation: rotation_name.clone(),
            weights: variant.clone(),
            sequences,
        })?)
    }

    fn tables(&self, outputs: &[UnitOutput]) -> Result<Vec<Table>> {
        let results: Vec<VariantResult> = outputs
            .iter()
            .map(|o| serde_json::from_value(o.clone()))
            .collect::<Result<_, _>>()?;
        Ok(vec![super::tables::eval_table(&self.config, &results)])
    }
}
