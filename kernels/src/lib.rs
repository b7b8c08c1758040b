//! Custom ops of the workbench, each with one plain CPU reference and fast
//! paths (CPU SIMD; CUDA behind the `cuda` feature; Metal behind `metal`) that
//! are tested against it.
//!
//! - [`philox`]: the counter-based generator every backend reproduces bit for
//!   bit.
//! - [`hadamard`]: the fast normalised Hadamard transform of orders m·2^k.

pub mod elem;
pub mod hadamard;
pub mod philox;

#[cfg(test)]
pub(crate) mod testing;
