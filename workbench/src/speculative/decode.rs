//! The plain autoregressive loop and the speculative loop.

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

use super::cached::CachedModel;
use super::drafter::{Draft, DraftDraw, Drafter};
use super::sampling::{
    argmax, draft_stream, sample_weights, uniform, Shaping, STREAM_ACCEPT, STREAM_RESIDUAL,
    STREAM_TARGET,
};
use super::tree::{DraftTree, Shape, TreeSpec};
use crate::primitives::acceptance::exact;

/// Acceptance rules for real generation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SpecRule {
    /// Accept x ~ q with probability min(1, p(x)/q(x)), else emit a sample of
    /// norm(max(0, p − q)) (Leviathan et al. 2023; Chen et al. 2023). Lossless.
    Standard,
    /// Drafter and target share Gumbel noise keyed by (seed, position, token):
    /// x = argmax(log q + G), y = argmax(log p + G); accept if equal, else emit
    /// y. With K branches the roots are the top K of log q + G and y is
    /// accepted if among them. Lossless: the output is plain seeded sampling.
    Gumbel,
    /// Independent samples x ~ q and y ~ p; accept if equal (with K branches:
    /// if y is among the roots), else emit y. Lossless, but accepts less.
    Naive,
    /// Accept if x = argmax p; emit argmax p (decodes at T = 0 whatever the
    /// configured temperature).
    Greedy,
    /// Medusa's typical acceptance (Cai et al. 2024): accept x ~ q if
    /// p(x) > min(ε, δ·exp(−H(p))), else emit a sample of p. Not lossless.
    Typical,
    /// SpecInfer's multi-draft rejection (Miao et al. 2024) over K branches
    /// drawn independently: root k is accepted with probability
    /// min(1, p_k(x)/q_k(x)), p_{k+1} = norm(max(0, p_k − q_k)); if all are
    /// rejected a sample of p_{K+1} is emitted. Deeper positions use the
    /// standard rule. Equal to `standard` with one branch. Lossless.
    SpecInfer,
}

impl SpecRule {
    /// Every rule.
    pub const ALL: [SpecRule; 6] = [
        SpecRule::Standard,
        SpecRule::Gumbel,
        SpecRule::Naive,
        SpecRule::Greedy,
        SpecRule::Typical,
        SpecRule::SpecInfer,
    ];

    /// The rule's name in configs and tables.
    pub fn name(&self) -> &'static str {
        match self {
            SpecRule::Standard => "standard",
            SpecRule::Gumbel => "gumbel",
            SpecRule::Naive => "naive",
            SpecRule::Greedy => "greedy",
            SpecRule::Typical => "typical",
            SpecRule::SpecInfer => "specinfer",
        }
    }

    /// The rule a name stands for.
    pub fn by_name(name: &str) -> Option<SpecRule> {
        Self::ALL.into_iter().find(|r| r.name() == name)
    }

    /// Whether the output is distributed exactly as plain sampling of the
    /// (shaped) target at the configured temperature.
    pub fn is_lossless(&self) -> bool {
        !matches!(self, SpecRule::Greedy | SpecRule::Typical)
    }

    /// Whether the rule verifies more than one branch.
    pub fn supports_branches(&self, branches: usize) -> bool {
        branches == 1
            || matches!(
                self,
                SpecRule::Gumbel | SpecRule::Naive | SpecRule::SpecInfer
            )
    }
}

/// Medusa's default thresholds (posterior_threshold ε = 0.09, posterior_alpha δ = 0.3).
pub const TYPICAL_EPSILON: f64 = 0.09;
/// See [`TYPICAL_EPSILON`].
pub const TYPICAL_DELTA: f64 = 0.3;

/// A full tree's default node budget.
pub const DEFAULT_TREE_NODES: usize = 64;

/// What one speculative run is asked to do.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    /// Draft length γ (0 = plain decoding through the target).
    pub gamma: usize,
    /// Sampling temperature (0 = argmax).
    pub temperature: f64,
    /// Keep the k most likely tokens of p and of q (0 = all).
    pub top_k: usize,
    /// Keep the smallest most-likely set of mass >= top_p of p and of q (1 = all).
    pub top_p: f64,
    /// Seed of every keyed draw.
    pub seed: u64,
    /// Acceptance rule.
    pub rule: SpecRule,
    /// Draft branches K: K chains of γ tokens sharing the committed prefix
    /// (a tree branching at its root), verified in one batched pass; or, with
    /// `shape` full, K children at every node.
    pub branches: usize,
    /// How the K branches are arranged: chains that split at the root, or a
    /// full tree (see [`super::tree`]).
    pub shape: Shape,
    /// A full tree's node budget (see [`super::tree`]).
    pub tree_nodes: usize,
    /// The typical rule's ε.
    pub typical_epsilon: f64,
    /// The typical rule's δ.
    pub typical_delta: f64,
}

