//! The plain autoregressive loop and the speculative loop.

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

use super::cached::CachedModel;
use super::drafter::{DraftDraw, Drafter};
use super::sampling::{
    argmax, distribution, gumbel_max, sample_weights, uniform, STREAM_ACCEPT, STREAM_DRAFT,
    STREAM_RESIDUAL, STREAM_TARGET,
};
use crate::primitives::acceptance::exact;

/// Acceptance rules for real generation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SpecRule {
    /// Accept x ~ q with probability min(1, p(x)/q(x)), else emit a sample of
    /// norm(max(0, p − q)) (Leviathan et al. 2023; Chen et al. 2023).
    Standard,
    /// Drafter and target share Gumbel noise keyed by (seed, position, token):
    /// x = argmax(log q + G), y = argmax(log p + G); accept if equal, else emit y.
    Gumbel,
    /// Independent samples x ~ q and y ~ p; accept if equal, else emit y.
    Naive,
    /// Accept if x = argmax p; emit argmax p (exact only at T = 0).
    Greedy,
}

impl SpecRule {
    /// The rule's name in configs and tables.
    pub fn name(&self) -> &'static str {
        match self {
            SpecRule::Standard => "standard",
            SpecRule::Gumbel => "gumbel",
            SpecRule::Naive => "naive",
            SpecRule::Greedy => "greedy",
        }
    }

    /// The rule a name stands for.
    pub fn by_name(name: &str) -> Option<SpecRule> {
        [
            SpecRule::Standard,
            SpecRule::Gumbel,
            SpecRule::Naive,
            SpecRule::Greedy,
        ]
        .into_iter()
        .find(|r| r.name() == name)
    }
}

/// What one speculative run is asked to do.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    /// Draft length γ (0 = plain decoding through the target).
    pub gamma: usize,
    /// Sampling temperature (0 = argmax).
    pub temperature: f64,
    /// Seed of every keyed draw.
    pub seed: u64,
    /// Acceptance rule.
    pub rule: SpecRule,
}

/// One verified draft position.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Verified {
    /// Index in the draft (0 = first drafted token).
    pub index: usize,
    /// Whether the draft token was kept.
    pub accepted: bool,
    /// 1 − TV(p, q): the standard rule's acceptance probability here.
    pub exact_standard: f64,
    /// The Gumbel-coupling acceptance probability here.
    pub exact_gumbel: f64,
}

/// A speculative generation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Generation {
    /// The generated tokens (the prompt excluded).
    pub tokens: Vec<u32>,
    /// Target forward passes (one per verification).
    pub target_calls: u64,
    /// Drafter forward passes.
    pub draft_calls: u64,
    /// Tokens drafted in all.
    pub drafted: u64,
    /// Every verified draft position, in order.
    pub verified: Vec<Verified>,
}

/// Plain decoding: `count` tokens after `prompt`, the token at position t being
/// `argmax(logits / T + G(seed, t, ·))`.
pub fn plain(
    target: &mut CachedModel,
    prompt: &[u32],
    count: usize,
    temperature: f64,
    seed: u64,
) -> Result<Vec<u32>> {
    if prompt.is_empty() {
        bail!("the prompt needs at least one token");
    }
    let mut sequence = prompt.to_vec();
    for _ in 0..count {
        let logits = target.logits(&sequence, sequence.len() - 1)?;
        let position = sequence.len() as u64;
        sequence.push(gumbel_max(
            &logits[0],
            temperature,
            seed,
            position,
            STREAM_TARGET,
        ));
    }
    Ok(sequence[prompt.len()..].to_vec())
}

/// Speculative decoding of `count` tokens after `prompt`.
pub fn speculative(
    target: &mut CachedModel,
    drafter: &mut dyn Drafter,
    prompt: &[u32],
    count: usize,
    settings: Settings,
) -> Result<Generation> {
    if prompt.is_empty() {
        bail!("the prompt needs at least one token");
    }
    let Settings {
        gamma,
        temperature,
        seed,
        rule,
    } = settings;
    let draw = DraftDraw {
        temperature: if rule == SpecRule::Greedy {
            0.0
        } else {
            temperature
        },
        seed,
        stream: if rule == SpecRule::Gumbel {
            STREAM_TARGET
        } else {
            STREAM_DRAFT
        },
    };
    let calls_before = (target.calls, drafter.calls());
    let mut sequence = prompt.to_vec();
    let mut out = Generation {
        tokens: Vec::new(),
        target_calls: 0,
        draft_calls: 0,
        drafted: 0,
        verified: Vec::new(),
    };
    while sequence.len() - prompt.len() < count {
        let remaining = count - (sequence.len() - prompt.len());
        // Never draft past the end: all accepted plus the bonus token fit.
        let drafts = drafter.propose(&sequence, gamma.min(remaining - 1), draw)?;
        out.drafted += drafts.len() as u64;
        let start = sequence.len();
        let mut verify = sequence.clone();
        verify.extend(drafts.iter().map(|d| d.token));
        let logits = target.logits(&verify, start - 1)?;
        let mut emitted = None;
        for (i, draft) in drafts.iter().enumerate() {
            let position = (start + i) as u64;
            let row = &logits[i];
            let p = distribution(
                row,
                if rule == SpecRule::Greedy {
                    0.0
                } else {
                    temperature
                },
            );
            let x = draft.token as usize;
            let (accepted, replacement) = match rule {
                SpecRule::Gumbel | SpecRule::Naive => {
                    let y = gumbel_max(row, temperature, seed, position, STREAM_TARGET);
                    (y == draft.token, y)
                }
                SpecRule::Greedy => {
                    let y = argmax(row.iter().map(|&l| l as f64)) as u32;
                    (y == draft.token, y)
                }
                SpecRule::Standard => {
                    let q = draft.q.get(x).copied().unwrap_or(0.0);
                    let u = uniform(seed, position, STREAM_ACCEPT);
                    if q > 0.0 && u * q < p[x] {
                        (true, draft.token)
                    } else {
                        let residual: Vec<f64> = p
                            .iter()
                            .zip(&draft.q)
                            .map(|(a, b)| (a - b).max(0.0))
                            .collect();
                        let y = if residual.iter().any(|&r| r > 0.0) {
                            sample_weights(&residual, seed, position, STREAM_RESIDUAL)
                        } else {
                            gumbel_max(row, temperature, seed, position, STREAM_TARGET)
                        };
                        (false, y)
                    }
                }
            };
            out.verified.push(Verified {
                index: i,
                accepted,
                exact_standard: exact::standard(&p, &draft.q),
                exact_gumbel: exact::gumbel(&p, &draft.q),
            });
            if accepted {
                sequence.push(draft.token);
            } else {
                emitted = Some(replacement);
                break;
            }
        }
        let next = match emitted {
            Some(y) => y,
            None => {
                // Every draft accepted: the bonus token from the last verified row.
                let row = &logits[drafts.len()];
                let t = if rule == SpecRule::Greedy {
                    0.0
                } else {
                    temperature
                };
                gumbel_max(row, t, seed, sequence.len() as u64, STREAM_TARGET)
            }
        };
        sequence.push(next);
    }
    out.tokens = sequence[prompt.len()..].to_vec();
    out.target_calls = target.calls - calls_before.0;
    out.draft_calls = drafter.calls() - calls_before.1;
    Ok(out)
}
