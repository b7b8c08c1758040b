//! The acceptance study's config: what a user writes, its defaults, and its checks.

use serde::{Deserialize, Serialize};

use crate::experiment::config::{ConfigErrors, KeyPath};
use crate::experiment::study::{PointDoc, Problems};
use crate::primitives::acceptance::Rule;
use crate::primitives::distribution::{check_probabilities, InvalidDistribution};
use crate::primitives::stats::trials_for_half_width;

/// Half-width of the 95% interval the default trial count guarantees.
pub const DEFAULT_HALF_WIDTH: f64 = 0.005;
/// Largest vocabulary a generated pair may have.
pub const MAX_VOCAB: usize = 1 << 20;

/// The config as written (`kind` and `sweep` are handled by the runner).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AcceptanceConfig {
    /// Free text shown at the top of the report.
    #[serde(default)]
    pub description: Option<String>,
    /// Seed of every random number of the run.
    #[serde(default)]
    pub seed: u64,
    /// Monte-Carlo trials per pair x rule x drafts x temperature; by default
    /// enough for a 95% interval of half-width 0.005.
    #[serde(default)]
    pub trials: Option<u64>,
    /// Rules to run (default: all; each runs at the draft counts it supports).
    #[serde(default = "default_rules")]
    pub rules: Vec<String>,
    /// Draft counts K per position.
    #[serde(default = "default_drafts")]
    pub drafts: Vec<usize>,
    /// Temperatures applied to both p and q (0 = greedy limit).
    #[serde(default = "default_temperatures")]
    pub temperatures: Vec<f64>,
    /// Longest draft length gamma in the tokens-per-call and speedup tables.
    #[serde(default = "default_gamma_max")]
    pub gamma_max: usize,
    /// Draft/target cost ratios c of the speedup model.
    #[serde(default = "default_cost_ratios")]
    pub cost_ratios: Vec<f64>,
    /// Parameters of the typical-acceptance rule.
    #[serde(default)]
    pub typical: TypicalConfig,
    /// Significance level of the chi-square losslessness test.
    #[serde(default = "default_significance")]
    pub significance: f64,
    /// Pairs with at most this vocabulary get their emitted histogram saved.
    #[serde(default = "default_histogram_vocab")]
    pub histogram_vocab_max: usize,
    /// The (p, q) pairs.
    #[serde(default)]
    pub pairs: Vec<PairConfig>,
}

/// Medusa's typical-acceptance thresholds.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TypicalConfig {
    /// Hard threshold on p(x).
    #[serde(default = "default_epsilon")]
    pub epsilon: f64,
    /// Factor on exp(-H(p)).
    #[serde(default = "default_delta")]
    pub delta: f64,
}

impl Default for TypicalConfig {
    fn default() -> Self {
        TypicalConfig {
            epsilon: default_epsilon(),
            delta: default_delta(),
        }
    }
}

/// One `[[pairs]]` entry: explicit vectors or a generated family.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PairConfig {
    /// Unique name (used in tables and to address the pair in `[sweep]`).
    pub name: String,
    /// `explicit` (default when `p` is given), `identical`, `zipf`, `dirichlet`, `reverse`.
    #[serde(default)]
    pub family: Option<String>,
    /// Target distribution (explicit).
    #[serde(default)]
    pub p: Option<Vec<f64>>,
    /// Draft distribution (explicit).
    #[serde(default)]
    pub q: Option<Vec<f64>>,
    /// Vocabulary size (generated families).
    #[serde(default)]
    pub vocab: Option<usize>,
    /// `uniform` or `zipf` (family `identical`).
    #[serde(default)]
    pub base: Option<String>,
    /// Zipf exponent s in p(k) ∝ (k+1)^-s.
    #[serde(default)]
    pub exponent: Option<f64>,
    /// Temperature of the Zipf draft: q ∝ p^(1/draft_temperature).
    #[serde(default)]
    pub draft_temperature: Option<f64>,
    /// Dirichlet concentration.
    #[serde(default)]
    pub alpha: Option<f64>,
    /// Noise scale of the Dirichlet draft softmax(log p + sigma N(0, 1)).
    #[serde(default)]
    pub sigma: Option<f64>,
    /// Seed of the Dirichlet draw and noise (default: the run's seed).
    #[serde(default)]
    pub seed: Option<u64>,
}

fn default_rules() -> Vec<String> {
    Rule::NAMES.iter().map(|s| s.to_string()).collect()
}
fn default_drafts() -> Vec<usize> {
    vec![1]
}
fn default_temperatures() -> Vec<f64> {
    vec![1.0]
}
fn default_gamma_max() -> usize {
    8
}
fn default_cost_ratios() -> Vec<f64> {
    vec![0.0, 0.05, 0.1, 0.2, 0.5]
}
fn default_significance() -> f64 {
    0.001
}
fn default_histogram_vocab() -> usize {
    64
}
fn default_epsilon() -> f64 {
    0.09
}
fn default_delta() -> f64 {
    0.3
}