impl Settings {
    /// One chain of `gamma` drafts, no filtering, Medusa's typical thresholds.
    pub fn new(gamma: usize, temperature: f64, seed: u64, rule: SpecRule) -> Self {
        Settings {
            gamma,
            temperature,
            top_k: 0,
            top_p: 1.0,
            seed,
            rule,
            branches: 1,
            shape: Shape::Chains,
            tree_nodes: DEFAULT_TREE_NODES,
            typical_epsilon: TYPICAL_EPSILON,
            typical_delta: TYPICAL_DELTA,
        }
    }

    /// The shaping applied to p and q (greedy decodes at T = 0).
    pub fn shaping(&self) -> Shaping {
        Shaping {
            temperature: if self.rule == SpecRule::Greedy {
                0.0
            } else {
                self.temperature
            },
            top_k: self.top_k,
            top_p: self.top_p,
        }
    }
}

/// One verified draft position.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Verified {
    /// Index in the draft (0 = first drafted token, where branches split).
    pub index: usize,
    /// Whether a draft token was kept.
    pub accepted: bool,
    /// 1 − TV(p, q) (q of the first branch): the best any lossless single-draft
    /// rule can accept here.
    pub exact_standard: f64,
    /// The Gumbel-coupling acceptance probability here (first branch's q).
    pub exact_gumbel: f64,
    /// The rule's own acceptance probability here (with K branches at the
    /// root: SpecInfer's; `None` where no closed form is known, e.g. Gumbel
    /// or naive with K >= 2).
    pub exact_rule: Option<f64>,
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
    /// Tokens drafted in all (every branch).
    pub drafted: u64,
    /// Every verified draft position, in order.
    pub verified: Vec<Verified>,
    /// Seconds spent computing the exact per-step expectations (bookkeeping
    /// for the study, not part of decoding: wall-clock comparisons subtract it).
    pub bookkeeping_seconds: f64,
}

/// Plain decoding: `count` tokens after `prompt`, the token at position t being
/// `argmax(scores + G(seed, t, ·))`, a keyed sample of the shaped target.
pub fn plain(
    target: &mut CachedModel,
    prompt: &[u32],
    count: usize,
    shaping: Shaping,
    seed: u64,
) -> Result<Vec<u32>> {
    if prompt.is_empty() {
        bail!("the prompt needs at least one token");
    }
    let mut sequence = prompt.to_vec();
    for _ in 0..count {
        let logits = target.logits(&sequence, sequence.len() - 1)?;
        let position = sequence.len() as u64;
        sequence.push(shaping.sample(&logits[0], seed, position, STREAM_TARGET));
    }
    Ok(sequence[prompt.len()..].to_vec())
}

/// The verdict on one position: the draft kept, or the token emitted instead.
struct Verdict {
    accepted: bool,
    replacement: u32,
}

/// One drafted token against the target's row under a single-draft rule.
fn verify_one(
    settings: &Settings,
    row: &[f32],
    p: &[f64],
    draft: &Draft,
    position: u64,
) -> Verdict {
    let shaping = settings.shaping();
    let seed = settings.seed;
    let x = draft.token as usize;
    let target_sample = || shaping.sample(row, seed, position, STREAM_TARGET);
    let (accepted, replacement) = match settings.rule {
        SpecRule::Gumbel | SpecRule::Naive => {
            let y = target_sample();
            (y == draft.token, y)
        }
        SpecRule::Greedy => {
            let y = argmax(row.iter().map(|&l| l as f64)) as u32;
            (y == draft.token, y)
        }
        SpecRule::Typical => {
            let threshold =
                exact::typical_threshold(p, settings.typical_epsilon, settings.typical_delta);
            if p[x] > threshold {
                (true, draft.token)
            } else {
                (false, target_sample())
            }
        }
        SpecRule::Standard | SpecRule::SpecInfer => {
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
                    target_sample()
                };
                (false, y)
            }
        }
    };
    Verdict {
        accepted,
        replacement,
    }
}

/// The roots of K >= 2 branches against the target's row: which branch is
/// kept, or the token emitted instead.
fn verify_roots(
    settings: &Settings,
    row: &[f32],
    p: &[f64],
    roots: &[&Draft],
    position: u64,
) -> (Option<usize>, u32) {
    let seed = settings.seed;
    match settings.rule {
        SpecRule::SpecInfer => {
            let mut current = p.to_vec();
            for (k, d) in roots.iter().enumerate() {
                let x = d.token as usize;
                let q = d.q.get(x).copied().unwrap_or(0.0);
                let u = uniform(seed, position, STREAM_ACCEPT + 16 * k as u32);
                if q > 0.0 && u * q < current[x] {
                    return (Some(k), d.token);
                }
                let excess: Vec<f64> = current
                    .iter()
                    .zip(&d.q)
                    .map(|(a, b)| (a - b).max(0.0))
                    .collect();
                let mass: f64 = excess.iter().sum();
                if mass > 0.0 {
                    current = excess.iter().map(|v| v / mass).collect();
                }
            }
            (
                None,
                sample_weights(&current, seed, position, STREAM_RESIDUAL),
            )
        }
        // Gumbel and naive: the target's own sample, kept if it is a root.
        _ => {
            let y = settings
                .shaping()
                .sample(row, seed, position, STREAM_TARGET);
            (roots.iter().position(|d| d.token == y), y)
        }
    }
}

