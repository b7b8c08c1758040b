//! Turning a [`Figure`] into a drawing: validation and layout ([`Plan::new`]), then
//! drawing onto any plotters backend ([`Plan::draw`]).
//!
//! Grid lines, axes and tick marks come from plotters' mesh. Everything else (tick
//! labels, axis labels, title, series, legend) is drawn here in pixel coordinates:
//! series are clipped to the view in plot coordinates first, because plotters
//! clamps out-of-range points onto the frame instead of clipping them, and text and
//! lines go through `glyphs.rs` and `raster.rs` on raster backends.

use anyhow::{bail, ensure, Context};
use plotters::coord::ranged1d::{KeyPointHint, Ranged};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::axis::{self, Span, Ticks};
use super::font::FAMILY;
use super::glyphs;
use super::raster::Coverage;
use crate::experiment::outputs::{Figure, Scale, SeriesStyle};

/// Colour-blind-friendly palette (Okabe & Ito, 2008), assigned to colour groups in
/// order of first appearance and reused cyclically. The palette's yellow is
/// darkened to stay visible on white.
const PALETTE: [RGBColor; 8] = [
    RGBColor(0x00, 0x72, 0xB2), // blue
    RGBColor(0xD5, 0x5E, 0x00), // vermillion
    RGBColor(0x00, 0x9E, 0x73), // bluish green
    RGBColor(0xCC, 0x79, 0xA7), // reddish purple
    RGBColor(0xE6, 0x9F, 0x00), // orange
    RGBColor(0x56, 0xB4, 0xE9), // sky blue
    RGBColor(0x00, 0x00, 0x00), // black
    RGBColor(0xB8, 0xA2, 0x00), // yellow, darkened
];

// Font sizes at the default canvas size; they scale with the square root of the
// canvas size. Sizes are even: plotters' bitmap text places glyphs half a size
// below the anchor and truncates, so odd sizes make glyphs jump by a pixel.
const TITLE_PX: f64 = 26.0;
const DESC_PX: f64 = 20.0;
const TICK_PX: f64 = 16.0;
const LEGEND_PX: f64 = 16.0;
const NOTE_PX: f64 = 22.0;
const MIN_TEXT_PX: f64 = 8.0;

const TEXT: RGBColor = RGBColor(0x20, 0x20, 0x20);
const AXIS: RGBColor = RGBColor(0x40, 0x40, 0x40);
const GRID: RGBColor = RGBColor(0xDD, 0xDD, 0xDD);
const GRID_LIGHT: RGBColor = RGBColor(0xEE, 0xEE, 0xEE);
const NOTE: RGBColor = RGBColor(0x80, 0x80, 0x80);

/// Marker radius in pixels at the default canvas size.
const MARKER_R: f64 = 5.0;
/// Half width of an error-bar cap in pixels.
const CAP_HALF: i32 = 4;
/// Width of the sample drawn in front of each legend label.
const LEGEND_SAMPLE_W: i32 = 34;

/// Marker shapes, cycled together with the palette so that groups differ in shape
/// as well as colour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Shape {
    Circle,
    Square,
    TriangleUp,
    Diamond,
    TriangleDown,
}

const SHAPES: [Shape; 5] = [
    Shape::Circle,
    Shape::Square,
    Shape::TriangleUp,
    Shape::Diamond,
    Shape::TriangleDown,
];

/// One point in plot coordinates; `lo`/`hi` bound its error bar (`-inf` where a
/// log axis cannot show the lower bound: the bar then runs to the frame).
#[derive(Clone, Copy, Debug)]
struct PPoint {
    x: f64,
    y: f64,
    lo: Option<f64>,
    hi: Option<f64>,
}

/// A series ready to draw.
#[derive(Clone, Debug)]
struct PSeries {
    style: SeriesStyle,
    color: RGBColor,
    shape: Shape,
    /// Consecutive drawable points; a point a log axis cannot show splits a run,
    /// leaving a gap in the line.
    runs: Vec<Vec<PPoint>>,
    /// Bars only: centre offset from `x` and width, in plot coordinates.
    bar: Option<(f64, f64)>,
}

