//! The QAT study's units: one training run per (mode, optimizer, learning rate,
//! seed), each resumable from its own checkpoints, measured along the way and
//! quantized at the end.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use super::config::QatConfig;
use super::data::{self, Start, Window};
use super::measure::{self, Outliers};
use crate::experiment::outputs::Table;
use crate::experiment::study::{Plan, UnitContext, UnitOutput};
use crate::train::fake_quant::{self, QatSpec};
use crate::train::optimizer::split;
use crate::train::session::{self, Setup, Snapshot};
use crate::train::trainer::{LogRow, TrainSpec};

/// One evaluation along training.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct CurvePoint {
    /// Steps taken.
    pub step: usize,
    /// Validation loss of the full-precision weights.
    #[serde(deserialize_with = "crate::experiment::nan_f64::de")]
    pub fp_loss: f64,
    /// Validation loss with the trained quantizer (fake quantization, learned
    /// steps for LSQ; the same grid applied post hoc for full-precision runs).
    #[serde(deserialize_with = "crate::experiment::nan_f64::de")]
    pub quant_loss: f64,
    /// Outlier statistics of the full-precision weights and their activations.
    pub outliers: Outliers,
}

/// The final model quantized after training with a shared quantizer.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct PtqRow {
    /// Weight quantizer (`weight_variant` name).
    pub weights: String,
    /// Whole-model rotation applied first.
    pub rotation: String,
    /// Validation loss.
    #[serde(deserialize_with = "crate::experiment::nan_f64::de")]
    pub loss: f64,
    /// KL(final full precision ‖ this) per position.
    #[serde(deserialize_with = "crate::experiment::nan_f64::de")]
    pub kl_to_fp: f64,
    /// KL(start ‖ this) per position (fine-tuning only, else NaN).
    #[serde(deserialize_with = "crate::experiment::nan_f64::de")]
    pub kl_to_start: f64,
}

/// What a run reports.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct RunResult {
    /// `finetune_qat`, `finetune_fp`, `scratch_qat`, `scratch_fp`.
    pub mode: String,
    /// `adamw` or `muon`.
    pub optimizer: String,
    /// Peak learning rate.
    pub lr: f64,
    /// Training seed.
    pub seed: u64,
    /// Tokens per step.
    pub tokens_per_step: usize,
    /// Every step's log.
    pub history: Vec<LogRow>,
    /// Evaluations along training (step 0 first).
    pub curve: Vec<CurvePoint>,
    /// Final validation loss, full precision.
    #[serde(deserialize_with = "crate::experiment::nan_f64::de")]
    pub fp_loss: f64,
    /// Final validation loss with the trained quantizer (the headline).
    #[serde(deserialize_with = "crate::experiment::nan_f64::de")]
    pub quant_loss: f64,
    /// KL(start ‖ final full precision) (fine-tuning only).
    #[serde(deserialize_with = "crate::experiment::nan_f64::de")]
    pub kl_start_fp: f64,
    /// KL(start ‖ final quantized) (fine-tuning only).
    #[serde(deserialize_with = "crate::experiment::nan_f64::de")]
    pub kl_start_quant: f64,
    /// Post-training quantization of the final weights.
    pub ptq: Vec<PtqRow>,
    /// Step the run resumed from (0 for a fresh start).
    pub resumed_from: usize,
    /// Training tokens per second (this process's steps).
    #[serde(deserialize_with = "crate::experiment::nan_f64::de")]
    pub tokens_per_second: f64,
}

/// The parameters and the optimizer group each goes to.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ParameterGroup {
    /// Tensor name.
    pub name: String,
    /// Its shape.
    pub shape: Vec<usize>,
    /// Group under Muon (`muon` or `adamw`); AdamW runs put everything in `adamw`.
    pub muon_group: String,
}

/// The resolved point, as recorded in the manifest.
#[derive(Clone, Debug, Serialize)]
struct Resolved<'a> {
    #[serde(flatten)]
    config: &'a QatConfig,
    checkpoint_sha256: &'a str,
    parameter_groups: &'a [ParameterGroup],
}

/// One unit's coordinates.
#[derive(Clone, Debug)]
struct Unit {
    mode: String,
    optimizer: String,
    lr: f64,
    seed: u64,
}

/// The validated study point.
pub struct QatPlan {
    config: QatConfig,
    sha256: String,
    groups: Vec<ParameterGroup>,
    units: Vec<Unit>,
}

