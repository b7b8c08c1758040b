//! The training loop every run goes through: from scratch or from start
//! weights, AdamW or Muon, with or without fake quantization, evaluated along
//! the way, checkpointed so a killed run resumes to the same bits.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use anyhow::Result;
use candle_core::{Device, Tensor, Var};

use super::checkpoint;
use super::fake_quant::{self, QatSpec};
use super::init::{init_weights, tensor_shapes};
use super::optimizer::{is_quantizer_step, split, OptimizerChoice, TrainOptimizer};
use super::schedule::learning_rate;
use super::trainer::{clip, evaluate_loss, loss_of, LogRow, TrainSpec, Trained, ABORT_AFTER_STEPS};
use crate::model::config::ModelConfig;
use crate::model::llama::Model;
use crate::model::weights::Weights;

/// The current weights, copied, handed to an evaluation.
pub struct Snapshot {
    /// The model's tensors by name.
    pub weights: Vec<(String, Tensor)>,
    /// Learned quantizer steps (LSQ) by name, if any.
    pub steps: BTreeMap<String, Var>,
}

impl Snapshot {
    /// The snapshot as a decoder of `config` (no quantizers installed).
    pub fn model(&self, config: &ModelConfig) -> Result<Model> {
        let mut w = Weights::new("snapshot");
        for (n, t) in &self.weights {
            w.insert(n.clone(), t.clone());
        }
        Model::from_weights(config.clone(), w)
    }
}

/// An evaluation run at step 0 and at every evaluation step; what it returns is
/// stored with the checkpoints and handed back in [`Trained::evaluations`].
pub type Evaluate<'a> = &'a (dyn Fn(usize, &Snapshot) -> Result<serde_json::Value> + Sync);

/// Everything a training run needs; [`super::trainer::train`] fills in the
/// recipe's defaults.
pub struct Setup<'a> {
    /// The architecture.
    pub config: &'a ModelConfig,
    /// Steps, batch, schedule, seed.
    pub spec: &'a TrainSpec,
    /// `(inputs, targets)` of each step.
    pub batches: &'a dyn Fn(u64) -> (Vec<u32>, Vec<u32>),
    /// Validation windows for the logged validation loss (of the model as
    /// trained, fake quantizers included); unused when `evaluate` is set.
    pub eval: &'a [(Vec<u32>, Vec<u32>)],
    /// Where checkpoints live.
    pub work_dir: &'a Path,
    /// Files stored with every checkpoint.
    pub extra_files: &'a [(String, Vec<u8>)],
    /// Print progress.
    pub verbose: bool,
    /// Starting weights for fine-tuning; `None` initialises from `spec.seed`.
    pub start: Option<&'a [(String, Tensor)]>,
    /// The optimizer.
    pub optimizer: &'a OptimizerChoice,
    /// Fake quantization during training (QAT).
    pub quant: Option<&'a QatSpec>,
    /// Replaces the built-in validation loss.
    pub evaluate: Option<Evaluate<'a>>,
    /// Anything else that identifies the run (e.g. the start checkpoint's hash),
    /// part of the checkpoint fingerprint.
    pub identity: Option<&'a str>,
}

impl Setup<'_> {
    /// What a checkpoint must match to be resumed. The recipe's stays what it
    /// was, so its existing checkpoints still load.
    fn fingerprint(&self) -> Result<String> {
        let plain = self.start.is_none()
            && self.quant.is_none()
            && self.identity.is_none()
            && *self.optimizer == OptimizerChoice::Adamw;
        Ok(if plain {
            serde_json::to_string(&(self.config, self.spec))?
        } else {
            serde_json::to_string(&(
                self.config,
                self.spec,
                self.optimizer,
                self.quant,
                self.start.is_some(),
                self.identity,
            ))?
        })
    }
}

