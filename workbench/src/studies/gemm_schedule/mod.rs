//! The GEMM tile-schedule study (`kind = "gemm_schedule"`): does the order in
//! which output tiles of a W8A8 matrix product are visited (row-major,
//! column-major, grouped, Morton, Hilbert; `wb_kernels::gemm`) change its
//! speed, for prefill (M = 128..4096) and speculative verification
//! (M = 1..16) against real models' weight shapes, and squares? Measured on
//! the CPU here, with candle's f32 matmul in the same unit; a GPU run's CSVs
//! (`kernels/gpu/run_gemm.sh`, with Nsight Compute's L2 hit rates) can be
//! shown beside it.

pub mod config;
pub mod gpu;
pub mod plan;
pub mod report;
pub mod tables;

use crate::experiment::config::{ConfigErrors, KeyPath};
use crate::experiment::outputs::{ReportContent, Table};
use crate::experiment::study::{Plan, PointDoc, Study};

/// The gemm_schedule study.
pub struct GemmScheduleStudy;

impl Study for GemmScheduleStudy {
    fn kind(&self) -> &'static str {
        "gemm_schedule"
    }

    fn summary(&self) -> &'static str {
        "W8A8 GEMM tile order (row/column-major, grouped, Morton, Hilbert) on model shapes: time, TOP/s, L2 hits"
    }

    fn plan(&self, doc: &PointDoc) -> Result<Box<dyn Plan>, ConfigErrors> {
        let config = config::GemmScheduleConfig::from_doc(doc)?;
        plan::GemmSchedulePlan::new(config)
            .map(|p| Box::new(p) as Box<dyn Plan>)
            .map_err(|e| {
                doc.error_at(&KeyPath::root().key("gpu"), format!("{e:#}"))
                    .into()
            })
    }

    fn report(
        &self,
        tables: &[Table],
        manifest: &serde_json::Value,
    ) -> anyhow::Result<ReportContent> {
        report::content(tables, manifest)
    }
}
