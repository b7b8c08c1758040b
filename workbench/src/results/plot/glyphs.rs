//! Even letter spacing for bitmap text.
//!
//! plotters 0.3.7 draws `ab_glyph` text by placing each glyph's bitmap at the pen
//! position, dropping the glyph's left side bearing, so letters drift by a pixel or
//! two ("verificati on"). [`draw_text`] can instead draw text one glyph at a time,
//! each moved right by its side bearing, read from the `hmtx` and `cmap` tables of
//! the embedded DejaVu fonts.

use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::drawing::DrawingAreaErrorKind;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos};

use super::font::FAMILY;

/// Horizontal metrics of one TrueType font: enough to find a glyph's left side
/// bearing in pixels the way `ab_glyph` scales it.
#[derive(Debug)]
pub(crate) struct Bearings {
    /// The font file.
    data: &'static [u8],
    /// Offset of the `cmap` format-4 subtable.
    cmap4: usize,
    /// Offset of the `hmtx` table and its number of full metrics.
    hmtx: usize,
    n_hmetrics: u16,
    /// Ascender minus descender in font units (what `ab_glyph` scales a pixel size by).
    height: f32,
}

fn u16_at(d: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*d.get(off)?, *d.get(off + 1)?]))
}

fn i16_at(d: &[u8], off: usize) -> Option<i16> {
    u16_at(d, off).map(|v| v as i16)
}

fn u32_at(d: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_be_bytes([
        *d.get(off)?,
        *d.get(off + 1)?,
        *d.get(off + 2)?,
        *d.get(off + 3)?,
    ]))
}

impl Bearings {
    /// Reads the tables of a TrueType font; `None` if a table is missing or odd.
    pub(crate) fn parse(data: &'static [u8]) -> Option<Bearings> {
        let n_tables = usize::from(u16_at(data, 4)?);
        let table = |tag: &[u8; 4]| -> Option<usize> {
            (0..n_tables).find_map(|i| {
                let rec = 12 + 16 * i;
                (data.get(rec..rec + 4)? == tag)
                    .then(|| u32_at(data, rec + 8).map(|o| o as usize))?
            })
        };
        let hhea = table(b"hhea")?;
        let hmtx = table(b"hmtx")?;
        let cmap = table(b"cmap")?;
        let n_hmetrics = u16_at(data, hhea + 34)?;
        // Same choice as ttf-parser: OS/2 typographic metrics when the font asks
        // for them, else hhea.
        let mut ascender = i16_at(data, hhea + 4)?;
        let mut descender = i16_at(data, hhea + 6)?;
        if let Some(os2) = table(b"OS/2") {
            let fs_selection = u16_at(data, os2 + 62)?;
            if fs_selection & (1 << 7) != 0 {
                ascender = i16_at(data, os2 + 68)?;
                descender = i16_at(data, os2 + 70)?;
            }
        }
        let height = f32::from(ascender) - f32::from(descender);
        // A Unicode BMP subtable in format 4: (3, 1) or (0, x).
        let n_sub = usize::from(u16_at(data, cmap + 2)?);
        let cmap4 = (0..n_sub).find_map(|i| {
            let rec = cmap + 4 + 8 * i;
            let (platform, encoding) = (u16_at(data, rec)?, u16_at(data, rec + 2)?);
            let sub = cmap + u32_at(data, rec + 4)? as usize;
            let unicode = platform == 0 || (platform == 3 && encoding == 1);
            (unicode && u16_at(data, sub)? == 4).then_some(sub)
        })?;
        (height > 0.0 && n_hmetrics > 0).then_some(Bearings {
            data,
            cmap4,
            hmtx,
            n_hmetrics,
            height,
        })
    }

    /// Glyph index of `c`, if the font maps it.
    fn glyph_id(&self, c: char) -> Option<u16> {
        let c = u16::try_from(u32::from(c)).ok()?;
        let (d, sub) = (self.data, self.cmap4);
        let seg_count = usize::from(u16_at(d, sub + 6)? / 2);
        let ends = sub + 14;
        let starts = ends + 2 * seg_count + 2;
        let deltas = starts + 2 * seg_count;
        let range_offsets = deltas + 2 * seg_count;
        let seg = (0..seg_count).find(|&i| u16_at(d, ends + 2 * i).is_some_and(|e| e >= c))?;
        let start = u16_at(d, starts + 2 * seg)?;
        if c < start {
            return None;
        }
        let delta = u16_at(d, deltas + 2 * seg)?;
        let ro_pos = range_offsets + 2 * seg;
        let range_offset = u16_at(d, ro_pos)?;
        let gid = if range_offset == 0 {
            c.wrapping_add(delta)
        } else {
            let at = ro_pos + usize::from(range_offset) + 2 * usize::from(c - start);
            match u16_at(d, at)? {
                0 => 0,
                g => g.wrapping_add(delta),
            }
        };
        (gid != 0).then_some(gid)
    }