/// The rule's exact acceptance probability at one position.
fn exact_rule(settings: &Settings, p: &[f64], qs: &[&[f64]]) -> Option<f64> {
    if qs.len() >= 2 {
        return match settings.rule {
            SpecRule::SpecInfer => {
                // 1 − Π (1 − β_k), β_k = Σ min(p_k, q_k) along the residual chain.
                let mut current = p.to_vec();
                let mut none = 1.0;
                for q in qs {
                    none *= 1.0 - exact::standard(&current, q).min(1.0);
                    let excess: Vec<f64> = current
                        .iter()
                        .zip(*q)
                        .map(|(a, b)| (a - b).max(0.0))
                        .collect();
                    let mass: f64 = excess.iter().sum();
                    if mass > 0.0 {
                        current = excess.iter().map(|v| v / mass).collect();
                    }
                }
                Some(1.0 - none)
            }
            _ => None,
        };
    }
    let q = qs[0];
    Some(match settings.rule {
        SpecRule::Standard | SpecRule::SpecInfer => exact::standard(p, q),
        SpecRule::Gumbel => exact::gumbel(p, q),
        SpecRule::Naive => exact::naive(p, q, 1),
        SpecRule::Greedy => exact::greedy(p, q),
        SpecRule::Typical => exact::typical(p, q, settings.typical_epsilon, settings.typical_delta),
    })
}

/// How the drafter draws branch `branch`: under the `gumbel` rule on the
/// target's own stream, the branches' first tokens distinct; otherwise on
/// the branch's own stream.
fn draft_draw(shaping: Shaping, seed: u64, branch: usize, gumbel: bool) -> DraftDraw {
    DraftDraw {
        shaping,
        seed,
        stream: if gumbel {
            STREAM_TARGET
        } else {
            draft_stream(branch)
        },
        branch,
        distinct: gumbel,
    }
}

fn record(settings: &Settings, index: usize, accepted: bool, p: &[f64], qs: &[&[f64]]) -> Verified {
    Verified {
        index,
        accepted,
        exact_standard: exact::standard(p, qs[0]),
        exact_gumbel: exact::gumbel(p, qs[0]),
        exact_rule: exact_rule(settings, p, qs),
    }
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
    if settings.branches == 0 || !settings.rule.supports_branches(settings.branches) {
        bail!(
            "the {} rule cannot verify {} branches",
            settings.rule.name(),
            settings.branches
        );
    }
    let shaping = settings.shaping();
    let seed = settings.seed;
    let gumbel = settings.rule == SpecRule::Gumbel;
    let calls_before = (target.calls, drafter.calls());
    let mut sequence = prompt.to_vec();
    let mut out = Generation {
        tokens: Vec::new(),
        target_calls: 0,
        draft_calls: 0,
        drafted: 0,
        verified: Vec::new(),
        bookkeeping_seconds: 0.0,
    };
    while sequence.len() - prompt.len() < count {
        let remaining = count - (sequence.len() - prompt.len());
        // Never draft past the end: all accepted plus the bonus token fit.
        let gamma = settings.gamma.min(remaining - 1);
        if settings.shape == Shape::Full {
            tree_round(target, drafter, &mut sequence, gamma, &settings, &mut out)?;
            continue;
        }
        let mut chains: Vec<Vec<Draft>> = Vec::new();
        if gamma > 0 {
            for branch in 0..settings.branches {
                let draw = draft_draw(shaping, seed, branch, gumbel);
                let chain = drafter.propose(&sequence, gamma, draw)?;
                if !chain.is_empty() {
                    chains.push(chain);
                }
            }
        }
        out.drafted += chains.iter().map(|c| c.len() as u64).sum::<u64>();
        let start = sequence.len();
        let tokens: Vec<Vec<u32>> = chains
            .iter()
            .map(|c| c.iter().map(|d| d.token).collect())
            .collect();
        let logits = target.branch_logits(&sequence, start - 1, &tokens)?;
        // The root: where the branches split.
        let root_row = &logits[0][0];
        let mut emitted = None;
        let mut kept = None;
        if !chains.is_empty() {
            let p = shaping.distribution(root_row);
            let roots: Vec<&Draft> = chains.iter().map(|c| &c[0]).collect();
            let qs: Vec<&[f64]> = roots.iter().map(|d| d.q.as_slice()).collect();
            let position = start as u64;
            let (branch, replacement) = if roots.len() == 1 {
                let v = verify_one(&settings, root_row, &p, roots[0], position);
                (v.accepted.then_some(0), v.replacement)
            } else {
                verify_roots(&settings, root_row, &p, &roots, position)
            };
            let clock = std::time::Instant::now();
            out.verified
                .push(record(&settings, 0, branch.is_some(), &p, &qs));
            out.bookkeeping_seconds += clock.elapsed().as_secs_f64();
            match branch {
                Some(b) => {
                    sequence.push(chains[b][0].token);
                    kept = Some(b);
                }
                None => emitted = Some(replacement),
            }
        }
        // Deeper positions of the kept branch: one draft each.
        if let Some(b) = kept {
            for (i, draft) in chains[b].iter().enumerate().skip(1) {
                let row = &logits[b][i];
                let p = shaping.distribution(row);
                let v = verify_one(&settings, row, &p, draft, sequence.len() as u64);
                let clock = std::time::Instant::now();
                out.verified
                    .push(record(&settings, i, v.accepted, &p, &[draft.q.as_slice()]));
                out.bookkeeping_seconds += clock.elapsed().as_secs_f64();
                if v.accepted {
                    sequence.push(draft.token);
                } else {
                    emitted = Some(v.replacement);
                    break;
                }
            }
        }
        let next = match emitted {
            Some(y) => y,
            None => {
                // Every draft of the kept branch accepted (or none drafted): the
                // bonus token from the row after its last token.
                let (b, last) = match kept {
                    Some(b) => (b, chains[b].len()),
                    None => (0, 0),
                };
                shaping.sample(&logits[b][last], seed, sequence.len() as u64, STREAM_TARGET)
            }
        };
        sequence.push(next);
    }
    out.tokens = sequence[prompt.len()..].to_vec();
    out.target_calls = target.calls - calls_before.0;
    out.draft_calls = drafter.calls() - calls_before.1;
    Ok(out)
}

