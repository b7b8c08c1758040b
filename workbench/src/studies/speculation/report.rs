//! What the speculation report says, from the saved tables.

use anyhow::Result;

use crate::experiment::outputs::{
    distinct, find_table, Figure, Point, ReportContent, Scale, Section, Series, SeriesStyle, Table,
    TableView,
};

/// Rows of `runs` at the default filters and one branch (the plain chains).
fn unfiltered_chain(runs: &Table) -> Result<Vec<bool>> {
    let (k, p, b) = (
        runs.floats("top_k")?,
        runs.floats("top_p")?,
        runs.floats("branches")?,
    );
    Ok((0..k.len())
        .map(|i| k[i] == 0.0 && p[i] == 1.0 && b[i] == 1.0)
        .collect())
}

/// The `tree` column (`chains` where a table saved before trees has none).
fn shapes(runs: &Table) -> Vec<String> {
    runs.texts("tree")
        .unwrap_or_else(|_| vec!["chains".into(); runs.floats("gamma").map_or(0, |g| g.len())])
}

/// The full tree's row (`i` = 0) or the chains' (`i` = 1) of a pair.
fn pick(pair: &(usize, usize), i: usize) -> usize {
    if i == 0 {
        pair.0
    } else {
        pair.1
    }
}

/// Full trees against chains of the same drafter, rule, temperature,
/// filters, K and γ: tokens per target call and target seconds per call.
fn trees_vs_chains(runs: &Table, timing: Option<&Table>) -> Result<Vec<String>> {
    let tree = shapes(runs);
    let (drafter, rule) = (runs.texts("drafter")?, runs.texts("rule")?);
    let (temp, gamma) = (runs.floats("temperature")?, runs.floats("gamma")?);
    let (k, p, b) = (
        runs.floats("top_k")?,
        runs.floats("top_p")?,
        runs.floats("branches")?,
    );
    let tpc = runs.floats("tokens_per_call")?;
    let same = |i: usize, j: usize| {
        drafter[i] == drafter[j]
            && rule[i] == rule[j]
            && temp[i] == temp[j]
            && gamma[i] == gamma[j]
            && k[i] == k[j]
            && p[i] == p[j]
            && b[i] == b[j]
    };
    let pairs: Vec<(usize, usize)> = (0..tree.len())
        .filter(|&i| tree[i] == "full" && b[i] >= 2.0)
        .filter_map(|f| {
            (0..tree.len())
                .find(|&c| tree[c] == "chains" && same(c, f))
                .map(|c| (f, c))
        })
        .collect();
    if pairs.is_empty() {
        return Ok(Vec::new());
    }
    let ratio: Vec<f64> = pairs.iter().map(|&(f, c)| tpc[f] / tpc[c]).collect();
    let mean = ratio.iter().sum::<f64>() / ratio.len() as f64;
    let (lo, hi) = ratio
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &r| {
            (a.min(r), b.max(r))
        });
    let mut line = format!(
        "Full trees against root-branching chains (same drafter, rule, temperature, K and γ; \
         {} pairs): tokens per target call × {mean:.3} on average (from × {lo:.3} to × {hi:.3}).",
        pairs.len()
    );
    // Per-pass cost, where the timing table has both rows (timing rows follow
    // the runs table's order).
    if let Some(t) = timing {
        if let (Ok(per), Ok(plain)) = (
            t.floats("target_seconds_per_call"),
            t.floats("plain_seconds_per_call"),
        ) {
            if per.len() == tree.len() {
                // Each pass against a plain decode step of the same unit, so that
                // load drifting between units cancels.
                let mean = |i: usize| {
                    pairs
                        .iter()
                        .map(|p| per[pick(p, i)] / plain[pick(p, i)])
                        .sum::<f64>()
                        / pairs.len() as f64
                };
                line += &format!(
                    " A target pass cost {:.2} plain decode steps with full trees and {:.2} \
                     with chains on average (measured on this machine).",
                    mean(0),
                    mean(1)
                );
            }
        }
    }
    Ok(vec![line])
}

