//! Speculative decoding with real models: a drafter proposes γ tokens, the
//! target verifies them in one multi-token pass, an acceptance rule keeps a
//! prefix, and both KV caches roll back past the first rejection.
//!
//! Randomness is keyed, never sequential: every draw is Philox keyed by
//! (seed, absolute position, token id, stream), so a run is a pure function of
//! its inputs and the `gumbel` rule's target draw at position t is exactly the
//! draw plain seeded sampling ([`decode::plain`]) makes at t — whatever the
//! drafter or γ.
//!
//! - [`cached`]: a model with its KV cache, fed a growing token sequence and
//!   rolled back to the longest prefix it has already seen.
//! - [`drafter`]: drafters (a model, e.g. the target quantized; an n-gram
//!   prompt-lookup table).
//! - [`decode`]: the plain loop and the speculative loop with the rules
//!   `standard`, `gumbel`, `naive` and `greedy`.

pub mod cached;
pub mod decode;
pub mod drafter;
pub mod sampling;