/// Families a pair may name.
pub const FAMILIES: [&str; 5] = ["explicit", "identical", "zipf", "dirichlet", "reverse"];

impl AcceptanceConfig {
    /// The trial count in force.
    pub fn trials(&self) -> u64 {
        self.trials
            .unwrap_or_else(|| trials_for_half_width(DEFAULT_HALF_WIDTH))
    }

    /// The rule with its parameters, for a validated name.
    pub fn rule(&self, name: &str) -> Rule {
        match name {
            "naive" => Rule::Naive,
            "standard" => Rule::Standard,
            "gumbel" => Rule::Gumbel,
            "greedy" => Rule::Greedy,
            "typical" => Rule::Typical {
                epsilon: self.typical.epsilon,
                delta: self.typical.delta,
            },
            "specinfer" => Rule::SpecInfer,
            other => unreachable!("unvalidated rule {other}"),
        }
    }

    /// Parses and checks one point of a config.
    pub fn from_doc(doc: &PointDoc) -> Result<Self, ConfigErrors> {
        let mut config: AcceptanceConfig = doc.deserialize()?;
        let root = KeyPath::root();
        let mut problems = Problems::new(doc);
        if config.pairs.is_empty() {
            problems.add(
                &root.key("pairs"),
                "expected at least one [[pairs]] entry (name plus p and q, or a family)",
            );
        }
        if config.trials == Some(0) {
            problems.add(&root.key("trials"), "expected a positive number of trials");
        }
        check_list(&mut problems, &root.key("rules"), &config.rules, |r| {
            (!Rule::NAMES.contains(&r.as_str())).then(|| {
                format!(
                    "unknown rule `{r}`; expected one of {}",
                    Rule::NAMES.join(", ")
                )
            })
        });
        check_list(&mut problems, &root.key("drafts"), &config.drafts, |&k| {
            (!(1..=64).contains(&k)).then(|| format!("{k} drafts; expected 1 to 64"))
        });
        check_list(
            &mut problems,
            &root.key("temperatures"),
            &config.temperatures,
            |&t| {
                (!(t.is_finite() && t >= 0.0))
                    .then(|| format!("temperature {t}; expected a finite value >= 0"))
            },
        );
        check_list(
            &mut problems,
            &root.key("cost_ratios"),
            &config.cost_ratios,
            |&c| {
                (!(c.is_finite() && c >= 0.0))
                    .then(|| format!("cost ratio {c}; expected a finite value >= 0"))
            },
        );
        if !(1..=64).contains(&config.gamma_max) {
            problems.add(
                &root.key("gamma_max"),
                "expected a draft length from 1 to 64",
            );
        }
        if !(config.significance > 0.0 && config.significance < 0.5) {
            problems.add(
                &root.key("significance"),
                "expected a level in (0, 0.5), e.g. 0.001",
            );
        }
        let typical = root.key("typical");
        if !(config.typical.epsilon > 0.0 && config.typical.epsilon <= 1.0) {
            problems.add(&typical.key("epsilon"), "expected a threshold in (0, 1]");
        }
        if !(config.typical.delta > 0.0 && config.typical.delta.is_finite()) {
            problems.add(&typical.key("delta"), "expected a positive factor");
        }
        let applicable = config.rules.iter().any(|r| {
            Rule::NAMES.contains(&r.as_str())
                && config
                    .drafts
                    .iter()
                    .any(|&k| config.rule(r).supports_drafts(k))
        });
        if !applicable && !config.rules.is_empty() {
            problems.add(
                &root.key("rules"),
                "no rule applies to the draft counts given: standard, greedy and typical take \
                 drafts = 1, specinfer drafts >= 2, naive and gumbel any",
            );
        }
        let seed = config.seed;
        for (i, pair) in config.pairs.iter_mut().enumerate() {
            check_pair(&mut problems, &root.key("pairs").index(i), pair, seed);
        }
        let mut seen = std::collections::BTreeSet::new();
        for (i, pair) in config.pairs.iter().enumerate() {
            if !seen.insert(pair.name.clone()) {
                problems.add(
                    &root.key("pairs").index(i).key("name"),
                    format!("duplicate pair name `{}`; names must be unique", pair.name),
                );
            }
        }
        config.trials = Some(config.trials());
        problems.finish(config)
    }
}

fn check_list<T>(
    problems: &mut Problems,
    path: &KeyPath,
    items: &[T],
    bad: impl Fn(&T) -> Option<String>,
) {
    if items.is_empty() {
        problems.add(path, "expected a non-empty list");
    }
    for (i, item) in items.iter().enumerate() {
        if let Some(message) = bad(item) {
            problems.add(&path.index(i), message);
        }
    }
}

