//! The evaluation table: one row per weight variant.

use super::config::EvalConfig;
use super::plan::{SequenceSums, VariantResult};
use crate::experiment::outputs::{Column, Table};
use crate::primitives::stats::mean_interval;

/// Mean per position and its 95% interval, treating sequences as the
/// independent units (positions within a sequence are correlated).
fn per_sequence(results: &VariantResult, f: impl Fn(&SequenceSums) -> f64) -> (f64, f64, f64) {
    let values: Vec<f64> = results
        .sequences
        .iter()
        .map(|s| f(s) / s.positions as f64)
        .collect();
    let sum: f64 = values.iter().sum();
    let sum_sq: f64 = values.iter().map(|v| v * v).sum();
    mean_interval(sum, sum_sq, values.len() as u64)
}

/// A per-sequence sum to average per position.
type Metric = fn(&SequenceSums) -> f64;

/// The `eval` table.
pub fn eval_table(config: &EvalConfig, results: &[VariantResult]) -> Table {
    let mut table = Table::new("eval")
        .with(
            "rotation",
            Column::Str(
                results
                    .iter()
                    .map(|r| {
                        Some(if r.rotation.is_empty() {
                            "none".to_string()
                        } else {
                            r.rotation.clone()
                        })
                    })
                    .collect(),
            ),
        )
        .with(
            "weights",
            Column::Str(results.iter().map(|r| Some(r.weights.clone())).collect()),
        )
        .with(
            "sequences",
            Column::I64(
                results
                    .iter()
                    .map(|r| Some(r.sequences.len() as i64))
                    .collect(),
            ),
        )
        .with(
            "context_length",
            Column::I64(
                results
                    .iter()
                    .map(|_| Some(config.data.length as i64))
                    .collect(),
            ),
        )
        .with(
            "positions",
            Column::I64(
                results
                    .iter()
                    .map(|r| Some(r.sequences.iter().map(|s| s.positions as i64).sum()))
                    .collect(),
            ),
        );
    let metrics: [(&str, Metric); 6] = [
        ("cross_entropy", |s| s.cross_entropy),
        ("kl", |s| s.kl),
        ("ce_minus_reference", |s| {
            s.cross_entropy - s.reference_cross_entropy
        }),
        ("top1_agreement", |s| s.top1),
        ("accept_standard", |s| s.accept_standard),
        ("accept_gumbel", |s| s.accept_gumbel),
    ];
    for (name, f) in metrics {
        // Intervals stay inside each metric's range (rates in [0, 1], KL >= 0).
        let (floor, ceiling) = match name {
            "top1_agreement" | "accept_standard" | "accept_gumbel" => (0.0, 1.0),
            "kl" => (0.0, f64::INFINITY),
            _ => (f64::NEG_INFINITY, f64::INFINITY),
        };
        let stats: Vec<(f64, f64, f64)> = results
            .iter()
            .map(|r| per_sequence(r, f))
            .map(|(m, lo, hi)| (m, lo.max(floor), hi.min(ceiling)))
            .collect();
        table = table
            .with(name, Column::F64(stats.iter().map(|s| Some(s.0)).collect()))
            .with(
                &format!("{name}_ci_low"),
                Column::F64(stats.iter().map(|s| Some(s.1)).collect()),
            )
            .with(
                &format!("{name}_ci_high"),
                Column::F64(stats.iter().map(|s| Some(s.2)).collect()),
            );
        if name == "cross_entropy" {
            table = table.with(
                "perplexity",
                Column::F64(stats.iter().map(|s| Some(s.0.exp())).collect()),
            );
        }
    }
    table
}
