//! What the QAT report says, computed from the saved tables.

use anyhow::Result;

use super::figures;
use crate::experiment::outputs::{find_table, ReportContent, Section, Table, TableView};

const QUESTION: &str = "When a model is fine-tuned (or trained from scratch) with its weights \
and activations fake-quantized, does Muon reach a better quantized model than AdamW — each at its \
own best learning rate, with the same data, budget and seeds — and what happens to weight and \
activation outliers along the way?";

const CONTEXT: &str = "Context, not a target: Outlier-Safe Pre-Training (Park et al. 2025) found \
that Muon alone left activation kurtosis close to Adam's, while their full recipe (Muon with \
single-scale RMSNorm and learnable embedding projection) removed the outliers; Vlassis et al. \
2025 found kurtosis a poor predictor of the quantization loss when comparing optimizers. The \
correlation finding above tests the latter on these runs.";

fn text(t: &Table, name: &str) -> Vec<String> {
    t.texts(name).unwrap_or_default()
}

fn num(t: &Table, name: &str) -> Vec<f64> {
    t.floats(name).unwrap_or_else(|_| vec![f64::NAN; t.rows()])
}

fn interval(lo: f64, hi: f64) -> String {
    if lo.is_finite() && hi.is_finite() {
        format!(" [{lo:.4}, {hi:.4}]")
    } else {
        String::new()
    }
}

/// Spearman rank correlation of two samples (NaN pairs dropped).
pub fn spearman(x: &[f64], y: &[f64]) -> (f64, usize) {
    let pairs: Vec<(f64, f64)> = x
        .iter()
        .zip(y)
        .filter(|(a, b)| a.is_finite() && b.is_finite())
        .map(|(a, b)| (*a, *b))
        .collect();
    let n = pairs.len();
    if n < 3 {
        return (f64::NAN, n);
    }
    let ranks = |v: Vec<f64>| -> Vec<f64> {
        let mut idx: Vec<usize> = (0..v.len()).collect();
        idx.sort_by(|&a, &b| v[a].total_cmp(&v[b]));
        let mut r = vec![0.0; v.len()];
        let mut i = 0;
        while i < idx.len() {
            let mut j = i;
            while j + 1 < idx.len() && v[idx[j + 1]] == v[idx[i]] {
                j += 1;
            }
            for k in i..=j {
                r[idx[k]] = (i + j) as f64 / 2.0;
            }
            i = j + 1;
        }
        r
    };
    let rx = ranks(pairs.iter().map(|p| p.0).collect());
    let ry = ranks(pairs.iter().map(|p| p.1).collect());
    let mean = (n as f64 - 1.0) / 2.0;
    let cov: f64 = rx
        .iter()
        .zip(&ry)
        .map(|(a, b)| (a - mean) * (b - mean))
        .sum();
    let vx: f64 = rx.iter().map(|a| (a - mean).powi(2)).sum();
    let vy: f64 = ry.iter().map(|b| (b - mean).powi(2)).sum();
    (cov / (vx * vy).sqrt(), n)
}

