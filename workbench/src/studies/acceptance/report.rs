//! What the acceptance report says, computed from the saved tables alone.

use anyhow::{anyhow, Context, Result};

use crate::experiment::outputs::{
    Figure, Point, ReportContent, Scale, Section, Series, SeriesStyle, Table, TableView,
};

const QUESTION: &str = "When a draft distribution q proposes tokens for a target p, how often \
is a draft accepted under each rule, is the output still distributed as p, and what does that \
buy in tokens per target call?";

/// Typed access to the columns of a saved table.
struct Cols<'a> {
    table: &'a Table,
}

impl<'a> Cols<'a> {
    fn f(&self, name: &str) -> Result<Vec<f64>> {
        Ok(self
            .table
            .f64s(name)
            .ok_or_else(|| anyhow!("table {} has no numeric column {name}", self.table.name))?
            .into_iter()
            .map(|v| v.unwrap_or(f64::NAN))
            .collect())
    }
    fn opt(&self, name: &str) -> Result<Vec<Option<f64>>> {
        self.table
            .f64s(name)
            .ok_or_else(|| anyhow!("table {} has no numeric column {name}", self.table.name))
    }
    fn s(&self, name: &str) -> Result<Vec<String>> {
        Ok(self
            .table
            .strs(name)
            .ok_or_else(|| anyhow!("table {} has no text column {name}", self.table.name))?
            .iter()
            .map(|v| v.clone().unwrap_or_default())
            .collect())
    }
    fn b(&self, name: &str) -> Result<Vec<Option<bool>>> {
        Ok(self
            .table
            .bools(name)
            .ok_or_else(|| anyhow!("table {} has no boolean column {name}", self.table.name))?
            .to_vec())
    }
}

fn find<'a>(tables: &'a [Table], name: &str) -> Result<&'a Table> {
    tables
        .iter()
        .find(|t| t.name == name)
        .with_context(|| format!("the run saved no table `{name}`"))
}

/// Distinct values in order of first appearance.
fn distinct<T: PartialEq + Clone>(v: &[T]) -> Vec<T> {
    let mut out: Vec<T> = Vec::new();
    for x in v {
        if !out.contains(x) {
            out.push(x.clone());
        }
    }
    out
}

fn fmt3(x: f64) -> String {
    format!("{x:.3}")
}