/// One legend row: the union of the styles of the series sharing its name.
#[derive(Clone, Debug)]
struct LegendEntry {
    name: String,
    color: RGBColor,
    shape: Shape,
    line: bool,
    marker: bool,
    bar: bool,
    error_bar: bool,
}

/// Text with the font size it is drawn at.
#[derive(Clone, Debug)]
struct Text {
    text: String,
    px: f64,
}

/// Everything needed to draw a figure, computed without a backend.
#[derive(Clone, Debug)]
pub(crate) struct Plan {
    size: (u32, u32),
    title: Text,
    x_desc: Text,
    y_desc: Text,
    tick_px: f64,
    note_px: f64,
    marker_r: i32,
    x_span: Span,
    y_span: Span,
    x_ticks: Ticks,
    y_ticks: Ticks,
    series: Vec<PSeries>,
    legend: Vec<LegendEntry>,
    legend_px: f64,
    legend_w: u32,
    title_band: u32,
    x_area: u32,
    y_area: u32,
    no_data: bool,
    /// Where bars start: 0 on a linear y axis (clamped into view), the bottom of
    /// the frame on a log one.
    bar_base: f64,
}

/// Chart margins inside the area left of the legend and under the title.
const MARGIN_TOP: u32 = 10;
const MARGIN_RIGHT: u32 = 24;
const MARGIN_BOTTOM: u32 = 8;
const MARGIN_LEFT: u32 = 8;
/// Distance from the frame to tick labels, as plotters draws them (2 × tick length).
const TICK_LABEL_DIST: u32 = 10;

fn font(px: f64, bold: bool) -> FontDesc<'static> {
    let style = if bold {
        FontStyle::Bold
    } else {
        FontStyle::Normal
    };
    FontDesc::new(FontFamily::Name(FAMILY), px, style)
}

/// Width and height of `text` in pixels.
fn measure(text: &str, px: f64, bold: bool) -> anyhow::Result<(u32, u32)> {
    font(px, bold)
        .box_size(text)
        .map_err(|e| anyhow::anyhow!("cannot lay out text {text:?}: {e:?}"))
}

/// The largest even size at most `px` (down to [`MIN_TEXT_PX`]) at which `text`
/// fits in `max_w` pixels.
fn fit(text: &str, px: f64, bold: bool, max_w: u32) -> anyhow::Result<Text> {
    let mut px = px;
    while px > MIN_TEXT_PX && measure(text, px, bold)?.0 > max_w {
        px -= 2.0;
    }
    Ok(Text {
        text: text.to_string(),
        px,
    })
}