/// Gumbel against standard on the same drafter, temperature, filters and γ.
fn gumbel_vs_standard(runs: &Table) -> Result<Vec<String>> {
    let (drafter, rule) = (runs.texts("drafter")?, runs.texts("rule")?);
    let (temp, gamma) = (runs.floats("temperature")?, runs.floats("gamma")?);
    let (k, p, b) = (
        runs.floats("top_k")?,
        runs.floats("top_p")?,
        runs.floats("branches")?,
    );
    let (tpc, ex_s, ex_g) = (
        runs.floats("tokens_per_call")?,
        runs.floats("exact_standard")?,
        runs.floats("exact_gumbel")?,
    );
    let mut pairs = Vec::new();
    for g in (0..drafter.len()).filter(|&i| rule[i] == "gumbel" && b[i] == 1.0) {
        if let Some(s) = (0..drafter.len()).find(|&i| {
            rule[i] == "standard"
                && drafter[i] == drafter[g]
                && temp[i] == temp[g]
                && gamma[i] == gamma[g]
                && k[i] == k[g]
                && p[i] == p[g]
        }) {
            pairs.push((g, s));
        }
    }
    let mut out = Vec::new();
    for t in distinct(&temp) {
        let at: Vec<&(usize, usize)> = pairs.iter().filter(|(g, _)| temp[*g] == t).collect();
        if at.is_empty() {
            continue;
        }
        let ratio: Vec<f64> = at.iter().map(|(g, s)| tpc[*g] / tpc[*s]).collect();
        let gap: Vec<f64> = at.iter().map(|(g, s)| ex_s[*s] - ex_g[*g]).collect();
        let worst = (0..at.len())
            .max_by(|&a, &b| gap[a].total_cmp(&gap[b]))
            .expect("non-empty");
        out.push(format!(
            "T = {t}: Gumbel gets {:.3}× the standard rule's tokens per call on average over {} settings \
             (range {:.3}–{:.3}); per step its exact acceptance falls short of 1 − TV by {:.4} on average, \
             most ({:.4}) with {} at γ = {}.",
            ratio.iter().sum::<f64>() / ratio.len() as f64,
            at.len(),
            ratio.iter().cloned().fold(f64::INFINITY, f64::min),
            ratio.iter().cloned().fold(f64::NEG_INFINITY, f64::max),
            gap.iter().sum::<f64>() / gap.len() as f64,
            gap[worst],
            drafter[at[worst].0],
            gamma[at[worst].0],
        ));
    }
    Ok(out)
}

/// Acceptance against the self-drafter's bit width, per rotation.
fn bits_figure(runs: &Table) -> Result<Option<Figure>> {
    let bits = runs.floats("drafter_bits")?;
    let rotation = runs.texts("drafter_rotation")?;
    let (rule, temp, gamma) = (
        runs.texts("rule")?,
        runs.floats("temperature")?,
        runs.floats("gamma")?,
    );
    let (acc, lo, hi) = (
        runs.floats("acceptance")?,
        runs.floats("acceptance_ci_low")?,
        runs.floats("acceptance_ci_high")?,
    );
    let plain = unfiltered_chain(runs)?;
    let quantized: Vec<usize> = (0..bits.len())
        .filter(|&i| !bits[i].is_nan() && plain[i])
        .collect();
    if quantized.is_empty()
        || distinct(
            &quantized
                .iter()
                .map(|&i| bits[i] as i64)
                .collect::<Vec<_>>(),
        )
        .len()
            < 2
    {
        return Ok(None);
    }
    let rules = distinct(
        &quantized
            .iter()
            .map(|&i| rule[i].clone())
            .collect::<Vec<_>>(),
    );
    let chosen = if rules.iter().any(|r| r == "standard") {
        "standard".to_string()
    } else {
        rules[0].clone()
    };
    let max_gamma = quantized.iter().map(|&i| gamma[i]).fold(0.0, f64::max);
    let rows: Vec<usize> = quantized
        .into_iter()
        .filter(|&i| rule[i] == chosen && gamma[i] == max_gamma)
        .collect();
    let mut series = Vec::new();
    for r in distinct(
        &rows
            .iter()
            .map(|&i| rotation[i].clone())
            .collect::<Vec<_>>(),
    ) {
        for t in distinct(&rows.iter().map(|&i| temp[i]).collect::<Vec<_>>()) {
            let mut pts: Vec<Point> = rows
                .iter()
                .filter(|&&i| rotation[i] == r && temp[i] == t)
                .map(|&i| Point::with_interval(bits[i], acc[i], lo[i], hi[i]))
                .collect();
            pts.sort_by(|a, b| a.x.total_cmp(&b.x));
            series.push(Series {
                name: format!("rotation {r}, T = {t}"),
                group: Some(r.clone()),
                style: SeriesStyle::LineMarkers,
                points: pts,
            });
        }
    }
    Ok(Some(Figure {
        name: "acceptance_vs_drafter_bits".into(),
        title: format!("Acceptance against the self-drafter's bit width ({chosen}, γ = {max_gamma})"),
        x_label: "drafter weight bits".into(),
        y_label: "acceptance rate per verified draft".into(),
        x_scale: Scale::Linear,
        y_scale: Scale::Linear,
        y_range: Some((0.0, 1.0)),
        series,
        caption: "The target quantized round-to-nearest per output channel, with and without a whole-model \
                  Hadamard rotation (colour: rotation); 95% Wilson intervals over verified drafts."
            .into(),
    }))
}

