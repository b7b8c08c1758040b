//! Heat maps: figures whose series are all [`SeriesStyle::Cells`]. Each series is a
//! row (the first at the top), each point a cell centred on its x and coloured by
//! its y through the colour scale of `colormap.rs`; a colour bar right of the plot
//! takes the legend's place.
//!
//! Cells are painted per row into a line of pixel colours (where narrow cells
//! share a pixel, the largest value wins, so that a lone outlier column stays
//! visible), and each run of equal colour is drawn as one rectangle. The work and
//! the SVG size therefore grow with the plot's width in pixels, not with the
//! number of cells.

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::super::axis::{self, Span, Ticks};
use super::super::glyphs;
use super::colormap::{colormap, MISSING};
use super::geometry::ipx;
use super::layout::{font, measure, MIN_TEXT_PX};
use super::legend::ellipsize;
use super::{drawing, Plan, AXIS, TEXT};
use crate::experiment::outputs::{Figure, Scale, SeriesStyle};

/// Width of the colour bar in pixels.
const BAR_W: i32 = 18;
/// Space between the left edge of the colour-bar area and the bar.
const BAR_PAD: i32 = 4;
/// Length of the colour bar's tick marks.
const BAR_TICK: i32 = 5;
/// Space between a tick mark and its label, and between the labels and the
/// colour bar's description.
const BAR_GAP: i32 = 5;
/// Cells this many pixels wide or more are separated by a 1-pixel white gap;
/// narrower ones touch.
const COL_GAP_MIN_PX: f64 = 16.0;
/// Rows this many pixels tall or more are separated by a 1-pixel white gap.
const ROW_GAP_MIN_PX: f64 = 10.0;
/// Label of the swatch for cells that a log scale cannot show.
const MISSING_LABEL: &str = "≤ 0";

/// One cell: its centre in plot coordinates and its position on the colour scale
/// (0 at the low end, 1 at the high end, beyond for values outside the range),
/// `None` when a log scale cannot show its value.
#[derive(Clone, Copy, Debug)]
pub(super) struct HeatCell {
    x: f64,
    t: Option<f64>,
}

/// A heat map ready to lay out and draw.
#[derive(Clone, Debug)]
pub(super) struct HeatMap {
    /// Row labels, top to bottom.
    pub(super) names: Vec<String>,
    /// Cells of each row, top to bottom, in painting order: cells without a
    /// colour first, then by rising value.
    rows: Vec<Vec<HeatCell>>,
    /// Cell width in plot coordinates.
    width: f64,
    /// The x span: exactly the cells' extent.
    pub(super) x_span: Span,
    /// The colour scale's range in plot coordinates (`log10` of values on a log scale).
    c_span: Span,
    /// Labelled ticks of the colour bar.
    pub(super) c_ticks: Ticks,
    /// Width of the widest colour-bar tick label in pixels.
    c_label_w: u32,
    /// Whether some cell has a value the log scale cannot show (drawn grey).
    missing: bool,
}

/// Whether `fig` is drawn as a heat map: it has series and all are `Cells`.
pub(super) fn is_heat_map(fig: &Figure) -> bool {
    !fig.series.is_empty() && fig.series.iter().all(|s| s.style == SeriesStyle::Cells)
}