impl QatPlan {
    /// Plans a validated config: hashes the checkpoint and records which
    /// parameters Muon updates.
    pub fn new(config: QatConfig) -> Result<Self> {
        let path = config
            .model
            .resolved_path
            .clone()
            .context("unresolved checkpoint")?;
        let sha256 = data::digest(&path)?;
        let start = data::load_start(&path)?;
        let vars: Vec<(String, candle_core::Var)> = start
            .tensors
            .iter()
            .map(|(n, t)| Ok((n.clone(), candle_core::Var::from_tensor(t)?)))
            .collect::<Result<_>>()?;
        let groups = split(&config.optimizer("muon"), &vars)
            .into_iter()
            .zip(&start.tensors)
            .map(|((name, group), (_, t))| ParameterGroup {
                name,
                shape: t.dims().to_vec(),
                muon_group: group.to_string(),
            })
            .collect();
        let mut units = Vec::new();
        for mode in &config.modes {
            for optimizer in &config.optimizers {
                for &lr in config.lrs(optimizer) {
                    for &seed in &config.seeds {
                        units.push(Unit {
                            mode: mode.clone(),
                            optimizer: optimizer.clone(),
                            lr,
                            seed,
                        });
                    }
                }
            }
        }
        Ok(QatPlan {
            config,
            sha256,
            groups,
            units,
        })
    }

    /// The config.
    pub fn config(&self) -> &QatConfig {
        &self.config
    }

    fn run(&self, u: &Unit, context: &UnitContext) -> Result<RunResult> {
        let c = &self.config;
        let path = c
            .model
            .resolved_path
            .as_ref()
            .context("unresolved checkpoint")?;
        let start = data::load_start(path)?;
        let budget = c.budget(&u.mode);
        let tokens = data::tokens(c, budget.context)?;
        let spec = TrainSpec {
            steps: budget.steps,
            batch: budget.batch,
            context: budget.context,
            lr: u.lr,
            min_lr: u.lr * budget.min_lr_ratio,
            warmup: budget.warmup,
            weight_decay: budget.weight_decay,
            grad_clip: budget.grad_clip,
            eval_every: budget.eval_every,
            checkpoint_every: budget.checkpoint_every,
            seed: u.seed,
        };
        let sampler = data::Batches::new(&tokens, spec.context, spec.batch, u.seed)?;
        let qat = c.qat_spec();
        let trains_quantized = u.mode.ends_with("_qat");
        let finetune = u.mode.starts_with("finetune");
        // Full-precision runs are measured with the same grid, applied post hoc.
        let measured = QatSpec {
            lsq: qat.lsq && trains_quantized,
            ..qat.clone()
        };
        let valid = &tokens.valid;
        let along = &valid[..c.data.eval_windows];
        let stats = &valid[..c.data.stats_windows];
        let evaluate = |step: usize, snap: &Snapshot| -> Result<serde_json::Value> {
            let fp = snap.model(&start.config)?;
            let (fp_loss, _) = measure::score(&fp, along, &[])?;
            let quantized = fake_quantized(&start, &snap.weights, &measured, &snap.steps)?;
            let (quant_loss, _) = measure::score(&quantized, along, &[])?;
            let outliers = measure::outliers(&fp, stats, qat.quantize_head)?;
            Ok(serde_json::to_value(CurvePoint {
                step,
                fp_loss,
                quant_loss,
                outliers,
            })?)
        };
        let identity = format!("{}:{}", self.sha256, serde_json::to_string(&c.data)?);
        let optimizer = c.optimizer(&u.optimizer);
        let trained = session::run(&Setup {
            config: &start.config,
            spec: &spec,
            batches: &|step| sampler.batch(step),
            eval: &[],
            work_dir: &context.work_dir,
            extra_files: &[],
            verbose: context.verbose,
            start: finetune.then_some(start.tensors.as_slice()),
            optimizer: &optimizer,
            quant: trains_quantized.then_some(&qat),
            evaluate: Some(&evaluate),
            identity: Some(&identity),
        })?;
        let curve = trained
            .evaluations
            .iter()
            .map(|(_, v)| Ok(serde_json::from_value(v.clone())?))
            .collect::<Result<Vec<CurvePoint>>>()?;
        let reference = if finetune {
            Some(measure::log_probs(
                &measure::model_of(&start.config, &start.tensors)?,
                valid,
            )?)
        } else {
            None
        };
        let fp_lp = measure::log_probs(&trained.model, valid)?;
        let start_ref: Vec<&[f32]> = reference.as_deref().into_iter().collect();
        let (fp_loss, kl) = measure::score(&trained.model, valid, &start_ref)?;
        let kl_start_fp = kl.first().cloned().unwrap_or(f64::NAN);
        let quantized = fake_quantized(&start, &trained.weights, &measured, &trained.steps)?;
        let (quant_loss, kl) = measure::score(&quantized, valid, &start_ref)?;
        let kl_start_quant = kl.first().cloned().unwrap_or(f64::NAN);
        let ptq = self.ptq(
            &start,
            &trained.weights,
            valid,
            &fp_lp,
            reference.as_deref(),
        )?;
        Ok(RunResult {
            mode: u.mode.clone(),
            optimizer: u.optimizer.clone(),
            lr: u.lr,
            seed: u.seed,
            tokens_per_step: spec.batch * spec.context,
            history: trained.history,
            curve,
            fp_loss,
            quant_loss,
            kl_start_fp,
            kl_start_quant,
            ptq,
            resumed_from: trained.resumed_from,
            tokens_per_second: trained.tokens_per_second,
        })
    }

