//! The training loop: AdamW, gradient clipping, warm-up and cosine schedule,
//! periodic evaluation, and checkpoints from which a killed run resumes exactly.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use candle_core::backprop::GradStore;
use candle_core::{Device, Tensor, Var};
use candle_nn::ParamsAdamW;
use serde::{Deserialize, Serialize};

use super::adamw::AdamW;
use super::init::{init_weights, tensor_shapes};
use super::schedule::learning_rate;
use crate::model::cache::KvCache;
use crate::model::config::ModelConfig;
use crate::model::llama::Model;
use crate::model::weights::Weights;

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
}

#[derive(Serialize, Deserialize)]
struct CheckpointState {
    fingerprint: String,
    step: usize,
    history: Vec<LogRow>,
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
    let mut extra_files = extra_files.to_vec();
    let hf_config = crate::model::hf::HfConfig::from_model_config(config)?;
    extra_files.push(("config.json".into(), serde_json::to_vec_pretty(&hf_config)?));
    let device = Device::Cpu;
    let fingerprint = serde_json::to_string(&(config, spec))?;
    let checkpoint = work_dir.join("checkpoint");
    let (mut tensors, mut start, mut history, optimizer_state) =
        match load_checkpoint(&checkpoint, &fingerprint, &device)? {
            Some(c) => (c.0, c.1, c.2, Some(c.3)),
            None => {
                let mut w = init_weights(config, spec.seed, &device)?;
                let tensors = tensor_shapes(config)
                    .into_iter()
                    .map(|(name, shape)| Ok((name.clone(), w.take(&name, &shape)?)))
                    .collect::<Result<Vec<_>>>()?;
                (tensors, 0, Vec::new(), None)
            }
        };
    let vars: Vec<(String, Var)> = tensors
        .drain(..)
        .map(|(n, t)| Ok((n, Var::from_tensor(&t)?)))
        .collect::<Result<_>>()?;
    let mut weights = Weights::new("training");
    for (name, var) in &vars {
        weights.insert(name.clone(), var.as_tensor().clone());
    }
    let mut model = Model::from_weights(config.clone(), weights)?;
    model.differentiable = true;
    let params = ParamsAdamW {
        lr: spec.lr,
        weight_decay: spec.weight_decay,
        ..ParamsAdamW::default()
    };
    let mut optimizer = AdamW::new(vars.clone(), params)?;
    if let Some((state, step)) = optimizer_state {
        optimizer.load_state(state, step)?;
    }
    let resumed_from = start;
    let abort_after: Option<usize> = std::env::var(ABORT_AFTER_STEPS)
        .ok()
        .and_then(|v| v.parse().ok());
    let clock = Instant::now();
    while start < spec.steps {
        let step = start;
        let lr = learning_rate(step, spec.steps, spec.lr, spec.min_lr, spec.warmup);
        optimizer.params.lr = lr;
        let (inputs, targets) = batches(step as u64);
        let loss = loss_of(&model, &inputs, &targets, spec.batch, spec.context)?;
        let mut grads = loss.backward()?;
        let grad_norm = clip(&mut grads, &vars, spec.grad_clip)?;
        optimizer.step(&grads)?;
        let done = step + 1;
        let evaluate = done % spec.eval_every == 0 || done == spec.steps;
        let valid_loss = if evaluate {
            Some(evaluate_loss(&model, eval, spec.batch)?)
        } else {
            None
        };
        history.push(LogRow {
            step: done,
            lr,
            train_loss: loss.to_scalar::<f32>()? as f64,
            grad_norm,
            valid_loss,
        });
        if verbose && evaluate {
            eprintln!(
                "step {done}/{}: train loss {:.4}, valid loss {:.4}, lr {lr:.2e}",
                spec.steps,
                history.last().map_or(f64::NAN, |r| r.train_loss),
                valid_loss.unwrap_or(f64::NAN)
            );
        }
        start = done;
        if done % spec.checkpoint_every == 0 || done == spec.steps {
            save_checkpoint(
                &checkpoint,
                &fingerprint,
                done,
                &history,
                &vars,
                &optimizer,
                &extra_files,
            )?;
            if abort_after.is_some_and(|n| done >= n) {
                std::process::abort();
            }
        }
    }
    let seconds = clock.elapsed().as_secs_f64();
    let trained_steps = (spec.steps - resumed_from) as f64;
    let mut weights = Weights::new("trained");
    for (name, var) in &vars {
        weights.insert(name.clone(), var.as_tensor().detach());
    }
    let model = Model::from_weights(config.clone(), weights)?;
    Ok(Trained {
        model,
        history,
        resumed_from,
        tokens_per_second: trained_steps * (spec.batch * spec.context) as f64 / seconds.max(1e-9),
    })
}

