//! The experiment layer: the [`study::Study`] trait every family implements, config
//! reading and sweeps, and the plain data ([`outputs`]) a study hands to the
//! results layer.

pub mod config;
pub mod nan_f64;
pub mod outputs;
pub mod study;
pub mod sweep;
