//! Anti-aliased lines and discs for raster output.
//!
//! plotters' bitmap backend draws wide lines as polygons with whole-pixel corners,
//! so a 2-pixel line wobbles between 1 and 3 pixels, and its circles are jagged.
//! [`Coverage`] instead computes, for every pixel near a shape, how much of it the
//! shape covers, and blends the colour in with that opacity.

use std::collections::BTreeMap;

use plotters::coord::Shift;
use plotters::prelude::*;

/// Per-pixel coverage (0..=1) of one shape; overlapping parts take the maximum, so
/// the joints of a polyline are not blended twice.
pub(crate) struct Coverage {
    /// `(y, x)` → coverage; ordered so that painting is deterministic.
    cells: BTreeMap<(i32, i32), f32>,
    size: (i32, i32),
}

/// Distance from `p` to the segment `a`–`b`.
fn distance_to_segment(p: (f64, f64), a: (f64, f64), b: (f64, f64)) -> f64 {
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    let len2 = dx * dx + dy * dy;
    let t = if len2 > 0.0 {
        (((p.0 - a.0) * dx + (p.1 - a.1) * dy) / len2).clamp(0.0, 1.0)
    } else {
        0.0
    };
    let (qx, qy) = (a.0 + t * dx, a.1 + t * dy);
    ((p.0 - qx).powi(2) + (p.1 - qy).powi(2)).sqrt()
}

impl Coverage {
    /// An empty coverage map for a canvas of `size` pixels.
    pub(crate) fn new(size: (u32, u32)) -> Coverage {
        Coverage {
            cells: BTreeMap::new(),
            size: (size.0 as i32, size.1 as i32),
        }
    }

    fn add(&mut self, x: i32, y: i32, c: f64) {
        if c <= 0.0 || x < 0 || y < 0 || x >= self.size.0 || y >= self.size.1 {
            return;
        }
        let c = c.min(1.0) as f32;
        let cell = self.cells.entry((y, x)).or_insert(0.0);
        *cell = cell.max(c);
    }

    /// Adds a stroke of `width` pixels along the polyline through `points` (pixel
    /// coordinates; pixel `(x, y)` is centred on the integer point), with round
    /// joins and caps.
    pub(crate) fn polyline(&mut self, points: &[(f64, f64)], width: f64) {
        let half = width / 2.0;
        if let [p] = points {
            self.disc(*p, half);
        }
        for seg in points.windows(2) {
            self.segment(seg[0], seg[1], half);
        }
    }

    /// Adds the pixels within `half` of the segment `a`–`b`, walking along its
    /// longer direction so that the work is proportional to its length.
    fn segment(&mut self, a: (f64, f64), b: (f64, f64), half: f64) {
        let reach = half + 1.0;
        let (dx, dy) = (b.0 - a.0, b.1 - a.1);
        let steep = dy.abs() > dx.abs();
        // Work in (u, v) with u along the longer direction.
        let swap = |p: (f64, f64)| if steep { (p.1, p.0) } else { p };
        let (ua, va) = swap(a);
        let (ub, vb) = swap(b);
        let (du, dv) = (ub - ua, vb - va);
        let slope = if du != 0.0 { dv / du } else { 0.0 };
        let v_reach = reach * (1.0 + slope * slope).sqrt();
        let limit = if steep { self.size.1 } else { self.size.0 };
        let u0 = ((ua.min(ub) - reach).floor() as i32).max(0);
        let u1 = ((ua.max(ub) + reach).ceil() as i32).min(limit - 1);
        for u in u0..=u1 {
            let t = if du != 0.0 {
                ((f64::from(u) - ua) / du).clamp(0.0, 1.0)
            } else {
                0.0
            };
            let vc = va + t * dv;
            let v0 = (vc - v_reach).floor() as i32;
            let v1 = (vc + v_reach).ceil() as i32;
            for v in v0..=v1 {
                let (x, y) = if steep { (v, u) } else { (u, v) };
                let d = distance_to_segment((f64::from(x), f64::from(y)), a, b);
                self.add(x, y, half + 0.5 - d);
            }
        }
    }

    /// Adds a filled disc of radius `r` pixels centred at `c`.
    pub(crate) fn disc(&mut self, c: (f64, f64), r: f64) {
        let reach = r + 1.0;
        let (x0, x1) = ((c.0 - reach).floor() as i32, (c.0 + reach).ceil() as i32);
        let (y0, y1) = ((c.1 - reach).floor() as i32, (c.1 + reach).ceil() as i32);
        for y in y0..=y1 {
            for x in x0..=x1 {
                let d = ((f64::from(x) - c.0).powi(2) + (f64::from(y) - c.1).powi(2)).sqrt();
                self.add(x, y, r + 0.5 - d);
            }
        }
    }

    /// Blends `color` into `root` with each pixel's coverage as its opacity.
    pub(crate) fn paint<DB: DrawingBackend>(
        self,
        root: &DrawingArea<DB, Shift>,
        color: RGBColor,
    ) -> anyhow::Result<()> {
        for ((y, x), c) in self.cells {
            root.draw_pixel((x, y), &color.mix(f64::from(c)))
                .map_err(|e| anyhow::anyhow!("drawing failed: {e}"))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_have_even_weight() {
        // Total coverage per column of a 2-pixel diagonal line stays close to its
        // vertical thickness, 2 / cos(angle).
        let mut cov = Coverage::new((200, 200));
        cov.polyline(&[(10.0, 20.0), (190.0, 120.0)], 2.0);
        let expected = 2.0 * (1.0f64 + (100.0f64 / 180.0).powi(2)).sqrt();
        for x in 30..170 {
            let col: f64 = cov
                .cells
                .iter()
                .filter(|((_, cx), _)| *cx == x)
                .map(|(_, c)| f64::from(*c))
                .sum();
            assert!(
                (col - expected).abs() < 0.35,
                "column {x}: {col} vs {expected}"
            );
        }
    }

    #[test]
    fn shapes_off_canvas_are_ignored() {
        let mut cov = Coverage::new((10, 10));
        cov.polyline(&[(-50.0, -50.0), (-20.0, -40.0)], 2.0);
        cov.disc((100.0, 100.0), 5.0);
        assert!(cov.cells.is_empty());
    }
}
