//! Muon versus AdamW for quantization-aware training (`kind = "qat"`): each
//! optimizer fine-tunes a trained model (or trains one from scratch) with its
//! weights and activations fake-quantized, over its own learning-rate sweep and
//! several seeds, against full-precision training followed by post-training
//! quantization; outliers of weights and activations are tracked throughout.

pub mod config;
pub mod data;
pub mod figures;
pub mod measure;
pub mod plan;
pub mod report;
pub mod stats;
pub mod tables;
mod validate;

use crate::experiment::config::{ConfigErrors, KeyPath};
use crate::experiment::outputs::{ReportContent, Table};
use crate::experiment::study::{Plan, PointDoc, Study};

/// The QAT study.
pub struct QatStudy;

impl Study for QatStudy {
    fn kind(&self) -> &'static str {
        "qat"
    }

    fn summary(&self) -> &'static str {
        "Muon vs AdamW for quantization-aware training: lr sweeps, seeds, quantized perplexity, outliers"
    }

    fn plan(&self, doc: &PointDoc) -> Result<Box<dyn Plan>, ConfigErrors> {
        let config = config::QatConfig::from_doc(doc)?;
        let plan = plan::QatPlan::new(config).map_err(|e| {
            ConfigErrors(vec![doc.error_at(
                &KeyPath::root().key("model").key("checkpoint"),
                format!("cannot open the checkpoint: {e:#}"),
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
