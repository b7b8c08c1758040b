//! What the training report says, from the saved loss curve and summary.

use anyhow::{anyhow, Result};

use crate::experiment::outputs::{
    Figure, Point, ReportContent, Scale, Section, Series, SeriesStyle, Table, TableView,
};

fn find<'a>(tables: &'a [Table], name: &str) -> Result<&'a Table> {
    tables
        .iter()
        .find(|t| t.name == name)
        .ok_or_else(|| anyhow!("the run saved no table `{name}`"))
}

fn col(t: &Table, name: &str) -> Result<Vec<Option<f64>>> {
    t.f64s(name)
        .ok_or_else(|| anyhow!("table {} has no column {name}", t.name))
}

/// Builds the report content of a training run.
pub fn content(tables: &[Table], _manifest: &serde_json::Value) -> Result<ReportContent> {
    let curve = find(tables, "loss_curve")?;
    let summary = find(tables, "summary")?;
    let (step, train, valid) = (
        col(curve, "step")?,
        col(curve, "train_loss")?,
        col(curve, "valid_loss")?,
    );
    let get = |n: &str| {
        col(summary, n)
            .ok()
            .and_then(|v| v.first().cloned().flatten())
            .unwrap_or(f64::NAN)
    };
    let output = summary
        .strs("output")
        .and_then(|v| v[0].clone())
        .unwrap_or_default();
    let findings = vec![
        format!(
            "{} parameters trained for {} steps ({} tokens seen); final validation loss {:.4} nats/token \
             (perplexity {:.2}) on {} held-out tokens.",
            get("parameters"), get("steps"), get("tokens_seen"), get("final_valid_loss"),
            get("valid_perplexity"), get("valid_tokens")
        ),
        format!(
            "Tokenizer: byte-level BPE with {} entries, {:.2} bytes per token on the training text; \
             training ran at {:.0} tokens/s. The model is saved at `{output}` (config.json, \
             model.safetensors, tokenizer.json).",
            get("vocab_size"), get("bytes_per_token"), get("train_tokens_per_second")
        ),
    ];
    let points = |v: &[Option<f64>]| -> Vec<Point> {
        step.iter()
            .zip(v)
            .filter_map(|(s, y)| Some(Point::new((*s)?, (*y)?)))
            .collect()
    };
    let figure = Figure {
        name: "loss_curve".into(),
        title: "Training and validation loss".into(),
        x_label: "step".into(),
        y_label: "cross-entropy (nats/token)".into(),
        x_scale: Scale::Linear,
        y_scale: Scale::Linear,
        y_range: None,
        series: vec![
            Series {
                name: "train (batch)".into(),
                group: Some("train".into()),
                style: SeriesStyle::Line,
                points: points(&train),
            },
            Series {
                name: "validation".into(),
                group: Some("valid".into()),
                style: SeriesStyle::LineMarkers,
                points: points(&valid),
            },
        ],
        caption: "Training loss of each step's batch and validation loss at each evaluation."
            .into(),
    };
    Ok(ReportContent {
        title: "Training run".into(),
        question: "How low does the validation loss of this recipe go within its budget, and how does it get there?".into(),
        findings,
        sections: vec![Section {
            heading: "Loss".into(),
            paragraphs: vec![
                "AdamW (checkpointable, identical to candle-nn's update), global gradient-norm clipping, \
                 linear warm-up then cosine decay. Batches are windows of the token stream at positions \
                 keyed by (seed, step, row), so a run resumed from a checkpoint sees the same batches \
                 as an uninterrupted one. Full curve: tables/loss_curve.csv."
                    .into(),
            ],
            tables: vec![TableView { caption: "Summary".into(), table: summary.clone(), max_rows: None, digits: 5 }],
            figures: vec!["loss_curve".into()],
        }],
        figures: vec![figure],
    })
}