fn headline_findings(head: &Table, compare: &Table, sweep: &Table) -> Vec<String> {
    let mut out = Vec::new();
    let (mode, opt) = (text(head, "mode"), text(head, "optimizer"));
    let (lr, seeds, swept) = (
        num(head, "best_lr"),
        num(head, "seeds"),
        num(head, "lrs_swept"),
    );
    let (q, lo, hi) = (
        num(head, "quant_loss"),
        num(head, "quant_loss_ci_low"),
        num(head, "quant_loss_ci_high"),
    );
    let (fp, kurt) = (num(head, "fp_loss"), num(head, "act_kurtosis_mean"));
    let (s_mode, s_opt, s_lr) = (
        text(sweep, "mode"),
        text(sweep, "optimizer"),
        num(sweep, "lr"),
    );
    for i in 0..head.rows() {
        let lrs: Vec<f64> = (0..sweep.rows())
            .filter(|&j| s_mode[j] == mode[i] && s_opt[j] == opt[i])
            .map(|j| s_lr[j])
            .collect();
        let edge = lrs.len() > 1 && (lr[i] == lrs[0] || lr[i] == lrs[lrs.len() - 1]);
        out.push(format!(
            "{}, {}: best of {} learning rates is {:.2e}{}; over {} seeds the quantized validation loss is \
             {:.4}{} nats/token (perplexity {:.2}), full precision {:.4}, final activation kurtosis {:.2}.",
            mode[i],
            opt[i],
            swept[i],
            lr[i],
            if edge { " (at the edge of the sweep: the optimum may lie beyond it)" } else { "" },
            seeds[i],
            q[i],
            interval(lo[i], hi[i]),
            q[i].exp(),
            fp[i],
            kurt[i]
        ));
    }
    let (c_mode, metric) = (text(compare, "mode"), text(compare, "metric"));
    let (d, dlo, dhi) = (
        num(compare, "muon_minus_adamw"),
        num(compare, "ci_low"),
        num(compare, "ci_high"),
    );
    let (pairs, lower) = (num(compare, "pairs"), num(compare, "seeds_muon_lower"));
    for i in (0..compare.rows()).filter(|&i| metric[i] == "quant_loss") {
        let verdict = if dhi[i] < 0.0 {
            "Muon is better beyond the seed spread"
        } else if dlo[i] > 0.0 {
            "AdamW is better beyond the seed spread"
        } else if dlo[i].is_nan() {
            "one seed: no interval"
        } else {
            "the interval includes zero: no difference resolved"
        };
        out.push(format!(
            "{}: Muon − AdamW quantized loss {:+.4}{} nats/token, paired over {} seeds (Muon lower in {}); {verdict}.",
            c_mode[i], d[i], interval(dlo[i], dhi[i]), pairs[i], lower[i]
        ));
    }
    out
}

/// QAT against its full-precision control, per optimizer.
fn qat_vs_control(head: &Table) -> Vec<String> {
    let (mode, opt, q) = (
        text(head, "mode"),
        text(head, "optimizer"),
        num(head, "quant_loss"),
    );
    let mut out = Vec::new();
    for prefix in ["finetune", "scratch"] {
        for o in ["adamw", "muon"] {
            let find = |m: String| (0..head.rows()).find(|&i| mode[i] == m && opt[i] == o);
            if let (Some(a), Some(b)) =
                (find(format!("{prefix}_qat")), find(format!("{prefix}_fp")))
            {
                out.push(format!(
                    "{prefix}, {o}: training through the quantizer gives quantized loss {:.4} against {:.4} \
                     for full-precision training then quantization ({:+.4}).",
                    q[a], q[b], q[a] - q[b]
                ));
            }
        }
    }
    out
}

/// Whether final activation kurtosis ranks runs by quantization damage.
fn kurtosis_predicts(finals: &Table) -> String {
    let (kurt, gap) = (num(finals, "act_kurtosis_mean"), num(finals, "quant_gap"));
    let (rho, n) = spearman(&kurt, &gap);
    format!(
        "Across all {n} runs, the Spearman correlation between final activation kurtosis and the \
         quantization gap (quantized − full-precision loss) is {rho:.3}."
    )
}