/// Maps an error into `anyhow` with the backend's message.
fn drawing<E: std::fmt::Display>(e: E) -> anyhow::Error {
    anyhow::anyhow!("drawing failed: {e}")
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

        // Colours and shapes per group, in order of first appearance.
        let mut groups: Vec<GroupKey> = Vec::new();
        let group_index: Vec<usize> = fig
            .series
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let key = match &s.group {
                    Some(g) => GroupKey::Named(g.clone()),
                    None => GroupKey::Series(i),
                };
                match groups.iter().position(|k| *k == key) {
                    Some(p) => p,
                    None => {
                        groups.push(key);
                        groups.len() - 1
                    }
                }
            })
            .collect();

        // Points in plot coordinates.
        let mut series: Vec<PSeries> = fig
            .series
            .iter()
            .zip(&group_index)
            .map(|(s, &g)| {
                let mut runs: Vec<Vec<PPoint>> = vec![Vec::new()];
                for p in &s.points {
                    match (
                        axis::to_plot(fig.x_scale, p.x),
                        axis::to_plot(fig.y_scale, p.y),
                    ) {
                        (Some(x), Some(y)) => {
                            let bound = |v: Option<f64>| {
                                v.map(|v| {
                                    axis::to_plot(fig.y_scale, v).unwrap_or(f64::NEG_INFINITY)
                                })
                            };
                            let point = PPoint {
                                x,
                                y,
                                lo: bound(p.y_low),
                                hi: bound(p.y_high),
                            };
                            match runs.last_mut() {
                                Some(run) => run.push(point),
                                None => runs.push(vec![point]),
                            }
                        }
                        _ => runs.push(Vec::new()),
                    }
                }
                runs.retain(|r| !r.is_empty());
                PSeries {
                    style: s.style,
                    color: PALETTE[g % PALETTE.len()],
                    shape: SHAPES[g % SHAPES.len()],
                    runs,
                    bar: None,
                }
            })
            .collect();

        assign_bar_slots(&mut series, fig.x_scale);
        let no_data = series.iter().all(|s| s.runs.is_empty());
        let (x_span, y_span) = fit_spans(fig, &series, no_data)?;

        // Legend: one row per distinct non-empty name, in order of first appearance.
        let mut legend: Vec<LegendEntry> = Vec::new();
        for (s, ps) in fig.series.iter().zip(&series) {
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
                for e in &legend {
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

        let title = fit(&fig.title, title_px, true, w.saturating_sub(40))?;
        let title_band = if title.text.is_empty() {
            12
        } else {
            measure(&title.text, title.px, true)?.1 + 24
        };

        let chart_w = w - legend_w;
        let chart_h = h - title_band;
        let x_desc = fit(&fig.x_label, desc_px, false, chart_w.saturating_sub(120))?;
        let y_desc = fit(&fig.y_label, desc_px, false, chart_h.saturating_sub(100))?;
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

        let max_y_ticks = (plot_h / 60).clamp(3, 9) as usize;
        let y_ticks = axis::ticks(fig.y_scale, y_span, max_y_ticks, false);
        let mut y_label_w = 0;
        for (_, l) in &y_ticks.major {
            y_label_w = y_label_w.max(measure(l, tick_px, false)?.0);
        }
        let y_area = TICK_LABEL_DIST + y_label_w + 8 + desc_h(&y_desc)?;
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
        })
    }

    /// Canvas size in pixels.
    pub(crate) fn size(&self) -> (u32, u32) {
        self.size
    }

    /// Draws the figure onto `root`, which must be [`Plan::size`] pixels large.
    /// `raster` selects drawing for bitmap backends: text placed glyph by glyph
    /// (see `glyphs.rs`) and anti-aliased lines and circles (see `raster.rs`).
    pub(crate) fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
        raster: bool,
    ) -> anyhow::Result<()> {
        let text = |t: &str, style: &TextStyle<'_>, at: (i32, i32)| {
            glyphs::draw_text(root, t, style, at, raster)
        };
        root.fill(&WHITE).map_err(drawing)?;
        let (w, _) = self.size;

        if !self.title.text.is_empty() {
            let style = font(self.title.px, true)
                .color(&TEXT)
                .pos(Pos::new(HPos::Center, VPos::Top));
            text(&self.title.text, &style, (w as i32 / 2, 12))?;
        }

        let chart_area = root.margin(self.title_band, 0, 0, self.legend_w);
        let mut chart = ChartBuilder::on(&chart_area)
            .margin_top(MARGIN_TOP)
            .margin_right(MARGIN_RIGHT)
            .margin_bottom(MARGIN_BOTTOM)
            .margin_left(MARGIN_LEFT)
            .x_label_area_size(self.x_area)
            .y_label_area_size(self.y_area)
            .build_cartesian_2d(
                TickedAxis::new(self.x_span, &self.x_ticks),
                TickedAxis::new(self.y_span, &self.y_ticks),
            )
            .map_err(drawing)?;

        // plotters draws grid, axes and tick marks; its labels are invisible and
        // the real ones are drawn below, so that all text goes through one path.
        chart
            .configure_mesh()
            .label_style(font(self.tick_px, false).color(&TRANSPARENT))
            .axis_style(AXIS)
            .bold_line_style(GRID)
            .light_line_style(GRID_LIGHT)
            .draw()
            .map_err(drawing)?;

        // The frame: plotters draws the left and bottom axes only.
        let (px_range, py_range) = chart.plotting_area().get_pixel_range();
        let frame = Rectangle::new(
            [
                (px_range.start, py_range.start),
                (px_range.end - 1, py_range.end - 1),
            ],
            AXIS.stroke_width(1),
        );
        root.draw(&frame).map_err(drawing)?;

        // Plot coordinates to (sub)pixels, anchored on plotters' own mapping of
        // the span ends so that series sit exactly on the grid.
        let (xs, ys) = (self.x_span, self.y_span);
        let (x_a, y_a) = chart.backend_coord(&(xs.lo, ys.lo));
        let (x_b, y_b) = chart.backend_coord(&(xs.hi, ys.hi));
        let to_px = move |x: f64, y: f64| -> (f64, f64) {
            (
                f64::from(x_a) + (x - xs.lo) / (xs.hi - xs.lo) * f64::from(x_b - x_a),
                f64::from(y_a) + (y - ys.lo) / (ys.hi - ys.lo) * f64::from(y_b - y_a),
            )
        };
        let label_dist = TICK_LABEL_DIST as i32;
        let tick_font = font(self.tick_px, false).color(&TEXT);
        let below = tick_font.pos(Pos::new(HPos::Center, VPos::Top));
        for (t, label) in &self.x_ticks.major {
            let (x, _) = ipx(to_px(*t, self.y_span.lo));
            text(label, &below, (x, py_range.end + label_dist))?;
        }
        let left_of = tick_font.pos(Pos::new(HPos::Right, VPos::Center));
        for (t, label) in &self.y_ticks.major {
            let (_, y) = ipx(to_px(self.x_span.lo, *t));
            text(label, &left_of, (px_range.start - label_dist, y))?;
        }
        let (cx, cy) = (
            (px_range.start + px_range.end) / 2,
            (py_range.start + py_range.end) / 2,
        );
        if !self.x_desc.text.is_empty() {
            let style = font(self.x_desc.px, false)
                .color(&TEXT)
                .pos(Pos::new(HPos::Center, VPos::Bottom));
            text(
                &self.x_desc.text,
                &style,
                (cx, py_range.end + self.x_area as i32),
            )?;
        }
        if !self.y_desc.text.is_empty() {
            let style = font(self.y_desc.px, false)
                .transform(FontTransform::Rotate270)
                .color(&TEXT)
                .pos(Pos::new(HPos::Center, VPos::Top));
            text(
                &self.y_desc.text,
                &style,
                (px_range.start - self.y_area as i32, cy),
            )?;
        }

        for s in &self.series {
            self.draw_series(root, s, &to_px, raster)?;
        }

        if self.no_data {
            let style = font(self.note_px, false)
                .color(&NOTE)
                .pos(Pos::new(HPos::Center, VPos::Center));
            text("no data", &style, (cx, cy))?;
        }

        if !self.legend.is_empty() {
            let x0 = w as i32 - self.legend_w as i32 + 4;
            self.draw_legend(root, x0, py_range.start, raster)?;
        }
        Ok(())
    }

    /// Draws one series: bars, then lines, then error bars, then markers.
    fn draw_series<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
        s: &PSeries,
        to_px: &dyn Fn(f64, f64) -> (f64, f64),
        raster: bool,
    ) -> anyhow::Result<()> {
        let (xs, ys) = (self.x_span, self.y_span);
        if let Some((offset, width)) = s.bar {
            let base = self.bar_base;
            for p in s.runs.iter().flatten() {
                let (x0, x1) = (p.x + offset - width / 2.0, p.x + offset + width / 2.0);
                if x1 < xs.lo || x0 > xs.hi {
                    continue;
                }
                let (x0, x1) = (xs.clamp(x0), xs.clamp(x1));
                let top = ys.clamp(p.y);
                let a = ipx(to_px(x0, base));
                let b = ipx(to_px(x1, top));
                let (l, r) = (a.0.min(b.0), a.0.max(b.0).max(a.0.min(b.0) + 1));
                let (t, btm) = (a.1.min(b.1), a.1.max(b.1));
                root.draw(&Rectangle::new(
                    [(l, t), (r, btm)],
                    s.color.mix(0.65).filled(),
                ))
                .map_err(drawing)?;
                root.draw(&Rectangle::new([(l, t), (r, btm)], s.color.stroke_width(1)))
                    .map_err(drawing)?;
            }
        }

        if matches!(s.style, SeriesStyle::Line | SeriesStyle::LineMarkers) {
            for run in &s.runs {
                if run.len() == 1 && s.style == SeriesStyle::Line {
                    // A lone point of a line would be invisible: show it as a dot.
                    let p = run[0];
                    if xs.contains(p.x) && ys.contains(p.y) {
                        draw_marker(root, Shape::Circle, to_px(p.x, p.y), 3, s.color, raster)?;
                    }
                }
                for line in clip_polyline(run, xs, ys) {
                    let pts: Vec<(f64, f64)> = line.iter().map(|&(x, y)| to_px(x, y)).collect();
                    stroke(root, &pts, 2, s.color, raster)?;
                }
            }
        }

        let has_markers = matches!(s.style, SeriesStyle::Markers | SeriesStyle::LineMarkers);
        for p in s.runs.iter().flatten() {
            let x = p.x + s.bar.map_or(0.0, |b| b.0);
            if !xs.contains(x) || (p.lo.is_none() && p.hi.is_none()) {
                continue;
            }
            let lo = p.lo.unwrap_or(p.y).min(p.y);
            let hi = p.hi.unwrap_or(p.y).max(p.y);
            if hi < ys.lo || lo > ys.hi {
                continue;
            }
            // On bars, error bars are dark so that they show against the fill.
            let style = match s.bar {
                Some(_) => AXIS.stroke_width(1),
                None => s.color.stroke_width(2),
            };
            let (cx, top) = ipx(to_px(x, ys.clamp(hi)));
            let (_, bottom) = ipx(to_px(x, ys.clamp(lo)));
            root.draw(&PathElement::new(vec![(cx, top), (cx, bottom)], style))
                .map_err(drawing)?;
            for (end, px) in [(hi, top), (lo, bottom)] {
                if ys.contains(end) {
                    root.draw(&PathElement::new(
                        vec![(cx - CAP_HALF, px), (cx + CAP_HALF, px)],
                        style,
                    ))
                    .map_err(drawing)?;
                }
            }
        }

        if has_markers {
            for p in s.runs.iter().flatten() {
                if xs.contains(p.x) && ys.contains(p.y) {
                    let r = if s.style == SeriesStyle::LineMarkers {
                        self.marker_r - 1
                    } else {
                        self.marker_r
                    };
                    draw_marker(root, s.shape, to_px(p.x, p.y), r, s.color, raster)?;
                }
            }
        }
        Ok(())
    }

    /// Draws the legend with its top-left corner at `(x0, y0)`.
    fn draw_legend<DB: DrawingBackend>(
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

/// A linear plotters coordinate over a [`Span`] whose grid lines are our own ticks.
struct TickedAxis {
    span: Span,
    major: Vec<f64>,
    minor: Vec<f64>,
}

impl TickedAxis {
    fn new(span: Span, ticks: &Ticks) -> TickedAxis {
        TickedAxis {
            span,
            major: ticks.major.iter().map(|t| t.0).collect(),
            minor: ticks.minor.clone(),
        }
    }
}

impl Ranged for TickedAxis {
    type FormatOption = plotters::coord::ranged1d::DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        let frac = (value - self.span.lo) / (self.span.hi - self.span.lo);
        let len = f64::from(limit.1 - limit.0);
        // Saturating float-to-int conversion: far-off values land far outside.
        limit.0 + (len * frac).round().clamp(-1e7, 1e7) as i32
    }

    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            self.minor.clone()
        } else {
            self.major.clone()
        }
    }

    fn range(&self) -> std::ops::Range<f64> {
        self.span.lo..self.span.hi
    }
}

