//! Draft trees: up to K children at every node down to depth γ, drafted one
//! level per drafter call and verified in one target pass with a tree
//! attention mask ([`crate::model::llama::Model::forward_tree`]).
//!
//! Shape: a full K-ary tree while the node budget (`tree_nodes`) allows,
//! nodes expanded breadth first, best-ranked first; once a node's K children
//! would exceed the budget, only the first node of each level (the path of
//! first-ranked children) is extended, with one child, so the tree always
//! reaches depth γ. Nodes: budget + γ at most.
//!
//! Children of a node, drawn from the drafter's shaped q after it at the
//! absolute position they occupy: under `gumbel` the top K of `log q + G`
//! with the target's own noise (distinct tokens, a sample without
//! replacement); otherwise K i.i.d. draws, child k with its own stream. Equal
//! i.i.d. draws share one node: their subtrees would be identical (same
//! context, same keyed noise), so the node is drafted and verified once and
//! the duplicate draws stay in the parent's list of draws for verification.

use serde::{Deserialize, Serialize};

use super::drafter::{Draft, DraftDraw};
use super::sampling::draft_stream;

/// How K draft branches are arranged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Shape {
    /// K chains of γ tokens that split at the root only, verified as a batch
    /// of K rows.
    Chains,
    /// K children at every level (see the module's doc), verified as one row
    /// with a tree mask.
    Full,
}

impl Shape {
    /// Every shape.
    pub const ALL: [Shape; 2] = [Shape::Chains, Shape::Full];

    /// The shape's name in configs and tables.
    pub fn name(&self) -> &'static str {
        match self {
            Shape::Chains => "chains",
            Shape::Full => "full",
        }
    }

    /// The shape a name stands for.
    pub fn by_name(name: &str) -> Option<Shape> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }
}

/// The size of a draft tree.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TreeSpec {
    /// Depth γ.
    pub depth: usize,
    /// Children per node K.
    pub children: usize,
    /// Node budget of the full K-ary part.
    pub max_nodes: usize,
}

impl TreeSpec {
    /// How many children each node of a level gets, the level's nodes in
    /// order, when the tree already holds `nodes`.
    pub fn expansion(&self, level: usize, nodes: usize) -> Vec<usize> {
        let mut total = nodes;
        (0..level)
            .map(|i| {
                if total + self.children <= self.max_nodes {
                    total += self.children;
                    self.children
                } else if i == 0 {
                    total += 1;
                    1
                } else {
                    0
                }
            })
            .collect()
    }
}

/// A node of a draft tree.
#[derive(Clone, Debug)]
pub struct Node {
    /// The token and the distribution it was drawn from.
    pub draft: Draft,
    /// Its parent (`None`: a child of the committed sequence).
    pub parent: Option<usize>,
    /// Its depth (0 for the first level).
    pub depth: usize,
}

/// A draft tree after a committed sequence.
#[derive(Clone, Debug, Default)]
pub struct DraftTree {
    /// The nodes, parents before children, level by level.
    pub nodes: Vec<Node>,
    /// Per parent (slot 0: the sequence's end; slot i + 1: node i), the draws
    /// verified against the target there, as node indices (an index repeats
    /// where i.i.d. draws coincide).
    draws: Vec<Vec<usize>>,
}