/// Builds the report content of a QAT run.
pub fn content(tables: &[Table], _manifest: &serde_json::Value) -> Result<ReportContent> {
    let curves = find_table(tables, "qat_curves")?;
    let finals = find_table(tables, "qat_final")?;
    let ptq = find_table(tables, "qat_ptq")?;
    let sweep = find_table(tables, "qat_sweep")?;
    let head = find_table(tables, "qat_headline")?;
    let compare = find_table(tables, "qat_compare")?;
    let split = find_table(tables, "qat_split")?;
    let mut findings = headline_findings(head, compare, sweep);
    findings.extend(qat_vs_control(head));
    findings.push(kurtosis_predicts(finals));
    let mut figures = figures::loss_curves(curves)?;
    let curve_names: Vec<String> = figures.iter().map(|f| f.name.clone()).collect();
    figures.push(figures::ppl_vs_lr(finals)?);
    figures.push(figures::ppl_vs_bits(ptq)?);
    figures.push(figures::kurtosis_curves(curves)?);
    let view = |caption: &str, table: &Table, max_rows: Option<usize>| TableView {
        caption: caption.into(),
        table: table.clone(),
        max_rows,
        digits: 5,
    };
    let best_ptq = ptq.filter(|i| ptq.bools("best_lr").is_some_and(|b| b[i] == Some(true)));
    let sections = vec![
        Section {
            heading: "Setup".into(),
            paragraphs: vec![
                "Every (mode, optimizer, learning rate, seed) is one resumable run. Both optimizers \
                 see the same batches in the same order for a given seed, the same token budget, \
                 warm-up and cosine schedule, weight decay and gradient clipping. Muon updates the \
                 hidden projection matrices (tables/qat_split.csv); the embedding, head and norm \
                 gains stay with AdamW, as do learned quantizer steps (without decay). Each \
                 optimizer is compared at its own best learning rate: the one with the lowest mean \
                 final quantized validation loss over seeds."
                    .into(),
                "QAT fake-quantizes the weights of every block projection (symmetric absmax grid per \
                 channel or group, straight-through gradient, or learned steps with LSQ) and their \
                 input activations per token. The quantized loss of a full-precision run applies \
                 the same grid after training. Post-training quantization of every final model uses \
                 the workbench's shared RTN quantizers, optionally after a whole-model rotation. \
                 Outlier statistics are those of the full-precision weights and of their \
                 activations on held-out windows."
                    .into(),
                CONTEXT.into(),
            ],
            tables: vec![
                view("Each optimizer at its best learning rate (mean over seeds)", head, None),
                view("Muon − AdamW at the best learning rates, paired by seed", compare, None),
            ],
            figures: curve_names,
        },
        Section {
            heading: "Learning-rate sweeps".into(),
            paragraphs: vec!["Mean over seeds per learning rate with its 95% t interval; every run \
                              is in tables/qat_final.csv."
                .into()],
            tables: vec![view("Sweep", sweep, None)],
            figures: vec!["ppl_vs_lr".into()],
        },
        Section {
            heading: "Quantizing the final models".into(),
            paragraphs: vec!["The final full-precision weights of each run at its optimizer's best \
                              learning rate, quantized after training at several bit widths, with \
                              and without a rotation; all runs in tables/qat_ptq.csv."
                .into()],
            tables: vec![view("At the best learning rates", &best_ptq, Some(48))],
            figures: vec!["ppl_vs_bits".into()],
        },
        Section {
            heading: "Outliers along training".into(),
            paragraphs: vec!["Pooled kurtosis, absmax and max/median channel absmax of every \
                              linear-layer input and the residual stream, and of the quantized \
                              weights by input channel, at every evaluation (tables/qat_curves.csv)."
                .into()],
            tables: vec![view("Final state of every run", finals, Some(40))],
            figures: vec!["kurtosis_curves".into()],
        },
        Section {
            heading: "Parameter groups".into(),
            paragraphs: vec![],
            tables: vec![view("Which optimizer updates each tensor in the Muon runs", split, None)],
            figures: vec![],
        },
    ];
    Ok(ReportContent {
        title: "Muon versus AdamW for quantization-aware training".into(),
        question: QUESTION.into(),
        findings,
        sections,
        figures,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spearman_of_monotone_and_reversed_samples() {
        let x = [1.0, 2.0, 3.0, 4.0, 10.0];
        assert!((spearman(&x, &[2.0, 4.0, 5.0, 9.0, 11.0]).0 - 1.0).abs() < 1e-12);
        assert!((spearman(&x, &[5.0, 4.0, 3.0, 2.0, 1.0]).0 + 1.0).abs() < 1e-12);
        assert!(spearman(&x[..2], &x[..2]).0.is_nan());
    }
}