/// Key deciding a series' colour.
#[derive(Clone, Debug, PartialEq, Eq)]
enum GroupKey {
    Named(String),
    Series(usize),
}

/// Checks for values that cannot be drawn.
fn validate(fig: &Figure) -> anyhow::Result<()> {
    for (i, s) in fig.series.iter().enumerate() {
        for (j, p) in s.points.iter().enumerate() {
            let at = || {
                format!(
                    "figure {:?}, series {i} ({:?}), point {j}",
                    fig.name, s.name
                )
            };
            ensure!(
                p.x.is_finite() && p.y.is_finite(),
                "{}: coordinates must be finite, got x = {}, y = {}",
                at(),
                p.x,
                p.y
            );
            for b in [p.y_low, p.y_high].into_iter().flatten() {
                ensure!(b.is_finite(), "{}: error bar bound {b} is not finite", at());
            }
            if let (Some(lo), Some(hi)) = (p.y_low, p.y_high) {
                ensure!(lo <= hi, "{}: error bar runs from {lo} down to {hi}", at());
            }
        }
    }
    if let Some((lo, hi)) = fig.y_range {
        ensure!(
            lo.is_finite() && hi.is_finite() && lo < hi,
            "figure {:?}: y_range ({lo}, {hi}) must be finite and increasing",
            fig.name
        );
        if fig.y_scale == Scale::Log {
            ensure!(
                lo > 0.0,
                "figure {:?}: a log y axis needs y_range above 0, got ({lo}, {hi})",
                fig.name
            );
        }
    }
    Ok(())
}

