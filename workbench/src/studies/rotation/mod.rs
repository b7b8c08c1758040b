//! The rotation study (`kind = "rotation"`): schemes (rotations and SmoothQuant)
//! × weight methods (RTN, GPTQ) × activation bits × KV-cache bits, measured per
//! linear layer (output, weight and activation error against full precision)
//! and for the whole model (perplexity, KL, top-1 agreement and acceptance as a
//! drafter of the full-precision model).

pub mod config;
pub mod layers;
pub mod methods;
pub mod plan;
pub mod report;
pub mod tables;
pub mod whole_model;

pub use plan::RotationPlan;

use crate::experiment::config::ConfigErrors;
use crate::experiment::outputs::{ReportContent, Table};
use crate::experiment::study::{Plan, PointDoc, Study};

/// The rotation study.
pub struct RotationStudy;

impl Study for RotationStudy {
    fn kind(&self) -> &'static str {
        "rotation"
    }

    fn summary(&self) -> &'static str {
        "rotation/SmoothQuant x RTN/GPTQ x activation/KV bits: per-layer SQNR and whole-model perplexity, KL"
    }

    fn plan(&self, doc: &PointDoc) -> Result<Box<dyn Plan>, ConfigErrors> {
        Ok(Box::new(plan::RotationPlan::new(
            config::RotationConfig::from_doc(doc)?,
        )))
    }

    fn report(
        &self,
        tables: &[Table],
        manifest: &serde_json::Value,
    ) -> anyhow::Result<ReportContent> {
        report::content(tables, manifest)
    }
}