impl HeatMap {
    /// The cells of `fig` (a validated heat map) in plot coordinates, their width
    /// and the x span and colour range around them.
    pub(super) fn new(fig: &Figure) -> anyhow::Result<HeatMap> {
        // Points on a log x axis at or below zero have no column and are skipped.
        let raw: Vec<Vec<(f64, Option<f64>)>> = fig
            .series
            .iter()
            .map(|s| {
                s.points
                    .iter()
                    .filter_map(|p| {
                        let x = axis::to_plot(fig.x_scale, p.x)?;
                        Some((x, axis::to_plot(fig.y_scale, p.y)))
                    })
                    .collect()
            })
            .collect();

        let mut xs: Vec<f64> = raw.iter().flatten().map(|c| c.0).collect();
        xs.sort_by(f64::total_cmp);
        let scale_of = xs.iter().fold(0.0f64, |m, x| m.max(x.abs()));
        let tol = scale_of * 1e-9;
        let spacing = xs
            .windows(2)
            .map(|w| w[1] - w[0])
            .filter(|d| *d > tol)
            .fold(f64::INFINITY, f64::min);
        let width = if spacing.is_finite() {
            spacing
        } else {
            // One column: a unit wide (a channel, a decade), unless that is too
            // thin to see next to a huge coordinate.
            match fig.x_scale {
                Scale::Linear if scale_of > 1e9 => scale_of * 0.2,
                _ => 1.0,
            }
        };
        let x_span = match (xs.first(), xs.last()) {
            (Some(&lo), Some(&hi)) => {
                let span = axis::checked_span(lo - width / 2.0, hi + width / 2.0);
                span.map_err(|e| anyhow::anyhow!("cannot size the heat map's columns: {e}"))?
            }
            _ => Span { lo: 0.0, hi: 1.0 },
        };

        let (mut v_min, mut v_max) = (f64::INFINITY, f64::NEG_INFINITY);
        for v in raw.iter().flatten().filter_map(|c| c.1) {
            v_min = v_min.min(v);
            v_max = v_max.max(v);
        }
        let c_span = match fig.y_range {
            Some((lo, hi)) => {
                let plot = |v: f64| match fig.y_scale {
                    Scale::Linear => v,
                    Scale::Log => v.log10(),
                };
                axis::checked_span(plot(lo), plot(hi))
                    .map_err(|e| anyhow::anyhow!("y_range: {e}"))?
            }
            None if v_min <= v_max => axis::fit_span(fig.y_scale, v_min, v_max, 0.0, None)
                .map_err(|e| anyhow::anyhow!("cannot fit the colour scale: {e}"))?,
            // No value to show: 0 to 1 on a linear scale, 1 to 10 on a log one.
            None => Span { lo: 0.0, hi: 1.0 },
        };

        let rows = raw
            .into_iter()
            .map(|row| {
                let mut cells: Vec<HeatCell> = row
                    .into_iter()
                    .map(|(x, v)| HeatCell {
                        x,
                        t: v.map(|v| (v - c_span.lo) / (c_span.hi - c_span.lo)),
                    })
                    .collect();
                // Stable, so equal values keep their order: the later one shows.
                cells.sort_by(|a, b| match (a.t, b.t) {
                    (Some(p), Some(q)) => p.total_cmp(&q),
                    (a, b) => a.is_some().cmp(&b.is_some()),
                });
                cells
            })
            .collect::<Vec<_>>();
        let missing = rows.iter().flatten().any(|c| c.t.is_none());
        Ok(HeatMap {
            names: fig.series.iter().map(|s| s.name.clone()).collect(),
            rows,
            width,
            x_span,
            c_span,
            c_ticks: Ticks::default(),
            c_label_w: 0,
            missing,
        })
    }

    /// Whether no row has a cell to draw.
    pub(super) fn is_empty(&self) -> bool {
        self.rows.iter().all(Vec::is_empty)
    }

    /// Chooses the colour bar's ticks (for a bar about `bar_h` pixels tall) and
    /// returns the width of the colour-bar area: bar, tick labels at `tick_px`,
    /// and the description `desc` (drawn along the bar) when not empty.
    pub(super) fn lay_out_bar(
        &mut self,
        scale: Scale,
        bar_h: u32,
        tick_px: f64,
        desc: &super::Text,
    ) -> anyhow::Result<u32> {
        let max_n = (bar_h / 60).clamp(3, 9) as usize;
        self.c_ticks = axis::ticks(scale, self.c_span, max_n, false);
        self.c_label_w = 0;
        for (_, l) in &self.c_ticks.major {
            self.c_label_w = self.c_label_w.max(measure(l, tick_px, false)?.0);
        }
        let desc_h = if desc.text.is_empty() {
            0
        } else {
            measure(&desc.text, desc.px, false)?.1 as i32 + BAR_GAP * 2
        };
        let labels = (BAR_TICK + BAR_GAP + self.c_label_w as i32).max(if self.missing {
            BAR_GAP + measure(MISSING_LABEL, tick_px, false)?.0 as i32
        } else {
            0
        });
        Ok((BAR_PAD + BAR_W + labels + desc_h + 10) as u32)
    }
}

