//! Font registration: plotters' `ab_glyph` text backend knows no fonts until one is
//! registered, and CI machines have no system fonts, so the embedded DejaVu Sans
//! faces are registered once per process.

use std::sync::OnceLock;

use plotters::style::{register_font, FontStyle};

/// Font family name used for every text element. plotters writes it verbatim into
/// SVG `font-family` attributes, so it is a CSS list: viewers use DejaVu Sans (which
/// the layout was measured with) where installed, else their own sans-serif face.
pub(crate) const FAMILY: &str = "DejaVu Sans, sans-serif";

/// Registers DejaVu Sans (regular and bold) under [`FAMILY`], once per process.
pub(crate) fn ensure_fonts() -> anyhow::Result<()> {
    static REGISTERED: OnceLock<Result<(), String>> = OnceLock::new();
    REGISTERED
        .get_or_init(|| {
            register_font(FAMILY, FontStyle::Normal, dejavu::sans::regular())
                .map_err(|_| "cannot load the embedded DejaVu Sans font".to_string())?;
            register_font(FAMILY, FontStyle::Bold, dejavu::sans::bold())
                .map_err(|_| "cannot load the embedded DejaVu Sans Bold font".to_string())?;
            Ok(())
        })
        .clone()
        .map_err(anyhow::Error::msg)
}