/// Checks a pair and fills in its family's defaults.
fn check_pair(problems: &mut Problems, path: &KeyPath, pair: &mut PairConfig, run_seed: u64) {
    if pair.name.trim().is_empty() {
        problems.add(&path.key("name"), "expected a non-empty name");
    }
    let family = pair.family.clone().unwrap_or_else(|| {
        if pair.p.is_some() || pair.q.is_some() {
            "explicit".into()
        } else {
            String::new()
        }
    });
    if !FAMILIES.contains(&family.as_str()) {
        let message = if family.is_empty() {
            "expected `p` and `q` vectors, or a `family`".to_string()
        } else {
            format!("unknown family `{family}`")
        };
        problems.add(
            &path.key(if family.is_empty() { "name" } else { "family" }),
            format!("{message}; families are {}", FAMILIES.join(", ")),
        );
        return;
    }
    pair.family = Some(family.clone());
    // Which optional keys each family takes; any other key given is a mistake.
    let allowed: &[&str] = match family.as_str() {
        "explicit" => &["p", "q"],
        "identical" => &["vocab", "base", "exponent"],
        "zipf" => &["vocab", "exponent", "draft_temperature"],
        "dirichlet" => &["vocab", "alpha", "sigma", "seed"],
        "reverse" => &["vocab", "exponent"],
        _ => unreachable!(),
    };
    let given = [
        ("p", pair.p.is_some()),
        ("q", pair.q.is_some()),
        ("vocab", pair.vocab.is_some()),
        ("base", pair.base.is_some()),
        ("exponent", pair.exponent.is_some()),
        ("draft_temperature", pair.draft_temperature.is_some()),
        ("alpha", pair.alpha.is_some()),
        ("sigma", pair.sigma.is_some()),
        ("seed", pair.seed.is_some()),
    ];
    for (key, present) in given {
        if present && !allowed.contains(&key) {
            problems.add(
                &path.key(key),
                format!(
                    "`{key}` does not apply to family `{family}`, which takes {}",
                    allowed.join(", ")
                ),
            );
        }
    }
    if family == "explicit" {
        for key in ["p", "q"] {
            let v = if key == "p" { &pair.p } else { &pair.q };
            match v {
                None => problems.add(
                    &path.key(key),
                    format!("missing `{key}`: an explicit pair needs p and q"),
                ),
                Some(v) => match check_probabilities(v) {
                    Ok(()) => {}
                    Err(InvalidDistribution::BadEntry { index, value }) => problems.add(
                        &path.key(key).index(index),
                        format!("probability {value} is invalid; expected a finite value >= 0"),
                    ),
                    Err(e) => problems.add(&path.key(key), e.to_string()),
                },
            }
        }
        if let (Some(p), Some(q)) = (&pair.p, &pair.q) {
            if p.len() != q.len() {
                problems.add(
                    &path.key("q"),
                    format!(
                        "q has {} entries but p has {}; expected the same vocabulary",
                        q.len(),
                        p.len()
                    ),
                );
            }
        }
        return;
    }
    match pair.vocab {
        None => problems.add(
            &path.key("vocab"),
            format!("family `{family}` needs a vocabulary size `vocab`"),
        ),
        Some(v) if !(2..=MAX_VOCAB).contains(&v) => problems.add(
            &path.key("vocab"),
            format!("vocab {v}; expected 2 to {MAX_VOCAB}"),
        ),
        _ => {}
    }
    let positive = |problems: &mut Problems, key: &str, value: Option<f64>| {
        if let Some(v) = value {
            if !(v.is_finite() && v > 0.0) {
                problems.add(
                    &path.key(key),
                    format!("{key} {v}; expected a finite value > 0"),
                );
            }
        }
    };
    match family.as_str() {
        "identical" => {
            let base = pair.base.get_or_insert_with(|| "uniform".into()).clone();
            if base != "uniform" && base != "zipf" {
                problems.add(
                    &path.key("base"),
                    format!("unknown base `{base}`; expected uniform or zipf"),
                );
            }
            if base == "zipf" {
                pair.exponent.get_or_insert(1.0);
            } else if pair.exponent.is_some() {
                problems.add(
                    &path.key("exponent"),
                    "`exponent` applies only with base = \"zipf\"",
                );
            }
            positive(problems, "exponent", pair.exponent);
        }
        "zipf" => {
            pair.exponent.get_or_insert(1.0);
            pair.draft_temperature.get_or_insert(2.0);
            positive(problems, "exponent", pair.exponent);
            positive(problems, "draft_temperature", pair.draft_temperature);
        }
        "dirichlet" => {
            pair.alpha.get_or_insert(1.0);
            pair.sigma.get_or_insert(0.5);
            pair.seed.get_or_insert(run_seed);
            positive(problems, "alpha", pair.alpha);
            if let Some(s) = pair.sigma {
                if !(s.is_finite() && s >= 0.0) {
                    problems.add(
                        &path.key("sigma"),
                        format!("sigma {s}; expected a finite value >= 0"),
                    );
                }
            }
        }
        "reverse" => {
            pair.exponent.get_or_insert(1.0);
            positive(problems, "exponent", pair.exponent);
        }
        _ => unreachable!(),
    }
}