/// Trains (or resumes) as `setup` says.
pub fn run(setup: &Setup) -> Result<Trained> {
    let (config, spec) = (setup.config, setup.spec);
    let mut extra_files = setup.extra_files.to_vec();
    // With config.json a checkpoint opens like a finished model; llama2.c's
    // interleaved RoPE has no Hugging Face config, and its checkpoints go without.
    if let Ok(hf_config) = crate::model::hf::HfConfig::from_model_config(config) {
        extra_files.push(("config.json".into(), serde_json::to_vec_pretty(&hf_config)?));
    }
    let fingerprint = setup.fingerprint()?;
    let checkpoint = setup.work_dir.join("checkpoint");
    let loaded = checkpoint::load(&checkpoint, &fingerprint, &Device::Cpu)?;
    let (tensors, mut start, mut history, mut evaluations, optimizer_state) = match loaded {
        Some(c) => (
            c.tensors,
            c.step,
            c.history,
            c.evaluations,
            Some(c.optimizer),
        ),
        None => (initial_tensors(setup)?, 0, Vec::new(), Vec::new(), None),
    };
    let vars: Vec<(String, Var)> = tensors
        .into_iter()
        .map(|(n, t)| Ok((n, Var::from_tensor(&t)?)))
        .collect::<Result<_>>()?;
    let steps: BTreeMap<String, Var> = vars
        .iter()
        .filter(|(n, _)| is_quantizer_step(n))
        .map(|(n, v)| (n.clone(), v.clone()))
        .collect();
    let mut weights = Weights::new("training");
    for (name, var) in vars.iter().filter(|(n, _)| !is_quantizer_step(n)) {
        weights.insert(name.clone(), var.as_tensor().clone());
    }
    let mut model = Model::from_weights(config.clone(), weights)?;
    model.differentiable = true;
    if let Some(q) = setup.quant {
        fake_quant::install(&mut model, q, &steps)?;
    }
    let mut optimizer = TrainOptimizer::new(setup.optimizer, &vars, spec.weight_decay)?;
    if let Some(state) = optimizer_state {
        optimizer.load_state(state, start)?;
    }
    // Copies, not views: the optimizer overwrites the variables in place.
    let snapshot = || -> Result<Snapshot> {
        Ok(Snapshot {
            weights: vars
                .iter()
                .filter(|(n, _)| !is_quantizer_step(n))
                .map(|(n, v)| Ok((n.clone(), v.as_tensor().copy()?)))
                .collect::<Result<_>>()?,
            steps: steps
                .iter()
                .map(|(n, v)| Ok((n.clone(), Var::from_tensor(&v.as_tensor().copy()?)?)))
                .collect::<Result<_>>()?,
        })
    };
    if let (Some(evaluate), 0) = (setup.evaluate, start) {
        evaluations.push((0, evaluate(0, &snapshot()?)?));
    }
    let resumed_from = start;
    let abort_after: Option<usize> = std::env::var(ABORT_AFTER_STEPS)
        .ok()
        .and_then(|v| v.parse().ok());
    let clock = Instant::now();
    while start < spec.steps {
        let step = start;
        let lr = learning_rate(step, spec.steps, spec.lr, spec.min_lr, spec.warmup);
        optimizer.set_lr(lr);
        if setup.quant.is_some() {
            fake_quant::refresh_weights(&mut model)?;
        }
        let (inputs, targets) = (setup.batches)(step as u64);
        let loss = loss_of(&model, &inputs, &targets, spec.batch, spec.context)?;
        let mut grads = loss.backward()?;
        let grad_norm = clip(&mut grads, &vars, spec.grad_clip)?;
        optimizer.step(&grads)?;
        let done = step + 1;
        let evaluate = done % spec.eval_every == 0 || done == spec.steps;
        let valid_loss = match (evaluate, setup.evaluate) {
            (false, _) => None,
            (true, Some(f)) => {
                evaluations.push((done, f(done, &snapshot()?)?));
                None
            }
            (true, None) => {
                if setup.quant.is_some() {
                    fake_quant::refresh_weights(&mut model)?;
                }
                Some(evaluate_loss(&model, setup.eval, spec.batch)?)
            }
        };
        history.push(LogRow {
            step: done,
            lr,
            train_loss: loss.to_scalar::<f32>()? as f64,
            grad_norm,
            valid_loss,
        });
        if setup.verbose && evaluate {
            eprintln!(
                "step {done}/{}: train loss {:.4}, valid loss {:.4}, lr {lr:.2e}",
                spec.steps,
                history.last().map_or(f64::NAN, |r| r.train_loss),
                valid_loss.unwrap_or(f64::NAN)
            );
        }
        start = done;
        if done % spec.checkpoint_every == 0 || done == spec.steps {
            checkpoint::save(
                &checkpoint,
                &checkpoint::ToSave {
                    fingerprint: &fingerprint,
                    step: done,
                    history: &history,
                    evaluations: &evaluations,
                    vars: &vars,
                    optimizer: &optimizer,
                    extra_files: &extra_files,
                },
            )?;
            if abort_after.is_some_and(|n| done >= n) {
                std::process::abort();
            }
        }
    }
    let seconds = clock.elapsed().as_secs_f64();
    let trained_steps = (spec.steps - resumed_from) as f64;
    let last = snapshot()?;
    Ok(Trained {
        model: last.model(config)?,
        history,
        resumed_from,
        tokens_per_second: trained_steps * (spec.batch * spec.context) as f64 / seconds.max(1e-9),
        evaluations,
        split: split(setup.optimizer, &vars),
        steps: last.steps,
        weights: last.weights,
    })
}

/// The variables of a fresh start: the start weights or a seeded
/// initialisation, plus LSQ steps calibrated on the first batch.
fn initial_tensors(setup: &Setup) -> Result<Vec<(String, Tensor)>> {
    let mut tensors: Vec<(String, Tensor)> = match setup.start {
        Some(start) => start.to_vec(),
        None => {
            let mut w = init_weights(setup.config, setup.spec.seed, &Device::Cpu)?;
            tensor_shapes(setup.config)
                .into_iter()
                .map(|(name, shape)| Ok((name.clone(), w.take(&name, &shape)?)))
                .collect::<Result<Vec<_>>>()?
        }
    };
    if let Some(q) = setup.quant.filter(|q| q.lsq) {
        let mut w = Weights::new("start");
        for (n, t) in &tensors {
            w.insert(n.clone(), t.clone());
        }
        let model = Model::from_weights(setup.config.clone(), w)?;
        let (inputs, _) = (setup.batches)(0);
        let shape = (setup.spec.batch, setup.spec.context);
        tensors.extend(fake_quant::initial_steps(&model, q, &inputs, shape)?);
    }
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(tensors)
}

#[cfg(test)]
mod tests;
