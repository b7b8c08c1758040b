//! `speculation_runs` (one row per drafter × rule × temperature × filter ×
//! branches × tree shape × γ), `speculation_positions` (one row per draft index as well),
//! `speculation_lossless` (one row per tested method) and `speculation_timing`
//! (measured wall-clock seconds: the one table that differs between reruns).

use super::config::{DrafterSpec, SpeculationConfig};
use super::plan::{LosslessResult, UnitResult};
use crate::experiment::outputs::{Column, Table};
use crate::primitives::stats::{mean_interval, wilson_interval};
use crate::speculative::decode::SpecRule;
use crate::speculative::speedup::{measured_cost_ratio, modelled};

/// Columns filled row by row, in the order they are first named.
#[derive(Default)]
struct Rows {
    columns: Vec<(String, Column)>,
}

impl Rows {
    fn slot(&mut self, name: &str, empty: fn() -> Column) -> &mut Column {
        if let Some(i) = self.columns.iter().position(|(n, _)| n == name) {
            return &mut self.columns[i].1;
        }
        self.columns.push((name.into(), empty()));
        &mut self.columns.last_mut().expect("just pushed").1
    }
    /// A float; NaN (nothing to rate) becomes an empty cell.
    fn f(&mut self, name: &str, v: f64) {
        if let Column::F64(c) = self.slot(name, || Column::F64(Vec::new())) {
            c.push((!v.is_nan()).then_some(v));
        }
    }
    fn i(&mut self, name: &str, v: Option<i64>) {
        if let Column::I64(c) = self.slot(name, || Column::I64(Vec::new())) {
            c.push(v);
        }
    }
    fn s(&mut self, name: &str, v: Option<String>) {
        if let Column::Str(c) = self.slot(name, || Column::Str(Vec::new())) {
            c.push(v);
        }
    }
    fn b(&mut self, name: &str, v: bool) {
        if let Column::Bool(c) = self.slot(name, || Column::Bool(Vec::new())) {
            c.push(Some(v));
        }
    }
    fn table(self, name: &str) -> Table {
        self.columns
            .into_iter()
            .fold(Table::new(name), |t, (n, c)| t.with(&n, c))
    }
}

/// The columns naming a grid point.
fn key(rows: &mut Rows, u: &UnitResult, gamma: usize) {
    let spec = DrafterSpec::parse(&u.drafter).ok();
    rows.s("drafter", Some(u.drafter.clone()));
    rows.i(
        "drafter_bits",
        spec.as_ref().and_then(|s| s.bits()).map(i64::from),
    );
    rows.s(
        "drafter_rotation",
        match &spec {
            Some(DrafterSpec::Quantized { rotation, .. }) => Some(rotation.clone()),
            _ => None,
        },
    );
    rows.s("rule", Some(u.rule.clone()));
    rows.f("temperature", u.temperature);
    rows.i("top_k", Some(u.top_k as i64));
    rows.f("top_p", u.top_p);
    rows.i("branches", Some(u.branches as i64));
    rows.s("tree", Some(u.shape.name().into()));
    rows.i("gamma", Some(gamma as i64));
}

