//! The acceptance study's tables, built from its unit results.

use super::config::AcceptanceConfig;
use super::plan::{estimate, UnitResult};
use crate::experiment::outputs::{Column, Table};
use crate::primitives::acceptance::exact;

fn strs<'a>(rows: impl Iterator<Item = &'a str>) -> Column {
    Column::Str(rows.map(|s| Some(s.to_string())).collect())
}
fn ints(rows: impl Iterator<Item = i64>) -> Column {
    Column::I64(rows.map(Some).collect())
}
fn floats(rows: impl Iterator<Item = f64>) -> Column {
    Column::F64(rows.map(Some).collect())
}
fn opt_floats(rows: impl Iterator<Item = Option<f64>>) -> Column {
    Column::F64(rows.collect())
}
fn bools(rows: impl Iterator<Item = bool>) -> Column {
    Column::Bool(rows.map(Some).collect())
}

/// All tables of one study point: `acceptance`, `tokens_per_call`, `speedup`, `emitted`.
pub fn build(config: &AcceptanceConfig, results: &[UnitResult]) -> Vec<Table> {
    vec![
        acceptance(config, results),
        tokens_per_call(results),
        speedup(config, results),
        emitted(results),
    ]
}

/// The main table: one row per pair x rule x drafts x temperature.
fn acceptance(config: &AcceptanceConfig, rs: &[UnitResult]) -> Table {
    let est: Vec<(f64, f64, f64)> = rs.iter().map(estimate).collect();
    let lossless_pass: Vec<bool> = rs.iter().map(|r| r.chi2_p > config.significance).collect();
    Table::new("acceptance")
        .with("pair", strs(rs.iter().map(|r| r.pair.as_str())))
        .with("family", strs(rs.iter().map(|r| r.family.as_str())))
        .with("vocab", ints(rs.iter().map(|r| r.vocab as i64)))
        .with("rule", strs(rs.iter().map(|r| r.rule.as_str())))
        .with("drafts", ints(rs.iter().map(|r| r.drafts as i64)))
        .with("temperature", floats(rs.iter().map(|r| r.temperature)))
        .with("tv", floats(rs.iter().map(|r| r.tv)))
        .with("exact", opt_floats(rs.iter().map(|r| r.exact)))
        .with("estimate", floats(est.iter().map(|e| e.0)))
        .with("ci_low", floats(est.iter().map(|e| e.1)))
        .with("ci_high", floats(est.iter().map(|e| e.2)))
        .with("trials", ints(rs.iter().map(|r| r.trials as i64)))
        .with("accepted", ints(rs.iter().map(|r| r.accepted as i64)))
        .with(
            "exact_in_ci",
            Column::Bool(
                rs.iter()
                    .zip(&est)
                    .map(|(r, e)| r.exact.map(|x| e.1 <= x && x <= e.2))
                    .collect(),
            ),
        )
        .with("bound", opt_floats(rs.iter().map(|r| r.bound)))
        .with("emitted_tv", floats(rs.iter().map(|r| r.emitted_tv)))
        .with("chi2", opt_floats(rs.iter().map(|r| r.chi2)))
        .with("chi2_dof", ints(rs.iter().map(|r| r.chi2_dof as i64)))
        .with("chi2_p", floats(rs.iter().map(|r| r.chi2_p)))
        .with(
            "lossless_by_design",
            bools(rs.iter().map(|r| r.lossless_by_design)),
        )
        .with("lossless_pass", bools(lossless_pass.into_iter()))
}

