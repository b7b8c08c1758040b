//! Axis arithmetic: the plotting coordinate of a value, fitted ranges, tick positions
//! and tick labels.
//!
//! Everything is drawn in *plot coordinates*: the value itself on a linear axis and
//! `log10(value)` on a logarithmic one. Ticks are computed here (not by plotters) so
//! that labels are short ("0.25", "1e-5") and identical on every run.

use crate::experiment::outputs::Scale;

/// Plot coordinate of `v` on an axis with scale `scale`; `None` where a log axis
/// cannot show the value (zero or negative).
pub(crate) fn to_plot(scale: Scale, v: f64) -> Option<f64> {
    match scale {
        Scale::Linear => Some(v),
        Scale::Log if v > 0.0 => Some(v.log10()),
        Scale::Log => None,
    }
}

/// A visible range `[lo, hi]` in plot coordinates, always with `lo < hi`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Span {
    /// Lower end.
    pub lo: f64,
    /// Upper end.
    pub hi: f64,
}

impl Span {
    /// Whether `v` lies inside the span (ends included, with a little slack for
    /// rounding).
    pub fn contains(&self, v: f64) -> bool {
        let eps = (self.hi - self.lo) * 1e-9;
        v >= self.lo - eps && v <= self.hi + eps
    }

    /// `v` clamped into the span.
    pub fn clamp(&self, v: f64) -> f64 {
        v.max(self.lo).min(self.hi)
    }
}

/// Fits a span around data extremes `[min, max]` (plot coordinates), padding each
/// side by `pad` of the width. A zero-width range is widened around its value.
/// `floor` pins the lower end (e.g. 0 for bars) when it is at or below the data.
pub(crate) fn fit_span(
    scale: Scale,
    min: f64,
    max: f64,
    pad: f64,
    floor: Option<f64>,
) -> anyhow::Result<Span> {
    anyhow::ensure!(
        min.is_finite() && max.is_finite() && min <= max,
        "cannot fit an axis range to data from {min} to {max}"
    );
    let (lo, hi) = if max - min > 0.0 {
        let w = max - min;
        anyhow::ensure!(
            w.is_finite(),
            "data range {min} to {max} is too wide to draw"
        );
        (min - pad * w, max + pad * w)
    } else {
        let half = match scale {
            Scale::Log => 0.5,
            Scale::Linear if min == 0.0 => 1.0,
            Scale::Linear => min.abs() * 0.1,
        };
        (min - half, max + half)
    };
    let lo = match floor {
        Some(f) if f <= min => f.max(lo),
        _ => lo,
    };
    checked_span(lo, hi)
}

/// A span from explicit ends, checked to be finite and non-empty.
pub(crate) fn checked_span(lo: f64, hi: f64) -> anyhow::Result<Span> {
    anyhow::ensure!(
        lo.is_finite() && hi.is_finite() && (hi - lo).is_finite(),
        "axis range {lo} to {hi} is not finite"
    );
    anyhow::ensure!(
        hi > lo && (hi - lo) > (lo.abs().max(hi.abs())) * 1e-12,
        "axis range {lo} to {hi} is empty"
    );
    Ok(Span { lo, hi })
}

/// Tick marks of one axis, in plot coordinates.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Ticks {
    /// Labelled ticks with their grid lines: `(position, label)`, ascending.
    pub major: Vec<(f64, String)>,
    /// Unlabelled light grid lines (log axes' 2..9 sub-decades).
    pub minor: Vec<f64>,
}

impl Ticks {
    /// Number of labelled ticks.
    pub fn len(&self) -> usize {
        self.major.len()
    }
}

/// Ticks for `span` with at most `max_n` labels (`max_n >= 2`). With `integers`
/// (data at whole numbers, e.g. token ids), a linear axis prefers whole-number
/// steps when that still gives at least three ticks.
pub(crate) fn ticks(scale: Scale, span: Span, max_n: usize, integers: bool) -> Ticks {
    let max_n = max_n.max(2);
    match scale {
        Scale::Linear if integers => {
            let t = linear_ticks(span.lo, span.hi, max_n, true);
            if t.len() >= 3 {
                t
            } else {
                linear_ticks(span.lo, span.hi, max_n, false)
            }
        }
        Scale::Linear => linear_ticks(span.lo, span.hi, max_n, false),
        Scale::Log => log_ticks(span, max_n),
    }
}

