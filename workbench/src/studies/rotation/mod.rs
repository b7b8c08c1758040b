//! The rotation study (`kind = "rotation"`), first version: rotation × weight
//! quantizer × activation bits, measured per linear layer by the error of its
//! output against full precision on calibration tokens.

pub mod config;
pub mod plan;
pub mod report;

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
        "rotation schemes x weight/activation quantizers, layer-output SQNR per linear layer"
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
