//! What the rotation report says, from the saved per-layer and summary tables.

use anyhow::Result;

use crate::experiment::outputs::{
    distinct, find_table, Figure, Point, ReportContent, Scale, Section, Series, SeriesStyle, Table,
    TableView,
};

/// Builds the report content of a rotation run.
pub fn content(tables: &[Table], _manifest: &serde_json::Value) -> Result<ReportContent> {
    let summary = find_table(tables, "rotation_summary")?;
    let layers = find_table(tables, "rotation_layers")?;
    let (scheme, weights) = (summary.texts("scheme")?, summary.texts("weights")?);
    let (abits, mean, worst) = (
        summary.floats("activation_bits")?,
        summary.floats("mean_sqnr_db")?,
        summary.floats("worst_sqnr_db")?,
    );
    let schemes = distinct(&scheme);
    let settings: Vec<(String, f64)> = {
        let mut v: Vec<(String, f64)> = Vec::new();
        for i in 0..scheme.len() {
            if !v.contains(&(weights[i].clone(), abits[i])) {
                v.push((weights[i].clone(), abits[i]));
            }
        }
        v
    };
    let mut findings = Vec::new();
    for (w, a) in &settings {
        let parts: Vec<String> = (0..scheme.len())
            .filter(|&i| &weights[i] == w && abits[i] == *a)
            .map(|i| {
                format!(
                    "{} {:.1} dB (worst layer {:.1})",
                    scheme[i], mean[i], worst[i]
                )
            })
            .collect();
        let act = if *a >= 16.0 {
            "A16".to_string()
        } else {
            format!("A{a}")
        };
        findings.push(format!(
            "{w} {act}: mean layer-output SQNR {}.",
            parts.join(", ")
        ));
    }
    // SQNR per layer for the hardest setting (last weights, last activation bits).
    let (ls, lw, la, lsite) = (
        layers.texts("scheme")?,
        layers.texts("weights")?,
        layers.floats("activation_bits")?,
        layers.texts("site")?,
    );
    let lsqnr = layers.floats("sqnr_db")?;
    let sites = distinct(&lsite);
    let (hw, ha) = settings.last().cloned().unwrap_or_default();
    let series = schemes
        .iter()
        .map(|s| Series {
            name: s.clone(),
            group: Some(s.clone()),
            style: SeriesStyle::LineMarkers,
            points: (0..ls.len())
                .filter(|&i| &ls[i] == s && lw[i] == hw && la[i] == ha)
                .map(|i| {
                    Point::new(
                        sites.iter().position(|x| *x == lsite[i]).unwrap_or(0) as f64,
                        lsqnr[i],
                    )
                })
                .collect(),
        })
        .collect();
    let figure = Figure {
        name: "sqnr_per_layer".into(),
        title: format!("Layer-output SQNR per linear layer, {hw} A{ha}"),
        x_label: "linear layer (forward order: q, k, v, o, gate, up, down per block, then head)"
            .into(),
        y_label: "SQNR (dB)".into(),
        x_scale: Scale::Linear,
        y_scale: Scale::Linear,
        y_range: None,
        series,
        caption: "Higher is better; one line per rotation scheme.".into(),
    };
    Ok(ReportContent {
        title: "Rotations against quantization error, layer by layer".into(),
        question: "Which rotation and quantizer lose least at a given bit width, layer by layer?".into(),
        findings,
        sections: vec![Section {
            heading: "Layer-output error".into(),
            paragraphs: vec![
                "For every linear layer, calibration inputs X (the tokens of the config) and weight W are \
                 rotated by the same orthogonal Q — exact in full precision, X Wᵀ = (X Q)(W Q)ᵀ — then W Q \
                 is fake-quantized with the weight quantizer and X Q per token with the activation bits \
                 (16 = unquantized). The error is ‖Y − Ŷ‖/‖Y‖ against Y = X Wᵀ, and SQNR = \
                 −20 log10 of it. Layers whose width has no Hadamard construction are skipped for the \
                 Hadamard schemes. Whole-model rotation (QuaRot's computational invariance) and \
                 perplexity under quantization are not part of this first version; see the eval study \
                 for whole-model numbers without rotation."
                    .into(),
                "Per layer: tables/rotation_layers.csv.".into(),
            ],
            tables: vec![TableView { caption: "Mean and worst layer SQNR".into(), table: summary.clone(), max_rows: Some(80), digits: 4 }],
            figures: vec!["sqnr_per_layer".into()],
        }],
        figures: vec![figure],
    })
}