    /// Every final-evaluation quantizer (the trained one first) under every rotation.
    fn ptq(
        &self,
        start: &Start,
        weights: &[(String, candle_core::Tensor)],
        valid: &[Window],
        fp: &[f32],
        reference: Option<&[f32]>,
    ) -> Result<Vec<PtqRow>> {
        let c = &self.config;
        let mut variants = vec![c.quant.weights.clone()];
        for w in &c.eval.weights {
            if !variants.contains(w) {
                variants.push(w.clone());
            }
        }
        let activation_bits = (c.quant.activations < 16).then_some(c.quant.activations);
        let mut rows = Vec::new();
        // A diverged run has non-finite weights, which the RTN quantizers reject:
        // its rows are recorded as NaN.
        let finite = weights
            .iter()
            .try_fold(true, |ok, (_, t)| -> Result<bool> {
                Ok(ok && t.abs()?.max_all()?.to_scalar::<f32>()?.is_finite())
            })?;
        for rotation in &c.eval.rotations {
            for w in &variants {
                if !finite {
                    rows.push(PtqRow {
                        weights: w.clone(),
                        rotation: rotation.clone(),
                        loss: f64::NAN,
                        kl_to_fp: f64::NAN,
                        kl_to_start: f64::NAN,
                    });
                    continue;
                }
                let mut model = measure::model_of(&start.config, weights)?;
                measure::rotate(&mut model, rotation, c.seed)?;
                measure::quantize(&mut model, w, activation_bits, c.quant.quantize_head)?;
                let mut references = vec![fp];
                references.extend(reference);
                let (loss, kl) = measure::score(&model, valid, &references)?;
                let (kl_to_fp, kl_to_start) = (kl[0], kl.get(1).cloned().unwrap_or(f64::NAN));
                rows.push(PtqRow {
                    weights: w.clone(),
                    rotation: rotation.clone(),
                    loss,
                    kl_to_fp,
                    kl_to_start,
                });
            }
        }
        Ok(rows)
    }
}

/// The model of `weights` with the fake quantizers of `spec` (LSQ steps from
/// `steps`), as used in training but without gradients.
fn fake_quantized(
    start: &Start,
    weights: &[(String, candle_core::Tensor)],
    spec: &QatSpec,
    steps: &BTreeMap<String, candle_core::Var>,
) -> Result<crate::model::llama::Model> {
    let mut model = measure::model_of(&start.config, weights)?;
    fake_quant::install(&mut model, spec, steps)?;
    Ok(model)
}

impl Plan for QatPlan {
    fn resolved(&self) -> serde_json::Value {
        serde_json::to_value(Resolved {
            config: &self.config,
            checkpoint_sha256: &self.sha256,
            parameter_groups: &self.groups,
        })
        .expect("config serialises")
    }

    fn seed(&self) -> u64 {
        self.config.seed
    }

    fn units(&self) -> Vec<String> {
        self.units
            .iter()
            .map(|u| {
                format!(
                    "mode={} optimizer={} lr={:e} seed={}",
                    u.mode, u.optimizer, u.lr, u.seed
                )
            })
            .collect()
    }

    fn run_unit(&self, index: usize, context: &UnitContext) -> Result<UnitOutput> {
        // Each run gets a pool of its own for candle's kernels: nested inside
        // the runner's pool, the small matrix products of concurrent runs wait
        // on one another. Results do not depend on the pool size.
        // The run goes on a thread of its own, joined by blocking: a worker that
        // waited inside `install` would start more runs meanwhile.
        let outer = rayon::current_num_threads();
        let inner = (outer / self.units.len().clamp(1, outer)).max(1);
        let pool = rayon::ThreadPoolBuilder::new().num_threads(inner).build()?;
        let result = std::thread::scope(|s| {
            s.spawn(|| pool.install(|| self.run(&self.units[index], context)))
                .join()
                .map_err(|_| anyhow::anyhow!("the training run panicked"))
        })??;
        Ok(serde_json::to_value(result)?)
    }

    fn tables(&self, outputs: &[UnitOutput]) -> Result<Vec<Table>> {
        let results: Vec<RunResult> = outputs
            .iter()
            .map(|o| serde_json::from_value(o.clone()))
            .collect::<Result<_, _>>()?;
        Ok(super::tables::build(&self.config, &self.groups, &results))
    }
}
