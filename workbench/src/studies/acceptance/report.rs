//! What the acceptance report says, computed from the saved tables alone.

use anyhow::Result;

use super::figures::{
    acceptance_vs_tv, drafts_figure, emitted_figure, find, gumbel_ratios, ratio_figure,
    tokens_figures, Cols,
};
use crate::experiment::outputs::{ReportContent, Section, Table, TableView};

const QUESTION: &str = "When a draft distribution q proposes tokens for a target p, how often \
is a draft accepted under each rule, is the output still distributed as p, and what does that \
buy in tokens per target call?";

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