/// Gives every Bars series a slot: with `n` bar series, each x value's bar group
/// takes 80% of the smallest spacing between x values, split into `n` side-by-side
/// bars in series order.
fn assign_bar_slots(series: &mut [PSeries], x_scale: Scale) {
    let bar_idx: Vec<usize> = (0..series.len())
        .filter(|&i| series[i].style == SeriesStyle::Bars)
        .collect();
    if bar_idx.is_empty() {
        return;
    }
    let mut xs: Vec<f64> = bar_idx
        .iter()
        .flat_map(|&i| series[i].runs.iter().flatten().map(|p| p.x))
        .collect();
    xs.sort_by(f64::total_cmp);
    let scale_of = xs.iter().fold(0.0f64, |m, x| m.max(x.abs()));
    let tol = scale_of * 1e-9;
    let spacing = xs
        .windows(2)
        .map(|w| w[1] - w[0])
        .filter(|d| *d > tol)
        .fold(f64::INFINITY, f64::min);
    let spacing = if spacing.is_finite() {
        spacing
    } else {
        match x_scale {
            Scale::Log => 0.2,
            Scale::Linear if scale_of > 0.0 => scale_of * 0.2,
            Scale::Linear => 1.0,
        }
    };
    let group_w = 0.8 * spacing;
    let n = bar_idx.len() as f64;
    let bar_w = group_w / n;
    for (k, &i) in bar_idx.iter().enumerate() {
        let offset = -group_w / 2.0 + (k as f64 + 0.5) * bar_w;
        series[i].bar = Some((offset, bar_w));
    }
}

