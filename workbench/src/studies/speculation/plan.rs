//! The speculation study's units: one per (drafter, rule, temperature, top-k,
//! top-p, branches, tree shape), each running every draft length on every prompt beside
//! plain decoding of the same prompts with the same seeds; and, with a
//! `[lossless]` section, one per tested rule (plus plain sampling).

use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use candle_core::Device;
use serde::{Deserialize, Serialize};

use super::config::{DrafterSpec, SpeculationConfig};
use crate::experiment::outputs::Table;
use crate::experiment::study::{Plan, UnitContext, UnitOutput};
use crate::model::llama::Model;
use crate::model::transforms::weight_variant;
use crate::model::{hf, llama2c};
use crate::speculative::cached::CachedModel;
use crate::speculative::decode::{plain, speculative, Settings, SpecRule, DEFAULT_TREE_NODES};
use crate::speculative::drafter::{Drafter, ModelDrafter, NgramDrafter};
use crate::speculative::lossless::{likely_continuations, test, ContinuationTest};
use crate::speculative::tree::Shape;
use crate::studies::eval::plan::EvalPlan;

/// One prompt's run at one draft length.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct PromptRun {
    /// Tokens generated.
    pub tokens: u64,
    /// Target forward passes.
    pub target_calls: u64,
    /// Drafter forward passes.
    pub draft_calls: u64,
    /// Tokens drafted (every branch).
    pub drafted: u64,
    /// Draft positions verified.
    pub verified: u64,
    /// Drafts accepted.
    pub accepted: u64,
    /// Whether the output equals plain seeded decoding of the target.
    pub matches_plain: bool,
}

/// Per position in the draft, summed over prompts.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct PositionSums {
    /// Times this draft index was verified.
    pub verified: u64,
    /// Times it was accepted.
    pub accepted: u64,
    /// Σ (1 − TV(p, q)) over those verifications.
    pub exact_standard: f64,
    /// Σ Gumbel acceptance probability over those verifications.
    pub exact_gumbel: f64,
    /// Σ of the rule's own acceptance probability, where it has a closed form.
    pub exact_rule: f64,
    /// Verifications with a closed form for the rule.
    pub exact_rule_count: u64,
}

/// Wall-clock seconds of one draft length (measurements, not results).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Timing {
    /// Speculative decoding of every prompt (the exact per-step expectations'
    /// bookkeeping excluded).
    pub speculative: f64,
    /// The target's forward passes within it.
    pub target: f64,
    /// The drafter's forward passes within it.
    pub draft: f64,
}

/// One draft length of a unit.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct GammaResult {
    /// γ.
    pub gamma: usize,
    /// Per prompt.
    pub prompts: Vec<PromptRun>,
    /// Per draft index.
    pub positions: Vec<PositionSums>,
    /// Seconds.
    pub timing: Timing,
}

/// One run unit's output.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct UnitResult {
    /// Drafter name.
    pub drafter: String,
    /// Rule name.
    pub rule: String,
    /// Temperature.
    pub temperature: f64,
    /// top-k (0 = none).
    pub top_k: usize,
    /// top-p (1 = none).
    pub top_p: f64,
    /// Branches K.
    pub branches: usize,
    /// How the branches are arranged (outputs saved before trees read as chains).
    #[serde(default = "chains")]
    pub shape: Shape,
    /// Seconds of plain decoding of every prompt, and its target passes.
    pub plain_seconds: f64,
    /// Target passes of plain decoding (one per token).
    pub plain_calls: u64,
    /// Per draft length.
    pub gammas: Vec<GammaResult>,
}

/// One losslessness unit's output.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct LosslessResult {
    /// `plain` or a rule name.
    pub method: String,
    /// Whether the method should be lossless.
    pub lossless: bool,
    /// Continuation counts as (tokens, count), sorted.
    pub counts: Vec<(Vec<u32>, u64)>,
    /// The chi-square test against the exact continuation distribution.
    #[serde(flatten)]
    pub test: ContinuationTest,
    /// Acceptance rate over the samples' verified drafts (none for plain sampling).
    pub acceptance: Option<f64>,
}

/// A unit's output, tagged by kind.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "unit", rename_all = "lowercase")]
pub enum Output {
    /// A grid point.
    Run(UnitResult),
    /// A losslessness test.
    Lossless(LosslessResult),
}

fn chains() -> Shape {
    Shape::Chains
}

