//! What the rotation report says, from the saved tables.

use anyhow::Result;

use crate::experiment::outputs::{
    distinct, find_table, Figure, Point, ReportContent, Scale, Section, Series, SeriesStyle, Table,
    TableView,
};

/// "A16" or "A4".
fn act(bits: f64) -> String {
    if bits >= 16.0 {
        "A16".into()
    } else {
        format!("A{bits}")
    }
}

/// Three significant digits, in plain or scientific notation.
fn sig(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return format!("{v}");
    }
    let magnitude = v.abs().log10().floor() as i32;
    if (-3..4).contains(&magnitude) {
        format!("{:.*}", (2 - magnitude).max(0) as usize, v)
    } else {
        format!("{v:.2e}")
    }
}

/// Weight bits of a method name (`w4g32gptq` → 4, `f32` → 16) and its family
/// (the name without the bits: `w_g32gptq`).
fn weight_bits(name: &str) -> (f64, String) {
    if name == "f32" {
        return (16.0, "f32".into());
    }
    let rest = name.strip_prefix('w').unwrap_or(name);
    let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    let bits = digits.parse::<f64>().unwrap_or(f64::NAN);
    (bits, format!("w_{}", &rest[digits.len()..]))
}

/// Words for a weight-method family (`w_g32mse` → "RTN g32, MSE clip").
fn family_label(family: &str) -> String {
    let rest = family.trim_start_matches("w_");
    let (rest, gptq) = match rest.strip_suffix("gptq") {
        Some(r) => (r, true),
        None => (rest, false),
    };
    let (rest, mse) = match rest.strip_suffix("mse") {
        Some(r) => (r, true),
        None => (rest, false),
    };
    let (rest, asym) = match rest.strip_suffix('a') {
        Some(r) => (r, true),
        None => (rest, false),
    };
    let mut words = vec![if gptq { "GPTQ" } else { "RTN" }.to_string()];
    words.push(match rest.strip_prefix('g') {
        Some(g) => format!("groups of {g}"),
        None => "per channel".into(),
    });
    if asym {
        words.push("asymmetric".into());
    }
    if mse {
        words.push("MSE clip".into());
    }
    words.join(", ")
}

/// Builds the report content of a rotation run.
pub fn content(tables: &[Table], _manifest: &serde_json::Value) -> Result<ReportContent> {
    let summary = find_table(tables, "rotation_summary")?;
    let layers = find_table(tables, "rotation_layers")?;
    let mut findings = Vec::new();
    let mut figures = Vec::new();
    let mut sections = Vec::new();
    if let Ok(model) = find_table(tables, "rotation_model") {
        let (f, figs, section) = model_part(model)?;
        findings.extend(f);
        figures.extend(figs);
        sections.push(section);
    }
    let (f, fig, section) = layer_part(summary, layers)?;
    findings.extend(f);
    figures.push(fig);
    sections.push(section);
    Ok(ReportContent {
        title: "Rotations and SmoothQuant against quantization error".into(),
        question: "Which rotation and quantizer choice loses least at a given bit width, per layer and for the whole model?".into(),
        findings,
        sections,
        figures,
    })
}