/// Visible x and y spans: fitted to the data (and bars), or the fixed y range.
fn fit_spans(fig: &Figure, series: &[PSeries], no_data: bool) -> anyhow::Result<(Span, Span)> {
    // Without data: 0 to 1 on a linear axis, 1 to 10 on a log one.
    let default = Span { lo: 0.0, hi: 1.0 };
    let fixed_y = match fig.y_range {
        Some((lo, hi)) => {
            let (lo, hi) = match fig.y_scale {
                Scale::Linear => (lo, hi),
                Scale::Log => (lo.log10(), hi.log10()),
            };
            Some(axis::checked_span(lo, hi).context("y_range")?)
        }
        None => None,
    };
    if no_data {
        return Ok((default, fixed_y.unwrap_or(default)));
    }

    let (mut x_min, mut x_max) = (f64::INFINITY, f64::NEG_INFINITY);
    let (mut y_min, mut y_max) = (f64::INFINITY, f64::NEG_INFINITY);
    let mut any_bars = false;
    for s in series {
        let (bar_lo, bar_hi) = s
            .bar
            .map_or((0.0, 0.0), |(o, w)| (o - w / 2.0, o + w / 2.0));
        any_bars |= s.bar.is_some();
        for p in s.runs.iter().flatten() {
            x_min = x_min.min(p.x + bar_lo);
            x_max = x_max.max(p.x + bar_hi);
            for y in [Some(p.y), p.lo, p.hi].into_iter().flatten() {
                if y.is_finite() {
                    y_min = y_min.min(y);
                    y_max = y_max.max(y);
                }
            }
        }
    }
    let linear_bars = any_bars && fig.y_scale == Scale::Linear;
    if linear_bars {
        y_min = y_min.min(0.0);
        y_max = y_max.max(0.0);
    }
    let x_span = axis::fit_span(fig.x_scale, x_min, x_max, 0.03, None)?;
    let y_span = match fixed_y {
        Some(s) => s,
        None => {
            let floor = (linear_bars && y_min >= 0.0).then_some(0.0);
            axis::fit_span(fig.y_scale, y_min, y_max, 0.05, floor)?
        }
    };
    if let Some(b) = series.iter().find_map(|s| s.bar) {
        if !b.1.is_finite() || b.1 <= 0.0 {
            bail!("cannot size bars for figure {:?}", fig.name);
        }
    }
    Ok((x_span, y_span))
}

