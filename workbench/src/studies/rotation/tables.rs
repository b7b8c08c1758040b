//! The rotation study's tables: `rotation_layers` (per layer and setting),
//! `rotation_summary` (mean and worst over layers) and `rotation_model` (whole
//! model, per setting, with 95% intervals over sequences).

use super::config::RotationConfig;
use super::layers::{LayerRow, SchemeLayers};
use super::whole_model::SchemeModel;
use crate::experiment::outputs::{Column, Table};
use crate::studies::eval::plan::VariantResult;
use crate::studies::eval::tables::eval_table;

fn strs<T>(rows: &[T], f: impl Fn(&T) -> String) -> Column {
    Column::Str(rows.iter().map(|r| Some(f(r))).collect())
}

fn ints<T>(rows: &[T], f: impl Fn(&T) -> i64) -> Column {
    Column::I64(rows.iter().map(|r| Some(f(r))).collect())
}

fn floats<T>(rows: &[T], f: impl Fn(&T) -> f64) -> Column {
    Column::F64(rows.iter().map(|r| Some(f(r))).collect())
}

/// `rotation_layers` and `rotation_summary`.
pub fn layer_tables(results: &[SchemeLayers]) -> Vec<Table> {
    let r: Vec<(&str, &LayerRow)> = results
        .iter()
        .flat_map(|s| s.rows.iter().map(move |row| (s.scheme.as_str(), row)))
        .collect();
    let layers = Table::new("rotation_layers")
        .with("scheme", strs(&r, |x| x.0.to_string()))
        .with("site", strs(&r, |x| x.1.site.clone()))
        .with("layer", ints(&r, |x| x.1.layer))
        .with("weights", strs(&r, |x| x.1.weights.clone()))
        .with("activation_bits", ints(&r, |x| x.1.activation_bits as i64))
        .with("rel_error", floats(&r, |x| x.1.rel_error))
        .with("sqnr_db", floats(&r, |x| x.1.sqnr_db))
        .with("weight_rel_error", floats(&r, |x| x.1.weight_rel_error))
        .with(
            "activation_rel_error",
            floats(&r, |x| x.1.activation_rel_error),
        );
    // Mean and worst over layers per setting, in first-seen order.
    let mut keys: Vec<(String, String, u8)> = Vec::new();
    for (s, row) in &r {
        let k = (s.to_string(), row.weights.clone(), row.activation_bits);
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    let stats: Vec<[f64; 5]> = keys
        .iter()
        .map(|k| {
            let rows: Vec<&LayerRow> = r
                .iter()
                .filter(|(s, row)| *s == k.0 && row.weights == k.1 && row.activation_bits == k.2)
                .map(|(_, row)| *row)
                .collect();
            let n = rows.len() as f64;
            let mean = |f: fn(&LayerRow) -> f64| rows.iter().map(|x| f(x)).sum::<f64>() / n;
            [
                n,
                mean(|x| x.sqnr_db),
                rows.iter().map(|x| x.sqnr_db).fold(f64::INFINITY, f64::min),
                mean(|x| x.weight_rel_error),
                mean(|x| x.activation_rel_error),
            ]
        })
        .collect();
    let summary = Table::new("rotation_summary")
        .with("scheme", strs(&keys, |k| k.0.clone()))
        .with("weights", strs(&keys, |k| k.1.clone()))
        .with("activation_bits", ints(&keys, |k| k.2 as i64))
        .with("layers", ints(&stats, |s| s[0] as i64))
        .with("mean_sqnr_db", floats(&stats, |s| s[1]))
        .with("worst_sqnr_db", floats(&stats, |s| s[2]))
        .with("mean_weight_rel_error", floats(&stats, |s| s[3]))
        .with("mean_activation_rel_error", floats(&stats, |s| s[4]));
    vec![layers, summary]
}

/// `rotation_model`: the eval study's metrics per (scheme, weights,
/// activation bits, KV bits).
pub fn model_table(config: &RotationConfig, results: &[SchemeModel]) -> Table {
    let mut variants = Vec::new();
    let mut bits = Vec::new();
    let mut applied = Vec::new();
    for scheme in results {
        for s in &scheme.settings {
            variants.push(VariantResult {
                rotation: scheme.scheme.clone(),
                weights: s.weights.clone(),
                sequences: s.sequences.clone(),
            });
            bits.push((s.activation_bits as i64, s.kv_bits as i64));
            applied.push(scheme.applied.clone());
        }
    }
    let mut table = eval_table(&config.as_eval(), &variants);
    table.name = "rotation_model".into();
    if let Some(first) = table.columns.first_mut() {
        first.0 = "scheme".into();
    }
    table
        .columns
        .insert(2, ("activation_bits".into(), ints(&bits, |b| b.0)));
    table
        .columns
        .insert(3, ("kv_bits".into(), ints(&bits, |b| b.1)));
    table.with("applied", strs(&applied, |a| a.clone()))
}