impl DraftTree {
    /// An empty tree.
    pub fn new() -> Self {
        DraftTree {
            nodes: Vec::new(),
            draws: vec![Vec::new()],
        }
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether nothing was drafted.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The nodes' tokens.
    pub fn tokens(&self) -> Vec<u32> {
        self.nodes.iter().map(|n| n.draft.token).collect()
    }

    /// The nodes' parents.
    pub fn parents(&self) -> Vec<Option<usize>> {
        self.nodes.iter().map(|n| n.parent).collect()
    }

    /// The draws at `parent`, as node indices.
    pub fn draws(&self, parent: Option<usize>) -> &[usize] {
        &self.draws[parent.map_or(0, |p| p + 1)]
    }

    /// The token path from the root to `node`.
    pub fn path(&self, node: usize) -> Vec<u32> {
        let mut path = Vec::new();
        let mut at = Some(node);
        while let Some(n) = at {
            path.push(self.nodes[n].draft.token);
            at = self.nodes[n].parent;
        }
        path.reverse();
        path
    }

    /// Adds `drafts` as the draws at `parent`; a draft whose token is already
    /// a child there shares that child. Returns the new nodes.
    pub fn add_children(&mut self, parent: Option<usize>, drafts: Vec<Draft>) -> Vec<usize> {
        let depth = parent.map_or(0, |p| self.nodes[p].depth + 1);
        let slot = parent.map_or(0, |p| p + 1);
        let mut new = Vec::new();
        for draft in drafts {
            let existing = self.draws[slot]
                .iter()
                .copied()
                .find(|&i| self.nodes[i].draft.token == draft.token);
            let index = match existing {
                Some(i) => i,
                None => {
                    self.nodes.push(Node {
                        draft,
                        parent,
                        depth,
                    });
                    self.draws.push(Vec::new());
                    new.push(self.nodes.len() - 1);
                    self.nodes.len() - 1
                }
            };
            self.draws[slot].push(index);
        }
        new
    }
}

/// `count` children drawn from the drafter's logits `row` at `position`: the
/// top `count` of `scores + G` with the draw's stream when `draw.distinct`
/// (the `gumbel` tree), else `count` i.i.d. samples, child k with stream
/// [`draft_stream`]`(k)`.
pub fn draw_children(row: &[f32], draw: &DraftDraw, position: u64, count: usize) -> Vec<Draft> {
    let q = draw.shaping.distribution(row);
    let tokens: Vec<u32> = if draw.distinct {
        draw.shaping
            .ranked(row, draw.seed, position, draw.stream, count)
    } else {
        (0..count)
            .map(|k| {
                draw.shaping
                    .sample(row, draw.seed, position, draft_stream(k))
            })
            .collect()
    };
    tokens
        .into_iter()
        .map(|token| Draft {
            token,
            q: q.clone(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one_hot(token: u32) -> Draft {
        let mut q = vec![0.0; 8];
        q[token as usize] = 1.0;
        Draft { token, q }
    }

    #[test]
    fn the_budget_keeps_the_first_ranked_path_to_full_depth() {
        let spec = TreeSpec {
            depth: 4,
            children: 3,
            max_nodes: 10,
        };
        // Level 1: the root's 3 children; level 2: the first two of them get 3
        // each (9 nodes), the third none; deeper: the first node alone, 1 child.
        assert_eq!(spec.expansion(1, 0), vec![3]);
        assert_eq!(spec.expansion(3, 3), vec![3, 3, 0]);
        assert_eq!(spec.expansion(6, 9), vec![1, 0, 0, 0, 0, 0]);
        let unbounded = TreeSpec {
            max_nodes: usize::MAX,
            ..spec
        };
        assert_eq!(unbounded.expansion(9, 12), vec![3; 9]);
    }

    #[test]
    fn equal_draws_share_a_node_and_paths_follow_parents() {
        let mut tree = DraftTree::new();
        let roots = tree.add_children(None, vec![one_hot(2), one_hot(5), one_hot(2)]);
        assert_eq!(roots, vec![0, 1]);
        assert_eq!(tree.draws(None), &[0, 1, 0]);
        let kids = tree.add_children(Some(1), vec![one_hot(7), one_hot(3)]);
        assert_eq!(kids, vec![2, 3]);
        assert_eq!(tree.path(3), vec![5, 3]);
        assert_eq!(tree.parents(), vec![None, None, Some(1), Some(1)]);
        assert_eq!(tree.nodes[3].depth, 1);
        assert!(tree.draws(Some(0)).is_empty());
    }
}
