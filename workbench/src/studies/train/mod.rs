//! Training recipes (`kind = "train"`): a small Llama-style model trained from
//! scratch on a text, with its own byte-level BPE tokenizer, saved in Hugging
//! Face layout for the other studies to open.

pub mod config;
pub mod distill;
pub mod plan;
pub mod report;

use crate::experiment::config::ConfigErrors;
use crate::experiment::outputs::{ReportContent, Table};
use crate::experiment::study::{Plan, PointDoc, Study};

/// The training study.
pub struct TrainStudy;

impl Study for TrainStudy {
    fn kind(&self) -> &'static str {
        "train"
    }

    fn summary(&self) -> &'static str {
        "train a small Llama-style model and its BPE tokenizer from scratch on a text; resumable"
    }

    fn plan(&self, doc: &PointDoc) -> Result<Box<dyn Plan>, ConfigErrors> {
        Ok(Box::new(plan::TrainPlan::new(
            config::TrainConfig::from_doc(doc)?,
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
