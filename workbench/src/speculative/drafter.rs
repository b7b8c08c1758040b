//! Drafters: what proposes the tokens the target verifies.

use anyhow::Result;

use super::cached::CachedModel;
use super::sampling::Shaping;
use super::tree::{draw_children, DraftTree, TreeSpec};

/// How a drafter draws its tokens: from its shaped distribution, with
/// Gumbel-max noise keyed by (seed, position, token, `stream`). Under the
/// `gumbel` rule the stream is the target's own, so drafter and target share
/// noise; otherwise it is the drafter's (one stream per tree branch).
#[derive(Clone, Copy, Debug)]
pub struct DraftDraw {
    /// Temperature and filters, the target's own.
    pub shaping: Shaping,
    /// Seed of the keyed noise.
    pub seed: u64,
    /// Philox stream of the noise.
    pub stream: u32,
    /// Which branch of a draft tree this chain is (0 for a single chain).
    pub branch: usize,
    /// Whether the branches' first tokens are the top K of `scores + G` (the
    /// `gumbel` tree: K distinct tokens, a sample without replacement), branch
    /// k taking the k-th; otherwise each branch samples with its own `stream`.
    pub distinct: bool,
}

/// One proposed token and the distribution it was drawn from.
#[derive(Clone, Debug)]
pub struct Draft {
    /// The token.
    pub token: u32,
    /// The drafter's shaped distribution q at this position (one-hot for a
    /// deterministic drafter).
    pub q: Vec<f64>,
}

/// Proposes up to `gamma` tokens continuing `context`.
pub trait Drafter {
    /// A short name for tables.
    fn name(&self) -> String;
    /// Up to `gamma` drafts after `context` (fewer, even none, is allowed).
    fn propose(&mut self, context: &[u32], gamma: usize, draw: DraftDraw) -> Result<Vec<Draft>>;
    /// A draft tree of `spec.depth` levels after `context`, up to
    /// `spec.children` children per node (see [`super::tree`] for the shape;
    /// fewer children, even none, are allowed). `draw.branch` is unused: a
    /// node's children are drawn as [`draw_children`] says.
    fn propose_tree(
        &mut self,
        context: &[u32],
        spec: TreeSpec,
        draw: DraftDraw,
    ) -> Result<DraftTree>;
    /// Forward passes the drafter has run.
    fn calls(&self) -> u64 {
        0
    }
    /// Seconds spent in those forward passes.
    fn seconds(&self) -> f64 {
        0.0
    }
}

/// A language model as drafter (a smaller model, or the target quantized).
pub struct ModelDrafter {
    /// Name shown in tables.
    pub label: String,
    /// The model and its cache.
    pub model: CachedModel,
}

impl ModelDrafter {
    /// A drafter named `label` running `model`.
    pub fn new(label: impl Into<String>, model: crate::model::llama::Model) -> Self {
        ModelDrafter {
            label: label.into(),
            model: CachedModel::new(model),
        }
    }
}

impl Drafter for ModelDrafter {
    fn name(&self) -> String {
        self.label.clone()
    }

    fn propose(&mut self, context: &[u32], gamma: usize, draw: DraftDraw) -> Result<Vec<Draft>> {
        let mut sequence = context.to_vec();
        let mut drafts = Vec::with_capacity(gamma);
        for i in 0..gamma {
            let logits = self.model.logits(&sequence, sequence.len() - 1)?;
            let row = &logits[0];
            let position = sequence.len() as u64;
            let rank = if i == 0 && draw.distinct {
                draw.branch
            } else {
                0
            };
            let token = draw
                .shaping
                .ranked(row, draw.seed, position, draw.stream, rank + 1)[rank];
            drafts.push(Draft {
                token,
                q: draw.shaping.distribution(row),
            });
            sequence.push(token);
        }
        Ok(drafts)
    }