/// Clips the polyline through `run` to the visible rectangle, returning the
/// visible pieces (each with at least two points).
fn clip_polyline(run: &[PPoint], xs: Span, ys: Span) -> Vec<Vec<(f64, f64)>> {
    let mut out = Vec::new();
    let mut cur: Vec<(f64, f64)> = Vec::new();
    for w in run.windows(2) {
        match clip_segment((w[0].x, w[0].y), (w[1].x, w[1].y), xs, ys) {
            None => {
                if cur.len() >= 2 {
                    out.push(std::mem::take(&mut cur));
                }
                cur.clear();
            }
            Some((a, b, start_clipped, end_clipped)) => {
                if start_clipped || cur.is_empty() {
                    if cur.len() >= 2 {
                        out.push(std::mem::take(&mut cur));
                    }
                    cur = vec![a];
                }
                cur.push(b);
                if end_clipped {
                    out.push(std::mem::take(&mut cur));
                }
            }
        }
    }
    if cur.len() >= 2 {
        out.push(cur);
    }
    out
}

/// Liang–Barsky clipping of segment `a`–`b`; returns the visible part and whether
/// each end was moved.
#[allow(clippy::type_complexity)]
fn clip_segment(
    a: (f64, f64),
    b: (f64, f64),
    xs: Span,
    ys: Span,
) -> Option<((f64, f64), (f64, f64), bool, bool)> {
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    let (mut t0, mut t1) = (0.0f64, 1.0f64);
    for (p, q) in [
        (-dx, a.0 - xs.lo),
        (dx, xs.hi - a.0),
        (-dy, a.1 - ys.lo),
        (dy, ys.hi - a.1),
    ] {
        if p == 0.0 {
            if q < 0.0 {
                return None;
            }
        } else {
            let r = q / p;
            if p < 0.0 {
                if r > t1 {
                    return None;
                }
                t0 = t0.max(r);
            } else {
                if r < t0 {
                    return None;
                }
                t1 = t1.min(r);
            }
        }
    }
    let at = |t: f64| (a.0 + t * dx, a.1 + t * dy);
    let start = if t0 > 0.0 { at(t0) } else { a };
    let end = if t1 < 1.0 { at(t1) } else { b };
    Some((start, end, t0 > 0.0, t1 < 1.0))
}

/// A pixel position rounded to whole pixels (far-off values saturate).
fn ipx(p: (f64, f64)) -> (i32, i32) {
    let round = |v: f64| v.round().clamp(-1e7, 1e7) as i32;
    (round(p.0), round(p.1))
}