/// Ticks labelling the rows of a heat map on a plot `plot_h` pixels tall: at row
/// centres (row `i` of `n` spans `n - i - 1 ..= n - i` on the y axis), at most
/// `tick_px` large, every row or, when rows are too thin for text, every 2nd, 5th,
/// 10th… one. Names are cut to `max_w` pixels. Returns the ticks, their font size
/// and the widest label's width.
pub(super) fn row_ticks(
    names: &[String],
    plot_h: u32,
    tick_px: f64,
    max_w: u32,
) -> anyhow::Result<(Ticks, f64, u32)> {
    let n = names.len().max(1);
    let row_h = f64::from(plot_h) / n as f64;
    let px = ((row_h * 0.8 / 2.0).floor() * 2.0).clamp(MIN_TEXT_PX, tick_px);
    let need = px * 1.25;
    let mut stride = 1;
    for s in [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10_000] {
        stride = s;
        if row_h * s as f64 >= need {
            break;
        }
    }
    let mut major = Vec::new();
    let mut widest = 0;
    for (i, name) in names.iter().enumerate().rev() {
        if i % stride != 0 || name.is_empty() {
            continue;
        }
        let label = ellipsize(name, px, max_w)?;
        widest = widest.max(measure(&label, px, false)?.0);
        major.push(((n - i) as f64 - 0.5, label));
    }
    let ticks = Ticks {
        major,
        minor: Vec::new(),
    };
    Ok((ticks, px, widest))
}