    /// One drafter pass per level: the pass for level d feeds the nodes of
    /// level d − 1 after the cached tree (a tree mask), so the drafter runs γ
    /// passes whatever the tree's width.
    fn propose_tree(
        &mut self,
        context: &[u32],
        spec: TreeSpec,
        draw: DraftDraw,
    ) -> Result<DraftTree> {
        let mut tree = DraftTree::new();
        let mut frontier: Vec<Option<usize>> = vec![None];
        for depth in 0..spec.depth {
            if frontier.is_empty() {
                break;
            }
            let logits = self.model.tree_logits(
                context,
                context.len() - 1,
                &tree.tokens(),
                &tree.parents(),
            )?;
            let (root, rows) = (logits.sequence, logits.nodes);
            let position = (context.len() + depth) as u64;
            let counts = spec.expansion(frontier.len(), tree.len());
            let mut next = Vec::new();
            for (&parent, count) in frontier.iter().zip(counts) {
                if count == 0 {
                    continue;
                }
                let row = match parent {
                    None => &root[0],
                    Some(i) => &rows[i],
                };
                let drafts = draw_children(row, &draw, position, count);
                next.extend(tree.add_children(parent, drafts).into_iter().map(Some));
            }
            frontier = next;
        }
        Ok(tree)
    }

    fn calls(&self) -> u64 {
        self.model.calls
    }

    fn seconds(&self) -> f64 {
        self.model.seconds
    }
}

/// Prompt lookup: finds the latest earlier occurrence of the context's last
/// `n` tokens and proposes what followed it (deterministic, so q is one-hot).
/// Branch k of a tree follows the k-th latest occurrence (a different
/// deterministic draft per branch). In a full tree, a node's children are the
/// distinct tokens that followed the latest occurrences of the last `n`
/// tokens of the context and the node's path (up to K, latest first).
pub struct NgramDrafter {
    /// Length of the matched suffix.
    pub n: usize,
    /// Vocabulary size (for the one-hot q).
    pub vocab: usize,
}

impl NgramDrafter {
    fn one_hot(&self, token: u32) -> Draft {
        let mut q = vec![0.0; self.vocab];
        if let Some(slot) = q.get_mut(token as usize) {
            *slot = 1.0;
        }
        Draft { token, q }
    }

    /// Up to `count` distinct tokens that followed the latest earlier
    /// occurrences of `context`'s last `n` tokens, latest first.
    fn followers(&self, context: &[u32], count: usize) -> Vec<u32> {
        let len = context.len();
        let mut found = Vec::new();
        if self.n == 0 || len <= self.n {
            return found;
        }
        let suffix = &context[len - self.n..];
        for start in (0..len - self.n).rev() {
            if found.len() == count {
                break;
            }
            let next = context[start + self.n];
            if &context[start..start + self.n] == suffix && !found.contains(&next) {
                found.push(next);
            }
        }
        found
    }
}

impl Drafter for NgramDrafter {
    fn name(&self) -> String {
        format!("ngram{}", self.n)
    }

    fn propose(&mut self, context: &[u32], gamma: usize, draw: DraftDraw) -> Result<Vec<Draft>> {
        let len = context.len();
        if self.n == 0 || len <= self.n {
            return Ok(Vec::new());
        }
        let suffix = &context[len - self.n..];
        // Matches that end before the suffix itself, latest first.
        let found = (0..len - self.n)
            .rev()
            .filter(|&start| &context[start..start + self.n] == suffix)
            .nth(draw.branch);
        let Some(start) = found else {
            return Ok(Vec::new());
        };
        Ok(context[start + self.n..]
            .iter()
            .take(gamma)
            .map(|&token| self.one_hot(token))
            .collect())
    }

    fn propose_tree(
        &mut self,
        context: &[u32],
        spec: TreeSpec,
        _draw: DraftDraw,
    ) -> Result<DraftTree> {
        let mut tree = DraftTree::new();
        let mut frontier: Vec<Option<usize>> = vec![None];
        for _ in 0..spec.depth {
            let counts = spec.expansion(frontier.len(), tree.len());
            let mut next = Vec::new();
            for (&parent, count) in frontier.iter().zip(counts) {
                if count == 0 {
                    continue;
                }
                let mut extended = context.to_vec();
                if let Some(p) = parent {
                    extended.extend(tree.path(p));
                }
                let drafts = self
                    .followers(&extended, count)
                    .into_iter()
                    .map(|t| self.one_hot(t))
                    .collect();
                next.extend(tree.add_children(parent, drafts).into_iter().map(Some));
            }
            frontier = next;
        }
        Ok(tree)
    }
}