    /// Left side bearing of `c` in font units.
    fn lsb_units(&self, c: char) -> Option<i16> {
        let gid = usize::from(self.glyph_id(c)?);
        let n = usize::from(self.n_hmetrics);
        let off = if gid < n {
            self.hmtx + 4 * gid + 2
        } else {
            self.hmtx + 4 * n + 2 * (gid - n)
        };
        i16_at(self.data, off)
    }

    /// Left side bearing of `c` in whole pixels at plotters font size `size`,
    /// rounded as `ab_glyph` rounds a glyph's pixel bounds.
    pub(crate) fn lsb_px(&self, c: char, size: f64) -> i32 {
        let scale = size as f32 / self.height;
        self.lsb_units(c)
            .map_or(0, |lsb| (f32::from(lsb) * scale).floor() as i32)
    }
}

/// Side bearings of the registered faces, parsed once.
fn bearings(style: FontStyle) -> Option<&'static Bearings> {
    static REGULAR: OnceLock<Option<Bearings>> = OnceLock::new();
    static BOLD: OnceLock<Option<Bearings>> = OnceLock::new();
    match style {
        FontStyle::Normal => REGULAR.get_or_init(|| Bearings::parse(dejavu::sans::regular())),
        FontStyle::Bold => BOLD.get_or_init(|| Bearings::parse(dejavu::sans::bold())),
        _ => &None,
    }
    .as_ref()
}

/// Draws `text` with `style` (anchor and rotation included) at `pos` on `area`.
///
/// With `per_glyph`, each glyph is drawn on its own at its pen position plus its
/// left side bearing, which plotters' bitmap text drawing leaves out; use it for
/// raster backends. Without it (vector backends, which lay text out themselves) the
/// whole string goes to plotters in one piece. Text in other fonts, or characters
/// the font lacks, fall back to plotters' own placement.
pub(crate) fn draw_text<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    text: &str,
    style: &TextStyle<'_>,
    pos: (i32, i32),
    per_glyph: bool,
) -> anyhow::Result<()> {
    let drawing =
        |e: DrawingAreaErrorKind<DB::ErrorType>| anyhow::anyhow!("cannot draw text {text:?}: {e}");
    let metrics = match style.font.get_family() {
        FontFamily::Name(name) if per_glyph && name == FAMILY => bearings(style.font.get_style()),
        _ => None,
    };
    let Some(metrics) = metrics else {
        return area.draw_text(text, style, pos).map_err(drawing);
    };
    // Unrotated advance width of `t` (`box_size` would rotate it).
    let layout = |t: &str| -> anyhow::Result<i32> {
        let ((x0, _), (x1, _)) = style
            .font
            .layout_box(t)
            .map_err(|e| anyhow::anyhow!("cannot lay out text {t:?}: {e:?}"))?;
        Ok(x1 - x0)
    };
    let width = layout(text)?;
    let dx = match style.pos.h_pos {
        HPos::Left => 0,
        HPos::Right => -width,
        HPos::Center => -width / 2,
    };
    let size = style.font.get_size();
    let trans = style.font.get_transform();
    let left = style.pos(Pos::new(HPos::Left, style.pos.v_pos));
    for (at, c) in text.char_indices() {
        if c.is_whitespace() {
            continue;
        }
        // The pen position: the laid-out width up to and including `c` (so that
        // kerning with the previous glyph counts) less the advance of `c`.
        let mut buf = [0u8; 4];
        let glyph = c.encode_utf8(&mut buf);
        let pen = layout(&text[..at + c.len_utf8()])? - layout(glyph)?;
        let offset = dx + pen + metrics.lsb_px(c, size);
        let (ox, oy) = trans.transform(offset, 0);
        area.draw_text(glyph, &left, (pos.0 + ox, pos.1 + oy))
            .map_err(drawing)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dejavu_bearings_are_read() {
        let b = Bearings::parse(dejavu::sans::regular()).expect("DejaVu Sans parses");
        // 'A' has a tiny bearing; '1' and 'l' have sizeable ones; space maps too.
        for c in ['A', '1', 'l', 'e', 'γ', '×', '⁻', '…'] {
            assert!(b.glyph_id(c).is_some(), "no glyph for {c:?}");
        }
        assert!(b.lsb_px('1', 100.0) > b.lsb_px('A', 100.0));
        assert_eq!(b.glyph_id('\u{E000}'), None);
        assert!(Bearings::parse(dejavu::sans::bold()).is_some());
    }

    #[test]
    fn scale_matches_ab_glyph() {
        super::super::font::ensure_fonts().unwrap();
        // ab_glyph lays out 'M' at (advance * size / height); check our height by
        // comparing a long run of one glyph against the hmtx advance.
        let b = Bearings::parse(dejavu::sans::regular()).unwrap();
        let gid = usize::from(b.glyph_id('M').unwrap());
        let advance = f64::from(u16_at(b.data, b.hmtx + 4 * gid).unwrap());
        let size = 50.0;
        let text = "M".repeat(100);
        let (w, _) = FontDesc::new(FontFamily::Name(FAMILY), size, FontStyle::Normal)
            .box_size(&text)
            .unwrap();
        let expected = advance * 100.0 * size / f64::from(b.height);
        assert!((f64::from(w) - expected).abs() < 2.0, "{w} vs {expected}");
    }
}