/// Builds the report content of an acceptance run.
pub fn content(tables: &[Table], manifest: &serde_json::Value) -> Result<ReportContent> {
    let acc = find(tables, "acceptance")?;
    let c = Cols { table: acc };
    let pair = c.s("pair")?;
    let rule = c.s("rule")?;
    let drafts = c.f("drafts")?;
    let temp = c.f("temperature")?;
    let tv = c.f("tv")?;
    let exact = c.opt("exact")?;
    let est = c.f("estimate")?;
    let lo = c.f("ci_low")?;
    let hi = c.f("ci_high")?;
    let trials = c.f("trials")?;
    let in_ci = c.b("exact_in_ci")?;
    let by_design = c.b("lossless_by_design")?;
    let pass = c.b("lossless_pass")?;
    let n = acc.rows();
    let significance = manifest
        .pointer("/points/0/config/significance")
        .and_then(|v| v.as_f64())
        .unwrap_or(0.001);

    let mut findings = Vec::new();
    // 1. Exact against Monte Carlo.
    let with_exact: Vec<usize> = (0..n).filter(|&i| in_ci[i].is_some()).collect();
    let inside = with_exact
        .iter()
        .filter(|&&i| in_ci[i] == Some(true))
        .count();
    if !with_exact.is_empty() {
        let worst = with_exact
            .iter()
            .map(|&i| (est[i] - exact[i].unwrap_or(f64::NAN)).abs())
            .fold(0.0, f64::max);
        findings.push(format!(
            "Closed forms agree with simulation: the exact acceptance lies inside the 95% interval in \
             {inside} of {} rows (about 95% expected); largest |estimate − exact| = {:.4}.",
            with_exact.len(),
            worst
        ));
    }
    // 2. Losslessness.
    let lossless: Vec<usize> = (0..n).filter(|&i| by_design[i] == Some(true)).collect();
    let lossy: Vec<usize> = (0..n).filter(|&i| by_design[i] == Some(false)).collect();
    let passed = lossless.iter().filter(|&&i| pass[i] == Some(true)).count();
    let lossy_failed = lossy.iter().filter(|&&i| pass[i] == Some(false)).count();
    findings.push(format!(
        "Losslessness (chi-square of emitted tokens against p, α = {significance}): lossless rules \
         passed in {passed} of {} rows; lossy rules (greedy, typical) were detected as not \
         distributed as p in {lossy_failed} of {} rows — expected for typical acceptance, and for \
         greedy at any temperature above 0.",
        lossless.len(),
        lossy.len()
    ));
    // 3. The first pair, rule by rule.
    if n > 0 {
        let first: Vec<usize> = (0..n)
            .filter(|&i| pair[i] == pair[0] && temp[i] == temp[0] && drafts[i] == 1.0)
            .collect();
        let parts: Vec<String> = first
            .iter()
            .map(|&i| {
                format!(
                    "{} {} [{}, {}]",
                    rule[i],
                    fmt3(est[i]),
                    fmt3(lo[i]),
                    fmt3(hi[i])
                )
            })
            .collect();
        if !parts.is_empty() {
            findings.push(format!(
                "On `{}` (TV = {}, T = {}, {} trials each): {}.",
                pair[0],
                fmt3(tv[0]),
                temp[0],
                trials[0],
                parts.join("; ")
            ));
        }
    }
    // 4. Gumbel relative to standard.
    let ratios = gumbel_ratios(&pair, &rule, &drafts, &temp, &tv, &exact, &est);
    if !ratios.is_empty() {
        let mean = ratios.iter().map(|r| r.1).sum::<f64>() / ratios.len() as f64;
        let worst =
            ratios.iter().cloned().fold(
                (f64::NAN, f64::INFINITY),
                |a, b| if b.1 < a.1 { b } else { a },
            );
        findings.push(format!(
            "Gumbel coupling keeps on average {:.1}% of the standard rule's acceptance over {} \
             pairs x temperatures (lowest {:.1}% at TV = {}).",
            100.0 * mean,
            ratios.len(),
            100.0 * worst.1,
            fmt3(worst.0)
        ));
    }

    let mut figures = Vec::new();
    figures.push(acceptance_vs_tv(
        &pair, &rule, &drafts, &tv, &exact, &est, &lo, &hi,
    ));
    if !ratios.is_empty() {
        figures.push(ratio_figure(&ratios));
    }
    if let Some(f) = drafts_figure(&pair, &rule, &drafts, &temp, &est, &lo, &hi, acc)? {
        figures.push(f);
    }
    figures.extend(tokens_figures(tables)?);
    if let Some(f) = emitted_figure(tables)? {
        figures.push(f);
    }

    let main_view = acc.select_columns(&[
        "pair",
        "rule",
        "drafts",
        "temperature",
        "tv",
        "exact",
        "estimate",
        "ci_low",
        "ci_high",
        "trials",
        "exact_in_ci",
    ]);
    let lossless_view = acc.select_columns(&[
        "pair",
        "rule",
        "drafts",
        "temperature",
        "emitted_tv",
        "chi2",
        "chi2_dof",
        "chi2_p",
        "lossless_by_design",
        "lossless_pass",
    ]);
    let fig_names = |prefixes: &[&str]| -> Vec<String> {
        figures
            .iter()
            .filter(|f| prefixes.iter().any(|p| f.name.starts_with(p)))
            .map(|f| f.name.clone())
            .collect()
    };
    let mut sections = Vec::new();
    if let Some(description) = manifest
        .pointer("/points/0/config/description")
        .and_then(|v| v.as_str())
    {
        sections.push(Section {
            heading: "About this run".into(),
            paragraphs: vec![description.split_whitespace().collect::<Vec<_>>().join(" ")],
            ..Section::default()
        });
    }
    sections.extend([
        Section {
            heading: "Acceptance by rule".into(),
            paragraphs: vec![
                "Each row is one pair × rule × drafts × temperature. `exact` is the closed form \
                 where one exists (naive Σp·q, standard Σmin(p,q) = 1 − TV, gumbel \
                 Σₓ[Σᵧ max(pᵧ/pₓ, qᵧ/qₓ)]⁻¹, greedy, typical, SpecInfer's residual chain); \
                 `estimate` is the Monte-Carlo acceptance rate with its 95% Wilson interval \
                 [ci_low, ci_high] over `trials` trials. All rules use the same seed and the \
                 same random numbers per trial (common random numbers)."
                    .into(),
            ],
            tables: vec![TableView {
                caption: "Acceptance probability: exact and Monte Carlo".into(),
                table: main_view,
                max_rows: Some(80),
                digits: 4,
            }],
            figures: fig_names(&[
                "acceptance_vs_tv",
                "gumbel_over_standard",
                "acceptance_vs_drafts",
            ]),
        },
        Section {
            heading: "Is the output still distributed as p?".into(),
            paragraphs: vec![
                format!(
                    "For every row the emitted tokens are tested against p (at the row's \
                     temperature) with a chi-square test; tokens are pooled in order of \
                     decreasing probability so that every bin expects at least 5 draws. A row \
                     passes when its p-value exceeds α = {significance}. With many rows some \
                     lossless rows may fail by chance at rate α; a systematic failure of a \
                     lossless rule is a bug. `emitted_tv` is the total variation between the \
                     empirical distribution of emitted tokens and p."
                ),
                "Typical acceptance is lossy by design (it trades exactness for acceptance), and \
                 greedy matching is exact only in the T → 0 limit; both are expected to fail."
                    .into(),
            ],
            tables: vec![TableView {
                caption: "Losslessness test per row".into(),
                table: lossless_view,
                max_rows: Some(80),
                digits: 4,
            }],
            figures: fig_names(&["emitted_distribution"]),
        },
        Section {
            heading: "Tokens per target call and speedup".into(),
            paragraphs: vec![
                "With per-position acceptance α and draft length γ, a target call yields \
                 1 + Σ_{k≤γ} α^k = (1 − α^{γ+1})/(1 − α) tokens in expectation; with a \
                 draft/target cost ratio c the speedup over plain decoding is \
                 (1 − α^{γ+1}) / ((1 − α)(γc + 1)). The model uses the exact α where a closed \
                 form exists. The block estimate groups consecutive Monte-Carlo trials into \
                 blocks of γ positions and counts accepted prefixes, checking the model \
                 against simulation. Full tables: tables/tokens_per_call.csv and \
                 tables/speedup.csv."
                    .into(),
            ],
            tables: vec![],
            figures: fig_names(&["tokens_per_call", "speedup"]),
        },
        Section {
            heading: "Method".into(),
            paragraphs: vec![
                "Randomness: Philox4x32-10 (Random123 constants), keyed so that every uniform is a \
                 pure function of (seed, position, token id, stream); trial t uses position t. \
                 Under `gumbel`, drafter and target read the same noise for the same token, and \
                 the emitted token argmax(log p + G) does not depend on q. Gumbel with K drafts \
                 uses the top K of log q + G (K distinct tokens); SpecInfer and naive use K \
                 i.i.d. drafts, whose acceptance no lossless rule can push above the `bound` \
                 column Σ min(p, 1 − (1 − q)^K)."
                    .into(),
                "Tables are bit-identical for the same config and seed at any thread count; the \
                 manifest records the config as resolved, seeds, git revision and versions."
                    .into(),
            ],
            tables: vec![],
            figures: vec![],
        },
    ]);
    Ok(ReportContent {
        title: "Acceptance rules of speculative decoding".into(),
        question: QUESTION.into(),
        findings,
        sections,
        figures,
    })
}

