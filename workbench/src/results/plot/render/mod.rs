//! Turning a [`Figure`](crate::experiment::outputs::Figure) into a drawing:
//! validation and layout ([`Plan::new`]), then drawing onto any plotters backend
//! ([`Plan::draw`]).
//!
//! Grid lines, axes and tick marks come from plotters' mesh. Everything else (tick
//! labels, axis labels, title, series, legend) is drawn here in pixel coordinates:
//! series are clipped to the view in plot coordinates first, because plotters
//! clamps out-of-range points onto the frame instead of clipping them, and text and
//! lines go through `glyphs.rs` and `raster.rs` on raster backends.
//!
//! This file holds the [`Plan`], the types it is made of and the style shared by
//! the other files:
//! - `validate.rs`: rejecting figures with values that cannot be drawn;
//! - `layout.rs`: [`Plan::new`], text sizes and the areas around the plot;
//! - `series.rs`: series in plot coordinates, their colours, bar slots and the
//!   spans fitted to them;
//! - `legend.rs`: legend rows, the legend's size, and drawing it;
//! - `geometry.rs`: the plotters coordinate, clipping to the view, pixel rounding;
//! - `draw.rs`: [`Plan::draw`], the backend-generic entry point;
//! - `marks.rs`: drawing a series' bars, lines, error bars and markers;
//! - `heat.rs`: heat maps (figures of `Cells` series): their cells, row labels
//!   and colour bar;
//! - `colormap.rs`: the heat maps' colour scale.

mod colormap;
mod draw;
mod geometry;
mod heat;
mod layout;
mod legend;
mod marks;
mod series;
mod validate;

use plotters::prelude::*;

use super::axis::{Span, Ticks};
use crate::experiment::outputs::SeriesStyle;

// Colours of everything but the series, which take theirs from the palette in
// `series.rs`: greys, so that the data stands out.
const TEXT: RGBColor = RGBColor(0x20, 0x20, 0x20);
const AXIS: RGBColor = RGBColor(0x40, 0x40, 0x40);
const GRID: RGBColor = RGBColor(0xDD, 0xDD, 0xDD);
const GRID_LIGHT: RGBColor = RGBColor(0xEE, 0xEE, 0xEE);
const NOTE: RGBColor = RGBColor(0x80, 0x80, 0x80);

/// Half width of an error-bar cap in pixels.
const CAP_HALF: i32 = 4;

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
    /// Font size of the y tick labels: `tick_px`, or smaller for a heat map's row
    /// labels when rows are thin.
    y_tick_px: f64,
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
    /// The heat map, when the figure is one: then `series` and `legend` are
    /// empty, the y axis counts rows (`y_ticks` label them) and `legend_w` is the
    /// colour bar's width.
    heat: Option<heat::HeatMap>,
}

/// Chart margins inside the area left of the legend and under the title.
const MARGIN_TOP: u32 = 10;
const MARGIN_RIGHT: u32 = 24;
const MARGIN_BOTTOM: u32 = 8;
const MARGIN_LEFT: u32 = 8;
/// Distance from the frame to tick labels, as plotters draws them (2 × tick length).
const TICK_LABEL_DIST: u32 = 10;

/// Maps an error into `anyhow` with the backend's message.
fn drawing<E: std::fmt::Display>(e: E) -> anyhow::Error {
    anyhow::anyhow!("drawing failed: {e}")
}

impl Plan {
    /// Canvas size in pixels.
    pub(crate) fn size(&self) -> (u32, u32) {
        self.size
    }
}
