//! Layout: [`Plan::new`] validates a figure, prepares its series and legend (or a
//! heat map's rows and colour bar, see `heat.rs`), sizes its text to the canvas,
//! measures the areas around the plot and chooses the ticks. Also the font and
//! text measuring that layout and drawing share.

use anyhow::ensure;
use plotters::prelude::*;

use super::super::axis::{self, Span};
use super::super::font::FAMILY;
use super::heat::{self, HeatMap};
use super::validate::validate;
use super::{legend, series, Plan, Text};
use super::{MARGIN_BOTTOM, MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, TICK_LABEL_DIST};
use crate::experiment::outputs::{Figure, Scale};

// Font sizes at the default canvas size; they scale with the square root of the
// canvas size. Sizes are even: plotters' bitmap text places glyphs half a size
// below the anchor and truncates, so odd sizes make glyphs jump by a pixel.
const TITLE_PX: f64 = 26.0;
const DESC_PX: f64 = 20.0;
const TICK_PX: f64 = 16.0;
const LEGEND_PX: f64 = 16.0;
const NOTE_PX: f64 = 22.0;
pub(super) const MIN_TEXT_PX: f64 = 8.0;

/// Marker radius in pixels at the default canvas size.
const MARKER_R: f64 = 5.0;

/// The embedded font at `px` pixels, bold or regular.
pub(super) fn font(px: f64, bold: bool) -> FontDesc<'static> {
    let style = if bold {
        FontStyle::Bold
    } else {
        FontStyle::Normal
    };
    FontDesc::new(FontFamily::Name(FAMILY), px, style)
}

/// Width and height of `text` in pixels.
pub(super) fn measure(text: &str, px: f64, bold: bool) -> anyhow::Result<(u32, u32)> {
    font(px, bold)
        .box_size(text)
        .map_err(|e| anyhow::anyhow!("cannot lay out text {text:?}: {e:?}"))
}

/// The largest even size at most `px` (down to [`MIN_TEXT_PX`]) at which `text`
/// fits in `max_w` pixels.
pub(super) fn fit(text: &str, px: f64, bold: bool, max_w: u32) -> anyhow::Result<Text> {
    let mut px = px;
    while px > MIN_TEXT_PX && measure(text, px, bold)?.0 > max_w {
        px -= 2.0;
    }
    Ok(Text {
        text: text.to_string(),
        px,
    })
}

