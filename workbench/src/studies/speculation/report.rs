//! What the speculation report says, from the saved tables.

use anyhow::Result;

use crate::experiment::outputs::{
    distinct, find_table, Figure, Point, ReportContent, Scale, Section, Series, SeriesStyle, Table,
    TableView,
};

/// Builds the report content of a speculation run.
pub fn content(tables: &[Table], _manifest: &serde_json::Value) -> Result<ReportContent> {
    let runs = find_table(tables, "speculation_runs")?;
    let positions = find_table(tables, "speculation_positions")?;
    let (drafter, rule) = (runs.texts("drafter")?, runs.texts("rule")?);
    let (temp, gamma) = (runs.floats("temperature")?, runs.floats("gamma")?);
    let tpc = runs.floats("tokens_per_call")?;
    let (lo, hi) = (
        runs.floats("tokens_per_call_ci_low")?,
        runs.floats("tokens_per_call_ci_high")?,
    );
    let matches = runs.floats("matches_plain")?;
    let n = drafter.len();
    let max_gamma = gamma.iter().cloned().fold(0.0, f64::max);
    let mut findings = Vec::new();
    for t in distinct(&temp) {
        if let Some(best) = (0..n)
            .filter(|&i| temp[i] == t)
            .max_by(|&a, &b| tpc[a].total_cmp(&tpc[b]))
        {
            findings.push(format!(
                "T = {t}: most tokens per target call with {} drafting under {} at γ = {}: {:.2} [{:.2}, {:.2}].",
                drafter[best], rule[best], gamma[best], tpc[best], lo[best], hi[best]
            ));
        }
    }
    let gumbel: Vec<usize> = (0..n).filter(|&i| rule[i] == "gumbel").collect();
    if !gumbel.is_empty() {
        let all = gumbel.iter().all(|&i| matches[i] == 1.0);
        findings.push(format!(
            "Drafter invariance: gumbel speculation reproduced plain seeded sampling of the target in {} of {} (drafter, temperature, γ) settings.",
            gumbel.iter().filter(|&&i| matches[i] == 1.0).count(),
            gumbel.len()
        ) + if all { "" } else { " (a mismatch can only come from near-ties between prefill and decode logits)" });
    }
    let mut series = Vec::new();
    for r in distinct(&rule) {
        for d in distinct(&drafter) {
            let mut pts: Vec<Point> = (0..n)
                .filter(|&i| rule[i] == r && drafter[i] == d && gamma[i] == max_gamma)
                .map(|i| Point::with_interval(temp[i], tpc[i], lo[i], hi[i]))
                .collect();
            pts.sort_by(|a, b| a.x.total_cmp(&b.x));
            if !pts.is_empty() {
                series.push(Series {
                    name: format!("{r}, {d}"),
                    group: Some(d.clone()),
                    style: SeriesStyle::LineMarkers,
                    points: pts,
                });
            }
        }
    }
    let tokens_figure = Figure {
        name: "tokens_per_call_vs_temperature".into(),
        title: format!("Tokens per target call against temperature (γ = {max_gamma})"),
        x_label: "temperature".into(),
        y_label: "tokens per target call".into(),
        x_scale: Scale::Linear,
        y_scale: Scale::Linear,
        y_range: None,
        series,
        caption: "One line per rule and drafter (colour: drafter); 95% intervals over prompts."
            .into(),
    };
    // Observed against exact acceptance per draft index.
    let (prule, pacc) = (positions.texts("rule")?, positions.floats("acceptance")?);
    let (pstd, pgum) = (
        positions.floats("exact_standard")?,
        positions.floats("exact_gumbel")?,
    );
    let pver = positions.floats("verified")?;
    let mut scatter = Vec::new();
    for r in ["standard", "gumbel"] {
        let pts: Vec<Point> = (0..prule.len())
            .filter(|&i| prule[i] == r && pver[i] >= 20.0)
            .map(|i| Point::new(if r == "standard" { pstd[i] } else { pgum[i] }, pacc[i]))
            .collect();
        if !pts.is_empty() {
            scatter.push(Series {
                name: r.into(),
                group: Some(r.into()),
                style: SeriesStyle::Markers,
                points: pts,
            });
        }
    }
    scatter.push(Series {
        name: "observed = exact".into(),
        group: Some("diagonal".into()),
        style: SeriesStyle::Line,
        points: vec![Point::new(0.0, 0.0), Point::new(1.0, 1.0)],
    });
    let exact_figure = Figure {
        name: "observed_vs_exact_acceptance".into(),
        title: "Observed acceptance against the per-step exact expectation".into(),
        x_label: "mean exact acceptance of the verified steps (1 − TV, or the Gumbel formula)"
            .into(),
        y_label: "observed acceptance rate".into(),
        x_scale: Scale::Linear,
        y_scale: Scale::Linear,
        y_range: Some((0.0, 1.0)),
        series: scatter,
        caption: "One point per (drafter, temperature, γ, draft index) with at least 20 verifications; on the diagonal when the rule behaves as its formula says."
            .into(),
    };
    let view = runs.select_columns(&[
        "drafter",
        "rule",
        "temperature",
        "gamma",
        "tokens_per_call",
        "tokens_per_call_ci_low",
        "tokens_per_call_ci_high",
        "acceptance",
        "exact_standard",
        "exact_gumbel",
        "matches_plain",
    ]);
    Ok(ReportContent {
        title: "Speculative decoding with real models".into(),
        question: "Which drafter and acceptance rule give the most tokens per target call at each temperature, and does each rule behave as its exact formula says?".into(),
        findings,
        sections: vec![Section {
            heading: "Runs".into(),
            paragraphs: vec![
                "Each prompt (the first tokens of a sequence sampled from the target) is continued by \
                 plain seeded decoding of the target and by speculative decoding with every drafter, \
                 rule, temperature and draft length, with the same seed per prompt. Tokens per target \
                 call count the tokens emitted per verification pass (plain decoding: 1). Exact columns \
                 average, over the verified draft positions, the acceptance probability the rule's \
                 formula gives for the actual p and q at that step. The speedup columns model the time \
                 of one round as one target call plus c per drafted token for a model drafter \
                 (n-gram drafting is free)."
                    .into(),
                "Per draft index: tables/speculation_positions.csv.".into(),
            ],
            tables: vec![TableView {
                caption: "Per drafter, rule, temperature and γ".into(),
                table: view,
                max_rows: Some(200),
                digits: 4,
            }],
            figures: vec![tokens_figure.name.clone(), exact_figure.name.clone()],
        }],
        figures: vec![tokens_figure, exact_figure],
    })
}
