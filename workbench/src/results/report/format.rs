//! Number and JSON-value formatting for display in the report.

use serde_json::Value as Json;

/// Shown for missing values (`None`, NaN, JSON `null`, absent manifest keys).
pub(crate) const MISSING: &str = "—";

/// Exponents (of ten) outside `SCI_BELOW..SCI_FROM` are written in scientific notation.
const SCI_BELOW: i32 = -4;
const SCI_FROM: i32 = 15;

/// Format a float with `digits` significant digits for display.
///
/// Numbers between 1e-4 and 1e15 in magnitude are written in plain decimal
/// notation, keeping trailing zeros so every value shows the same precision;
/// integer digits are never dropped, so a number with more integer digits than
/// `digits` is simply rounded to an integer. Smaller or larger magnitudes use
/// scientific notation with a `digits`-digit mantissa.
///
/// * `format_number(0.0049871, 3)` is `"0.00499"`
/// * `format_number(12345.6, 3)` is `"12346"`
/// * `format_number(1e-9, 3)` is `"1.00e-9"`
/// * `format_number(0.0, 3)` is `"0"`; NaN is `"—"`; infinities are `"∞"` and `"-∞"`
///
/// `digits` is clamped to `1..=17`.
pub fn format_number(x: f64, digits: usize) -> String {
    if x.is_nan() {
        return MISSING.to_string();
    }
    if x.is_infinite() {
        return if x > 0.0 { "∞" } else { "-∞" }.to_string();
    }
    if x == 0.0 {
        return "0".to_string();
    }
    let digits = digits.clamp(1, 17);
    // Round once in scientific form: its exponent is the exponent *after*
    // rounding (0.0099996 -> 1.00e-2), which fixes the number of decimals.
    let sci = format!("{:.*e}", digits - 1, x);
    let exp: i32 = match sci.split_once('e').map(|(_, e)| e.parse()) {
        Some(Ok(e)) => e,
        _ => return sci,
    };
    if (SCI_BELOW..SCI_FROM).contains(&exp) {
        let decimals = (digits as i32 - 1 - exp).max(0) as usize;
        format!("{x:.decimals$}")
    } else {
        sci
    }
}

/// Format an optional float; `None` is shown as `"—"`.
pub(crate) fn format_opt(x: Option<f64>, digits: usize) -> String {
    x.map_or_else(|| MISSING.to_string(), |v| format_number(v, digits))
}

/// Longest list shown in full by [`json_display`]; longer ones are cut with a count.
const MAX_LIST: usize = 8;

/// A JSON value as one line of text for the run summary: strings verbatim,
/// numbers as written, arrays joined with `, ` (at most [`MAX_LIST`] items, then
/// a count), objects as `key=value` pairs, `null` and empty strings as `"—"`.
pub(crate) fn json_display(v: &Json) -> String {
    match v {
        Json::Null => MISSING.to_string(),
        Json::Bool(b) => if *b { "yes" } else { "no" }.to_string(),
        Json::Number(n) => n.to_string(),
        Json::String(s) if s.trim().is_empty() => MISSING.to_string(),
        Json::String(s) => s.clone(),
        Json::Array(items) if items.is_empty() => MISSING.to_string(),
        Json::Array(items) => {
            let mut shown: Vec<String> = items
                .iter()
                .take(MAX_LIST)
                .map(|item| match item {
                    Json::Array(_) | Json::Object(_) => item.to_string(),
                    _ => json_display(item),
                })
                .collect();
            if items.len() > MAX_LIST {
                shown.push(format!("… ({} in all)", items.len()));
            }
            shown.join(", ")
        }
        Json::Object(map) if map.is_empty() => MISSING.to_string(),
        Json::Object(map) => map
            .iter()
            .map(|(k, item)| match item {
                Json::Array(_) | Json::Object(_) => format!("{k}={item}"),
                _ => format!("{k}={}", json_display(item)),
            })
            .collect::<Vec<_>>()
            .join(", "),
    }
}

/// A duration in seconds as `"12.3 s"`, with minutes/hours added from one minute on
/// (`"754 s (12 min 34 s)"`).
pub(crate) fn format_seconds(secs: f64) -> String {
    if !secs.is_finite() || secs < 0.0 {
        return format_number(secs, 3);
    }
    let plain = format!("{} s", format_number(secs, 3));
    if secs < 60.0 {
        return plain;
    }
    let total = secs.round() as u64;
    let (h, m, s) = (total / 3600, (total / 60) % 60, total % 60);
    if h > 0 {
        format!("{plain} ({h} h {m:02} min {s:02} s)")
    } else {
        format!("{plain} ({m} min {s:02} s)")
    }
}
