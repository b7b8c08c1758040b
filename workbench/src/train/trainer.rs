//! The recipe's training entry point and the pieces every training loop shares:
//! the spec, the log, the loss, validation and gradient clipping. The loop
//! itself (AdamW or Muon, optional QAT, checkpoints) is in [`super::session`].

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Result};
use candle_core::backprop::GradStore;
use candle_core::{Device, Tensor, Var};
use serde::{Deserialize, Serialize};

use super::optimizer::OptimizerChoice;
use crate::model::cache::KvCache;
use crate::model::config::ModelConfig;
use crate::model::llama::Model;

/// Environment variable that makes training abort (as a crash would) right after
/// the checkpoint at or past this step; used by the resume test.
pub const ABORT_AFTER_STEPS: &str = "WORKBENCH_ABORT_AFTER_STEPS";

/// How to train.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct TrainSpec {
    /// Optimizer steps.
    pub steps: usize,
    /// Sequences per step.
    pub batch: usize,
    /// Tokens per sequence.
    pub context: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// Final learning rate of the cosine decay.
    pub min_lr: f64,
    /// Linear warm-up steps.
    pub warmup: usize,
    /// Decoupled weight decay.
    pub weight_decay: f64,
    /// Clip the global gradient norm to this (0 = no clipping).
    pub grad_clip: f64,
    /// Evaluate every this many steps (and at the end).
    pub eval_every: usize,
    /// Save a checkpoint every this many steps (and at the end).
    pub checkpoint_every: usize,
    /// Seed of the initial weights.
    pub seed: u64,
}

/// One logged step.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct LogRow {
    /// Step just taken (1-based).
    pub step: usize,
    /// Learning rate used.
    pub lr: f64,
    /// Training loss of the step's batch (nats/token).
    pub train_loss: f64,
    /// Global gradient norm before clipping.
    pub grad_norm: f64,
    /// Validation loss, on evaluation steps.
    pub valid_loss: Option<f64>,
}

/// What training produced.
pub struct Trained {
    /// The trained decoder (inference mode).
    pub model: Model,
    /// Every step's log.
    pub history: Vec<LogRow>,
    /// Step the run resumed from (0 for a fresh start).
    pub resumed_from: usize,
    /// Training tokens per second of this process's steps.
    pub tokens_per_second: f64,
    /// What the run's evaluation returned, by step (step 0 first).
    pub evaluations: Vec<(usize, serde_json::Value)>,
    /// Learned quantizer steps at the end (LSQ), by name.
    pub steps: BTreeMap<String, Var>,
    /// Each parameter's optimizer group (`adamw`, `muon`, `adamw_no_decay`).
    pub split: Vec<(String, &'static str)>,
    /// The final tensors by name (those of `model`).
    pub weights: Vec<(String, Tensor)>,
}

/// Trains a decoder of `config` from scratch (or resumes from `work_dir`).
/// `batches(step)` gives the step's (inputs, targets), `spec.batch *
/// spec.context` tokens each; `eval` holds validation windows of `spec.context`.
/// Every checkpoint also holds `extra_files` (e.g. the tokenizer) and the
/// model's config.json, so that it opens like a finished model.
pub fn train(
    config: &ModelConfig,
    spec: &TrainSpec,
    batches: &dyn Fn(u64) -> (Vec<u32>, Vec<u32>),
    eval: &[(Vec<u32>, Vec<u32>)],
    work_dir: &Path,
    extra_files: &[(String, Vec<u8>)],
    verbose: bool,
) -> Result<Trained> {
    super::session::run(&super::session::Setup {
        config,
        spec,
        batches,
        eval,
        work_dir,
        extra_files,
        verbose,
        start: None,
        optimizer: &OptimizerChoice::Adamw,
        quant: None,
        evaluate: None,
        identity: None,
    })
}

/// Mean cross-entropy of next-token prediction over a batch.
pub(crate) fn loss_of(
    model: &Model,
    inputs: &[u32],
    targets: &[u32],
    batch: usize,
    context: usize,
) -> Result<Tensor> {
    let x = Tensor::from_slice(inputs, (batch, context), &Device::Cpu)?;
    let y = Tensor::from_slice(targets, batch * context, &Device::Cpu)?;
    let logits = model.forward(&x, &mut KvCache::new(model.config.n_layers), None)?;
    let logits = logits.reshape((batch * context, model.config.vocab_size))?;
    Ok(candle_nn::loss::cross_entropy(&logits, &y)?)
}

/// Mean validation loss over `windows`, `batch` windows per forward pass.
pub fn evaluate_loss(model: &Model, windows: &[(Vec<u32>, Vec<u32>)], batch: usize) -> Result<f64> {
    if windows.is_empty() {
        bail!("no validation windows");
    }
    let context = windows[0].0.len();
    let mut total = 0.0;
    for chunk in windows.chunks(batch.max(1)) {
        let inputs: Vec<u32> = chunk.iter().flat_map(|w| w.0.iter().cloned()).collect();
        let targets: Vec<u32> = chunk.iter().flat_map(|w| w.1.iter().cloned()).collect();
        let loss = loss_of(model, &inputs, &targets, chunk.len(), context)?.detach();
        total += loss.to_scalar::<f32>()? as f64 * chunk.len() as f64;
    }
    Ok(total / windows.len() as f64)
}

/// Scales the gradients so their global norm is at most `max`; returns the norm before.
pub(crate) fn clip(grads: &mut GradStore, vars: &[(String, Var)], max: f64) -> Result<f64> {
    let mut sum = 0.0f64;
    for (_, var) in vars {
        if let Some(g) = grads.get(var.as_tensor()) {
            sum += g.sqr()?.sum_all()?.to_scalar::<f32>()? as f64;
        }
    }
    let norm = sum.sqrt();
    if max > 0.0 && norm > max {
        let scale = max / norm;
        for (_, var) in vars {
            if let Some(g) = grads.remove(var.as_tensor()) {
                grads.insert(var.as_tensor(), (g * scale)?);
            }
        }
    }
    Ok(norm)
}