/// Every table.
pub fn build(
    config: &SpeculationConfig,
    results: &[UnitResult],
    lossless: &[LosslessResult],
) -> Vec<Table> {
    let mut runs = Rows::default();
    let mut positions = Rows::default();
    let mut timing = Rows::default();
    for u in results {
        let lossless_rule = SpecRule::by_name(&u.rule).is_some_and(|r| r.is_lossless());
        for g in &u.gammas {
            key(&mut runs, u, g.gamma);
            runs.b("lossless", lossless_rule);
            runs.i("prompts", Some(g.prompts.len() as i64));
            let sum =
                |f: fn(&super::plan::PromptRun) -> u64| -> u64 { g.prompts.iter().map(f).sum() };
            let (tokens, calls) = (sum(|p| p.tokens), sum(|p| p.target_calls));
            let (draft_calls, drafted) = (sum(|p| p.draft_calls), sum(|p| p.drafted));
            let (verified, accepted) = (sum(|p| p.verified), sum(|p| p.accepted));
            runs.i("tokens", Some(tokens as i64));
            runs.i("target_calls", Some(calls as i64));
            runs.i("draft_calls", Some(draft_calls as i64));
            runs.i("drafted", Some(drafted as i64));
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
            runs.f("tokens_per_call", m);
            runs.f("tokens_per_call_ci_low", lo);
            runs.f("tokens_per_call_ci_high", hi);
            // Acceptance per verified draft position (with K branches, a root
            // counts once: accepted if any branch was kept).
            let (lo, hi) = wilson_interval(accepted, verified);
            runs.f(
                "acceptance",
                if verified > 0 {
                    accepted as f64 / verified as f64
                } else {
                    f64::NAN
                },
            );
            runs.f("acceptance_ci_low", lo);
            runs.f("acceptance_ci_high", hi);
            let v = verified.max(1) as f64;
            let rule_n: u64 = g.positions.iter().map(|p| p.exact_rule_count).sum();
            // Only where every verified step has the rule's closed form (a Gumbel
            // or naive tree's roots have none).
            runs.f(
                "exact_rule",
                if rule_n == verified && rule_n > 0 {
                    g.positions.iter().map(|p| p.exact_rule).sum::<f64>() / rule_n as f64
                } else {
                    f64::NAN
                },
            );
            runs.f(
                "exact_standard",
                g.positions.iter().map(|p| p.exact_standard).sum::<f64>() / v,
            );
            runs.f(
                "exact_gumbel",
                g.positions.iter().map(|p| p.exact_gumbel).sum::<f64>() / v,
            );
            // Drafter invariance: the share of prompts whose output equals plain
            // seeded sampling of the target (1 under `gumbel`, whatever the drafter).
            runs.f(
                "matches_plain",
                g.prompts.iter().filter(|p| p.matches_plain).count() as f64
                    / g.prompts.len().max(1) as f64,
            );
            for &cost in &config.cost_ratios {
                runs.f(
                    &format!("speedup_c{cost}"),
                    modelled(tokens, calls, draft_calls, cost),
                );
            }
            for (i, p) in g.positions.iter().enumerate() {
                key(&mut positions, u, g.gamma);
                positions.i("index", Some(i as i64));
                positions.i("verified", Some(p.verified as i64));
                positions.i("accepted", Some(p.accepted as i64));
                let (lo, hi) = wilson_interval(p.accepted, p.verified);
                let n = p.verified.max(1) as f64;
                positions.f(
                    "acceptance",
                    if p.verified > 0 {
                        p.accepted as f64 / n
                    } else {
                        f64::NAN
                    },
                );
                positions.f("acceptance_ci_low", lo);
                positions.f("acceptance_ci_high", hi);
                positions.f(
                    "exact_rule",
                    if p.exact_rule_count > 0 {
                        p.exact_rule / p.exact_rule_count as f64
                    } else {
                        f64::NAN
                    },
                );
                positions.f("exact_standard", p.exact_standard / n);
                positions.f("exact_gumbel", p.exact_gumbel / n);
            }
            if config.timing {
                key(&mut timing, u, g.gamma);
                let t = &g.timing;
                timing.f("plain_seconds", u.plain_seconds);
                timing.f("speculative_seconds", t.speculative);
                timing.f("target_seconds", t.target);
                timing.f("draft_seconds", t.draft);
                timing.f(
                    "measured_speedup",
                    if t.speculative > 0.0 {
                        u.plain_seconds / t.speculative
                    } else {
                        f64::NAN
                    },
                );
                let c = measured_cost_ratio(t.draft, draft_calls, u.plain_seconds, u.plain_calls);
                timing.f("measured_cost_ratio", c);
                timing.f(
                    "modelled_speedup_at_measured_c",
                    modelled(tokens, calls, draft_calls, c),
                );
                // Per-pass costs: a tree pass feeds more positions than a chain's.
                let per = |seconds: f64, n: u64| {
                    if n > 0 {
                        seconds / n as f64
                    } else {
                        f64::NAN
                    }
                };
                timing.f(
                    "plain_seconds_per_call",
                    per(u.plain_seconds, u.plain_calls),
                );
                timing.f("target_seconds_per_call", per(t.target, calls));
                timing.f("draft_seconds_per_call", per(t.draft, draft_calls));
            }
        }
    }
    let mut tables = vec![
        runs.table("speculation_runs"),
        positions.table("speculation_positions"),
    ];
    if !lossless.is_empty() {
        let l = config
            .lossless
            .as_ref()
            .expect("lossless results come from a section");
        let mut rows = Rows::default();
        for r in lossless {
            rows.s("method", Some(r.method.clone()));
            rows.b("lossless", r.lossless);
            rows.s("drafter", (r.method != "plain").then(|| l.drafter.clone()));
            rows.f("temperature", l.temperature);
            rows.i("top_k", Some(l.top_k as i64));
            rows.f("top_p", l.top_p);
            rows.i("gamma", Some(l.gamma as i64));
            rows.i(
                "branches",
                Some(match SpecRule::by_name(&r.method) {
                    Some(rule) if rule.supports_branches(l.branches) => l.branches as i64,
                    _ => 1,
                }),
            );
            rows.s("tree", Some(l.tree.clone()));
            rows.i("horizon", Some(l.horizon as i64));
            rows.i("samples", Some(r.test.samples as i64));
            rows.i("distinct", Some(r.test.distinct as i64));
            rows.i("bins", Some(r.test.bins as i64));
            rows.f("covered_mass", r.test.covered);
            rows.i("dof", Some(r.test.dof as i64));
            rows.f("chi_square", r.test.statistic);
            rows.f("p_value", r.test.p_value);
            rows.f("tv", r.test.tv);
            rows.f("acceptance", r.acceptance.unwrap_or(f64::NAN));
            rows.b("rejected_at_0_001", r.test.p_value < 1e-3);
        }
        tables.push(rows.table("speculation_lossless"));
    }
    if config.timing && !results.is_empty() {
        tables.push(timing.table("speculation_timing"));
    }
    tables
}
