//! The evaluation study (`kind = "eval"`): a model's weight variants against the
//! full-precision model on the same tokens — perplexity, KL, top-1 agreement and
//! the acceptance rates of speculative decoding with the variant as drafter.

pub mod config;
pub mod plan;
pub mod report;
pub mod tables;

use crate::experiment::config::ConfigErrors;
use crate::experiment::outputs::{ReportContent, Table};
use crate::experiment::study::{Plan, PointDoc, Study};

/// The evaluation study.
pub struct EvalStudy;

impl Study for EvalStudy {
    fn kind(&self) -> &'static str {
        "eval"
    }

    fn summary(&self) -> &'static str {
        "a model's weight variants against full precision on the same tokens: perplexity, KL, \
         top-1 agreement, acceptance as a drafter"
    }

    fn plan(&self, doc: &PointDoc) -> Result<Box<dyn Plan>, ConfigErrors> {
        let config = config::EvalConfig::from_doc(doc)?;
        let plan = plan::EvalPlan::new(config).map_err(|e| {
            ConfigErrors(vec![doc.error_at(
                &crate::experiment::config::KeyPath::root()
                    .key("model")
                    .key("checkpoint"),
                format!("{e:#}"),
            )])
        })?;
        Ok(Box::new(plan))
    }

    fn report(
        &self,
        tables: &[Table],
        manifest: &serde_json::Value,
    ) -> anyhow::Result<ReportContent> {
        report::content(tables, manifest)
    }
}
