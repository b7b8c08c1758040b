//! The speculation study (`kind = "speculation"`): speculative decoding of a
//! real target with real drafters (its quantized selves, an n-gram prompt
//! lookup), per acceptance rule, temperature and draft length, against plain
//! seeded decoding of the same prompts.

pub mod config;
pub mod plan;
pub mod report;
pub mod tables;

use crate::experiment::config::ConfigErrors;
use crate::experiment::outputs::{ReportContent, Table};
use crate::experiment::study::{Plan, PointDoc, Study};

/// The speculation study.
pub struct SpeculationStudy;

impl Study for SpeculationStudy {
    fn kind(&self) -> &'static str {
        "speculation"
    }

    fn summary(&self) -> &'static str {
        "speculative decoding with real drafters: tokens per target call, observed vs exact acceptance"
    }

    fn plan(&self, doc: &PointDoc) -> Result<Box<dyn Plan>, ConfigErrors> {
        Ok(Box::new(plan::SpeculationPlan::new(
            config::SpeculationConfig::from_doc(doc)?,
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
