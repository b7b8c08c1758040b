//! The legend: one row per distinct series name, its font size and width, and
//! drawing it right of the plot.

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::super::glyphs;
use super::layout::{font, measure, MIN_TEXT_PX};
use super::marks::draw_marker;
use super::{drawing, LegendEntry, PSeries, Plan, CAP_HALF, GRID, NOTE, TEXT};
use crate::experiment::outputs::{Figure, SeriesStyle};

/// Width of the sample drawn in front of each legend label.
const LEGEND_SAMPLE_W: i32 = 34;

/// One row per distinct non-empty series name, in order of first appearance.
pub(super) fn entries(fig: &Figure, series: &[PSeries]) -> Vec<LegendEntry> {
    let mut legend: Vec<LegendEntry> = Vec::new();
    for (s, ps) in fig.series.iter().zip(series) {
        if s.name.is_empty() {
            continue;
        }
        let idx = match legend.iter().position(|e| e.name == s.name) {
            Some(i) => i,
            None => {
                legend.push(LegendEntry {
                    name: s.name.clone(),
                    color: ps.color,
                    shape: ps.shape,
                    line: false,
                    marker: false,
                    bar: false,
                    error_bar: false,
                });
                legend.len() - 1
            }
        };
        let e = &mut legend[idx];
        e.line |= matches!(s.style, SeriesStyle::Line | SeriesStyle::LineMarkers);
        e.marker |= matches!(s.style, SeriesStyle::Markers | SeriesStyle::LineMarkers);
        e.bar |= s.style == SeriesStyle::Bars;
        e.error_bar |= s
            .points
            .iter()
            .any(|p| p.y_low.is_some() || p.y_high.is_some());
    }
    legend
}

/// The legend's font size and width in pixels on a canvas of `w` x `h` pixels,
/// where `legend_max_px` is the font size it gets if space allows.
pub(super) fn size(
    legend: &[LegendEntry],
    (w, h): (u32, u32),
    legend_max_px: f64,
) -> anyhow::Result<(f64, u32)> {
    // The legend font shrinks (to an even size) when the rows would not fit the
    // height, then when names are too wide; names still too wide are cut.
    let mut legend_px = {
        let rows = legend.len().max(1) as f64;
        let avail = f64::from(h) * 0.8;
        ((avail / rows / 1.6 / 2.0).floor() * 2.0).clamp(MIN_TEXT_PX, legend_max_px)
    };
    let max_legend_w = w * 32 / 100;
    let mut legend_w = 0;
    if !legend.is_empty() {
        loop {
            let mut text_w = 0;
            for e in legend {
                text_w = text_w.max(measure(&e.name, legend_px, false)?.0);
            }
            legend_w = text_w + LEGEND_SAMPLE_W as u32 + 40;
            if legend_w <= max_legend_w || legend_px <= (legend_max_px - 4.0).max(MIN_TEXT_PX) {
                break;
            }
            legend_px -= 2.0;
        }
        legend_w = legend_w.min(max_legend_w);
    }
    Ok((legend_px, legend_w))
}

impl Plan {
    /// Draws the legend with its top-left corner at `(x0, y0)`.
    pub(super) fn draw_legend<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
        x0: i32,
        y0: i32,
        raster: bool,
    ) -> anyhow::Result<()> {
        let px = self.legend_px;
        let row = (px * 1.5).round() as i32;
        let pad = 8;
        let (_, h) = self.size;
        let rows_fit = ((h as i32 - y0 - 2 * pad) / row).max(1) as usize;
        let shown = self.legend.len().min(rows_fit);
        let x1 = x0 + self.legend_w as i32 - 12;
        let y1 = y0 + 2 * pad + shown as i32 * row;
        root.draw(&Rectangle::new([(x0, y0), (x1, y1)], WHITE.filled()))
            .map_err(drawing)?;
        root.draw(&Rectangle::new([(x0, y0), (x1, y1)], GRID.stroke_width(1)))
            .map_err(drawing)?;

        let text_style = font(px, false)
            .color(&TEXT)
            .pos(Pos::new(HPos::Left, VPos::Center));
        let text_x = x0 + pad + LEGEND_SAMPLE_W + 8;
        let max_text_w = (x1 - text_x - 4).max(10) as u32;
        for (i, e) in self.legend.iter().take(shown).enumerate() {
            let cy = y0 + pad + i as i32 * row + row / 2;
            let (sx0, sx1) = (x0 + pad, x0 + pad + LEGEND_SAMPLE_W);
            let cx = (sx0 + sx1) / 2;
            if e.bar {
                let half_h = (row / 2 - 3).max(3);
                let rect = [(cx - 8, cy - half_h), (cx + 8, cy + half_h)];
                root.draw(&Rectangle::new(rect, e.color.mix(0.65).filled()))
                    .map_err(drawing)?;
                root.draw(&Rectangle::new(rect, e.color.stroke_width(1)))
                    .map_err(drawing)?;
            }
            if e.line {
                root.draw(&PathElement::new(
                    vec![(sx0, cy), (sx1, cy)],
                    e.color.stroke_width(2),
                ))
                .map_err(drawing)?;
            }
            if e.error_bar && !e.bar {
                let half = (row / 2 - 2).max(3);
                let style = e.color.stroke_width(2);
                root.draw(&PathElement::new(
                    vec![(cx, cy - half), (cx, cy + half)],
                    style,
                ))
                .map_err(drawing)?;
                for y in [cy - half, cy + half] {
                    root.draw(&PathElement::new(
                        vec![(cx - CAP_HALF, y), (cx + CAP_HALF, y)],
                        style,
                    ))
                    .map_err(drawing)?;
                }
            }
            if e.marker {
                let c = (f64::from(cx), f64::from(cy));
                draw_marker(root, e.shape, c, self.marker_r, e.color, raster)?;
            }
            let label = ellipsize(&e.name, px, max_text_w)?;
            glyphs::draw_text(root, &label, &text_style, (text_x, cy), raster)?;
        }
        if shown < self.legend.len() {
            let more = format!("… {} more", self.legend.len() - shown);
            let style = font(px, false)
                .color(&NOTE)
                .pos(Pos::new(HPos::Left, VPos::Top));
            glyphs::draw_text(root, &more, &style, (x0 + pad, y1 + 4), raster)?;
        }
        Ok(())
    }
}

/// `text`, cut with an ellipsis to fit `max_w` pixels at size `px`.
pub(super) fn ellipsize(text: &str, px: f64, max_w: u32) -> anyhow::Result<String> {
    if measure(text, px, false)?.0 <= max_w {
        return Ok(text.to_string());
    }
    let chars: Vec<char> = text.chars().collect();
    let mut n = chars.len();
    while n > 1 {
        n -= 1;
        let s: String = chars[..n].iter().chain(std::iter::once(&'…')).collect();
        if measure(&s, px, false)?.0 <= max_w {
            return Ok(s);
        }
    }
    Ok("…".to_string())
}
