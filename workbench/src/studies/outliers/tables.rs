//! The outlier study's tables.

use std::collections::BTreeMap;

use super::config::Criteria;
use super::plan::SchemeResult;
use crate::experiment::outputs::{Column, Table};

/// (scheme, site kind, channel).
type FeatureKey = (String, String, usize);

/// LLM.int8() outlier features: per (scheme, site kind), the channels that meet
/// the token-share criterion in at least `int8_layer_share` of that kind's
/// layers. Returns (scheme, kind, channel) → (qualifying layers, layers).
fn int8_features(
    results: &[SchemeResult],
    criteria: &Criteria,
) -> BTreeMap<FeatureKey, (usize, usize)> {
    let mut layers: BTreeMap<(String, String), usize> = BTreeMap::new();
    let mut hits: BTreeMap<FeatureKey, usize> = BTreeMap::new();
    for r in results {
        for site in &r.sites {
            *layers
                .entry((r.scheme.clone(), site.kind.clone()))
                .or_default() += 1;
            for (c, ch) in site.channels.iter().enumerate() {
                if site.count > 0 && ch.int8_share >= criteria.int8_token_share {
                    *hits
                        .entry((r.scheme.clone(), site.kind.clone(), c))
                        .or_default() += 1;
                }
            }
        }
    }
    hits.into_iter()
        .filter_map(|(k, n)| {
            let total = layers[&(k.0.clone(), k.1.clone())];
            (n as f64 >= criteria.int8_layer_share * total as f64 && n > 0)
                .then_some((k, (n, total)))
        })
        .collect()
}

/// `outlier_summary` (one row per scheme × site), `outlier_channels` (one row
/// per scheme × site × channel), `outlier_features` (LLM.int8() features across
/// layers), `massive_activations` (where they occur) and `outlier_histograms`
/// (pooled |x| histogram per site).
pub fn build(results: &[SchemeResult], criteria: &Criteria) -> Vec<Table> {
    let features = int8_features(results, criteria);
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
            "abs_q50",
            Column::F64(rows.iter().map(|r| Some(r.3.abs_q50)).collect()),
        )
        .with(
            "abs_q99",
            Column::F64(rows.iter().map(|r| Some(r.3.abs_q99)).collect()),
        )
        .with(
            "abs_q999",
            Column::F64(rows.iter().map(|r| Some(r.3.abs_q999)).collect()),
        )
        .with(
            "int8_share",
            Column::F64(rows.iter().map(|r| Some(r.3.int8_share)).collect()),
        )
        .with(
            "int8_feature",
            Column::Bool(
                rows.iter()
                    .map(|r| Some(features.contains_key(&(r.0.to_string(), r.1.kind.clone(), r.2))))
                    .collect(),
            ),
        );
    let f: Vec<(&FeatureKey, &(usize, usize))> = features.iter().collect();
    let feature_table = Table::new("outlier_features")
        .with(
            "scheme",
            Column::Str(f.iter().map(|x| Some(x.0 .0.clone())).collect()),
        )
        .with(
            "kind",
            Column::Str(f.iter().map(|x| Some(x.0 .1.clone())).collect()),
        )
        .with(
            "channel",
            Column::I64(f.iter().map(|x| Some(x.0 .2 as i64)).collect()),
        )
        .with(
            "layers_qualifying",
            Column::I64(f.iter().map(|x| Some(x.1 .0 as i64)).collect()),
        )
        .with(
            "layers",
            Column::I64(f.iter().map(|x| Some(x.1 .1 as i64)).collect()),
        );
    let mut m = Vec::new();
    for (scheme, site) in &s {
        for h in &site.massive_hits {
            m.push((*scheme, *site, h));
        }
    }
    let massive = Table::new("massive_activations")
        .with(
            "scheme",
            Column::Str(m.iter().map(|x| Some(x.0.to_string())).collect()),
        )
        .with(
            "site",
            Column::Str(m.iter().map(|x| Some(x.1.site.clone())).collect()),
        )
        .with(
            "kind",
            Column::Str(m.iter().map(|x| Some(x.1.kind.clone())).collect()),
        )
        .with(
            "layer",
            Column::I64(m.iter().map(|x| Some(x.1.layer)).collect()),
        )
        .with(
            "channel",
            Column::I64(m.iter().map(|x| Some(x.2.channel)).collect()),
        )
        .with(
            "sequence",
            Column::I64(m.iter().map(|x| Some(x.2.sequence)).collect()),
        )
        .with(
            "position",
            Column::I64(m.iter().map(|x| Some(x.2.position)).collect()),
        )
        .with(
            "token",
            Column::I64(m.iter().map(|x| Some(x.2.token)).collect()),
        )
        .with(
            "value",
            Column::F64(m.iter().map(|x| Some(x.2.value)).collect()),
        );
    let mut h = Vec::new();
    for (scheme, site) in &s {
        for &(edge, count) in &site.histogram {
            h.push((*scheme, *site, edge, count));
        }
    }
    let histograms = Table::new("outlier_histograms")
        .with(
            "scheme",
            Column::Str(h.iter().map(|x| Some(x.0.to_string())).collect()),
        )
        .with(
            "site",
            Column::Str(h.iter().map(|x| Some(x.1.site.clone())).collect()),
        )
        .with(
            "kind",
            Column::Str(h.iter().map(|x| Some(x.1.kind.clone())).collect()),
        )
        .with(
            "layer",
            Column::I64(h.iter().map(|x| Some(x.1.layer)).collect()),
        )
        .with(
            "abs_low",
            Column::F64(h.iter().map(|x| Some(x.2)).collect()),
        )
        .with(
            "count",
            Column::I64(h.iter().map(|x| Some(x.3 as i64)).collect()),
        );
    vec![summary, channels, feature_table, massive, histograms]
}
