//! Validation: rejecting figures with values that cannot be drawn, so that bad data
//! is reported as an error instead of being drawn wrongly or causing a panic.

use anyhow::ensure;

use crate::experiment::outputs::{Figure, Scale};

/// Checks for values that cannot be drawn.
pub(super) fn validate(fig: &Figure) -> anyhow::Result<()> {
    for (i, s) in fig.series.iter().enumerate() {
        for (j, p) in s.points.iter().enumerate() {
            let at = || {
                format!(
                    "figure {:?}, series {i} ({:?}), point {j}",
                    fig.name, s.name
                )
            };
            ensure!(
                p.x.is_finite() && p.y.is_finite(),
                "{}: coordinates must be finite, got x = {}, y = {}",
                at(),
                p.x,
                p.y
            );
            for b in [p.y_low, p.y_high].into_iter().flatten() {
                ensure!(b.is_finite(), "{}: error bar bound {b} is not finite", at());
            }
            if let (Some(lo), Some(hi)) = (p.y_low, p.y_high) {
                ensure!(lo <= hi, "{}: error bar runs from {lo} down to {hi}", at());
            }
        }
    }
    if let Some((lo, hi)) = fig.y_range {
        ensure!(
            lo.is_finite() && hi.is_finite() && lo < hi,
            "figure {:?}: y_range ({lo}, {hi}) must be finite and increasing",
            fig.name
        );
        if fig.y_scale == Scale::Log {
            ensure!(
                lo > 0.0,
                "figure {:?}: a log y axis needs y_range above 0, got ({lo}, {hi})",
                fig.name
            );
        }
    }
    Ok(())
}
