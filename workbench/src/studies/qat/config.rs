//! The QAT study's config: the model and its data, the quantizer trained
//! against, the budget every optimizer shares, each optimizer's learning-rate
//! sweep, and what is measured at the end.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::experiment::config::{ConfigErrors, KeyPath};
use crate::experiment::study::{PointDoc, Problems};
use crate::model::transforms::{parse_weight_quantizer, weight_variant};
use crate::primitives::quant::{Clip, Granularity};
use crate::studies::eval::config::{resolve_checkpoint, ModelSource};
use crate::train::fake_quant::QatSpec;
use crate::train::muon::{MuonScale, ParamsMuon};
use crate::train::optimizer::OptimizerChoice;

/// The training modes.
pub const MODES: [&str; 4] = ["finetune_qat", "finetune_fp", "scratch_qat", "scratch_fp"];

/// The optimizers compared.
pub const OPTIMIZERS: [&str; 2] = ["adamw", "muon"];

/// The config as written.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct QatConfig {
    /// Free text shown at the top of the report.
    #[serde(default)]
    pub description: Option<String>,
    /// Seed of the sampled data and the random rotations.
    #[serde(default)]
    pub seed: u64,
    /// Training seeds: each is a run per (mode, optimizer, learning rate), with
    /// its own batch order (the same for every optimizer) and, from scratch, its
    /// own initial weights.
    #[serde(default = "default_seeds")]
    pub seeds: Vec<u64>,
    /// `finetune_qat`, `finetune_fp`, `scratch_qat`, `scratch_fp`.
    #[serde(default = "default_modes")]
    pub modes: Vec<String>,
    /// `adamw` and/or `muon`.
    #[serde(default = "default_optimizers")]
    pub optimizers: Vec<String>,
    /// The starting model (also the architecture and tokenizer of scratch runs).
    pub model: ModelSource,
    /// Training and validation tokens.
    pub data: QatData,
    /// The quantizer trained against and measured.
    pub quant: QuantConfig,
    /// The budget every run shares.
    pub train: Budget,
    /// Overrides of `train` for the scratch modes.
    #[serde(default)]
    pub scratch: Option<BudgetOverride>,
    /// Learning rates per optimizer.
    pub lr: LearningRates,
    /// Muon's settings.
    #[serde(default)]
    pub muon: MuonConfig,
    /// Post-training quantization of every final model.
    #[serde(default)]
    pub eval: FinalEval,
}

/// Where the tokens come from.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct QatData {
    /// `text` (a text and the checkpoint's tokenizer) or `sampled` (sequences
    /// sampled from the starting model: data-free QAT, for models without a
    /// tokenizer such as stories260K).
    pub source: String,
    /// `source = "text"`: a dataset of `workbench data list` or a file.
    #[serde(default)]
    pub text: Option<String>,
    /// Filled in when planning.
    #[serde(default)]
    pub resolved_text: Option<PathBuf>,
    /// `source = "text"`: the last fraction of the text is validation.
    #[serde(default = "default_valid_fraction")]
    pub valid_fraction: f64,
    /// tokenizer.json (default: the checkpoint folder's).
    #[serde(default)]
    pub tokenizer: Option<PathBuf>,
    /// `source = "sampled"`: training sequences.
    #[serde(default = "default_sequences")]
    pub sequences: usize,
    /// `source = "sampled"`: validation sequences (another seed).
    #[serde(default = "default_valid_sequences")]
    pub valid_sequences: usize,
    /// `source = "sampled"`: tokens per sequence.
    #[serde(default = "default_length")]
    pub length: usize,
    /// `source = "sampled"`: sampling temperature.
    #[serde(default = "default_temperature")]
    pub temperature: f64,
    /// Validation windows evaluated along training.
    #[serde(default = "default_eval_windows")]
    pub eval_windows: usize,
    /// Validation windows of the final evaluation.
    #[serde(default = "default_final_windows")]
    pub final_windows: usize,
    /// Windows the activation statistics are gathered on.
    #[serde(default = "default_stats_windows")]
    pub stats_windows: usize,
}

/// The quantizer of QAT and of the headline measurement.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct QuantConfig {
    /// `w<bits>[g<group>]`: symmetric weights, per output channel or group.
    pub weights: String,
    /// Activation bits per token (4 to 8), or 16 for none.
    #[serde(default = "default_activation_bits")]
    pub activations: u8,
    /// Learned step sizes (LSQ) instead of absmax steps.
    #[serde(default)]
    pub lsq: bool,
    /// Quantize the output head too.
    #[serde(default)]
    pub quantize_head: bool,
}