/// One grid point.
#[derive(Clone, Debug, PartialEq)]
struct Point {
    drafter: String,
    rule: SpecRule,
    temperature: f64,
    top_k: usize,
    top_p: f64,
    branches: usize,
    shape: Shape,
}

/// The validated study point.
pub struct SpeculationPlan {
    pub(super) config: SpeculationConfig,
}

/// A model from a checkpoint (a llama2.c file or a Hugging Face folder).
fn load_checkpoint(path: &Path) -> Result<Model> {
    let (config, weights) = if path.is_dir() {
        hf::load(path, &Device::Cpu)?
    } else {
        llama2c::load(path, &Device::Cpu)?
    };
    Model::from_weights(config, weights)
}

impl SpeculationPlan {
    /// Plans a validated config.
    pub fn new(config: SpeculationConfig) -> Self {
        SpeculationPlan { config }
    }

    fn grid(&self) -> Vec<Point> {
        let c = &self.config;
        let mut units = Vec::new();
        let shapes: Vec<Shape> = c
            .trees
            .iter()
            .map(|t| Shape::by_name(t).expect("validated tree shape"))
            .collect();
        for d in &c.drafters {
            for r in &c.rules {
                let rule = SpecRule::by_name(r).expect("validated rule");
                for &temperature in &c.temperatures {
                    for &top_k in &c.top_k {
                        for &top_p in &c.top_p {
                            for &branches in &c.branches {
                                for shape in &shapes {
                                    // A one-child tree is the chain, run once.
                                    let repeat = *shape == Shape::Full
                                        && branches == 1
                                        && shapes.contains(&Shape::Chains);
                                    if rule.supports_branches(branches) && !repeat {
                                        units.push(Point {
                                            drafter: d.clone(),
                                            rule,
                                            temperature,
                                            top_k,
                                            top_p,
                                            branches,
                                            shape: *shape,
                                        });
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        units
    }

    /// Methods of the losslessness test: plain sampling, then each rule.
    fn lossless_methods(&self) -> Vec<String> {
        match &self.config.lossless {
            Some(l) => std::iter::once("plain".to_string())
                .chain(l.rules.iter().cloned())
                .collect(),
            None => Vec::new(),
        }
    }

    /// The seed of prompt `p`: distinct per prompt, the same for every method.
    fn prompt_seed(&self, p: usize) -> u64 {
        self.config
            .seed
            .wrapping_add((p as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15))
    }

    fn load_target(&self) -> Result<(EvalPlan, Model)> {
        let eval = EvalPlan::new(self.config.as_eval())?;
        let target = eval.load()?;
        Ok((eval, target))
    }

    fn prompts(&self, eval: &EvalPlan, target: &Model) -> Result<Vec<Vec<u32>>> {
        Ok(eval
            .sequences(target)?
            .iter()
            .map(|s| s[..self.config.prompt_length].to_vec())
            .collect())
    }

    /// Builds a drafter by name for `target`.
    fn drafter(&self, name: &str, target: &Model) -> Result<Box<dyn Drafter>> {
        let spec = DrafterSpec::parse(name).map_err(anyhow::Error::msg)?;
        Ok(match spec {
            DrafterSpec::Ngram(n) => Box::new(NgramDrafter {
                n,
                vocab: target.config.vocab_size,
            }),
            DrafterSpec::Quantized { variant, rotation } => {
                let mut model = target.clone();
                let r = crate::primitives::rotation::by_name(&rotation, self.config.seed)
                    .context("validated rotation")?;
                crate::model::rotate::rotate_model(&mut model, r)
                    .with_context(|| format!("rotating the drafter `{name}`"))?;
                if let Some(t) = weight_variant(&variant).map_err(anyhow::Error::msg)? {
                    for linear in model.linears_mut() {
                        // Keep what the rotation configured (an online rotation).
                        let mut config = linear.config().clone();
                        config.weight_transform = Some(t.clone());
                        linear.configure(config)?;
                    }
                }
                Box::new(ModelDrafter::new(name, model))
            }
            DrafterSpec::Model(checkpoint) => {
                let path = self
                    .config
                    .drafter_path(&checkpoint)
                    .context("unresolved drafter checkpoint")?;
                let model = load_checkpoint(path)
                    .with_context(|| format!("loading the drafter {}", path.display()))?;
                if model.config.vocab_size != target.config.vocab_size {
                    bail!(
                        "drafter `{name}`: vocabulary of {} tokens, the target's has {}",
                        model.config.vocab_size,
                        target.config.vocab_size
                    );
                }
                if let (Some(target_path), true) = (&self.config.model.resolved_path, path.is_dir())
                {
                    let (a, b) = (
                        target_path.join("tokenizer.json"),
                        path.join("tokenizer.json"),
                    );
                    if a.is_file() && b.is_file() && std::fs::read(&a)? != std::fs::read(&b)? {
                        bail!(
                            "drafter `{name}`: {} differs from the target's {}",
                            b.display(),
                            a.display()
                        );
                    }
                }
                Box::new(ModelDrafter::new(name, model))
            }
        })
    }

    fn settings(&self, p: &Point, gamma: usize, seed: u64) -> Settings {
        Settings {
            gamma,
            temperature: p.temperature,
            top_k: p.top_k,
            top_p: p.top_p,
            seed,
            rule: p.rule,
            branches: p.branches,
            shape: p.shape,
            tree_nodes: self.config.tree_nodes,
            typical_epsilon: self.config.typical_epsilon,
            typical_delta: self.config.typical_delta,
        }
    }

    fn run_point(&self, point: &Point) -> Result<UnitResult> {
        let c = &self.config;
        let (eval, target) = self.load_target()?;
        if c.prompt_length + c.tokens > target.config.max_seq_len {
            bail!(
                "prompt_length + tokens = {} exceeds the model's max_seq_len {}",
                c.prompt_length + c.tokens,
                target.config.max_seq_len
            );
        }
        let prompts = self.prompts(&eval, &target)?;
        let mut drafter = self.drafter(&point.drafter, &target)?;
        let mut target = CachedModel::new(target);
        let shaping = self.settings(point, 0, 0).shaping();
        let clock = Instant::now();
        let references: Vec<Vec<u32>> = prompts
            .iter()
            .enumerate()
            .map(|(p, prompt)| plain(&mut target, prompt, c.tokens, shaping, self.prompt_seed(p)))
            .collect::<Result<_>>()?;
        let plain_seconds = clock.elapsed().as_secs_f64();
        let plain_calls = target.calls;
        let mut gammas = Vec::new();
        for &gamma in &c.gammas {
            let mut result = GammaResult {
                gamma,
                prompts: Vec::new(),
                positions: vec![PositionSums::default(); gamma],
                timing: Timing::default(),
            };
            let before = (target.seconds, drafter.seconds());
            let clock = Instant::now();
            let mut bookkeeping = 0.0;
            for (p, prompt) in prompts.iter().enumerate() {
                let settings = self.settings(point, gamma, self.prompt_seed(p));
                let g = speculative(&mut target, drafter.as_mut(), prompt, c.tokens, settings)?;
                bookkeeping += g.bookkeeping_seconds;
                for v in &g.verified {
                    let s = &mut result.positions[v.index];
                    s.verified += 1;
                    s.accepted += v.accepted as u64;
                    s.exact_standard += v.exact_standard;
                    s.exact_gumbel += v.exact_gumbel;
                    if let Some(e) = v.exact_rule {
                        s.exact_rule += e;
                        s.exact_rule_count += 1;
                    }
                }
                result.prompts.push(PromptRun {
                    tokens: g.tokens.len() as u64,
                    target_calls: g.target_calls,
                    draft_calls: g.draft_calls,
                    drafted: g.drafted,
                    verified: g.verified.len() as u64,
                    accepted: g.verified.iter().filter(|v| v.accepted).count() as u64,
                    matches_plain: g.tokens == references[p],
                });
            }
            result.timing = Timing {
                speculative: clock.elapsed().as_secs_f64() - bookkeeping,
                target: target.seconds - before.0,
                draft: drafter.seconds() - before.1,
            };
            gammas.push(result);
        }
        Ok(UnitResult {
            drafter: point.drafter.clone(),
            rule: point.rule.name().into(),
            temperature: point.temperature,
            top_k: point.top_k,
            top_p: point.top_p,
            branches: point.branches,
            shape: point.shape,
            plain_seconds,
            plain_calls,
            gammas,
        })
    }

    fn run_lossless(&self, method: &str) -> Result<LosslessResult> {
        let l = self.config.lossless.as_ref().expect("a lossless section");
        let (eval, model) = self.load_target()?;
        let prompt = self.prompts(&eval, &model)?[0].clone();
        if prompt.len() + l.horizon > model.config.max_seq_len {
            bail!("prompt_length + lossless.horizon exceeds the model's max_seq_len");
        }
        let rule = SpecRule::by_name(method);
        let point = Point {
            drafter: l.drafter.clone(),
            rule: rule.unwrap_or(SpecRule::Standard),
            temperature: l.temperature,
            top_k: l.top_k,
            top_p: l.top_p,
            branches: if rule.is_some_and(|r| r.supports_branches(l.branches)) {
                l.branches
            } else {
                1
            },
            shape: Shape::by_name(&l.tree).context("validated tree shape")?,
        };
        let shaping = self.settings(&point, 0, 0).shaping();
        // Bins: continuations expected at least 2.5 times (pooled to 5 by the test).
        let threshold = 2.5 / l.samples as f64;
        let exact = likely_continuations(&model, &prompt, l.horizon, shaping, threshold, 20_000)?;
        let mut drafter = self.drafter(&l.drafter, &model)?;
        let mut target = CachedModel::new(model);
        let mut counts: HashMap<Vec<u32>, u64> = HashMap::new();
        let (mut verified, mut accepted) = (0u64, 0u64);
        for i in 0..l.samples {
            // The same seeds for every method.
            let seed = self
                .config
                .seed
                .wrapping_mul(0x2545_f491_4f6c_dd1d)
                .wrapping_add(i);
            let tokens = match rule {
                None => plain(&mut target, &prompt, l.horizon, shaping, seed)?,
                Some(_) => {
                    let settings = self.settings(&point, l.gamma, seed);
                    let g =
                        speculative(&mut target, drafter.as_mut(), &prompt, l.horizon, settings)?;
                    verified += g.verified.len() as u64;
                    accepted += g.verified.iter().filter(|v| v.accepted).count() as u64;
                    g.tokens
                }
            };
            *counts.entry(tokens).or_insert(0) += 1;
        }
        let t: ContinuationTest = test(&counts, &exact);
        let mut counts: Vec<(Vec<u32>, u64)> = counts.into_iter().collect();
        counts.sort();
        Ok(LosslessResult {
            method: method.into(),
            lossless: rule.is_none_or(|r| r.is_lossless()),
            counts,
            test: t,
            acceptance: (verified > 0).then(|| accepted as f64 / verified as f64),
        })
    }
}

impl Plan for SpeculationPlan {
    fn resolved(&self) -> serde_json::Value {
        serde_json::to_value(&self.config).expect("config serialises")
    }

    /// 1: draws use the `gumbel_sample` kernel's f32 noise (and top-k keeps
    /// ties at its edge).
    fn revision(&self) -> u32 {
        1
    }

    fn seed(&self) -> u64 {
        self.config.seed
    }

    fn units(&self) -> Vec<String> {
        let mut units: Vec<String> = self
            .grid()
            .iter()
            .map(|p| {
                let mut key = format!(
                    "drafter={} rule={} temperature={}",
                    p.drafter,
                    p.rule.name(),
                    p.temperature
                );
                // Defaults leave the key as it was before filters and trees existed.
                if p.top_k != 0 || p.top_p != 1.0 {
                    key += &format!(" top_k={} top_p={}", p.top_k, p.top_p);
                }
                if p.branches != 1 {
                    key += &format!(" branches={}", p.branches);
                }
                if p.shape != Shape::Chains {
                    key += &format!(" tree={}", p.shape.name());
                    if self.config.tree_nodes != DEFAULT_TREE_NODES {
                        key += &format!(" tree_nodes={}", self.config.tree_nodes);
                    }
                }
                key
            })
            .collect();
        units.extend(
            self.lossless_methods()
                .iter()
                .map(|m| format!("lossless method={m}")),
        );
        units
    }

    fn run_unit(&self, index: usize, _context: &UnitContext) -> Result<UnitOutput> {
        let grid = self.grid();
        let output = match grid.get(index) {
            Some(point) => Output::Run(self.run_point(point)?),
            None => {
                Output::Lossless(self.run_lossless(&self.lossless_methods()[index - grid.len()])?)
            }
        };
        Ok(serde_json::to_value(output)?)
    }

    fn tables(&self, outputs: &[UnitOutput]) -> Result<Vec<Table>> {
        let outputs: Vec<Output> = outputs
            .iter()
            .map(|o| serde_json::from_value(o.clone()))
            .collect::<Result<_, _>>()?;
        let runs: Vec<UnitResult> = outputs
            .iter()
            .filter_map(|o| match o {
                Output::Run(r) => Some(r.clone()),
                _ => None,
            })
            .collect();
        let lossless: Vec<LosslessResult> = outputs
            .into_iter()
            .filter_map(|o| match o {
                Output::Lossless(r) => Some(r),
                _ => None,
            })
            .collect();
        Ok(super::tables::build(&self.config, &runs, &lossless))
    }
}