/// (TV, gumbel/standard) per pair x temperature at one draft.
fn gumbel_ratios(
    pair: &[String],
    rule: &[String],
    drafts: &[f64],
    temp: &[f64],
    tv: &[f64],
    exact: &[Option<f64>],
    est: &[f64],
) -> Vec<(f64, f64)> {
    let n = pair.len();
    let value = |i: usize| exact[i].unwrap_or(est[i]);
    let mut out = Vec::new();
    for i in (0..n).filter(|&i| rule[i] == "gumbel" && drafts[i] == 1.0) {
        if let Some(j) = (0..n).find(|&j| {
            // Same pair, temperature and sweep point (the TV identifies the point).
            rule[j] == "standard"
                && pair[j] == pair[i]
                && temp[j] == temp[i]
                && tv[j] == tv[i]
                && drafts[j] == 1.0
        }) {
            if value(j) > 0.0 {
                out.push((tv[i], value(i) / value(j)));
            }
        }
    }
    out.sort_by(|a, b| a.0.total_cmp(&b.0));
    out
}

#[allow(clippy::too_many_arguments)]
fn acceptance_vs_tv(
    pair: &[String],
    rule: &[String],
    drafts: &[f64],
    tv: &[f64],
    exact: &[Option<f64>],
    est: &[f64],
    lo: &[f64],
    hi: &[f64],
) -> Figure {
    let max_tv = tv.iter().cloned().fold(0.0, f64::max).max(1e-3);
    let mut series = vec![Series {
        name: "1 − TV: best single-draft lossless rule".into(),
        group: Some("bound".into()),
        style: SeriesStyle::Line,
        points: vec![Point::new(0.0, 1.0), Point::new(max_tv, 1.0 - max_tv)],
    }];
    for r in distinct(rule) {
        let rows: Vec<usize> = (0..rule.len())
            .filter(|&i| rule[i] == r && drafts[i] == 1.0)
            .collect();
        if rows.is_empty() {
            continue;
        }
        // Closed forms are functions of the pair, not of TV alone: one curve per
        // pair, across its sweep points and temperatures.
        for name in distinct(&rows.iter().map(|&i| pair[i].clone()).collect::<Vec<_>>()) {
            let mut curve: Vec<Point> = rows
                .iter()
                .filter(|&&i| pair[i] == name)
                .filter_map(|&i| exact[i].map(|x| Point::new(tv[i], x)))
                .collect();
            curve.sort_by(|a, b| a.x.total_cmp(&b.x));
            if curve.len() >= 2 {
                series.push(Series {
                    name: format!("{r} (exact)"),
                    group: Some(r.clone()),
                    style: SeriesStyle::Line,
                    points: curve,
                });
            }
        }
        series.push(Series {
            name: format!("{r} (Monte Carlo, 95% CI)"),
            group: Some(r.clone()),
            style: SeriesStyle::Markers,
            points: rows
                .iter()
                .map(|&i| Point::with_interval(tv[i], est[i], lo[i], hi[i]))
                .collect(),
        });
    }
    Figure {
        name: "acceptance_vs_tv".into(),
        title: "Acceptance probability against TV(p, q), one draft".into(),
        x_label: "total variation distance TV(p, q)".into(),
        y_label: "acceptance probability".into(),
        x_scale: Scale::Linear,
        y_scale: Scale::Linear,
        y_range: Some((0.0, 1.02)),
        series,
        caption: "Markers: Monte-Carlo estimates with 95% intervals. Coloured lines: closed forms \
                  along each pair's sweep (drawn where a pair has several TV values). Grey line: \
                  1 − TV, the standard rule's acceptance and the most any single-draft lossless \
                  rule can reach."
            .into(),
    }
}

