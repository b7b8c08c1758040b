//! Series in plot coordinates: a colour and marker shape per colour group, runs of
//! drawable points, side-by-side bar slots, and the visible spans fitted to them.

use anyhow::{bail, Context};
use plotters::prelude::*;

use super::super::axis::{self, Span};
use super::{PPoint, PSeries, Shape};
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

/// Marker shapes in the order colour groups take them, reused cyclically.
const SHAPES: [Shape; 5] = [
    Shape::Circle,
    Shape::Square,
    Shape::TriangleUp,
    Shape::Diamond,
    Shape::TriangleDown,
];

/// Key deciding a series' colour.
#[derive(Clone, Debug, PartialEq, Eq)]
enum GroupKey {
    Named(String),
    Series(usize),
}

/// The series of `fig` in plot coordinates, coloured by group, with bar slots.
pub(super) fn plot_series(fig: &Figure) -> Vec<PSeries> {
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
                            v.map(|v| axis::to_plot(fig.y_scale, v).unwrap_or(f64::NEG_INFINITY))
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
    series
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
pub(super) fn fit_spans(
    fig: &Figure,
    series: &[PSeries],
    no_data: bool,
) -> anyhow::Result<(Span, Span)> {
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
