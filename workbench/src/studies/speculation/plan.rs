//! The speculation study's units: one per (drafter, rule, temperature); each
//! runs every draft length on every prompt, beside plain decoding of the same
//! prompts with the same seeds.

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

use super::config::{DrafterSpec, SpeculationConfig};
use crate::experiment::outputs::Table;
use crate::experiment::study::{Plan, UnitContext, UnitOutput};
use crate::model::llama::Model;
use crate::model::transforms::weight_variant;
use crate::speculative::cached::CachedModel;
use crate::speculative::decode::{plain, speculative, Settings, SpecRule};
use crate::speculative::drafter::{Drafter, ModelDrafter, NgramDrafter};
use crate::studies::eval::plan::EvalPlan;

/// One prompt's run at one draft length.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct PromptRun {
    /// Tokens generated.
    pub tokens: u64,
    /// Target forward passes.
    pub target_calls: u64,
    /// Tokens drafted.
    pub drafted: u64,
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
}

/// One unit's output.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct UnitResult {
    /// Drafter name.
    pub drafter: String,
    /// Rule name.
    pub rule: String,
    /// Temperature.
    pub temperature: f64,
    /// Per draft length.
    pub gammas: Vec<GammaResult>,
}

/// The validated study point.
pub struct SpeculationPlan {
    pub(super) config: SpeculationConfig,
}

impl SpeculationPlan {
    /// Plans a validated config.
    pub fn new(config: SpeculationConfig) -> Self {
        SpeculationPlan { config }
    }

    fn grid(&self) -> Vec<(String, String, f64)> {
        let c = &self.config;
        let mut units = Vec::new();
        for d in &c.drafters {
            for r in &c.rules {
                for &t in &c.temperatures {
                    units.push((d.clone(), r.clone(), t));
                }
            }
        }
        units
    }

    /// The seed of prompt `p`: distinct per prompt, the same for every method.
    fn prompt_seed(&self, p: usize) -> u64 {
        self.config
            .seed
            .wrapping_add((p as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15))
    }
}

fn drafter_for(spec: &DrafterSpec, name: &str, target: &Model) -> Result<Box<dyn Drafter>> {
    Ok(match spec {
        DrafterSpec::Ngram(n) => Box::new(NgramDrafter {
            n: *n,
            vocab: target.config.vocab_size,
        }),
        DrafterSpec::Quantized(variant) => {
            let mut model = target.clone();
            if let Some(t) = weight_variant(variant).map_err(anyhow::Error::msg)? {
                for linear in model.linears_mut() {
                    let mut config = linear.config().clone();
                    config.weight_transform = Some(t.clone());
                    linear.configure(config)?;
                }
            }
            Box::new(ModelDrafter {
                label: name.into(),
                model: CachedModel::new(model),
            })
        }
    })
}

impl Plan for SpeculationPlan {
    fn resolved(&self) -> serde_json::Value {
        serde_json::to_value(&self.config).expect("config serialises")
    }

    fn seed(&self) -> u64 {
        self.config.seed
    }

    fn units(&self) -> Vec<String> {
        self.grid()
            .iter()
            .map(|(d, r, t)| format!("drafter={d} rule={r} temperature={t}"))
            .collect()
    }

    fn run_unit(&self, index: usize, _context: &UnitContext) -> Result<UnitOutput> {
        let (drafter_name, rule_name, temperature) = self.grid()[index].clone();
        let c = &self.config;
        let eval = EvalPlan::new(c.as_eval())?;
        let target = eval.load()?;
        if c.prompt_length + c.tokens > target.config.max_seq_len {
            bail!(
                "prompt_length + tokens = {} exceeds the model's max_seq_len {}",
                c.prompt_length + c.tokens,
                target.config.max_seq_len
            );
        }
        let prompts: Vec<Vec<u32>> = eval
            .sequences(&target)?
            .iter()
            .map(|s| s[..c.prompt_length].to_vec())
            .collect();
        let rule = SpecRule::by_name(&rule_name).expect("validated rule");
        let spec = DrafterSpec::parse(&drafter_name).map_err(anyhow::Error::msg)?;
        let mut drafter = drafter_for(&spec, &drafter_name, &target)?;
        let mut target = CachedModel::new(target);
        let references: Vec<Vec<u32>> = prompts
            .iter()
            .enumerate()
            .map(|(p, prompt)| {
                plain(
                    &mut target,
                    prompt,
                    c.tokens,
                    temperature,
                    self.prompt_seed(p),
                )
            })
            .collect::<Result<_>>()?;
        let mut gammas = Vec::new();
        for &gamma in &c.gammas {
            let mut result = GammaResult {
                gamma,
                prompts: Vec::new(),
                positions: vec![PositionSums::default(); gamma],
            };
            for (p, prompt) in prompts.iter().enumerate() {
                let settings = Settings {
                    gamma,
                    temperature,
                    seed: self.prompt_seed(p),
                    rule,
                };
                let g = speculative(&mut target, drafter.as_mut(), prompt, c.tokens, settings)?;
                for v in &g.verified {
                    let s = &mut result.positions[v.index];
                    s.verified += 1;
                    s.accepted += v.accepted as u64;
                    s.exact_standard += v.exact_standard;
                    s.exact_gumbel += v.exact_gumbel;
                }
                result.prompts.push(PromptRun {
                    tokens: g.tokens.len() as u64,
                    target_calls: g.target_calls,
                    drafted: g.drafted,
                    accepted: g.verified.iter().filter(|v| v.accepted).count() as u64,
                    matches_plain: g.tokens == references[p],
                });
            }
            gammas.push(result);
        }
        Ok(serde_json::to_value(UnitResult {
            drafter: drafter_name,
            rule: rule_name,
            temperature,
            gammas,
        })?)
    }

    fn tables(&self, outputs: &[UnitOutput]) -> Result<Vec<Table>> {
        let results: Vec<UnitResult> = outputs
            .iter()
            .map(|o| serde_json::from_value(o.clone()))
            .collect::<Result<_, _>>()?;
        Ok(super::tables::build(&self.config, &results))
    }
}