fn ratio_figure(ratios: &[(f64, f64)]) -> Figure {
    Figure {
        name: "gumbel_over_standard".into(),
        title: "Gumbel acceptance relative to the standard rule".into(),
        x_label: "total variation distance TV(p, q)".into(),
        y_label: "acceptance(gumbel) / acceptance(standard)".into(),
        x_scale: Scale::Linear,
        y_scale: Scale::Linear,
        y_range: None,
        series: vec![Series {
            name: "gumbel / standard (exact where available)".into(),
            group: Some("gumbel".into()),
            style: SeriesStyle::Markers,
            points: ratios.iter().map(|&(x, y)| Point::new(x, y)).collect(),
        }],
        caption: "Each marker is one pair at one temperature. Gumbel coupling needs no residual \
                  distribution and lets drafter and verifier share noise, at this cost in \
                  acceptance."
            .into(),
    }
}

#[allow(clippy::too_many_arguments)]
fn drafts_figure(
    pair: &[String],
    rule: &[String],
    drafts: &[f64],
    temp: &[f64],
    est: &[f64],
    lo: &[f64],
    hi: &[f64],
    acc: &Table,
) -> Result<Option<Figure>> {
    if !drafts.iter().any(|&k| k > 1.0) {
        return Ok(None);
    }
    let c = Cols { table: acc };
    let (bound, tv) = (c.opt("bound")?, c.f("tv")?);
    let (p0, t0, tv0) = (pair[0].clone(), temp[0], tv[0]);
    let mut series = Vec::new();
    for r in distinct(rule) {
        let rows: Vec<usize> = (0..rule.len())
            .filter(|&i| rule[i] == r && pair[i] == p0 && temp[i] == t0 && tv[i] == tv0)
            .collect();
        if rows.is_empty() {
            continue;
        }
        series.push(Series {
            name: r.clone(),
            group: Some(r.clone()),
            style: SeriesStyle::LineMarkers,
            points: rows
                .iter()
                .map(|&i| Point::with_interval(drafts[i], est[i], lo[i], hi[i]))
                .collect(),
        });
    }
    let mut bound_pts: Vec<Point> = (0..rule.len())
        .filter(|&i| {
            pair[i] == p0
                && temp[i] == t0
                && (rule[i] == "naive" || rule[i] == "specinfer" || drafts[i] == 1.0)
        })
        .filter_map(|i| bound[i].map(|b| Point::new(drafts[i], b)))
        .collect();
    bound_pts.sort_by(|a, b| a.x.total_cmp(&b.x));
    bound_pts.dedup_by(|a, b| a.x == b.x);
    if !bound_pts.is_empty() {
        series.push(Series {
            name: "bound for K i.i.d. drafts".into(),
            group: Some("bound".into()),
            style: SeriesStyle::Line,
            points: bound_pts,
        });
    }
    Ok(Some(Figure {
        name: "acceptance_vs_drafts".into(),
        title: format!("Acceptance against the number of drafts K (pair {p0}, T = {t0})"),
        x_label: "drafts per position K".into(),
        y_label: "acceptance probability".into(),
        x_scale: Scale::Linear,
        y_scale: Scale::Linear,
        y_range: Some((0.0, 1.02)),
        series,
        caption: "Monte-Carlo estimates with 95% intervals; the line is Σ min(p, 1 − (1 − q)^K)."
            .into(),
    }))
}