/// Builds the report content of a speculation run.
pub fn content(tables: &[Table], _manifest: &serde_json::Value) -> Result<ReportContent> {
    let runs = find_table(tables, "speculation_runs")?;
    let positions = find_table(tables, "speculation_positions")?;
    let (drafter, rule) = (runs.texts("drafter")?, runs.texts("rule")?);
    let (temp, gamma) = (runs.floats("temperature")?, runs.floats("gamma")?);
    let branches = runs.floats("branches")?;
    let tree = shapes(runs);
    let tpc = runs.floats("tokens_per_call")?;
    let (lo, hi) = (
        runs.floats("tokens_per_call_ci_low")?,
        runs.floats("tokens_per_call_ci_high")?,
    );
    let matches = runs.floats("matches_plain")?;
    let lossless_rule: Vec<bool> = runs
        .bools("lossless")
        .map(|v| v.iter().map(|b| b.unwrap_or(false)).collect())
        .unwrap_or_else(|| vec![true; drafter.len()]);
    let n = drafter.len();
    let max_gamma = gamma.iter().cloned().fold(0.0, f64::max);
    let mut findings = Vec::new();
    for t in distinct(&temp) {
        if let Some(best) = (0..n)
            .filter(|&i| temp[i] == t && lossless_rule[i])
            .max_by(|&a, &b| tpc[a].total_cmp(&tpc[b]))
        {
            findings.push(format!(
                "T = {t}: most tokens per target call among lossless rules with {} drafting under {} at γ = {}, K = {}{}: {:.2} [{:.2}, {:.2}].",
                drafter[best], rule[best], gamma[best], branches[best],
                if tree[best] == "full" { " (full tree)" } else { "" },
                tpc[best], lo[best], hi[best]
            ));
        }
    }
    findings.extend(gumbel_vs_standard(runs)?);
    findings.extend(trees_vs_chains(
        runs,
        tables.iter().find(|t| t.name == "speculation_timing"),
    )?);
    let gumbel: Vec<usize> = (0..n).filter(|&i| rule[i] == "gumbel").collect();
    if !gumbel.is_empty() {
        let all = gumbel.iter().all(|&i| matches[i] == 1.0);
        findings.push(format!(
            "Drafter invariance: gumbel speculation reproduced plain seeded sampling of the target in {} of {} (drafter, temperature, filter, K, γ) settings.",
            gumbel.iter().filter(|&&i| matches[i] == 1.0).count(),
            gumbel.len()
        ) + if all { "" } else { " (a mismatch can only come from near-ties between prefill and decode logits)" });
    }
    let lossless = find_table(tables, "speculation_lossless").ok();
    if let Some(l) = lossless {
        let (method, pv) = (l.texts("method")?, l.floats("p_value")?);
        let (tv, samples) = (l.floats("tv")?, l.floats("samples")?);
        let items: Vec<String> = (0..method.len())
            .map(|i| format!("{} p = {:.3} (TV {:.3})", method[i], pv[i], tv[i]))
            .collect();
        findings.push(format!(
            "Sequence-level chi-square over continuations ({} samples each, same seeds): {}.",
            samples.first().copied().unwrap_or(0.0),
            items.join("; ")
        ));
    }
    let timing = find_table(tables, "speculation_timing").ok();
    if let Some(t) = timing {
        let (td, ms) = (t.texts("drafter")?, t.floats("measured_speedup")?);
        let (mc, mm) = (
            t.floats("measured_cost_ratio")?,
            t.floats("modelled_speedup_at_measured_c")?,
        );
        // Medians per drafter: single timings on a shared machine have outliers.
        let median = |mut v: Vec<f64>| -> f64 {
            v.retain(|x| !x.is_nan());
            v.sort_by(|a, b| a.total_cmp(b));
            if v.is_empty() {
                f64::NAN
            } else {
                v[v.len() / 2]
            }
        };
        let items: Vec<String> = distinct(&td)
            .iter()
            .map(|d| {
                let rows: Vec<usize> = (0..td.len()).filter(|&i| &td[i] == d).collect();
                format!(
                    "{d} {:.2}× (c = {:.2}, model {:.2}×)",
                    median(rows.iter().map(|&i| ms[i]).collect()),
                    median(rows.iter().map(|&i| mc[i]).collect()),
                    median(rows.iter().map(|&i| mm[i]).collect()),
                )
            })
            .collect();
        findings.push(format!(
            "Wall clock on this machine, median over rules, temperatures, K and γ of plain decoding's time over \
             speculative decoding's, with the measured drafter cost ratio c and the speedup model at that c: {}.",
            items.join("; ")
        ));
    }
    // One chain where the config has it; otherwise (a tree study) the
    // smallest K, one line per tree shape.
    let branches = runs.floats("branches")?;
    let (top_k, top_p) = (runs.floats("top_k")?, runs.floats("top_p")?);
    let unfiltered: Vec<bool> = (0..n).map(|i| top_k[i] == 0.0 && top_p[i] == 1.0).collect();
    let plotted_k = (0..n)
        .filter(|&i| unfiltered[i])
        .map(|i| branches[i])
        .fold(f64::INFINITY, f64::min);
    let mut series = Vec::new();
    for r in distinct(&rule) {
        for d in distinct(&drafter) {
            for t in distinct(&tree) {
                let mut pts: Vec<Point> = (0..n)
                    .filter(|&i| {
                        rule[i] == r
                            && drafter[i] == d
                            && tree[i] == t
                            && gamma[i] == max_gamma
                            && unfiltered[i]
                            && branches[i] == plotted_k
                    })
                    .map(|i| Point::with_interval(temp[i], tpc[i], lo[i], hi[i]))
                    .collect();
                pts.sort_by(|a, b| a.x.total_cmp(&b.x));
                if !pts.is_empty() {
                    series.push(Series {
                        name: if plotted_k == 1.0 {
                            format!("{r}, {d}")
                        } else {
                            format!("{r}, {d}, {t}")
                        },
                        group: Some(d.clone()),
                        // Chains as markers alone, so that a tree study's
                        // two shapes can be told apart.
                        style: if plotted_k > 1.0 && t == "chains" {
                            SeriesStyle::Markers
                        } else {
                            SeriesStyle::LineMarkers
                        },
                        points: pts,
                    });
                }
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
        caption: if plotted_k == 1.0 {
            "One line per rule and drafter (colour: drafter), one chain, no top-k/top-p; 95% intervals over prompts."
                .into()
        } else {
            format!(
                "One series per rule, drafter and tree shape (colour: drafter; full trees joined by lines, \
                 chains as markers alone), K = {plotted_k}, no top-k/top-p; 95% intervals over prompts."
            )
        },
    };
    // Observed against exact acceptance per draft index.
    let (prule, pacc) = (positions.texts("rule")?, positions.floats("acceptance")?);
    let pexact = positions.floats("exact_rule")?;
    let pver = positions.floats("verified")?;
    let mut scatter = Vec::new();
    for r in distinct(&prule) {
        let pts: Vec<Point> = (0..prule.len())
            .filter(|&i| prule[i] == r && pver[i] >= 20.0 && !pexact[i].is_nan())
            .map(|i| Point::new(pexact[i], pacc[i]))
            .collect();
        if !pts.is_empty() {
            scatter.push(Series {
                name: r.clone(),
                group: Some(r.clone()),
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
        x_label: "mean exact acceptance of the verified steps (the rule's own formula)".into(),
        y_label: "observed acceptance rate".into(),
        x_scale: Scale::Linear,
        y_scale: Scale::Linear,
        y_range: Some((0.0, 1.0)),
        series: scatter,
        caption: "One point per (drafter, temperature, filter, K, γ, draft index) with at least 20 verifications \
                  and a closed form (none for Gumbel or naive trees); on the diagonal when a rule behaves as its formula says."
            .into(),
    };
    let mut figures = vec![tokens_figure, exact_figure];
    if let Some(f) = bits_figure(runs)? {
        figures.push(f);
    }
    let view = runs.select_columns(&[
        "drafter",
        "rule",
        "temperature",
        "top_k",
        "top_p",
        "branches",
        "tree",
        "gamma",
        "tokens_per_call",
        "tokens_per_call_ci_low",
        "tokens_per_call_ci_high",
        "acceptance",
        "exact_rule",
        "exact_standard",
        "exact_gumbel",
        "matches_plain",
    ]);
    let mut sections = vec![Section {
        heading: "Runs".into(),
        paragraphs: vec![
            "Each prompt (the first tokens of a sequence sampled from the target, or of its text) is continued by \
             plain seeded decoding of the target and by speculative decoding with every drafter, rule, \
             temperature, filter, number of branches K and draft length, with the same seed per prompt. \
             top-k and top-p are applied to p and q alike. Tokens per target call count the tokens emitted \
             per verification pass (plain decoding: 1). Exact columns average, over the verified draft \
             positions, the acceptance probability of the rule's own formula (exact_rule), of the standard \
             rule (1 − TV, the best a single-draft lossless rule can do) and of Gumbel coupling, for the \
             actual p and q at that step. matches_plain is the share of prompts whose output equals plain \
             seeded sampling (drafter invariance: 1 under gumbel). The speedup columns model a run's time \
             as one unit per target pass plus c per drafter pass. typical and greedy are not lossless."
                .into(),
            "Per draft index: tables/speculation_positions.csv.".into(),
        ],
        tables: vec![TableView {
            caption: "Per drafter, rule, temperature, filter, K and γ".into(),
            table: view,
            max_rows: Some(300),
            digits: 4,
        }],
        figures: figures.iter().map(|f| f.name.clone()).collect(),
    }];
    if let Some(l) = lossless {
        sections.push(Section {
            heading: "Sequence-level losslessness".into(),
            paragraphs: vec![
                "Many seeds of a short continuation from the first prompt, by plain sampling and by each rule \
                 (the same seeds for all), tested by chi-square against the target's exact distribution of \
                 continuations: one bin per continuation of probability at least 2.5 / samples (found by \
                 expanding the prefix tree), one for the rest, bins of expected count under 5 pooled. \
                 Lossless rules should not be rejected; lossy ones (typical) serve as negative controls."
                    .into(),
            ],
            tables: vec![TableView {
                caption: "Chi-square over continuations".into(),
                table: l.select_columns(&[
                    "method",
                    "lossless",
                    "branches",
                    "tree",
                    "horizon",
                    "samples",
                    "distinct",
                    "covered_mass",
                    "dof",
                    "chi_square",
                    "p_value",
                    "tv",
                    "acceptance",
                ]),
                max_rows: None,
                digits: 4,
            }],
            figures: vec![],
        });
    }
    if let Some(t) = timing {
        sections.push(Section {
            heading: "Wall clock".into(),
            paragraphs: vec![
                "Measured on this machine (a measurement, not a reproducible result: the only table that \
                 changes between reruns). measured_speedup is plain decoding's seconds over speculative \
                 decoding's for the same prompts; measured_cost_ratio is seconds per drafter pass over \
                 seconds per plain target pass; the model's speedup at that c sits beside it."
                    .into(),
            ],
            tables: vec![TableView {
                caption: "Seconds".into(),
                table: t.select_columns(&[
                    "drafter",
                    "rule",
                    "temperature",
                    "branches",
                    "tree",
                    "gamma",
                    "plain_seconds",
                    "speculative_seconds",
                    "target_seconds_per_call",
                    "measured_speedup",
                    "measured_cost_ratio",
                    "modelled_speedup_at_measured_c",
                ]),
                max_rows: Some(300),
                digits: 3,
            }],
            figures: vec![],
        });
    }
    Ok(ReportContent {
        title: "Speculative decoding with real models".into(),
        question: "Which drafter and acceptance rule give the most tokens per target call at each temperature, is the output exactly the target's distribution, and how close is each rule to the best possible?".into(),
        findings,
        sections,
        figures,
    })
}
