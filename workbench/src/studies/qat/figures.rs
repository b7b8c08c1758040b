//! The QAT figures, drawn from the saved tables: loss curves and activation
//! kurtosis over training at each optimizer's best learning rate, final
//! quantized perplexity against learning rate and against weight bits.

use anyhow::Result;

use crate::experiment::outputs::{distinct, Figure, Point, Scale, Series, SeriesStyle, Table};

use super::stats::mean_t_interval;

/// The key columns of a QAT table.
pub struct Rows {
    /// Training mode of each row.
    pub mode: Vec<String>,
    /// Optimizer of each row.
    pub optimizer: Vec<String>,
    /// Whether the row's run is at its optimizer's best learning rate.
    pub best: Vec<bool>,
}

impl Rows {
    /// Reads the key columns of `t`.
    pub fn of(t: &Table) -> Result<Rows> {
        let best = t
            .bools("best_lr")
            .map(|v| v.iter().map(|b| b.unwrap_or(false)).collect())
            .unwrap_or_else(|| vec![false; t.rows()]);
        Ok(Rows {
            mode: t.texts("mode")?,
            optimizer: t.texts("optimizer")?,
            best,
        })
    }

    /// Distinct (mode, optimizer) pairs in table order.
    pub fn pairs(&self) -> Vec<(String, String)> {
        distinct(
            &self
                .mode
                .iter()
                .cloned()
                .zip(self.optimizer.iter().cloned())
                .collect::<Vec<_>>(),
        )
    }
}

/// Mean over seeds of `y` against `x`, for the rows `keep` selects, with t intervals.
fn mean_by_x(x: &[f64], y: &[f64], keep: impl Fn(usize) -> bool, log_y: bool) -> Vec<Point> {
    let xs = distinct(
        &(0..x.len())
            .filter(|&i| keep(i))
            .map(|i| x[i])
            .collect::<Vec<_>>(),
    );
    let mut points: Vec<Point> = xs
        .iter()
        .filter_map(|&xv| {
            let v: Vec<f64> = (0..x.len())
                .filter(|&i| keep(i) && x[i] == xv && y[i].is_finite())
                .map(|i| y[i])
                .collect();
            if v.is_empty() {
                return None;
            }
            let (m, lo, hi) = mean_t_interval(&v);
            let f = |v: f64| if log_y { v.exp() } else { v };
            // A diverged mean (or its interval) overflows: leave it out.
            let (y, low, high) = (f(m), f(lo), f(hi));
            if !y.is_finite() {
                return None;
            }
            Some(if low.is_finite() && high.is_finite() {
                Point::with_interval(xv, y, low, high)
            } else {
                Point::new(xv, y)
            })
        })
        .collect();
    points.sort_by(|a, b| a.x.total_cmp(&b.x));
    points
}

fn label(mode: &str, optimizer: &str, several_modes: bool) -> String {
    if several_modes {
        format!("{optimizer} ({mode})")
    } else {
        optimizer.to_string()
    }
}

/// Validation loss over training at the best learning rate, one figure per mode.
pub fn loss_curves(curves: &Table) -> Result<Vec<Figure>> {
    let rows = Rows::of(curves)?;
    let (step, fp, quant) = (
        curves.floats("step")?,
        curves.floats("fp_loss")?,
        curves.floats("quant_loss")?,
    );
    let mut figures = Vec::new();
    for mode in distinct(&rows.mode) {
        let mut series = Vec::new();
        for (m, opt) in rows.pairs().into_iter().filter(|p| p.0 == mode) {
            let keep = |i: usize| rows.mode[i] == m && rows.optimizer[i] == opt && rows.best[i];
            series.push(Series {
                name: format!("{opt}: quantized"),
                group: Some(opt.clone()),
                style: SeriesStyle::LineMarkers,
                points: mean_by_x(&step, &quant, keep, false),
            });
            series.push(Series {
                name: format!("{opt}: full precision"),
                group: Some(opt.clone()),
                style: SeriesStyle::Line,
                points: mean_by_x(&step, &fp, keep, false),
            });
        }
        figures.push(Figure {
            name: format!("loss_curves_{mode}"),
            title: format!(
                "Validation loss along training ({mode}), each optimizer at its best lr"
            ),
            x_label: "step".into(),
            y_label: "validation loss (nats/token)".into(),
            x_scale: Scale::Linear,
            y_scale: Scale::Linear,
            y_range: None,
            series,
            caption: "Mean over seeds (bars: 95% t interval) of the validation loss with the \
                      trained quantizer (markers) and of the full-precision weights (line)."
                .into(),
        });
    }
    Ok(figures)
}

