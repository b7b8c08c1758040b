//! The results layer: tables on disk, figures, the HTML report, manifests, and the
//! orchestration of a run (points, resumable units, outputs).

pub mod manifest;
pub mod plot;
pub mod report;
pub mod run;
pub mod store;
pub mod tables;