/// Nice linear ticks (steps of 1, 2, 2.5 or 5 times a power of ten) inside
/// `[lo, hi]`, at most `max_n` of them; only whole-number steps with `integers`.
fn linear_ticks(lo: f64, hi: f64, max_n: usize, integers: bool) -> Ticks {
    let span = hi - lo;
    let raw = span / max_n as f64;
    let raw = if integers { raw.max(1.0) } else { raw };
    let exp = raw.log10().floor() as i32;
    for (mult, e) in [
        (1.0, exp),
        (2.0, exp),
        (2.5, exp),
        (5.0, exp),
        (1.0, exp + 1),
        (2.0, exp + 1),
    ] {
        // A 2.5 step needs one more decimal than its power of ten; skip it for
        // integer steps (2.5 is fine, 25 is not nicer than 20).
        if mult == 2.5 && (e >= 1 || integers) {
            continue;
        }
        let step = mult * 10f64.powi(e);
        let k0 = (lo / step - 1e-9).ceil() as i64;
        let k1 = (hi / step + 1e-9).floor() as i64;
        if k1 < k0 || (k1 - k0 + 1) as usize > max_n {
            continue;
        }
        let decimals = (-e).max(0) as usize + usize::from(mult == 2.5);
        let magnitude = lo.abs().max(hi.abs());
        let major = (k0..=k1)
            .map(|k| {
                let v = k as f64 * step;
                (v, format_linear(v, step, decimals, magnitude))
            })
            .collect();
        return Ticks {
            major,
            minor: Vec::new(),
        };
    }
    // Unreachable for sane inputs; fall back to labelling both ends.
    let magnitude = lo.abs().max(hi.abs());
    Ticks {
        major: vec![
            (lo, format_sig(lo, magnitude)),
            (hi, format_sig(hi, magnitude)),
        ],
        minor: Vec::new(),
    }
}

/// Label of a linear tick `v` on a grid of `step` with `decimals` fixed decimals.
/// Very large or very small magnitudes switch to scientific notation.
fn format_linear(v: f64, step: f64, decimals: usize, magnitude: f64) -> String {
    // Snap rounding noise (and -0) to an exact zero.
    let v = if v.abs() < step * 1e-6 { 0.0 } else { v };
    if !(1e-3..1e6).contains(&magnitude) {
        if v == 0.0 {
            return "0".to_string();
        }
        // Mantissa digits: how many places the step sits below the value's exponent.
        let e_v = v.abs().log10().floor();
        let e_s = step.log10().floor();
        let extra = usize::from((step / 10f64.powf(e_s) - 2.5).abs() < 1e-9);
        let prec = ((e_v - e_s).max(0.0) as usize + extra).min(12);
        return trim_sci(&format!("{v:.prec$e}"));
    }
    format!("{v:.decimals$}")
}

/// Labels of log ticks `mant * 10^exp` (mantissas are small integers): plain
/// decimals when every tick is between 0.001 and 10000, otherwise powers of ten
/// with superscript exponents (`10⁻⁶`, `2×10⁻⁶`) for the whole axis.
fn format_pows(ticks: &[(u32, i32)]) -> Vec<String> {
    let plain = ticks.iter().all(|&(_, e)| (-3..5).contains(&e));
    ticks
        .iter()
        .map(|&(mant, exp)| {
            if plain {
                let v = f64::from(mant) * 10f64.powi(exp);
                let decimals = (-exp).max(0) as usize;
                format!("{v:.decimals$}")
            } else if mant == 1 {
                format!("10{}", superscript(exp))
            } else {
                format!("{mant}×10{}", superscript(exp))
            }
        })
        .collect()
}

