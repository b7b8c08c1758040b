//! Speculative decoding with real models: a drafter proposes γ tokens (or K
//! branches of γ tokens, or a tree of K children per node and γ levels), the
//! target verifies them in one multi-token pass, an acceptance rule keeps a
//! prefix, and both KV caches roll back past the first rejection.
//!
//! Randomness is keyed, never sequential: every draw is Philox keyed by
//! (seed, absolute position, token id, stream), so a run is a pure function of
//! its inputs and the `gumbel` rule's target draw at position t is exactly the
//! draw plain seeded sampling ([`decode::plain`]) makes at t — whatever the
//! drafter, γ, number of branches or tree shape.
//!
//! - [`cached`]: a model with its KV cache, fed a growing token sequence and
//!   rolled back to the longest prefix it has already seen; several branches
//!   are verified as one batch.
//! - [`drafter`]: drafters (a model: a smaller one, or the target quantized;
//!   an n-gram prompt-lookup table).
//! - [`decode`]: the plain loop and the speculative loop with the rules
//!   `standard`, `gumbel`, `naive`, `greedy`, `typical` and `specinfer`.
//! - [`sampling`]: keyed draws and the shaping (temperature, top-k, top-p)
//!   applied identically to p and q.
//! - [`lossless`]: the sequence-level chi-square test over continuations.
//! - [`speedup`]: the speedup model for a drafter cost ratio c.
//! - [`tree`]: full draft trees (K children at every level), drafted one
//!   level per drafter pass and verified in one target pass with a tree mask.

pub mod cached;
pub mod decode;
pub mod drafter;
pub mod lossless;
pub mod sampling;
pub mod speedup;
pub mod tree;
