//! The heat-map colour scale: a perceptually uniform sequential colormap (viridis:
//! dark purple through blue and green to yellow), interpolated linearly between
//! anchor colours sampled evenly along it.

use plotters::prelude::*;

/// Viridis at nine evenly spaced positions, from 0 (lowest) to 1 (highest). Its
/// lightness rises steadily, so the map reads in grey scale and for colour-blind
/// readers too.
const ANCHORS: [(u8, u8, u8); 9] = [
    (0x44, 0x01, 0x54),
    (0x47, 0x2D, 0x7B),
    (0x3B, 0x52, 0x8B),
    (0x2C, 0x72, 0x8E),
    (0x21, 0x90, 0x8C),
    (0x27, 0xAD, 0x81),
    (0x5D, 0xC8, 0x63),
    (0xAA, 0xDC, 0x32),
    (0xFD, 0xE7, 0x25),
];

/// Colour of cells whose value the colour scale cannot show (zero or negative on a
/// log scale): a mid grey, unlike any colour of the map.
pub(super) const MISSING: RGBColor = RGBColor(0xB4, 0xB4, 0xB4);

/// The colour at position `t` of the scale (clamped to 0..=1; NaN counts as 0).
pub(super) fn colormap(t: f64) -> RGBColor {
    let t = if t.is_nan() { 0.0 } else { t.clamp(0.0, 1.0) };
    let pos = t * (ANCHORS.len() - 1) as f64;
    let i = (pos.floor() as usize).min(ANCHORS.len() - 2);
    let f = pos - i as f64;
    let (a, b) = (ANCHORS[i], ANCHORS[i + 1]);
    let mix = |a: u8, b: u8| (f64::from(a) + (f64::from(b) - f64::from(a)) * f).round() as u8;
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Relative luminance of an sRGB colour (WCAG).
    fn luminance(c: RGBColor) -> f64 {
        let lin = |v: u8| {
            let v = f64::from(v) / 255.0;
            if v <= 0.04045 {
                v / 12.92
            } else {
                ((v + 0.055) / 1.055).powf(2.4)
            }
        };
        0.2126 * lin(c.0) + 0.7152 * lin(c.1) + 0.0722 * lin(c.2)
    }

    #[test]
    fn ends_are_anchors_and_lightness_rises() {
        assert_eq!(colormap(0.0), RGBColor(0x44, 0x01, 0x54));
        assert_eq!(colormap(1.0), RGBColor(0xFD, 0xE7, 0x25));
        assert_eq!(colormap(-3.0), colormap(0.0));
        assert_eq!(colormap(7.0), colormap(1.0));
        assert_eq!(colormap(f64::NAN), colormap(0.0));
        let lum: Vec<f64> = (0..=256)
            .map(|i| luminance(colormap(i as f64 / 256.0)))
            .collect();
        // Rounding to whole colour values may dip by a hair, never visibly.
        for w in lum.windows(2) {
            assert!(w[1] >= w[0] - 1e-3, "lightness falls: {} -> {}", w[0], w[1]);
        }
        for (a, b) in lum.iter().zip(&lum[32..]).step_by(32) {
            assert!(b - a > 0.02, "lightness rises too slowly: {a} -> {b}");
        }
        let grey = luminance(MISSING);
        assert!(grey > lum[0] && grey < lum[256]);
    }
}
