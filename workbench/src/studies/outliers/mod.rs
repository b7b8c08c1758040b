//! The outlier study (`kind = "outliers"`): per-channel statistics of every
//! activation site, the residual stream and the weights, before and after each
//! rotation scheme.

pub mod config;
pub mod plan;
pub mod report;
pub mod tables;

use crate::experiment::config::ConfigErrors;
use crate::experiment::outputs::{ReportContent, Table};
use crate::experiment::study::{Plan, PointDoc, Study};

/// The outlier study.
pub struct OutliersStudy;

impl Study for OutliersStudy {
    fn kind(&self) -> &'static str {
        "outliers"
    }

    fn summary(&self) -> &'static str {
        "per-channel statistics (kurtosis, absmax, outlier features, massive activations) of \
         activations and weights, before and after rotations"
    }

    fn plan(&self, doc: &PointDoc) -> Result<Box<dyn Plan>, ConfigErrors> {
        Ok(Box::new(plan::OutliersPlan::new(
            config::OutliersConfig::from_doc(doc)?,
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