/// Steps, batch and schedule.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Budget {
    /// Optimizer steps.
    pub steps: usize,
    /// Sequences per step.
    pub batch: usize,
    /// Tokens per sequence.
    pub context: usize,
    /// Linear warm-up steps.
    #[serde(default)]
    pub warmup: usize,
    /// Final learning rate of the cosine decay, relative to the peak.
    #[serde(default = "default_min_lr_ratio")]
    pub min_lr_ratio: f64,
    /// Decoupled weight decay.
    #[serde(default)]
    pub weight_decay: f64,
    /// Global gradient-norm clip (0 = none).
    #[serde(default = "default_clip")]
    pub grad_clip: f64,
    /// Evaluate every this many steps.
    pub eval_every: usize,
    /// Checkpoint every this many steps.
    pub checkpoint_every: usize,
}

/// Keys of [`Budget`] that the scratch modes change.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BudgetOverride {
    #[serde(default)]
    steps: Option<usize>,
    #[serde(default)]
    batch: Option<usize>,
    #[serde(default)]
    warmup: Option<usize>,
    #[serde(default)]
    eval_every: Option<usize>,
    #[serde(default)]
    checkpoint_every: Option<usize>,
    #[serde(default)]
    weight_decay: Option<f64>,
}

/// Learning rates per optimizer (peak of the schedule).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LearningRates {
    /// AdamW's sweep.
    #[serde(default)]
    pub adamw: Vec<f64>,
    /// Muon's sweep.
    #[serde(default)]
    pub muon: Vec<f64>,
}

/// Muon's settings.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MuonConfig {
    /// Momentum β.
    #[serde(default = "default_momentum")]
    pub momentum: f64,
    /// Nesterov momentum.
    #[serde(default = "yes")]
    pub nesterov: bool,
    /// Newton–Schulz steps.
    #[serde(default = "default_ns_steps")]
    pub ns_steps: usize,
    /// `adam_rms` (0.2·√max(A, B): AdamW's update RMS, one learning rate for both
    /// groups) or `shape` (√max(1, A/B)).
    #[serde(default = "default_scale")]
    pub scale: String,
    /// Learning rate of Muon's AdamW group (embedding, head, gains) relative to Muon's.
    #[serde(default = "default_ratio")]
    pub adamw_lr_ratio: f64,
}

impl Default for MuonConfig {
    fn default() -> Self {
        MuonConfig {
            momentum: default_momentum(),
            nesterov: true,
            ns_steps: default_ns_steps(),
            scale: default_scale(),
            adamw_lr_ratio: default_ratio(),
        }
    }
}

/// Post-training quantization of every final model.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FinalEval {
    /// Weight quantizers (`w<bits>[g<group>][a][mse]`, round to nearest).
    #[serde(default = "default_eval_weights")]
    pub weights: Vec<String>,
    /// Whole-model rotations applied before quantizing.
    #[serde(default = "default_rotations")]
    pub rotations: Vec<String>,
}

impl Default for FinalEval {
    fn default() -> Self {
        FinalEval {
            weights: default_eval_weights(),
            rotations: default_rotations(),
        }
    }
}

fn default_seeds() -> Vec<u64> {
    vec![0, 1, 2]
}
fn default_modes() -> Vec<String> {
    vec!["finetune_qat".into(), "finetune_fp".into()]
}
fn default_optimizers() -> Vec<String> {
    OPTIMIZERS.iter().map(|s| s.to_string()).collect()
}
fn default_valid_fraction() -> f64 {
    0.1
}
fn default_sequences() -> usize {
    256
}
fn default_valid_sequences() -> usize {
    16
}
fn default_length() -> usize {
    128
}
fn default_temperature() -> f64 {
    1.0
}
fn default_eval_windows() -> usize {
    16
}
fn default_final_windows() -> usize {
    64
}
fn default_stats_windows() -> usize {
    2
}
fn default_activation_bits() -> u8 {
    8
}
fn default_min_lr_ratio() -> f64 {
    0.1
}
fn default_clip() -> f64 {
    1.0
}
fn default_momentum() -> f64 {
    0.95
}
fn yes() -> bool {
    true
}
fn default_ns_steps() -> usize {
    5
}
fn default_scale() -> String {
    "adam_rms".into()
}
fn default_ratio() -> f64 {
    1.0
}
fn default_eval_weights() -> Vec<String> {
    ["w8", "w4g32", "w3g32", "w2g32"].map(String::from).to_vec()
}
fn default_rotations() -> Vec<String> {
    vec!["none".into(), "random_orthogonal".into()]
}

