//! Custom ops of the workbench.
//!
//! Each op has one plain CPU reference here; GPU versions (CUDA, Metal) follow the
//! same algorithms and are tested against it. For now the crate holds the
//! counter-based generator that every backend must reproduce bit for bit.

pub mod philox;
