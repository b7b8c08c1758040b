//! Drawing a [`Plan`] onto any plotters backend ([`Plan::draw`]): background, title,
//! plotters' mesh and our frame, tick and axis labels, then the series (see
//! `marks.rs`) or the heat map (see `heat.rs`), the "no data" note and the legend
//! (see `legend.rs`).

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::super::glyphs;
use super::geometry::{ipx, TickedAxis};
use super::layout::font;
use super::{drawing, Plan, AXIS, GRID, GRID_LIGHT, NOTE, TEXT};
use super::{MARGIN_BOTTOM, MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, TICK_LABEL_DIST};

impl Plan {
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
        // A heat map's cells cover the plot, so it gets tick marks but no grid.
        let mut mesh = chart.configure_mesh();
        mesh.label_style(font(self.tick_px, false).color(&TRANSPARENT))
            .axis_style(AXIS)
            .bold_line_style(GRID)
            .light_line_style(GRID_LIGHT);
        if self.heat.is_some() {
            mesh.disable_mesh();
        }
        mesh.draw().map_err(drawing)?;

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
        let left_of = font(self.y_tick_px, false)
            .color(&TEXT)
            .pos(Pos::new(HPos::Right, VPos::Center));
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
        // A heat map's y label describes its colour bar and is drawn there.
        if !self.y_desc.text.is_empty() && self.heat.is_none() {
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
        if let Some(heat) = &self.heat {
            let ranges = (px_range.clone(), py_range.clone());
            self.draw_heat(root, heat, &to_px, ranges, raster)?;
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
}