/// Mean cross-entropy of next-token prediction over a batch.
fn loss_of(
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
fn clip(grads: &mut GradStore, vars: &[(String, Var)], max: f64) -> Result<f64> {
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

type Loaded = (
    Vec<(String, Tensor)>,
    usize,
    Vec<LogRow>,
    (HashMap<String, Tensor>, usize),
);

fn load_checkpoint(dir: &Path, fingerprint: &str, device: &Device) -> Result<Option<Loaded>> {
    // A crash between the two renames of `save_checkpoint` leaves only the old
    // checkpoint under its temporary name: put it back.
    if !dir.exists() {
        if let Some(parent) = dir.parent() {
            if let Ok(entries) = std::fs::read_dir(parent) {
                for e in entries.flatten() {
                    if e.file_name()
                        .to_string_lossy()
                        .starts_with("checkpoint.old-")
                    {
                        std::fs::rename(e.path(), dir)?;
                        break;
                    }
                }
            }
        }
    }
    let state_path = dir.join("state.json");
    let Ok(text) = std::fs::read_to_string(&state_path) else {
        return Ok(None);
    };
    let state: CheckpointState =
        serde_json::from_str(&text).with_context(|| format!("reading {}", state_path.display()))?;
    if state.fingerprint != fingerprint {
        bail!(
            "{} belongs to a different model or training config; remove it to start over",
            dir.display()
        );
    }
    let weights = candle_core::safetensors::load(dir.join("weights.safetensors"), device)?;
    let optimizer = candle_core::safetensors::load(dir.join("optimizer.safetensors"), device)?;
    let mut tensors: Vec<(String, Tensor)> = weights.into_iter().collect();
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(Some((
        tensors,
        state.step,
        state.history,
        (optimizer, state.step),
    )))
}

/// Writes the checkpoint into a fresh folder, then swaps it in, so a crash
/// leaves either the old checkpoint or the new one, never half of one.
fn save_checkpoint(
    dir: &Path,
    fingerprint: &str,
    step: usize,
    history: &[LogRow],
    vars: &[(String, Var)],
    optimizer: &AdamW,
    extra_files: &[(String, Vec<u8>)],
) -> Result<()> {
    let parent = dir.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent)?;
    let fresh: PathBuf = parent.join(format!("checkpoint.new-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&fresh);
    std::fs::create_dir_all(&fresh)?;
    let weights: HashMap<String, Tensor> = vars
        .iter()
        .map(|(n, v)| (n.clone(), v.as_tensor().clone()))
        .collect();
    candle_core::safetensors::save(&weights, fresh.join("weights.safetensors"))?;
    let (state, steps) = optimizer.state();
    debug_assert_eq!(steps, step);
    candle_core::safetensors::save(&state, fresh.join("optimizer.safetensors"))?;
    let state = CheckpointState {
        fingerprint: fingerprint.to_string(),
        step,
        history: history.to_vec(),
    };
    std::fs::write(fresh.join("state.json"), serde_json::to_string(&state)?)?;
    for (name, bytes) in extra_files {
        std::fs::write(fresh.join(name), bytes)?;
    }
    let old = parent.join(format!("checkpoint.old-{}", std::process::id()));
    if dir.exists() {
        std::fs::rename(dir, &old)?;
    }
    std::fs::rename(&fresh, dir)?;
    let _ = std::fs::remove_dir_all(&old);
    Ok(())
}