fn model_part(model: &Table) -> Result<(Vec<String>, Vec<Figure>, Section)> {
    let scheme = model.texts("scheme")?;
    let weights = model.texts("weights")?;
    let abits = model.floats("activation_bits")?;
    let kv = model.floats("kv_bits")?;
    let kl = model.floats("kl")?;
    let (kl_lo, kl_hi) = (model.floats("kl_ci_low")?, model.floats("kl_ci_high")?);
    let ppl = model.floats("perplexity")?;
    let ce_lo = model.floats("cross_entropy_ci_low")?;
    let ce_hi = model.floats("cross_entropy_ci_high")?;
    let accept = model.floats("accept_gumbel")?;
    let schemes = distinct(&scheme);
    let rows = scheme.len();
    // Findings: per setting, the scheme with the lowest KL against `none`.
    let mut findings = Vec::new();
    let mut settings: Vec<(String, f64, f64)> = Vec::new();
    for i in 0..rows {
        let k = (weights[i].clone(), abits[i], kv[i]);
        if !settings.contains(&k) {
            settings.push(k);
        }
    }
    for (w, a, k) in &settings {
        let at: Vec<usize> = (0..rows)
            .filter(|&i| &weights[i] == w && abits[i] == *a && kv[i] == *k)
            .collect();
        let Some(&best) = at.iter().min_by(|&&x, &&y| kl[x].total_cmp(&kl[y])) else {
            continue;
        };
        let kv_text = if *k >= 16.0 {
            String::new()
        } else {
            format!("KV{k}")
        };
        let base = at.iter().find(|&&i| scheme[i] == "none");
        let versus = match base {
            Some(&b) if b != best => {
                format!(" (none: KL {}, perplexity {:.2})", sig(kl[b]), ppl[b])
            }
            _ => String::new(),
        };
        findings.push(format!(
            "{w} {}{kv_text}: lowest KL with {} — KL {} [{}, {}], perplexity {:.2}, Gumbel acceptance as a drafter {:.3}{versus}.",
            act(*a),
            scheme[best],
            sig(kl[best]),
            sig(kl_lo[best]),
            sig(kl_hi[best]),
            ppl[best],
            accept[best]
        ));
    }
    // Figures against weight bits at A16 KV16, one series per scheme (× family).
    let families = distinct(
        &weights
            .iter()
            .map(|w| weight_bits(w).1)
            .filter(|f| f != "f32")
            .collect::<Vec<_>>(),
    );
    // Against weight bits at A16 KV16: one figure per weight-method family,
    // one line per scheme.
    let series_vs_bits = |family: &str, value: &dyn Fn(usize) -> Point| -> Vec<Series> {
        schemes
            .iter()
            .filter_map(|s| {
                let mut points: Vec<Point> = (0..rows)
                    .filter(|&i| {
                        &scheme[i] == s
                            && abits[i] >= 16.0
                            && kv[i] >= 16.0
                            && weight_bits(&weights[i]).1 == family
                    })
                    .map(value)
                    .collect();
                points.sort_by(|a, b| a.x.total_cmp(&b.x));
                (!points.is_empty()).then(|| Series {
                    name: s.clone(),
                    group: Some(s.clone()),
                    style: SeriesStyle::LineMarkers,
                    points,
                })
            })
            .collect()
    };
    let mut figures = Vec::new();
    for family in &families {
        let label = family_label(family);
        let stem = family
            .trim_start_matches("w_")
            .replace(|c: char| !c.is_ascii_alphanumeric(), "");
        let stem = if stem.is_empty() {
            "rtn".to_string()
        } else {
            stem
        };
        figures.push(Figure {
            name: format!("perplexity_vs_weight_bits_{stem}"),
            title: format!("Perplexity against weight bits, {label} (A16, KV16)"),
            x_label: "weight bits".into(),
            y_label: "perplexity".into(),
            x_scale: Scale::Linear,
            y_scale: Scale::Log,
            y_range: None,
            series: series_vs_bits(family, &|i| {
                Point::with_interval(
                    weight_bits(&weights[i]).0,
                    ppl[i],
                    ce_lo[i].exp(),
                    ce_hi[i].exp(),
                )
            }),
            caption: "One line per scheme; bars are 95% intervals over sequences.".into(),
        });
        figures.push(Figure {
            name: format!("kl_vs_weight_bits_{stem}"),
            title: format!("KL to full precision against weight bits, {label} (A16, KV16)"),
            x_label: "weight bits".into(),
            y_label: "KL(p_fp ‖ q) per token (nats)".into(),
            x_scale: Scale::Linear,
            y_scale: Scale::Log,
            y_range: None,
            series: series_vs_bits(family, &|i| {
                Point::with_interval(
                    weight_bits(&weights[i]).0,
                    kl[i].max(1e-9),
                    kl_lo[i].max(1e-9),
                    kl_hi[i].max(1e-9),
                )
            }),
            caption: "Lower is better; 95% intervals over sequences.".into(),
        });
    }
    // KL against activation bits, at the first weight method, KV16.
    let abit_values = distinct(&abits);
    if abit_values.len() > 1 {
        let w0 = weights[0].clone();
        let series = schemes
            .iter()
            .map(|s| {
                let mut pts: Vec<Point> = (0..rows)
                    // Full-precision weights and activations: KL is float noise.
                    .filter(|&i| &scheme[i] == s && weights[i] == w0 && kv[i] >= 16.0)
                    .filter(|&i| !(weights[i] == "f32" && abits[i] >= 16.0))
                    .map(|i| {
                        Point::with_interval(
                            abits[i],
                            kl[i].max(1e-9),
                            kl_lo[i].max(1e-9),
                            kl_hi[i].max(1e-9),
                        )
                    })
                    .collect();
                pts.sort_by(|a, b| a.x.total_cmp(&b.x));
                Series {
                    name: s.clone(),
                    group: Some(s.clone()),
                    style: SeriesStyle::LineMarkers,
                    points: pts,
                }
            })
            .collect();
        figures.push(Figure {
            name: "kl_vs_activation_bits".into(),
            title: format!("KL to full precision against activation bits ({w0} weights, KV16)"),
            x_label: "activation bits (16 = unquantized)".into(),
            y_label: "KL per token (nats)".into(),
            x_scale: Scale::Linear,
            y_scale: Scale::Log,
            y_range: None,
            series,
            caption: "Per-token dynamic activation quantization of every linear input.".into(),
        });
    }
    let view = model.select_columns(&[
        "scheme",
        "weights",
        "activation_bits",
        "kv_bits",
        "perplexity",
        "kl",
        "kl_ci_low",
        "kl_ci_high",
        "top1_agreement",
        "accept_standard",
        "accept_gumbel",
    ]);
    let mut paragraphs = vec![
        "Each scheme is applied to the whole model, then every linear layer's weights are quantized \
         (RTN, or GPTQ on calibration inputs of the already transformed full-precision model, layer by \
         layer), every linear input is fake-quantized per token (activation bits) and every new key and \
         value per head and group as it enters the KV cache (KV bits). Rotations use computational \
         invariance (QuaRot): without quantization the rotated model computes the same logits. \
         SmoothQuant divides each linear input by per-channel scales from calibration data and \
         multiplies the weight columns by them. Metrics are per predicted position, averaged over \
         evaluation sequences with 95% intervals; calibration sequences are disjoint from them."
            .into(),
        "Acceptance columns say how good the quantized model would be as a drafter of the \
         full-precision one: 1 − TV for the standard rule and the Gumbel-coupling formula."
            .into(),
    ];
    let scheme_col = model.texts("applied").unwrap_or_default();
    for s in &schemes {
        if let Some(i) = scheme.iter().position(|x| x == s) {
            if let Some(a) = scheme_col.get(i) {
                paragraphs.push(format!("{s}: {a}."));
            }
        }
    }
    let section = Section {
        heading: "Whole model".into(),
        paragraphs,
        tables: vec![TableView {
            caption: "Whole-model quality per setting (tables/rotation_model.csv has the rest)"
                .into(),
            table: view,
            max_rows: Some(200),
            digits: 4,
        }],
        figures: figures.iter().map(|f| f.name.clone()).collect(),
    };
    Ok((findings, figures, section))
}

