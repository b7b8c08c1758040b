//! The acceptance study's units of work: one per pair x temperature x drafts x rule.

use serde::{Deserialize, Serialize};

use super::config::AcceptanceConfig;
use super::pairs;
use crate::experiment::study::{Plan, UnitContext, UnitOutput};
use crate::primitives::acceptance::simulate::Simulator;
use crate::primitives::acceptance::{exact, Rule};
use crate::primitives::distribution::{total_variation, with_temperature};
use crate::primitives::stats::{chi_square, empirical_tv, mean_interval, wilson_interval};

/// One unit: which pair, temperature, draft count and rule.
#[derive(Clone, Debug)]
struct Unit {
    pair: usize,
    temperature: f64,
    drafts: usize,
    rule: String,
}

/// The validated study point and its units.
pub struct AcceptancePlan {
    config: AcceptanceConfig,
    units: Vec<Unit>,
}

/// Mean tokens per target call measured by grouping consecutive trials into
/// blocks of gamma draft positions.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct BlockEstimate {
    /// Draft length.
    pub gamma: usize,
    /// Number of blocks (trials / gamma).
    pub blocks: u64,
    /// Mean tokens per target call.
    pub mean: f64,
    /// Lower end of its 95% interval.
    pub low: f64,
    /// Upper end of its 95% interval.
    pub high: f64,
}

/// Everything one unit measured.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct UnitResult {
    /// Pair name.
    pub pair: String,
    /// Pair family.
    pub family: String,
    /// Vocabulary size.
    pub vocab: usize,
    /// Rule name.
    pub rule: String,
    /// Drafts per position.
    pub drafts: usize,
    /// Temperature applied to p and q.
    pub temperature: f64,
    /// TV(p_T, q_T).
    pub tv: f64,
    /// Closed-form acceptance, if any.
    pub exact: Option<f64>,
    /// Upper bound of any lossless rule with K i.i.d. drafts (not for Gumbel-top-K).
    pub bound: Option<f64>,
    /// Trials run.
    pub trials: u64,
    /// Trials accepted.
    pub accepted: u64,
    /// Whether the rule is lossless by construction.
    pub lossless_by_design: bool,
    /// Chi-square statistic of the emitted tokens against p_T (`None`: infinite,
    /// an impossible token was emitted).
    pub chi2: Option<f64>,
    /// Its degrees of freedom.
    pub chi2_dof: usize,
    /// Its p-value.
    pub chi2_p: f64,
    /// TV between the emitted tokens' empirical distribution and p_T.
    pub emitted_tv: f64,
    /// Tokens per target call measured on blocks of gamma = 1..gamma_max.
    pub blocks: Vec<BlockEstimate>,
    /// For small vocabularies: p_T and the emitted counts per token.
    pub histogram: Option<(Vec<f64>, Vec<u64>)>,
}

impl AcceptancePlan {
    /// Plans the units of a validated config.
    pub fn new(config: AcceptanceConfig) -> Self {
        let mut units = Vec::new();
        for pair in 0..config.pairs.len() {
            for &temperature in &config.temperatures {
                for &drafts in &config.drafts {
                    for rule in &config.rules {
                        if config.rule(rule).supports_drafts(drafts) {
                            units.push(Unit {
                                pair,
                                temperature,
                                drafts,
                                rule: rule.clone(),
                            });
                        }
                    }
                }
            }
        }
        AcceptancePlan { config, units }
    }

    /// Runs one unit; a pure function of the config and the unit.
    fn measure(&self, unit: &Unit) -> anyhow::Result<UnitResult> {
        let config = &self.config;
        let pair = &config.pairs[unit.pair];
        let (p, q) = pairs::build(pair)?;
        let p = with_temperature(&p, unit.temperature);
        let q = with_temperature(&q, unit.temperature);
        let rule = config.rule(&unit.rule);
        let trials = config.trials();
        let simulator = Simulator::new(rule, unit.drafts, &p, &q);
        let outcome = simulator.run(config.seed, trials, true);
        let test = chi_square(&outcome.emitted, &p);
        let bound = match rule {
            Rule::Gumbel if unit.drafts > 1 => None,
            _ => Some(exact::iid_drafts_bound(&p, &q, unit.drafts)),
        };
        let blocks = (1..=config.gamma_max)
            .filter(|&gamma| trials >= gamma as u64)
            .map(|gamma| {
                let blocks = trials / gamma as u64;
                let (mut sum, mut sum_sq) = (0.0, 0.0);
                for b in 0..blocks {
                    let start = b * gamma as u64;
                    let accepted = (0..gamma as u64)
                        .take_while(|&i| outcome.accepted_at(start + i))
                        .count();
                    let tokens = 1.0 + accepted as f64;
                    sum += tokens;
                    sum_sq += tokens * tokens;
                }
                let (mean, low, high) = mean_interval(sum, sum_sq, blocks);
                BlockEstimate {
                    gamma,
                    blocks,
                    mean,
                    low,
                    high,
                }
            })
            .collect();
        let histogram =
            (p.len() <= config.histogram_vocab_max).then(|| (p.clone(), outcome.emitted.clone()));
        Ok(UnitResult {
            pair: pair.name.clone(),
            family: pair.family.clone().unwrap_or_default(),
            vocab: p.len(),
            rule: unit.rule.clone(),
            drafts: unit.drafts,
            temperature: unit.temperature,
            tv: total_variation(&p, &q),
            exact: exact::acceptance(rule, unit.drafts, &p, &q),
            bound,
            trials,
            accepted: outcome.accepted,
            lossless_by_design: rule.is_lossless(),
            chi2: test.statistic.is_finite().then_some(test.statistic),
            chi2_dof: test.dof,
            chi2_p: test.p_value,
            emitted_tv: empirical_tv(&outcome.emitted, &p),
            blocks,
            histogram,
        })
    }
}

impl Plan for AcceptancePlan {
    fn resolved(&self) -> serde_json::Value {
        serde_json::to_value(&self.config).expect("config serialises")
    }

    fn seed(&self) -> u64 {
        self.config.seed
    }

    fn units(&self) -> Vec<String> {
        self.units
            .iter()
            .map(|u| {
                format!(
                    "pair={} temperature={} drafts={} rule={}",
                    self.config.pairs[u.pair].name, u.temperature, u.drafts, u.rule
                )
            })
            .collect()
    }

    fn run_unit(&self, index: usize, _context: &UnitContext) -> anyhow::Result<UnitOutput> {
        let result = self.measure(&self.units[index])?;
        Ok(serde_json::to_value(result)?)
    }

    fn tables(
        &self,
        outputs: &[UnitOutput],
    ) -> anyhow::Result<Vec<crate::experiment::outputs::Table>> {
        let results: Vec<UnitResult> = outputs
            .iter()
            .map(|o| serde_json::from_value(o.clone()))
            .collect::<Result<_, _>>()?;
        Ok(super::tables::build(&self.config, &results))
    }
}

/// Estimate and 95% interval of a unit's acceptance.
pub fn estimate(result: &UnitResult) -> (f64, f64, f64) {
    let (low, high) = wilson_interval(result.accepted, result.trials);
    (result.accepted as f64 / result.trials as f64, low, high)
}
