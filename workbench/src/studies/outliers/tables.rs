//! The outlier study's tables.

use super::plan::SchemeResult;
use crate::experiment::outputs::{Column, Table};

/// `outlier_summary` (one row per scheme × site) and `outlier_channels` (one row
/// per scheme × site × channel).
pub fn build(results: &[SchemeResult]) -> Vec<Table> {
    let mut s: Vec<(&str, &super::plan::SiteResult)> = Vec::new();
    for r in results {
        for site in &r.sites {
            s.push((&r.scheme, site));
        }
    }
    let text = |f: &dyn Fn(&(&str, &super::plan::SiteResult)) -> String| {
        Column::Str(s.iter().map(|x| Some(f(x))).collect())
    };
    let int = |f: &dyn Fn(&(&str, &super::plan::SiteResult)) -> i64| {
        Column::I64(s.iter().map(|x| Some(f(x))).collect())
    };
    let float = |f: &dyn Fn(&(&str, &super::plan::SiteResult)) -> f64| {
        Column::F64(s.iter().map(|x| Some(f(x))).collect())
    };
    let summary = Table::new("outlier_summary")
        .with("scheme", text(&|x| x.0.to_string()))
        .with("site", text(&|x| x.1.site.clone()))
        .with("kind", text(&|x| x.1.kind.clone()))
        .with("layer", int(&|x| x.1.layer))
        .with("channels", int(&|x| x.1.channels.len() as i64))
        .with("values_per_channel", int(&|x| x.1.count as i64))
        .with("kurtosis", float(&|x| x.1.kurtosis))
        .with("absmax", float(&|x| x.1.absmax))
        .with("max_over_median", float(&|x| x.1.max_over_median))
        .with("int8_outlier_features", int(&|x| x.1.int8_features as i64))
        .with("massive_activations", int(&|x| x.1.massive as i64));
    let mut rows = Vec::new();
    for (scheme, site) in &s {
        for (c, ch) in site.channels.iter().enumerate() {
            rows.push((*scheme, *site, c, ch));
        }
    }
    let channels = Table::new("outlier_channels")
        .with(
            "scheme",
            Column::Str(rows.iter().map(|r| Some(r.0.to_string())).collect()),
        )
        .with(
            "site",
            Column::Str(rows.iter().map(|r| Some(r.1.site.clone())).collect()),
        )
        .with(
            "kind",
            Column::Str(rows.iter().map(|r| Some(r.1.kind.clone())).collect()),
        )
        .with(
            "layer",
            Column::I64(rows.iter().map(|r| Some(r.1.layer)).collect()),
        )
        .with(
            "channel",
            Column::I64(rows.iter().map(|r| Some(r.2 as i64)).collect()),
        )
        .with(
            "absmax",
            Column::F64(rows.iter().map(|r| Some(r.3.absmax)).collect()),
        )
        .with(
            "mean",
            Column::F64(rows.iter().map(|r| Some(r.3.mean)).collect()),
        )
        .with(
            "std",
            Column::F64(rows.iter().map(|r| Some(r.3.std)).collect()),
        )
        .with(
            "kurtosis",
            Column::F64(rows.iter().map(|r| Some(r.3.kurtosis)).collect()),
        )
        .with(
            "abs_q99",
            Column::F64(rows.iter().map(|r| Some(r.3.abs_q99)).collect()),
        );
    vec![summary, channels]
}