fn layer_part(summary: &Table, layers: &Table) -> Result<(Vec<String>, Figure, Section)> {
    let (scheme, weights) = (summary.texts("scheme")?, summary.texts("weights")?);
    let (abits, mean, worst) = (
        summary.floats("activation_bits")?,
        summary.floats("mean_sqnr_db")?,
        summary.floats("worst_sqnr_db")?,
    );
    let schemes = distinct(&scheme);
    let mut settings: Vec<(String, f64)> = Vec::new();
    for i in 0..scheme.len() {
        if !settings.contains(&(weights[i].clone(), abits[i])) {
            settings.push((weights[i].clone(), abits[i]));
        }
    }
    let mut findings = Vec::new();
    for (w, a) in &settings {
        let parts: Vec<String> = (0..scheme.len())
            .filter(|&i| &weights[i] == w && abits[i] == *a)
            .map(|i| format!("{} {:.1} dB (worst {:.1})", scheme[i], mean[i], worst[i]))
            .collect();
        findings.push(format!(
            "Per layer, {w} {}: mean output SQNR {}.",
            act(*a),
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
        title: format!("Layer-output SQNR per linear layer, {hw} {}", act(ha)),
        x_label: "linear layer (forward order: q, k, v, o, gate, up, down per block, then head)"
            .into(),
        y_label: "SQNR (dB)".into(),
        x_scale: Scale::Linear,
        y_scale: Scale::Linear,
        y_range: None,
        series,
        caption: "Higher is better; one line per scheme.".into(),
    };
    let section = Section {
        heading: "Layer by layer".into(),
        paragraphs: vec![
            "For every linear layer, the evaluation inputs X and the weight W are moved to the scheme's \
             basis — X A and W B with A Bᵀ = I, so X Wᵀ is unchanged (a rotation has A = B = Q, \
             SmoothQuant A = diag(1/s), B = diag(s)) — then W B is quantized (RTN, or GPTQ on \
             calibration inputs) and X A per token with the activation bits (16 = unquantized). \
             Errors: ‖Y − Ŷ‖/‖Y‖ against Y = X Wᵀ and SQNR = −20 log10 of it; weight and activation \
             errors are measured after mapping back to the original basis. Layers whose width has \
             no Hadamard construction are skipped for the Hadamard schemes."
                .into(),
            "Per layer: tables/rotation_layers.csv.".into(),
        ],
        tables: vec![TableView {
            caption: "Mean and worst layer SQNR, mean weight and activation error".into(),
            table: summary.clone(),
            max_rows: Some(120),
            digits: 4,
        }],
        figures: vec!["sqnr_per_layer".into()],
    };
    Ok((findings, figure, section))
}