fn tokens_figures(tables: &[Table]) -> Result<Vec<Figure>> {
    let t = find(tables, "tokens_per_call")?;
    let c = Cols { table: t };
    let (pair, rule, drafts, temp) = (
        c.s("pair")?,
        c.s("rule")?,
        c.f("drafts")?,
        c.f("temperature")?,
    );
    let (gamma, model, est, lo, hi) = (
        c.f("gamma")?,
        c.f("model")?,
        c.f("estimate")?,
        c.f("ci_low")?,
        c.f("ci_high")?,
    );
    let tv = c.f("tv")?;
    if t.rows() == 0 {
        return Ok(vec![]);
    }
    // The first pair at its first temperature and sweep point.
    let (p0, t0, tv0) = (pair[0].clone(), temp[0], tv[0]);
    let mut series = Vec::new();
    for r in distinct(&rule) {
        let rows: Vec<usize> = (0..t.rows())
            .filter(|&i| {
                rule[i] == r && pair[i] == p0 && temp[i] == t0 && tv[i] == tv0 && drafts[i] == 1.0
            })
            .collect();
        if rows.is_empty() {
            continue;
        }
        series.push(Series {
            name: format!("{r} (model)"),
            group: Some(r.clone()),
            style: SeriesStyle::Line,
            points: rows
                .iter()
                .map(|&i| Point::new(gamma[i], model[i]))
                .collect(),
        });
        series.push(Series {
            name: format!("{r} (blocks, 95% CI)"),
            group: Some(r.clone()),
            style: SeriesStyle::Markers,
            points: rows
                .iter()
                .map(|&i| Point::with_interval(gamma[i], est[i], lo[i], hi[i]))
                .collect(),
        });
    }
    let mut figures = vec![Figure {
        name: "tokens_per_call".into(),
        title: format!("Tokens per target call against draft length (pair {p0}, T = {t0})"),
        x_label: "draft length γ".into(),
        y_label: "tokens per target call".into(),
        x_scale: Scale::Linear,
        y_scale: Scale::Linear,
        y_range: None,
        series,
        caption: "Lines: (1 − α^{γ+1})/(1 − α); markers: accepted prefixes of simulated blocks."
            .into(),
    }];

    let s = find(tables, "speedup")?;
    let c = Cols { table: s };
    let (spair, srule, sdrafts, stemp) = (
        c.s("pair")?,
        c.s("rule")?,
        c.f("drafts")?,
        c.f("temperature")?,
    );
    let (sgamma, cost, speed, stv) = (
        c.f("gamma")?,
        c.f("cost_ratio")?,
        c.f("speedup")?,
        c.f("tv")?,
    );
    let rules = distinct(&srule);
    let chosen = ["standard", "gumbel", "specinfer", "naive"]
        .iter()
        .find(|r| rules.iter().any(|x| x == *r))
        .map(|r| r.to_string())
        .or_else(|| rules.first().cloned());
    if let Some(chosen) = chosen {
        let mut series = Vec::new();
        for c0 in distinct(&cost) {
            let rows: Vec<usize> = (0..s.rows())
                .filter(|&i| {
                    srule[i] == chosen
                        && spair[i] == p0
                        && stemp[i] == t0
                        && stv[i] == tv0
                        && sdrafts[i] == 1.0
                        && cost[i] == c0
                })
                .collect();
            if rows.is_empty() {
                continue;
            }
            series.push(Series {
                name: format!("c = {c0}"),
                group: None,
                style: SeriesStyle::LineMarkers,
                points: rows
                    .iter()
                    .map(|&i| Point::new(sgamma[i], speed[i]))
                    .collect(),
            });
        }
        figures.push(Figure {
            name: "speedup".into(),
            title: format!("Speedup model for `{chosen}` (pair {p0}, T = {t0})"),
            x_label: "draft length γ".into(),
            y_label: "speedup over plain decoding".into(),
            x_scale: Scale::Linear,
            y_scale: Scale::Linear,
            y_range: None,
            series,
            caption: "(1 − α^{γ+1}) / ((1 − α)(γc + 1)) for each draft/target cost ratio c.".into(),
        });
    }
    Ok(figures)
}

