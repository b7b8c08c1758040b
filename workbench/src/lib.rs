//! A research workbench for LLM quantization and speculative-decoding experiments.
//!
//! Layers, each using only those before it:
//! kernels (`wb-kernels`) → [`primitives`] → [`experiment`] and [`studies`] →
//! [`results`] (tables, plots, report, runs) → the `workbench` CLI.

pub mod data;
pub mod experiment;
pub mod model;
pub mod primitives;
pub mod results;
pub mod speculative;
pub mod studies;
pub mod text;
pub mod train;