/// Strokes the polyline through pixel positions `pts`, `width` pixels wide:
/// anti-aliased on raster backends, a plain path element otherwise.
fn stroke<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    pts: &[(f64, f64)],
    width: u32,
    color: RGBColor,
    raster: bool,
) -> anyhow::Result<()> {
    if raster {
        let mut cov = Coverage::new(root.dim_in_pixel());
        cov.polyline(pts, f64::from(width));
        cov.paint(root, color)
    } else {
        let pts: Vec<(i32, i32)> = pts.iter().map(|&p| ipx(p)).collect();
        root.draw(&PathElement::new(pts, color.stroke_width(width)))
            .map_err(drawing)
    }
}

/// Draws a filled marker of `shape` centred at pixel position `c` with radius `r`,
/// with a thin white rim so that overlapping markers stay distinguishable.
fn draw_marker<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    shape: Shape,
    c: (f64, f64),
    r: i32,
    color: RGBColor,
    raster: bool,
) -> anyhow::Result<()> {
    let (x, y) = ipx(c);
    for (rr, fill) in [(r + 1, WHITE), (r, color)] {
        let style = fill.filled();
        match shape {
            Shape::Circle if raster => {
                let mut cov = Coverage::new(root.dim_in_pixel());
                cov.disc(c, f64::from(rr));
                cov.paint(root, fill)?;
                Ok(())
            }
            Shape::Circle => root.draw(&Circle::new((x, y), rr, style)),
            Shape::Square => {
                root.draw(&Rectangle::new([(x - rr, y - rr), (x + rr, y + rr)], style))
            }
            Shape::TriangleUp => root.draw(&Polygon::new(
                vec![
                    (x, y - rr - 1),
                    (x - rr - 1, y + rr - 1),
                    (x + rr + 1, y + rr - 1),
                ],
                style,
            )),
            Shape::TriangleDown => root.draw(&Polygon::new(
                vec![
                    (x, y + rr + 1),
                    (x - rr - 1, y - rr + 1),
                    (x + rr + 1, y - rr + 1),
                ],
                style,
            )),
            Shape::Diamond => root.draw(&Polygon::new(
                vec![
                    (x, y - rr - 1),
                    (x + rr + 1, y),
                    (x, y + rr + 1),
                    (x - rr - 1, y),
                ],
                style,
            )),
        }
        .map_err(drawing)?;
    }
    Ok(())
}

/// `text`, cut with an ellipsis to fit `max_w` pixels at size `px`.
fn ellipsize(text: &str, px: f64, max_w: u32) -> anyhow::Result<String> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn span(lo: f64, hi: f64) -> Span {
        Span { lo, hi }
    }

    #[test]
    fn segments_are_clipped_to_the_view() {
        let (xs, ys) = (span(0.0, 1.0), span(0.0, 1.0));
        assert!(clip_segment((-1.0, 2.0), (-0.5, 3.0), xs, ys).is_none());
        let (a, b, ca, cb) = clip_segment((-1.0, 0.5), (2.0, 0.5), xs, ys).unwrap();
        assert_eq!((a, b, ca, cb), ((0.0, 0.5), (1.0, 0.5), true, true));
        let (a, b, ca, cb) = clip_segment((0.2, 0.2), (0.4, 0.4), xs, ys).unwrap();
        assert_eq!((a, b, ca, cb), ((0.2, 0.2), (0.4, 0.4), false, false));
    }

    #[test]
    fn polylines_split_where_they_leave_the_view() {
        let p = |x, y| PPoint {
            x,
            y,
            lo: None,
            hi: None,
        };
        let run = [
            p(0.0, 0.5),
            p(0.3, 0.5),
            p(0.5, 2.0),
            p(0.7, 0.5),
            p(0.9, 0.5),
        ];
        let pieces = clip_polyline(&run, span(0.0, 1.0), span(0.0, 1.0));
        assert_eq!(pieces.len(), 2);
        assert_eq!(pieces[0].len(), 3);
        assert_eq!(pieces[1].len(), 3);
    }
}
