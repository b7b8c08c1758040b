//! What the outlier report says, from the saved summary and channel tables.

use anyhow::Result;

use crate::experiment::outputs::{
    distinct, find_table, Figure, Point, ReportContent, Scale, Section, Series, SeriesStyle, Table,
    TableView,
};

/// Builds the report content of an outlier run.
pub fn content(tables: &[Table], _manifest: &serde_json::Value) -> Result<ReportContent> {
    let summary = find_table(tables, "outlier_summary")?;
    let (scheme, site, kind) = (
        summary.texts("scheme")?,
        summary.texts("site")?,
        summary.texts("kind")?,
    );
    let (layer, kurt, ratio) = (
        summary.floats("layer")?,
        summary.floats("kurtosis")?,
        summary.floats("max_over_median")?,
    );
    let (int8, massive) = (
        summary.floats("int8_outlier_features")?,
        summary.floats("massive_activations")?,
    );
    let schemes = distinct(&scheme);
    let n = scheme.len();
    let mut findings = Vec::new();
    for s in &schemes {
        let rows: Vec<usize> = (0..n)
            .filter(|&i| &scheme[i] == s && kind[i] != "weight")
            .collect();
        if rows.is_empty() {
            continue;
        }
        let mean = |v: &[f64]| rows.iter().map(|&i| v[i]).sum::<f64>() / rows.len() as f64;
        let worst = rows
            .iter()
            .cloned()
            .max_by(|&a, &b| kurt[a].total_cmp(&kurt[b]))
            .unwrap();
        findings.push(format!(
            "{s}: mean activation kurtosis {:.1} over {} sites (highest {:.1} at {}), mean max/median \
             channel absmax {:.1}, {} LLM.int8() outlier features and {} massive activations in all.",
            mean(&kurt),
            rows.len(),
            kurt[worst],
            site[worst],
            mean(&ratio),
            rows.iter().map(|&i| int8[i]).sum::<f64>(),
            rows.iter().map(|&i| massive[i]).sum::<f64>()
        ));
    }
    // Kurtosis and max/median against the layer, one series per scheme, per kind.
    let per_layer =
        |metric: &[f64], name: &str, title: &str, y: &str, kinds: &[&str], log: bool| -> Figure {
            let mut series = Vec::new();
            for s in &schemes {
                for k in kinds {
                    let mut pts: Vec<Point> = (0..n)
                        .filter(|&i| &scheme[i] == s && kind[i] == *k && layer[i] >= 0.0)
                        .map(|i| Point::new(layer[i], metric[i]))
                        .collect();
                    pts.sort_by(|a, b| a.x.total_cmp(&b.x));
                    if !pts.is_empty() {
                        series.push(Series {
                            name: if kinds.len() > 1 {
                                format!("{s}, {k}")
                            } else {
                                s.clone()
                            },
                            group: Some(s.clone()),
                            style: SeriesStyle::LineMarkers,
                            points: pts,
                        });
                    }
                }
            }
            Figure {
                name: name.into(),
                title: title.into(),
                x_label: "layer".into(),
                y_label: y.into(),
                x_scale: Scale::Linear,
                y_scale: if log { Scale::Log } else { Scale::Linear },
                y_range: None,
                series,
                caption: "One line per rotation scheme; a Gaussian has kurtosis 3.".into(),
            }
        };
    let figures = vec![
        per_layer(
            &kurt,
            "kurtosis_attn_input",
            "Kurtosis of the attention input per layer",
            "kurtosis (log)",
            &["attn_input"],
            true,
        ),
        per_layer(
            &kurt,
            "kurtosis_mlp_hidden",
            "Kurtosis of the MLP hidden activations per layer",
            "kurtosis (log)",
            &["mlp_hidden"],
            true,
        ),
        per_layer(
            &ratio,
            "max_over_median_residual",
            "Outlier channels of the residual stream",
            "max / median channel absmax (log)",
            &["residual"],
            true,
        ),
        per_layer(
            &kurt,
            "kurtosis_weights",
            "Kurtosis of the weights by input channel",
            "kurtosis (log)",
            &["weight"],
            true,
        ),
    ];
    let view = summary.select_columns(&[
        "scheme",
        "site",
        "kind",
        "layer",
        "kurtosis",
        "absmax",
        "max_over_median",
        "int8_outlier_features",
        "massive_activations",
    ]);
    Ok(ReportContent {
        title: "Per-channel outliers before and after rotation".into(),
        question: "Which channels of which layers are outliers, how large are they, and does rotating \
                   the channels (Hadamard, random Hadamard, random orthogonal) remove them?"
            .into(),
        findings,
        sections: vec![Section {
            heading: "Outliers by site and scheme".into(),
            paragraphs: vec![
                "Sites: the input of each block's attention (shared by q, k and v), the attention \
                 output entering o_proj, the MLP input (shared by gate and up), the MLP hidden \
                 activation entering down_proj, the head input, the residual stream after each block, \
                 and each of those layers' weights by input channel. Every site's channels are \
                 multiplied by the scheme's orthogonal matrix Q before measuring (x Q for activations, \
                 W Q for weights, which is how a rotation folded into the model sees them). Statistics \
                 are streamed in mergeable accumulators; kurtosis is of all the site's values pooled. \
                 Sites whose width has no Hadamard construction are left out for that scheme."
                    .into(),
                "Full per-channel statistics: tables/outlier_channels.csv.".into(),
            ],
            tables: vec![TableView { caption: "Summary per site".into(), table: view, max_rows: Some(60), digits: 4 }],
            figures: figures.iter().map(|f| f.name.clone()).collect(),
        }],
        figures,
    })
}
