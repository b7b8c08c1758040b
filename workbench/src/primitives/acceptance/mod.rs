//! Acceptance rules of speculative decoding: how a target distribution p decides
//! whether to keep a token proposed by a draft distribution q.
//!
//! Each rule has a Monte-Carlo simulator ([`simulate`]) and, where one exists, a
//! closed form of its acceptance probability ([`exact`]).

pub mod exact;
pub mod simulate;

use serde::{Deserialize, Serialize};

/// An acceptance rule with its parameters.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum Rule {
    /// Independent samples x ~ q and y ~ p; accepted if equal; y is emitted.
    /// With K drafts: accepted if y is among K i.i.d. draft samples.
    Naive,
    /// Speculative sampling (Leviathan et al. 2023; Chen et al. 2023): accept
    /// x ~ q with probability min(1, p(x)/q(x)), else emit a sample of
    /// norm(max(0, p - q)).
    Standard,
    /// Shared Gumbel noise G: draft x = argmax(log q + G), target
    /// y = argmax(log p + G); accepted if equal; y is emitted. With K drafts the
    /// drafts are the top K of log q + G (Gumbel-top-K: K distinct tokens, a
    /// sample without replacement from q) and y is accepted if among them.
    Gumbel,
    /// Accept if argmax q = argmax p; argmax p is emitted (lossless only at T = 0).
    Greedy,
    /// Medusa's typical acceptance (Cai et al. 2024): accept x ~ q if
    /// p(x) > min(epsilon, delta * exp(-H(p))), else emit a sample of p. Lossy.
    Typical {
        /// Hard threshold on the target probability.
        epsilon: f64,
        /// Entropy-scaled threshold factor.
        delta: f64,
    },
    /// SpecInfer's multi-round rejection (Miao et al. 2024) with K i.i.d. drafts:
    /// draft k is accepted with probability min(1, p_k(x)/q(x)), where p_1 = p and
    /// p_{k+1} = norm(max(0, p_k - q)); if all are rejected, a sample of p_{K+1}
    /// is emitted. Equal to `Standard` at K = 1.
    SpecInfer,
}

impl Rule {
    /// The rule's name as written in configs and tables.
    pub fn name(&self) -> &'static str {
        match self {
            Rule::Naive => "naive",
            Rule::Standard => "standard",
            Rule::Gumbel => "gumbel",
            Rule::Greedy => "greedy",
            Rule::Typical { .. } => "typical",
            Rule::SpecInfer => "specinfer",
        }
    }

    /// Every rule name a config may use.
    pub const NAMES: [&'static str; 6] = [
        "naive",
        "standard",
        "gumbel",
        "greedy",
        "typical",
        "specinfer",
    ];

    /// Whether the emitted token is distributed exactly as p at any temperature.
    pub fn is_lossless(&self) -> bool {
        matches!(
            self,
            Rule::Naive | Rule::Standard | Rule::Gumbel | Rule::SpecInfer
        )
    }

    /// Whether the rule is defined for `drafts` draft tokens per position.
    pub fn supports_drafts(&self, drafts: usize) -> bool {
        match self {
            Rule::Naive | Rule::Gumbel => drafts >= 1,
            Rule::Standard | Rule::Greedy | Rule::Typical { .. } => drafts == 1,
            // At K = 1 SpecInfer is the standard rule; it is listed only for K >= 2.
            Rule::SpecInfer => drafts >= 2,
        }
    }
}