/// `n` in Unicode superscript digits (DejaVu Sans has them all).
fn superscript(n: i32) -> String {
    const DIGITS: [char; 10] = ['⁰', '¹', '²', '³', '⁴', '⁵', '⁶', '⁷', '⁸', '⁹'];
    let mut out = String::new();
    if n < 0 {
        out.push('⁻');
    }
    for c in n.unsigned_abs().to_string().chars() {
        out.push(DIGITS[c.to_digit(10).unwrap_or(0) as usize]);
    }
    out
}

/// Short label for an arbitrary value (3 significant digits).
fn format_sig(v: f64, magnitude: f64) -> String {
    if v == 0.0 {
        return "0".to_string();
    }
    if !(1e-3..1e6).contains(&magnitude) {
        return trim_sci(&format!("{v:.2e}"));
    }
    let decimals = (2 - v.abs().log10().floor() as i32).max(0) as usize;
    let s = format!("{v:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// Drops trailing zeros of a scientific mantissa: `2.50e6` → `2.5e6`, `3.0e6` → `3e6`.
fn trim_sci(s: &str) -> String {
    match s.split_once('e') {
        Some((m, e)) if m.contains('.') => {
            let m = m.trim_end_matches('0').trim_end_matches('.');
            format!("{m}e{e}")
        }
        _ => s.to_string(),
    }
}

/// Ticks of a log axis, whose span is in decades (`log10` of the values).
fn log_ticks(span: Span, max_n: usize) -> Ticks {
    let d0 = span.lo.floor() as i32;
    let d1 = span.hi.ceil() as i32;
    // Candidate sets of mantissas per decade, coarse to fine.
    let sets: [&[u32]; 4] = [
        &[1],
        &[1, 2, 5],
        &[1, 2, 3, 5],
        &[1, 2, 3, 4, 5, 6, 7, 8, 9],
    ];
    let in_span = |m: u32, e: i32| -> Option<f64> {
        let t = (f64::from(m) * 10f64.powi(e)).log10();
        span.contains(t).then_some(t)
    };
    let decades: Vec<i32> = (d0..=d1).filter(|&e| in_span(1, e).is_some()).collect();
    if decades.len() >= 3 {
        // Thin out decades when there are too many to label.
        let stride = decades.len().div_ceil(max_n).max(1);
        let kept: Vec<(u32, i32)> = decades
            .iter()
            .filter(|&&e| ((e - decades[0]) as usize).is_multiple_of(stride))
            .map(|&e| (1, e))
            .collect();
        let major = kept
            .iter()
            .zip(format_pows(&kept))
            .map(|(&(_, e), label)| (f64::from(e), label))
            .collect();
        let minor = if stride == 1 && decades.len() <= 8 {
            (d0..=d1)
                .flat_map(|e| (2..=9).filter_map(move |m| in_span(m, e)))
                .collect()
        } else {
            Vec::new()
        };
        return Ticks { major, minor };
    }
    // Under three decades: the first mantissa set giving at least four ticks, else
    // the one giving the most (at least two) within the limit.
    let mut best: Option<Vec<(u32, i32, f64)>> = None;
    for set in &sets[1..] {
        let kept: Vec<(u32, i32, f64)> = (d0..=d1)
            .flat_map(|e| {
                set.iter()
                    .filter_map(move |&m| in_span(m, e).map(|t| (m, e, t)))
            })
            .collect();
        if kept.len() > max_n {
            break;
        }
        let enough = kept.len() >= 4;
        if kept.len() >= 2 && best.as_ref().is_none_or(|b| kept.len() > b.len()) {
            best = Some(kept);
        }
        if enough {
            break;
        }
    }
    if let Some(kept) = best {
        let pows: Vec<(u32, i32)> = kept.iter().map(|&(m, e, _)| (m, e)).collect();
        let major: Vec<(f64, String)> = kept
            .iter()
            .zip(format_pows(&pows))
            .map(|(&(_, _, t), label)| (t, label))
            .collect();
        let mut minor = Vec::new();
        for e in d0..=d1 {
            for m in 2..=9 {
                if !pows.contains(&(m, e)) {
                    minor.extend(in_span(m, e));
                }
            }
        }
        return Ticks { major, minor };
    }
    // Less than a decade wide: nice linear ticks on the values, placed at their logs.
    let (vlo, vhi) = (10f64.powf(span.lo), 10f64.powf(span.hi));
    let lin = linear_ticks(vlo, vhi, max_n, false);
    Ticks {
        major: lin
            .major
            .into_iter()
            .filter(|(v, _)| *v > 0.0)
            .map(|(v, s)| (v.log10(), s))
            .filter(|(t, _)| span.contains(*t))
            .collect(),
        minor: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(t: &Ticks) -> Vec<&str> {
        t.major.iter().map(|(_, s)| s.as_str()).collect()
    }

    #[test]
    fn linear_ticks_are_short() {
        let t = ticks(
            Scale::Linear,
            Span {
                lo: -0.05,
                hi: 1.05,
            },
            8,
            false,
        );
        assert_eq!(labels(&t), ["0.0", "0.2", "0.4", "0.6", "0.8", "1.0"]);
        let t = ticks(Scale::Linear, Span { lo: -0.5, hi: 9.5 }, 10, false);
        assert_eq!(
            labels(&ticks(Scale::Linear, Span { lo: 0.5, hi: 5.5 }, 12, true)),
            ["1", "2", "3", "4", "5"]
        );
        assert_eq!(
            labels(&ticks(Scale::Linear, Span { lo: 2.7, hi: 3.3 }, 12, true)).len(),
            7
        );
        assert_eq!(
            labels(&t),
            ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]
        );
        let t = ticks(Scale::Linear, Span { lo: 0.0, hi: 0.1 }, 5, false);
        assert_eq!(labels(&t), ["0.000", "0.025", "0.050", "0.075", "0.100"]);
        let t = ticks(Scale::Linear, Span { lo: 0.0, hi: 3e6 }, 4, false);
        assert_eq!(labels(&t), ["0", "1e6", "2e6", "3e6"]);
        let t = ticks(
            Scale::Linear,
            Span {
                lo: -1e-5,
                hi: 1e-5,
            },
            5,
            false,
        );
        assert_eq!(labels(&t), ["-1e-5", "-5e-6", "0", "5e-6", "1e-5"]);
    }

    #[test]
    fn log_ticks_use_decades_or_mantissas() {
        let t = ticks(Scale::Log, Span { lo: -3.1, hi: 1.1 }, 8, false);
        assert_eq!(labels(&t), ["0.001", "0.01", "0.1", "1", "10"]);
        assert!(!t.minor.is_empty());
        let t = ticks(Scale::Log, Span { lo: 0.0, hi: 1.5 }, 8, false);
        assert_eq!(labels(&t), ["1", "2", "5", "10", "20"]);
        let t = ticks(Scale::Log, Span { lo: -12.0, hi: 0.0 }, 8, false);
        assert_eq!(
            labels(&t),
            ["10⁻¹²", "10⁻¹⁰", "10⁻⁸", "10⁻⁶", "10⁻⁴", "10⁻²", "10⁰"]
        );
        let t = ticks(
            Scale::Log,
            Span {
                lo: -0.35,
                hi: 0.65,
            },
            8,
            false,
        );
        assert_eq!(labels(&t), ["0.5", "1", "2", "3"]);
        let t = ticks(Scale::Log, Span { lo: 2.0, hi: 2.1 }, 6, false);
        assert!(t.len() >= 2, "{t:?}");
    }

    #[test]
    fn fitted_spans_are_never_empty() {
        let s = fit_span(Scale::Linear, 3.0, 3.0, 0.05, None).unwrap();
        assert!(s.lo < 3.0 && s.hi > 3.0);
        let s = fit_span(Scale::Linear, 0.0, 0.0, 0.05, Some(0.0)).unwrap();
        assert_eq!(s.lo, 0.0);
        assert!(s.hi > 0.0);
        assert!(fit_span(Scale::Linear, -f64::MAX, f64::MAX, 0.05, None).is_err());
        assert!(checked_span(1.0, 1.0).is_err());
    }
}
