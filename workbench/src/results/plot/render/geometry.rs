//! Geometry between plot coordinates and pixels: the plotters coordinate that
//! places the grid on our own ticks, clipping of lines to the visible spans, and
//! rounding to whole pixels.

use plotters::coord::ranged1d::{KeyPointHint, Ranged};

use super::super::axis::{Span, Ticks};
use super::PPoint;

/// A linear plotters coordinate over a [`Span`] whose grid lines are our own ticks.
pub(super) struct TickedAxis {
    span: Span,
    major: Vec<f64>,
    minor: Vec<f64>,
}

impl TickedAxis {
    pub(super) fn new(span: Span, ticks: &Ticks) -> TickedAxis {
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

/// Clips the polyline through `run` to the visible rectangle, returning the
/// visible pieces (each with at least two points).
pub(super) fn clip_polyline(run: &[PPoint], xs: Span, ys: Span) -> Vec<Vec<(f64, f64)>> {
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
pub(super) fn ipx(p: (f64, f64)) -> (i32, i32) {
    let round = |v: f64| v.round().clamp(-1e7, 1e7) as i32;
    (round(p.0), round(p.1))
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
