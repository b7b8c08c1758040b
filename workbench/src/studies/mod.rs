//! The experiment families. Each is one module implementing
//! [`Study`](crate::experiment::study::Study); adding one means adding its module
//! and one line to [`all`].

pub mod acceptance;
pub mod eval;
pub mod gemm_schedule;
pub mod outliers;
pub mod qat;
pub mod rotation;
pub mod speculation;
pub mod train;

use crate::experiment::study::Study;

/// Every study the workbench knows, in the order `workbench list` shows them.
pub fn all() -> Vec<&'static dyn Study> {
    vec![
        &acceptance::AcceptanceStudy,
        &eval::EvalStudy,
        &train::TrainStudy,
        &outliers::OutliersStudy,
        &rotation::RotationStudy,
        &qat::QatStudy,
        &speculation::SpeculationStudy,
        &gemm_schedule::GemmScheduleStudy,
    ]
}

/// The study a config's `kind` names.
pub fn find(kind: &str) -> Option<&'static dyn Study> {
    all().into_iter().find(|s| s.kind() == kind)
}
