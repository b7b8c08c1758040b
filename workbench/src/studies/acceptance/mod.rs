//! The acceptance study (`kind = "acceptance"`): acceptance rules of speculative
//! decoding on synthetic target/draft pairs, exact formulas beside Monte Carlo.

pub mod config;
mod figures;
pub mod pairs;
pub mod plan;
pub mod report;
pub mod tables;

use crate::experiment::config::ConfigErrors;
use crate::experiment::outputs::{ReportContent, Table};
use crate::experiment::study::{Plan, PointDoc, Study};

/// The acceptance study.
pub struct AcceptanceStudy;

impl Study for AcceptanceStudy {
    fn kind(&self) -> &'static str {
        "acceptance"
    }

    fn summary(&self) -> &'static str {
        "acceptance rules of speculative decoding (naive, standard, gumbel, greedy, typical, \
         specinfer) on synthetic p/q pairs: exact formulas, Monte Carlo, losslessness, speedup"
    }

    fn plan(&self, doc: &PointDoc) -> Result<Box<dyn Plan>, ConfigErrors> {
        let config = config::AcceptanceConfig::from_doc(doc)?;
        Ok(Box::new(plan::AcceptancePlan::new(config)))
    }

    fn report(
        &self,
        tables: &[Table],
        manifest: &serde_json::Value,
    ) -> anyhow::Result<ReportContent> {
        report::content(tables, manifest)
    }
}