impl QatConfig {
    /// The fake-quantization spec of `quant` (valid configs only).
    pub fn qat_spec(&self) -> QatSpec {
        let q = parse_weight_quantizer(&self.quant.weights).expect("validated");
        QatSpec {
            weight_bits: Some(q.bits),
            weight_group: match q.granularity {
                Granularity::PerGroup(g) => Some(g),
                _ => None,
            },
            activation_bits: (self.quant.activations < 16).then_some(self.quant.activations),
            lsq: self.quant.lsq,
            quantize_head: self.quant.quantize_head,
        }
    }

    /// The budget of `mode`.
    pub fn budget(&self, mode: &str) -> Budget {
        let mut b = self.train.clone();
        if let (true, Some(o)) = (mode.starts_with("scratch"), &self.scratch) {
            b.steps = o.steps.unwrap_or(b.steps);
            b.batch = o.batch.unwrap_or(b.batch);
            b.warmup = o.warmup.unwrap_or(b.warmup);
            b.eval_every = o.eval_every.unwrap_or(b.eval_every);
            b.checkpoint_every = o.checkpoint_every.unwrap_or(b.checkpoint_every);
            b.weight_decay = o.weight_decay.unwrap_or(b.weight_decay);
        }
        b
    }

    /// The learning rates of `optimizer`.
    pub fn lrs(&self, optimizer: &str) -> &[f64] {
        match optimizer {
            "muon" => &self.lr.muon,
            _ => &self.lr.adamw,
        }
    }

    /// The optimizer `name` with this config's settings.
    pub fn optimizer(&self, name: &str) -> OptimizerChoice {
        match name {
            "muon" => OptimizerChoice::Muon {
                params: ParamsMuon {
                    lr: 0.0,
                    momentum: self.muon.momentum,
                    nesterov: self.muon.nesterov,
                    ns_steps: self.muon.ns_steps,
                    weight_decay: 0.0,
                    scale: if self.muon.scale == "shape" {
                        MuonScale::Shape
                    } else {
                        MuonScale::AdamRms
                    },
                },
                adamw_lr_ratio: self.muon.adamw_lr_ratio,
            },
            _ => OptimizerChoice::Adamw,
        }
    }

    /// Parses and checks one point of a config, resolving the checkpoint and text.
    pub fn from_doc(doc: &PointDoc) -> Result<Self, ConfigErrors> {
        let mut config: QatConfig = doc.deserialize()?;
        let mut problems = Problems::new(doc);
        super::validate::check(&mut config, &mut problems);
        problems.finish(config)
    }
}

/// Checks shared by the config's lists of names.
pub(super) fn check_names(
    problems: &mut Problems,
    path: &KeyPath,
    values: &[String],
    allowed: &[&str],
) {
    if values.is_empty() {
        problems.add(path, "expected a non-empty list");
    }
    for (i, v) in values.iter().enumerate() {
        if !allowed.contains(&v.as_str()) {
            problems.add(
                &path.index(i),
                format!("unknown `{v}`; expected one of {}", allowed.join(", ")),
            );
        } else if values[..i].contains(v) {
            problems.add(&path.index(i), format!("`{v}` is listed twice"));
        }
    }
}

/// Whether `name` is a weight quantizer QAT can train against (symmetric RTN
/// grid, per channel or group, no clipping search).
pub(super) fn check_qat_weights(name: &str) -> Result<(), String> {
    let q = parse_weight_quantizer(name)?;
    if !q.symmetric || q.clip != Clip::None {
        return Err(format!(
            "`{name}`: QAT trains against symmetric absmax grids; expected w<bits>[g<group>] without `a` or `mse`"
        ));
    }
    weight_variant(name).map(|_| ())
}

/// Resolves the checkpoint path (a dataset name or a path).
pub(super) fn resolve(model: &mut ModelSource) -> Result<(), String> {
    model.resolved_path = Some(resolve_checkpoint(&model.checkpoint)?);
    Ok(())
}