fn emitted_figure(tables: &[Table]) -> Result<Option<Figure>> {
    let t = find(tables, "emitted")?;
    if t.rows() == 0 {
        return Ok(None);
    }
    let c = Cols { table: t };
    let (pair, rule, drafts, temp) = (
        c.s("pair")?,
        c.s("rule")?,
        c.f("drafts")?,
        c.f("temperature")?,
    );
    let (token, p, freq, tv) = (c.f("token")?, c.f("p")?, c.f("frequency")?, c.f("tv")?);
    // The pair furthest from its draft shows the rules apart best.
    let far = (0..t.rows()).fold(0, |b, i| if tv[i] > tv[b] { i } else { b });
    let (p0, t0, tv0) = (pair[far].clone(), temp[far], tv[far]);
    let rows0: Vec<usize> = (0..t.rows())
        .filter(|&i| pair[i] == p0 && temp[i] == t0 && tv[i] == tv0)
        .collect();
    let first_rule = rule[rows0[0]].clone();
    let first_k = drafts[rows0[0]];
    let mut series = vec![Series {
        name: "target p".into(),
        group: Some("target p".into()),
        style: SeriesStyle::Bars,
        points: rows0
            .iter()
            .filter(|&&i| rule[i] == first_rule && drafts[i] == first_k)
            .map(|&i| Point::new(token[i], p[i]))
            .collect(),
    }];
    let mut combos: Vec<(String, f64)> = Vec::new();
    for &i in &rows0 {
        if !combos.contains(&(rule[i].clone(), drafts[i])) {
            combos.push((rule[i].clone(), drafts[i]));
        }
    }
    for (r, k) in combos {
        series.push(Series {
            name: if k == 1.0 {
                r.clone()
            } else {
                format!("{r} (K = {k})")
            },
            group: Some(r.clone()),
            style: SeriesStyle::Markers,
            points: rows0
                .iter()
                .filter(|&&i| rule[i] == r && drafts[i] == k)
                .map(|&i| Point::new(token[i], freq[i]))
                .collect(),
        });
    }
    Ok(Some(Figure {
        name: "emitted_distribution".into(),
        title: format!("Emitted tokens against the target (pair {p0}, T = {t0})"),
        x_label: "token id".into(),
        y_label: "probability / frequency".into(),
        x_scale: Scale::Linear,
        y_scale: Scale::Linear,
        y_range: None,
        series,
        caption: "Bars: the target distribution p; markers: how often each rule emitted each \
                  token. Lossless rules sit on the bars."
            .into(),
    }))
}