impl Plan {
    /// Draws the heat map's cells inside the frame spanning pixels `px_range` x
    /// `py_range`, the frame again over them, and the colour bar.
    pub(super) fn draw_heat<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
        h: &HeatMap,
        to_px: &dyn Fn(f64, f64) -> (f64, f64),
        (px_range, py_range): (std::ops::Range<i32>, std::ops::Range<i32>),
        raster: bool,
    ) -> anyhow::Result<()> {
        let xs = self.x_span;
        let n = h.rows.len();
        let left = ipx(to_px(xs.lo, 0.0)).0;
        let right = ipx(to_px(xs.hi, 0.0)).0;
        let cols = (right - left).max(0) as usize;
        let cell_px = h.width / (xs.hi - xs.lo) * f64::from(right - left);
        let col_gap = i32::from(cell_px >= COL_GAP_MIN_PX);
        let mut line: Vec<Option<RGBColor>> = vec![None; cols];
        for (i, row) in h.rows.iter().enumerate() {
            let top = ipx(to_px(xs.lo, (n - i) as f64)).1;
            let mut bottom = ipx(to_px(xs.lo, (n - i - 1) as f64)).1;
            if f64::from(bottom - top) >= ROW_GAP_MIN_PX && i + 1 < n {
                bottom -= 1;
            }
            let bottom = bottom.max(top + 1);
            line.fill(None);
            for c in row {
                let l = to_px(c.x - h.width / 2.0, 0.0).0.round();
                let r = to_px(c.x + h.width / 2.0, 0.0).0.round();
                let a = (l.clamp(f64::from(left), f64::from(right)) as i32) - left;
                let b = (r.clamp(f64::from(left), f64::from(right)) as i32) - left;
                // Every cell keeps at least one pixel; wide ones leave a gap,
                // except at the frame.
                let gap = if b < cols as i32 { col_gap } else { 0 };
                let b = (b - gap).max(a + 1).min(cols as i32);
                if a >= b {
                    continue;
                }
                let colour = c.t.map_or(MISSING, colormap);
                line[a as usize..b as usize].fill(Some(colour));
            }
            let mut j = 0;
            while j < cols {
                let Some(colour) = line[j] else {
                    j += 1;
                    continue;
                };
                let mut k = j + 1;
                while k < cols && line[k] == Some(colour) {
                    k += 1;
                }
                let (x0, x1) = (left + j as i32, left + k as i32);
                root.draw(&Rectangle::new([(x0, top), (x1, bottom)], colour.filled()))
                    .map_err(drawing)?;
                j = k;
            }
        }
        let frame = [
            (px_range.start, py_range.start),
            (px_range.end - 1, py_range.end - 1),
        ];
        root.draw(&Rectangle::new(frame, AXIS.stroke_width(1)))
            .map_err(drawing)?;
        self.draw_colour_bar(root, h, py_range, raster)
    }

    /// Draws the colour bar beside the plot, as tall as the plot (`py_range`),
    /// with its ticks, its description and, when some cells are grey, a grey
    /// swatch below it saying what grey means.
    fn draw_colour_bar<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
        h: &HeatMap,
        py_range: std::ops::Range<i32>,
        raster: bool,
    ) -> anyhow::Result<()> {
        let (w, _) = self.size;
        let x0 = w as i32 - self.legend_w as i32 + BAR_PAD;
        let x1 = x0 + BAR_W;
        let (top, bottom) = (py_range.start, py_range.end);
        let last = (bottom - 1 - top).max(1);
        // One rectangle per run of pixel rows of equal colour, high values on top.
        let mut y = top;
        while y < bottom {
            let colour = colormap(f64::from(bottom - 1 - y) / f64::from(last));
            let mut y1 = y + 1;
            while y1 < bottom && colormap(f64::from(bottom - 1 - y1) / f64::from(last)) == colour {
                y1 += 1;
            }
            root.draw(&Rectangle::new([(x0, y), (x1, y1)], colour.filled()))
                .map_err(drawing)?;
            y = y1;
        }
        root.draw(&Rectangle::new(
            [(x0, top), (x1 - 1, bottom - 1)],
            AXIS.stroke_width(1),
        ))
        .map_err(drawing)?;

        let label_style = font(self.tick_px, false)
            .color(&TEXT)
            .pos(Pos::new(HPos::Left, VPos::Center));
        let c = h.c_span;
        for (pos, label) in &h.c_ticks.major {
            let t = (pos - c.lo) / (c.hi - c.lo);
            let ty = (f64::from(bottom - 1) - t * f64::from(last)).round() as i32;
            root.draw(&PathElement::new(
                vec![(x1 - 1, ty), (x1 + BAR_TICK, ty)],
                AXIS.stroke_width(1),
            ))
            .map_err(drawing)?;
            let at = (x1 + BAR_TICK + BAR_GAP, ty);
            glyphs::draw_text(root, label, &label_style, at, raster)?;
        }

        if !self.y_desc.text.is_empty() {
            let style = font(self.y_desc.px, false)
                .transform(FontTransform::Rotate270)
                .color(&TEXT)
                .pos(Pos::new(HPos::Center, VPos::Top));
            let x = x1 + BAR_TICK + BAR_GAP + h.c_label_w as i32 + 2 * BAR_GAP;
            let at = (x, (top + bottom) / 2);
            glyphs::draw_text(root, &self.y_desc.text, &style, at, raster)?;
        }

        if h.missing {
            let side = (self.tick_px.round() as i32).max(8);
            let sy = bottom + 10;
            let swatch = [(x0, sy), (x1, sy + side)];
            root.draw(&Rectangle::new(swatch, MISSING.filled()))
                .map_err(drawing)?;
            root.draw(&Rectangle::new(
                [(x0, sy), (x1 - 1, sy + side - 1)],
                AXIS.stroke_width(1),
            ))
            .map_err(drawing)?;
            let at = (x1 + BAR_GAP, sy + side / 2);
            glyphs::draw_text(root, MISSING_LABEL, &label_style, at, raster)?;
        }
        Ok(())
    }
}