/// Tokens per target call against gamma: the model from alpha and the block estimate.
fn tokens_per_call(rs: &[UnitResult]) -> Table {
    let mut rows: Vec<(
        &UnitResult,
        usize,
        f64,
        &str,
        f64,
        &super::plan::BlockEstimate,
    )> = Vec::new();
    for r in rs {
        let (alpha, source) = match r.exact {
            Some(x) => (x, "exact"),
            None => (estimate(r).0, "estimate"),
        };
        for b in &r.blocks {
            rows.push((
                r,
                b.gamma,
                alpha,
                source,
                exact::tokens_per_call(alpha, b.gamma),
                b,
            ));
        }
    }
    Table::new("tokens_per_call")
        .with("pair", strs(rows.iter().map(|x| x.0.pair.as_str())))
        .with("rule", strs(rows.iter().map(|x| x.0.rule.as_str())))
        .with("drafts", ints(rows.iter().map(|x| x.0.drafts as i64)))
        .with("temperature", floats(rows.iter().map(|x| x.0.temperature)))
        .with("tv", floats(rows.iter().map(|x| x.0.tv)))
        .with("gamma", ints(rows.iter().map(|x| x.1 as i64)))
        .with("alpha", floats(rows.iter().map(|x| x.2)))
        .with("alpha_source", strs(rows.iter().map(|x| x.3)))
        .with("model", floats(rows.iter().map(|x| x.4)))
        .with("estimate", floats(rows.iter().map(|x| x.5.mean)))
        .with("ci_low", floats(rows.iter().map(|x| x.5.low)))
        .with("ci_high", floats(rows.iter().map(|x| x.5.high)))
        .with("blocks", ints(rows.iter().map(|x| x.5.blocks as i64)))
}

/// The speedup model over gamma and the draft/target cost ratio c.
fn speedup(config: &AcceptanceConfig, rs: &[UnitResult]) -> Table {
    struct Row<'a> {
        r: &'a UnitResult,
        gamma: usize,
        c: f64,
        alpha: f64,
        tokens: f64,
        speedup: f64,
        low: f64,
        high: f64,
    }
    let mut rows = Vec::new();
    for r in rs {
        let (est, lo, hi) = estimate(r);
        let alpha = r.exact.unwrap_or(est);
        for gamma in 1..=config.gamma_max {
            for &c in &config.cost_ratios {
                rows.push(Row {
                    r,
                    gamma,
                    c,
                    alpha,
                    tokens: exact::tokens_per_call(alpha, gamma),
                    speedup: exact::speedup(alpha, gamma, c),
                    low: exact::speedup(lo, gamma, c),
                    high: exact::speedup(hi, gamma, c),
                });
            }
        }
    }
    Table::new("speedup")
        .with("pair", strs(rows.iter().map(|x| x.r.pair.as_str())))
        .with("rule", strs(rows.iter().map(|x| x.r.rule.as_str())))
        .with("drafts", ints(rows.iter().map(|x| x.r.drafts as i64)))
        .with("temperature", floats(rows.iter().map(|x| x.r.temperature)))
        .with("tv", floats(rows.iter().map(|x| x.r.tv)))
        .with("gamma", ints(rows.iter().map(|x| x.gamma as i64)))
        .with("cost_ratio", floats(rows.iter().map(|x| x.c)))
        .with("alpha", floats(rows.iter().map(|x| x.alpha)))
        .with("tokens_per_call", floats(rows.iter().map(|x| x.tokens)))
        .with("speedup", floats(rows.iter().map(|x| x.speedup)))
        .with("speedup_ci_low", floats(rows.iter().map(|x| x.low)))
        .with("speedup_ci_high", floats(rows.iter().map(|x| x.high)))
}

/// Emitted-token frequencies against p_T, for small vocabularies.
fn emitted(rs: &[UnitResult]) -> Table {
    let mut rows = Vec::new();
    for r in rs {
        if let Some((p, counts)) = &r.histogram {
            for (token, (&pt, &count)) in p.iter().zip(counts).enumerate() {
                rows.push((r, token, pt, count));
            }
        }
    }
    Table::new("emitted")
        .with("pair", strs(rows.iter().map(|x| x.0.pair.as_str())))
        .with("rule", strs(rows.iter().map(|x| x.0.rule.as_str())))
        .with("drafts", ints(rows.iter().map(|x| x.0.drafts as i64)))
        .with("temperature", floats(rows.iter().map(|x| x.0.temperature)))
        .with("tv", floats(rows.iter().map(|x| x.0.tv)))
        .with("token", ints(rows.iter().map(|x| x.1 as i64)))
        .with("p", floats(rows.iter().map(|x| x.2)))
        .with("count", ints(rows.iter().map(|x| x.3 as i64)))
        .with(
            "frequency",
            floats(rows.iter().map(|x| x.3 as f64 / x.0.trials as f64)),
        )
}
