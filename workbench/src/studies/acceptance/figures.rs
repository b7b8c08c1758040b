//! The acceptance report's figures, each built from the saved tables.

use anyhow::{anyhow, Context, Result};

use crate::experiment::outputs::{Figure, Point, Scale, Series, SeriesStyle, Table};

/// Typed access to the columns of a saved table.
pub(super) struct Cols<'a> {
    pub(super) table: &'a Table,
}

impl<'a> Cols<'a> {
    pub(super) fn f(&self, name: &str) -> Result<Vec<f64>> {
        Ok(self
            .table
            .f64s(name)
            .ok_or_else(|| anyhow!("table {} has no numeric column {name}", self.table.name))?
            .into_iter()
            .map(|v| v.unwrap_or(f64::NAN))
            .collect())
    }
    pub(super) fn opt(&self, name: &str) -> Result<Vec<Option<f64>>> {
        self.table
            .f64s(name)
            .ok_or_else(|| anyhow!("table {} has no numeric column {name}", self.table.name))
    }
    pub(super) fn s(&self, name: &str) -> Result<Vec<String>> {
        Ok(self
            .table
            .strs(name)
            .ok_or_else(|| anyhow!("table {} has no text column {name}", self.table.name))?
            .iter()
            .map(|v| v.clone().unwrap_or_default())
            .collect())
    }
    pub(super) fn b(&self, name: &str) -> Result<Vec<Option<bool>>> {
        Ok(self
            .table
            .bools(name)
            .ok_or_else(|| anyhow!("table {} has no boolean column {name}", self.table.name))?
            .to_vec())
    }
}

pub(super) fn find<'a>(tables: &'a [Table], name: &str) -> Result<&'a Table> {
    tables
        .iter()
        .find(|t| t.name == name)
        .with_context(|| format!("the run saved no table `{name}`"))
}

/// Distinct values in order of first appearance.
pub(super) fn distinct<T: PartialEq + Clone>(v: &[T]) -> Vec<T> {
    let mut out: Vec<T> = Vec::new();
    for x in v {
        if !out.contains(x) {
            out.push(x.clone());
        }
    }
    out
}

/// (TV, gumbel/standard) per pair x temperature at one draft.
pub(super) fn gumbel_ratios(
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
pub(super) fn acceptance_vs_tv(
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

pub(super) fn ratio_figure(ratios: &[(f64, f64)]) -> Figure {
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
pub(super) fn drafts_figure(
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

pub(super) fn tokens_figures(tables: &[Table]) -> Result<Vec<Figure>> {
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

pub(super) fn emitted_figure(tables: &[Table]) -> Result<Option<Figure>> {
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