impl Plan {
    /// Validates `fig` and lays it out on a canvas of `size` pixels.
    pub(crate) fn new(fig: &Figure, size: (u32, u32)) -> anyhow::Result<Plan> {
        let (w, h) = size;
        ensure!(
            (300..=8000).contains(&w) && (200..=8000).contains(&h),
            "figure size {w}x{h} is outside 300x200 ..= 8000x8000 pixels"
        );
        validate(fig)?;
        // Text scale: gentler than the canvas scale, so small canvases stay legible.
        let k = (f64::from(w) / 1000.0).min(f64::from(h) / 620.0).sqrt();
        let even = |px: f64| ((px * k / 2.0).round() * 2.0).max(MIN_TEXT_PX);
        let (title_px, desc_px, tick_px) = (even(TITLE_PX), even(DESC_PX), even(TICK_PX));
        let (legend_max_px, note_px) = (even(LEGEND_PX), even(NOTE_PX));

        // A heat map has rows and a colour bar instead of series and a legend.
        let mut heat = if heat::is_heat_map(fig) {
            Some(HeatMap::new(fig)?)
        } else {
            None
        };
        let series = match heat {
            Some(_) => Vec::new(),
            None => series::plot_series(fig),
        };
        let no_data = match &heat {
            Some(hm) => hm.is_empty(),
            None => series.iter().all(|s| s.runs.is_empty()),
        };
        let (x_span, y_span) = match &heat {
            Some(hm) => (
                hm.x_span,
                Span {
                    lo: 0.0,
                    hi: hm.names.len() as f64,
                },
            ),
            None => series::fit_spans(fig, &series, no_data)?,
        };
        let legend = legend::entries(fig, &series);

        let title = fit(&fig.title, title_px, true, w.saturating_sub(40))?;
        let title_band = if title.text.is_empty() {
            12
        } else {
            measure(&title.text, title.px, true)?.1 + 24
        };
        let chart_h = h - title_band;
        let y_desc = fit(&fig.y_label, desc_px, false, chart_h.saturating_sub(100))?;

        let (legend_px, legend_w) = match &mut heat {
            Some(hm) => {
                let bar_h = chart_h.saturating_sub(80);
                (
                    legend_max_px,
                    hm.lay_out_bar(fig.y_scale, bar_h, tick_px, &y_desc)?,
                )
            }
            None => legend::size(&legend, size, legend_max_px)?,
        };
        let chart_w = w.saturating_sub(legend_w);
        let x_desc = fit(&fig.x_label, desc_px, false, chart_w.saturating_sub(120))?;
        let tick_h = measure("0123456789", tick_px, false)?.1;
        let desc_h = |d: &Text| -> anyhow::Result<u32> {
            Ok(if d.text.is_empty() {
                0
            } else {
                measure(&d.text, d.px, false)?.1 + 10
            })
        };
        let x_area = TICK_LABEL_DIST + tick_h + 6 + desc_h(&x_desc)?;
        let plot_h = chart_h.saturating_sub(MARGIN_TOP + MARGIN_BOTTOM + x_area);
        ensure!(plot_h >= 60, "figure is too small for its text");

        let (y_ticks, y_tick_px, y_area) = match &heat {
            Some(hm) => {
                // Row labels take the y axis; the y label goes with the colour bar.
                let (ticks, px, label_w) = heat::row_ticks(&hm.names, plot_h, tick_px, w / 5)?;
                (ticks, px, TICK_LABEL_DIST + label_w + 8)
            }
            None => {
                let max_y_ticks = (plot_h / 60).clamp(3, 9) as usize;
                let ticks = axis::ticks(fig.y_scale, y_span, max_y_ticks, false);
                let mut label_w = 0;
                for (_, l) in &ticks.major {
                    label_w = label_w.max(measure(l, tick_px, false)?.0);
                }
                (
                    ticks,
                    tick_px,
                    TICK_LABEL_DIST + label_w + 8 + desc_h(&y_desc)?,
                )
            }
        };
        let plot_w = chart_w.saturating_sub(MARGIN_LEFT + MARGIN_RIGHT + y_area);
        ensure!(plot_w >= 60, "figure is too small for its text and legend");

        // As many x ticks as fit without their labels touching.
        let integers = fig
            .series
            .iter()
            .flat_map(|s| &s.points)
            .all(|p| p.x.fract() == 0.0 && p.x.abs() < 1e15);
        let mut x_ticks = axis::ticks(fig.x_scale, x_span, 2, integers);
        for n in (2..=12).rev() {
            let t = axis::ticks(fig.x_scale, x_span, n, integers);
            let mut widest = 0;
            for (_, l) in &t.major {
                widest = widest.max(measure(l, tick_px, false)?.0);
            }
            if t.len() as u32 * (widest + 24) <= plot_w {
                x_ticks = t;
                break;
            }
        }

        Ok(Plan {
            size,
            title,
            x_desc,
            y_desc,
            tick_px,
            y_tick_px,
            note_px,
            marker_r: (MARKER_R * k).round().max(2.0) as i32,
            x_span,
            y_span,
            x_ticks,
            y_ticks,
            series,
            legend,
            legend_px,
            legend_w,
            title_band,
            x_area,
            y_area,
            no_data,
            bar_base: match fig.y_scale {
                Scale::Linear => y_span.clamp(0.0),
                Scale::Log => y_span.lo,
            },
            heat,
        })
    }
}