/// Activation (and weight) kurtosis over training at the best learning rate.
pub fn kurtosis_curves(curves: &Table) -> Result<Figure> {
    let rows = Rows::of(curves)?;
    let step = curves.floats("step")?;
    let act = curves.floats("act_kurtosis_mean")?;
    let several = distinct(&rows.mode).len() > 1;
    let series = rows
        .pairs()
        .into_iter()
        .map(|(m, opt)| Series {
            name: label(&m, &opt, several),
            group: Some(label(&m, &opt, several)),
            style: SeriesStyle::LineMarkers,
            points: mean_by_x(
                &step,
                &act,
                |i| rows.mode[i] == m && rows.optimizer[i] == opt && rows.best[i],
                false,
            ),
        })
        .collect();
    Ok(Figure {
        name: "kurtosis_curves".into(),
        title: "Activation kurtosis along training, each optimizer at its best lr".into(),
        x_label: "step".into(),
        y_label: "mean kurtosis of linear-layer inputs (3 = Gaussian)".into(),
        x_scale: Scale::Linear,
        y_scale: Scale::Log,
        y_range: None,
        series,
        caption: "Pooled kurtosis of each linear layer's input (full-precision weights), \
                  averaged over layers, then over seeds (bars: 95% t interval)."
            .into(),
    })
}

/// Final quantized perplexity against the learning rate, per optimizer.
pub fn ppl_vs_lr(finals: &Table) -> Result<Figure> {
    let rows = Rows::of(finals)?;
    let (lr, loss) = (finals.floats("lr")?, finals.floats("quant_loss")?);
    let several = distinct(&rows.mode).len() > 1;
    let series = rows
        .pairs()
        .into_iter()
        .map(|(m, opt)| Series {
            name: label(&m, &opt, several),
            group: Some(label(&m, &opt, several)),
            style: SeriesStyle::LineMarkers,
            points: mean_by_x(
                &lr,
                &loss,
                |i| rows.mode[i] == m && rows.optimizer[i] == opt,
                true,
            ),
        })
        .collect();
    Ok(Figure {
        name: "ppl_vs_lr".into(),
        title: "Final quantized perplexity against peak learning rate".into(),
        x_label: "peak learning rate".into(),
        y_label: "perplexity with the trained quantizer".into(),
        x_scale: Scale::Log,
        y_scale: Scale::Log,
        y_range: None,
        series,
        caption: "exp of the mean validation loss over seeds (bars: exp of its 95% t interval); \
                  missing points diverged."
            .into(),
    })
}

/// Post-training quantized perplexity against weight bits at the best learning rate.
pub fn ppl_vs_bits(ptq: &Table) -> Result<Figure> {
    let rows = Rows::of(ptq)?;
    let (bits, loss) = (ptq.floats("bits")?, ptq.floats("loss")?);
    let rotation = ptq.texts("rotation")?;
    let several = distinct(&rows.mode).len() > 1;
    let mut series = Vec::new();
    for rot in distinct(&rotation) {
        for (m, opt) in rows.pairs() {
            let name = label(&m, &opt, several);
            series.push(Series {
                name: if rot == "none" {
                    name.clone()
                } else {
                    format!("{name}, {rot}")
                },
                group: Some(name),
                style: if rot == "none" {
                    SeriesStyle::LineMarkers
                } else {
                    SeriesStyle::Markers
                },
                points: mean_by_x(
                    &bits,
                    &loss,
                    |i| {
                        rows.mode[i] == m
                            && rows.optimizer[i] == opt
                            && rows.best[i]
                            && rotation[i] == rot
                    },
                    true,
                ),
            });
        }
    }
    Ok(Figure {
        name: "ppl_vs_bits".into(),
        title: "Perplexity of the final model quantized after training, against weight bits".into(),
        x_label: "weight bits (round to nearest)".into(),
        y_label: "perplexity".into(),
        x_scale: Scale::Linear,
        y_scale: Scale::Log,
        y_range: None,
        series,
        caption: "Each optimizer at its best learning rate; the final weights quantized with the \
                  shared RTN quantizers (activations as trained), lines without rotation, markers \
                  after a whole-model rotation; mean over seeds."
            .into(),
    })
}
