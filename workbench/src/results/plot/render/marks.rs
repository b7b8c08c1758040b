//! Drawing one series: bars, lines, error bars and markers, clipped to the view,
//! with anti-aliased lines and circles on raster backends.

use plotters::coord::Shift;
use plotters::prelude::*;

use super::super::raster::Coverage;
use super::geometry::{clip_polyline, ipx};
use super::{drawing, PSeries, Plan, Shape, AXIS, CAP_HALF};
use crate::experiment::outputs::SeriesStyle;

impl Plan {
    /// Draws one series: bars, then lines, then error bars, then markers.
    pub(super) fn draw_series<DB: DrawingBackend>(
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
pub(super) fn draw_marker<DB: DrawingBackend>(
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
