//! What the evaluation report says, from the saved `eval` table.

use anyhow::{anyhow, Result};

use crate::experiment::outputs::{
    Figure, Point, ReportContent, Scale, Section, Series, SeriesStyle, Table, TableView,
};

const QUESTION: &str = "How far does each weight variant move the model from its full-precision \
self on the same tokens — in perplexity, KL divergence and top-1 agreement — and how good a \
drafter for the full-precision model would it be?";

fn column(table: &Table, name: &str) -> Result<Vec<f64>> {
    Ok(table
        .f64s(name)
        .ok_or_else(|| anyhow!("table eval has no column {name}"))?
        .into_iter()
        .map(|v| v.unwrap_or(f64::NAN))
        .collect())
}

/// Builds the report content of an evaluation run.
pub fn content(tables: &[Table], manifest: &serde_json::Value) -> Result<ReportContent> {
    let table = tables
        .iter()
        .find(|t| t.name == "eval")
        .ok_or_else(|| anyhow!("the run saved no table `eval`"))?;
    // Each row is named by its weight variant, prefixed by its rotation if any.
    let rotations = table
        .texts("rotation")
        .unwrap_or_else(|_| vec!["none".into(); table.rows()]);
    let weights: Vec<String> = table
        .texts("weights")?
        .into_iter()
        .zip(&rotations)
        .map(|(w, r)| if r == "none" { w } else { format!("{r}+{w}") })
        .collect();
    let c = |n: &str| column(table, n);
    let (kl, kl_lo, kl_hi) = (c("kl")?, c("kl_ci_low")?, c("kl_ci_high")?);
    let (ks_lo, ks_hi) = (
        c("ce_minus_reference_ci_low")?,
        c("ce_minus_reference_ci_high")?,
    );
    let (ppl, top1) = (c("perplexity")?, c("top1_agreement")?);
    let (acc_s, acc_g) = (c("accept_standard")?, c("accept_gumbel")?);
    let (acc_s_lo, acc_s_hi) = (c("accept_standard_ci_low")?, c("accept_standard_ci_high")?);
    let (acc_g_lo, acc_g_hi) = (c("accept_gumbel_ci_low")?, c("accept_gumbel_ci_high")?);
    let positions = c("positions")?;
    let checkpoint = manifest
        .pointer("/points/0/config/model/checkpoint")
        .and_then(|v| v.as_str())
        .unwrap_or("?");
    let mut findings = Vec::new();
    for i in 0..weights.len() {
        findings.push(format!(
            "{}: perplexity {:.4}, KL {:.3e} [{:.3e}, {:.3e}] nats/token, top-1 agreement {:.4}, acceptance \
             as a drafter {:.4} (standard) / {:.4} (gumbel), over {} positions.",
            weights[i], ppl[i], kl[i], kl_lo[i], kl_hi[i], top1[i], acc_s[i], acc_g[i], positions[i]
        ));
    }
    let agree = (0..weights.len())
        .filter(|&i| ks_lo[i] <= kl[i] + 1e-12 && kl[i] <= ks_hi[i] + 1e-12)
        .count();
    let sampled = manifest
        .pointer("/points/0/config/data/source")
        .and_then(|v| v.as_str())
        .is_none_or(|s| s == "sampled");
    if sampled {
        findings.push(format!(
        "Check: the exact KL lies inside the 95% interval of its sampled estimate (cross-entropy \
         minus the reference's, on tokens sampled from the reference) for {agree} of {} variants.",
        weights.len()
    ));
    }
    let series = |name: &str, v: &[f64], lo: &[f64], hi: &[f64], style| Series {
        name: name.into(),
        group: Some(name.into()),
        style,
        points: (0..v.len())
            .map(|i| Point::with_interval(i as f64, v[i], lo[i], hi[i]))
            .collect(),
    };
    let axis_note = weights
        .iter()
        .enumerate()
        .map(|(i, w)| format!("{i} = {w}"))
        .collect::<Vec<_>>()
        .join(", ");
    let figures = vec![Figure {
        name: "acceptance_by_variant".into(),
        title: "Acceptance of each weight variant as a drafter for full precision".into(),
        x_label: format!("variant ({axis_note})"),
        y_label: "mean acceptance per position".into(),
        x_scale: Scale::Linear,
        y_scale: Scale::Linear,
        y_range: None,
        series: vec![
            series(
                "standard (1 − TV)",
                &acc_s,
                &acc_s_lo,
                &acc_s_hi,
                SeriesStyle::Bars,
            ),
            series("gumbel", &acc_g, &acc_g_lo, &acc_g_hi, SeriesStyle::Bars),
        ],
        caption: "Mean over predicted positions of the closed-form acceptance with the variant's \
                  distribution as q and the full-precision one as p; 95% intervals over sequences."
            .into(),
    }];
    let view = table.select_columns(&[
        "rotation",
        "weights",
        "sequences",
        "context_length",
        "positions",
        "perplexity",
        "kl",
        "kl_ci_low",
        "kl_ci_high",
        "ce_minus_reference",
        "top1_agreement",
        "accept_standard",
        "accept_gumbel",
    ]);
    Ok(ReportContent {
        title: format!("Evaluation of {checkpoint}"),
        question: QUESTION.into(),
        findings,
        sections: vec![Section {
            heading: "Variants against full precision".into(),
            paragraphs: vec![
                "Tokens are sequences sampled from the full-precision model (temperature and \
                     seed in the config; BOS first), cached in the data cache. For each \
                     predicted position: cross-entropy of the next token, exact KL(p_ref ‖ q) \
                     from the full distributions, whether the argmaxes agree, and the \
                     acceptance of the standard rule (1 − TV) and of the Gumbel coupling with \
                     the variant drafting for the reference. On tokens sampled from the \
                     reference, cross-entropy minus the reference's cross-entropy is an \
                     unbiased estimate of the same KL (`ce_minus_reference`; on a text it is only the \
                     difference in cross-entropy). Intervals are 95% \
                     over sequences. Variants change every linear layer's weight: `bf16`/`f16` \
                     round it to that type; `w<bits>[g<group>][a][mse]` is round-to-nearest \
                     integer fake quantization per output channel or per group of inputs, \
                     symmetric unless `a`, with MSE-optimal clipping if `mse`. Embedding \
                     lookups stay in f32."
                    .into(),
            ],
            tables: vec![TableView {
                caption: "One row per weight variant".into(),
                table: view,
                max_rows: None,
                digits: 5,
            }],
            figures: vec!["acceptance_by_variant".into()],
        }],
        figures,
    })
}