/// One round with a full draft tree: the drafter grows the tree level by
/// level, the target scores every node in one pass, and verification walks
/// down from the root: at each node its children are verified against the
/// target's row there (one child: the single-draft rule; several: the
/// multi-draft rule of [`verify_roots`]), the walk descends into the kept
/// child, a rejection emits the replacement, and a path accepted to its end
/// earns the bonus token.
fn tree_round(
    target: &mut CachedModel,
    drafter: &mut dyn Drafter,
    sequence: &mut Vec<u32>,
    gamma: usize,
    settings: &Settings,
    out: &mut Generation,
) -> Result<()> {
    let shaping = settings.shaping();
    let seed = settings.seed;
    let gumbel = settings.rule == SpecRule::Gumbel;
    let tree = if gamma > 0 {
        let spec = TreeSpec {
            depth: gamma,
            children: settings.branches,
            max_nodes: settings.tree_nodes,
        };
        let draw = draft_draw(shaping, seed, 0, gumbel);
        drafter.propose_tree(sequence, spec, draw)?
    } else {
        DraftTree::new()
    };
    out.drafted += tree.len() as u64;
    let logits = target.tree_logits(
        sequence,
        sequence.len() - 1,
        &tree.tokens(),
        &tree.parents(),
    )?;
    let (root, rows) = (logits.sequence, logits.nodes);
    let mut at: Option<usize> = None;
    let mut row = &root[0];
    let mut depth = 0;
    loop {
        let position = sequence.len() as u64;
        let draws = tree.draws(at);
        if draws.is_empty() {
            // Every draft on the path accepted (or none drafted): the bonus token.
            sequence.push(shaping.sample(row, seed, position, STREAM_TARGET));
            return Ok(());
        }
        let p = shaping.distribution(row);
        let children: Vec<&Draft> = draws.iter().map(|&i| &tree.nodes[i].draft).collect();
        let (kept, replacement) = if children.len() == 1 {
            let v = verify_one(settings, row, &p, children[0], position);
            (v.accepted.then_some(0), v.replacement)
        } else {
            verify_roots(settings, row, &p, &children, position)
        };
        let clock = std::time::Instant::now();
        let qs: Vec<&[f64]> = children.iter().map(|d| d.q.as_slice()).collect();
        out.verified
            .push(record(settings, depth, kept.is_some(), &p, &qs));
        out.bookkeeping_seconds += clock.elapsed().as_secs_f64();
        match kept {
            Some(k) => {
                let node = draws[k];
                sequence.push(tree.nodes[node].draft.token);
                at = Some(node);
                row = &rows[node];
                depth += 1;
            }
            None => {
                sequence.push(replacement);
                return Ok(());
            }
        }
    }
}
