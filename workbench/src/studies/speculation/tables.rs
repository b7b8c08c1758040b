//! `speculation_runs` (one row per drafter × rule × temperature × γ) and
//! `speculation_positions` (one row per draft index as well).

use super::config::{DrafterSpec, SpeculationConfig};
use super::plan::UnitResult;
use crate::experiment::outputs::{Column, Table};
use crate::primitives::stats::{mean_interval, wilson_interval};

/// Floats, with NaN (no drafted token to rate) as an empty cell.
fn col_f(v: &[f64]) -> Column {
    Column::F64(v.iter().map(|x| (!x.is_nan()).then_some(*x)).collect())
}
fn col_i(v: &[i64]) -> Column {
    Column::I64(v.iter().map(|x| Some(*x)).collect())
}
fn col_s(v: &[String]) -> Column {
    Column::Str(v.iter().map(|x| Some(x.clone())).collect())
}

/// (drafter, rule, temperature, γ, index, verified, accepted, Σ exact standard,
/// Σ exact Gumbel).
type PositionRow = (String, String, f64, i64, i64, u64, u64, f64, f64);

/// Both tables.
pub fn build(config: &SpeculationConfig, results: &[UnitResult]) -> Vec<Table> {
    let (mut drafter, mut rule, mut temp, mut gamma) = (vec![], vec![], vec![], vec![]);
    let (mut prompts, mut tokens, mut calls) = (vec![], vec![], vec![]);
    let (mut tpc, mut tpc_lo, mut tpc_hi) = (vec![], vec![], vec![]);
    let (mut acc, mut acc_lo, mut acc_hi) = (vec![], vec![], vec![]);
    let (mut ex_std, mut ex_gum, mut matches) = (vec![], vec![], vec![]);
    let mut speedups: Vec<Vec<f64>> = vec![Vec::new(); config.cost_ratios.len()];
    let mut pos: Vec<PositionRow> = Vec::new();
    for u in results {
        let model_drafter = matches!(
            DrafterSpec::parse(&u.drafter),
            Ok(DrafterSpec::Quantized(_))
        );
        for g in &u.gammas {
            drafter.push(u.drafter.clone());
            rule.push(u.rule.clone());
            temp.push(u.temperature);
            gamma.push(g.gamma as i64);
            prompts.push(g.prompts.len() as i64);
            let t: u64 = g.prompts.iter().map(|p| p.tokens).sum();
            let c: u64 = g.prompts.iter().map(|p| p.target_calls).sum();
            let drafted: u64 = g.prompts.iter().map(|p| p.drafted).sum();
            let accepted: u64 = g.prompts.iter().map(|p| p.accepted).sum();
            tokens.push(t as i64);
            calls.push(c as i64);
            // Tokens per target call with a 95% interval over prompts.
            let per: Vec<f64> = g
                .prompts
                .iter()
                .map(|p| p.tokens as f64 / p.target_calls.max(1) as f64)
                .collect();
            let (m, lo, hi) = mean_interval(
                per.iter().sum(),
                per.iter().map(|v| v * v).sum(),
                per.len() as u64,
            );
            tpc.push(m);
            tpc_lo.push(lo);
            tpc_hi.push(hi);
            let (lo, hi) = wilson_interval(accepted, drafted);
            acc.push(if drafted > 0 {
                accepted as f64 / drafted as f64
            } else {
                f64::NAN
            });
            acc_lo.push(lo);
            acc_hi.push(hi);
            let verified: u64 = g.positions.iter().map(|p| p.verified).sum();
            let v = verified.max(1) as f64;
            ex_std.push(g.positions.iter().map(|p| p.exact_standard).sum::<f64>() / v);
            ex_gum.push(g.positions.iter().map(|p| p.exact_gumbel).sum::<f64>() / v);
            matches.push(
                g.prompts.iter().filter(|p| p.matches_plain).count() as f64
                    / g.prompts.len().max(1) as f64,
            );
            // Plain decoding makes one target call per token; a round costs one
            // target call plus (for a model drafter) c per drafted token.
            for (k, &cost) in config.cost_ratios.iter().enumerate() {
                let draft_cost = if model_drafter {
                    cost * drafted as f64
                } else {
                    0.0
                };
                speedups[k].push(t as f64 / (c as f64 + draft_cost));
            }
            for (i, p) in g.positions.iter().enumerate() {
                pos.push((
                    u.drafter.clone(),
                    u.rule.clone(),
                    u.temperature,
                    g.gamma as i64,
                    i as i64,
                    p.verified,
                    p.accepted,
                    p.exact_standard,
                    p.exact_gumbel,
                ));
            }
        }
    }
    let mut runs = Table::new("speculation_runs")
        .with("drafter", col_s(&drafter))
        .with("rule", col_s(&rule))
        .with("temperature", col_f(&temp))
        .with("gamma", col_i(&gamma))
        .with("prompts", col_i(&prompts))
        .with("tokens", col_i(&tokens))
        .with("target_calls", col_i(&calls))
        .with("tokens_per_call", col_f(&tpc))
        .with("tokens_per_call_ci_low", col_f(&tpc_lo))
        .with("tokens_per_call_ci_high", col_f(&tpc_hi))
        .with("acceptance", col_f(&acc))
        .with("acceptance_ci_low", col_f(&acc_lo))
        .with("acceptance_ci_high", col_f(&acc_hi))
        .with("exact_standard", col_f(&ex_std))
        .with("exact_gumbel", col_f(&ex_gum))
        .with("matches_plain", col_f(&matches));
    for (k, &cost) in config.cost_ratios.iter().enumerate() {
        runs = runs.with(&format!("speedup_c{cost}"), col_f(&speedups[k]));
    }
    let rate: Vec<(f64, f64, f64)> = pos
        .iter()
        .map(|p| {
            let (lo, hi) = wilson_interval(p.6, p.5);
            (p.6 as f64 / p.5.max(1) as f64, lo, hi)
        })
        .collect();
    let v = |f: fn(&PositionRow) -> f64| -> Vec<f64> { pos.iter().map(f).collect() };
    let positions = Table::new("speculation_positions")
        .with(
            "drafter",
            col_s(&pos.iter().map(|p| p.0.clone()).collect::<Vec<_>>()),
        )
        .with(
            "rule",
            col_s(&pos.iter().map(|p| p.1.clone()).collect::<Vec<_>>()),
        )
        .with("temperature", col_f(&v(|p| p.2)))
        .with("gamma", col_i(&pos.iter().map(|p| p.3).collect::<Vec<_>>()))
        .with("index", col_i(&pos.iter().map(|p| p.4).collect::<Vec<_>>()))
        .with(
            "verified",
            col_i(&pos.iter().map(|p| p.5 as i64).collect::<Vec<_>>()),
        )
        .with(
            "accepted",
            col_i(&pos.iter().map(|p| p.6 as i64).collect::<Vec<_>>()),
        )
        .with(
            "acceptance",
            col_f(&rate.iter().map(|r| r.0).collect::<Vec<_>>()),
        )
        .with(
            "acceptance_ci_low",
            col_f(&rate.iter().map(|r| r.1).collect::<Vec<_>>()),
        )
        .with(
            "acceptance_ci_high",
            col_f(&rate.iter().map(|r| r.2).collect::<Vec<_>>()),
        )
        .with("exact_standard", col_f(&v(|p| p.7 / p.5.max(1) as f64)))
        .with("exact_gumbel", col_f(&v(|p| p.8 / p.5.max(1) as f64)));
    vec![runs, positions]
}
