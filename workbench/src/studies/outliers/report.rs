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
    let mut figures = vec![
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
    let mut sections = vec![Section {
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
            "Full per-channel statistics (absmax, mean, std, kurtosis, |x| quantiles 50/99/99.9%, \
             share of values at or above the LLM.int8() threshold): tables/outlier_channels.csv."
                .into(),
        ],
        tables: vec![TableView {
            caption: "Summary per site".into(),
            table: view,
            max_rows: Some(60),
            digits: 4,
        }],
        figures: figures.iter().map(|f| f.name.clone()).collect(),
    }];
    if let Ok(c) = find_table(tables, "outlier_channels") {
        let (figs, section) = heat_maps(c, &schemes)?;
        figures.extend(figs);
        sections.push(section);
    }
    if let Ok(h) = find_table(tables, "outlier_histograms") {
        let (figs, section) = histograms(h, &schemes)?;
        figures.extend(figs);
        sections.push(section);
    }
    let mut criteria_tables = Vec::new();
    if let Ok(f) = find_table(tables, "outlier_features") {
        criteria_tables.push(TableView {
            caption: format!(
                "LLM.int8() outlier features across layers ({} rows)",
                f.rows()
            ),
            table: f.clone(),
            max_rows: Some(40),
            digits: 4,
        });
    }
    if let Ok(m) = find_table(tables, "massive_activations") {
        criteria_tables.push(TableView {
            caption: format!("Massive activations, largest first ({} rows)", m.rows()),
            table: m.clone(),
            max_rows: Some(40),
            digits: 4,
        });
    }
    if !criteria_tables.is_empty() {
        sections.push(Section {
            heading: "Outlier criteria".into(),
            paragraphs: vec![
                "LLM.int8() outlier features (Dettmers et al. 2022): a channel whose values reach the \
                 magnitude threshold (default 6) in at least the token share (default 6%) of \
                 positions, in at least the layer share (default 25%) of the layers of one site kind. \
                 Massive activations (Sun et al. 2024): single values at or above the threshold \
                 (default 100) and at least the ratio (default 1000×) times the site's median |x|, \
                 listed with the sequence, position and token where they occur (a weight's position \
                 is its output row). All thresholds are set under [criteria] in the config; an empty \
                 table means no channel or value met the criterion."
                    .into(),
            ],
            tables: criteria_tables,
            figures: Vec::new(),
        });
    }
    Ok(ReportContent {
        title: "Per-channel outliers before and after rotation".into(),
        question:
            "Which channels of which layers are outliers, how large are they, and does rotating \
                   the channels (Hadamard, random Hadamard, random orthogonal) remove them?"
                .into(),
        findings,
        sections,
        figures,
    })
}

/// Layer × channel absmax maps per site kind and scheme, on one log colour
/// scale per kind so that schemes compare.
fn heat_maps(c: &Table, schemes: &[String]) -> Result<(Vec<Figure>, Section)> {
    let (scheme, kind) = (c.texts("scheme")?, c.texts("kind")?);
    let (layer, channel, absmax) = (
        c.floats("layer")?,
        c.floats("channel")?,
        c.floats("absmax")?,
    );
    let mut figures = Vec::new();
    for k in ["residual", "attn_input", "mlp_hidden", "attn_output"] {
        let rows: Vec<usize> = (0..scheme.len()).filter(|&i| kind[i] == k).collect();
        let positive: Vec<f64> = rows
            .iter()
            .map(|&i| absmax[i])
            .filter(|&v| v > 0.0)
            .collect();
        if positive.is_empty() {
            continue;
        }
        let range = (
            positive.iter().cloned().fold(f64::INFINITY, f64::min),
            positive.iter().cloned().fold(0.0, f64::max),
        );
        for s in schemes {
            let mut layers = distinct(
                &rows
                    .iter()
                    .filter(|&&i| &scheme[i] == s)
                    .map(|&i| layer[i] as i64)
                    .collect::<Vec<_>>(),
            );
            layers.sort();
            if layers.is_empty() {
                continue;
            }
            let series = layers
                .iter()
                .map(|&l| Series {
                    name: if l < 0 {
                        "head".into()
                    } else {
                        format!("layer {l}")
                    },
                    group: None,
                    style: SeriesStyle::Cells,
                    points: rows
                        .iter()
                        .filter(|&&i| &scheme[i] == s && layer[i] as i64 == l)
                        .map(|&i| Point::new(channel[i], absmax[i]))
                        .collect(),
                })
                .collect();
            figures.push(Figure {
                name: format!("absmax_map_{k}_{s}"),
                title: format!("Channel absmax, {k}, {s}"),
                x_label: "channel".into(),
                y_label: "absmax |x| (log colour)".into(),
                x_scale: Scale::Linear,
                y_scale: Scale::Log,
                y_range: Some(range),
                series,
                caption: format!(
                    "One row per layer; bright columns are outlier channels. Same colour scale for every scheme of {k}."
                ),
            });
        }
    }
    let section = Section {
        heading: "Where the outlier channels are".into(),
        paragraphs: vec![
            "Each map shows, for one site kind and one scheme, the largest |x| of every channel \
             (columns) in every layer (rows). A channel that is bright in many layers is a \
             persistent outlier feature; after a rotation the energy is spread, so the map turns \
             uniform."
                .into(),
        ],
        tables: Vec::new(),
        figures: figures.iter().map(|f| f.name.clone()).collect(),
    };
    Ok((figures, section))
}

/// Per site kind, the distribution of |x| pooled over layers, one line per
/// scheme, both axes logarithmic: heavy tails show as mass far to the right.
fn histograms(h: &Table, schemes: &[String]) -> Result<(Vec<Figure>, Section)> {
    let (scheme, kind) = (h.texts("scheme")?, h.texts("kind")?);
    let (low, count) = (h.floats("abs_low")?, h.floats("count")?);
    let mut figures = Vec::new();
    for k in distinct(&kind) {
        let mut series = Vec::new();
        for s in schemes {
            let mut bins: std::collections::BTreeMap<u64, f64> = std::collections::BTreeMap::new();
            for i in 0..scheme.len() {
                // Bin 0 (|x| below 2^-24, zeros included) has no place on a log axis.
                if &scheme[i] == s && kind[i] == k && low[i] > 0.0 {
                    *bins.entry(low[i].to_bits()).or_default() += count[i];
                }
            }
            let total: f64 = bins.values().sum();
            if total == 0.0 {
                continue;
            }
            // Density per unit of log2|x| (8 bins per octave), so schemes compare.
            let points = bins
                .iter()
                .map(|(edge, c)| Point::new(f64::from_bits(*edge), c / total * 8.0))
                .collect();
            series.push(Series {
                name: s.clone(),
                group: Some(s.clone()),
                style: SeriesStyle::Line,
                points,
            });
        }
        figures.push(Figure {
            name: format!("histogram_{k}"),
            title: format!("Distribution of |x|, {k} (all layers pooled)"),
            x_label: "|x| (log)".into(),
            y_label: "density per octave of |x| (log)".into(),
            x_scale: Scale::Log,
            y_scale: Scale::Log,
            y_range: None,
            series,
            caption: "Log-spaced bins of 1/8 octave; a Gaussian falls off steeply to the right, outliers show as a long tail."
                .into(),
        });
    }
    let section = Section {
        heading: "Distributions of |x|".into(),
        paragraphs: vec!["Per-site histograms: tables/outlier_histograms.csv.".into()],
        tables: Vec::new(),
        figures: figures.iter().map(|f| f.name.clone()).collect(),
    };
    Ok((figures, section))
}
