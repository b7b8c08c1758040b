//! Validation: rejecting figures with values that cannot be drawn, so that bad data
//! is reported as an error instead of being drawn wrongly or causing a panic.

use anyhow::ensure;

use crate::experiment::outputs::{Figure, Scale, SeriesStyle};

/// Checks for values that cannot be drawn, and for heat-map rows mixed with other
/// series.
pub(super) fn validate(fig: &Figure) -> anyhow::Result<()> {
    let first = |cells: bool| {
        fig.series
            .iter()
            .position(|s| (s.style == SeriesStyle::Cells) == cells)
    };
    if let (Some(c), Some(o)) = (first(true), first(false)) {
        anyhow::bail!(
            "figure {:?} mixes heat-map rows with other series: series {c} ({:?}) is Cells \
             but series {o} ({:?}) is {:?}; a heat map needs every series to be Cells",
            fig.name,
            fig.series[c].name,
            fig.series[o].name,
            fig.series[o].style
        );
    }
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
