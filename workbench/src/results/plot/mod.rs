//! Figure renderer: draws a [`Figure`] with plotters as a PNG file or an SVG document.
//!
//! What is drawn:
//! - linear or base-10 log axes ([`Scale`](crate::experiment::outputs::Scale)); tick
//!   positions and labels are computed here, so labels stay short (`0.25`, `2e6`,
//!   `10⁻⁶`), and whole-number x data (token ids, draft lengths) gets whole-number
//!   ticks;
//! - the y range from [`Figure::y_range`], or fitted to the data (and error bars, and
//!   zero when there are bars) with a 5% margin; a single value or a zero-width
//!   range is widened around it;
//! - series styles: lines, markers, lines with markers, and vertical bars from zero
//!   centred on x (80% of the smallest x spacing; several bar series stand side by
//!   side in series order); error bars wherever a point has `y_low`/`y_high`;
//! - colours from the Okabe–Ito colour-blind-friendly palette, one per colour group
//!   ([`Series::group`](crate::experiment::outputs::Series::group)) in order of first
//!   appearance; marker shapes cycle with the groups too;
//! - a legend right of the plot with one row per distinct series name (rows of
//!   series sharing a name merge their styles and take the first one's colour);
//!   series with an empty name are left out; very long names are cut with "…";
//! - heat maps, for figures whose series are all
//!   [`SeriesStyle::Cells`](crate::experiment::outputs::SeriesStyle::Cells): one row
//!   per series, the first at the top, labelled on the left with the series name
//!   (cut with "…" when long; only every 2nd, 5th, 10th… row when rows are too thin
//!   for text). Each point is a cell centred on its x, as wide as the smallest
//!   spacing between x values in the figure, coloured by its y through viridis (a
//!   perceptually uniform sequential colormap), linearly or by `log10` following
//!   `y_scale`; on a log scale, cells with a non-positive value are grey and the
//!   colour bar explains the grey. The colour range is `y_range`, else the data's
//!   minimum to maximum; values outside it take the end colours; `y_low`/`y_high`
//!   are ignored. A colour bar with ticks and `y_label` replaces the legend; the x
//!   axis is as in other figures and spans exactly the cells. Cells wider (rows
//!   taller) than a few pixels are separated by thin white gaps; narrower ones
//!   touch, and where several share a pixel the largest value shows, so that a lone
//!   outlier column stays visible among a thousand. Rows may be empty. Mixing
//!   `Cells` with other styles in one figure is an error.
//!
//! Points and ranges outside the visible area are clipped, never squashed onto
//! the frame. On a log axis, points with a non-positive coordinate are skipped
//! (a line breaks there) and error bars reaching below zero run to the frame.
//!
//! A figure with no series, or none with a drawable point (a heat map without
//! cells), renders as empty axes with the title and a "no data" note. Errors
//! (non-finite coordinates or error-bar bounds, an error bar with `y_low > y_high`,
//! an invalid `y_range`, data too wide to draw on a linear axis, `Cells` mixed with
//! other styles, an unwritable path) are returned, never panicked on.
//! The same figure always produces the same SVG text (and the same PNG bytes).
//!
//! Text uses DejaVu Sans embedded in the binary (see `font.rs`), so no system fonts
//! are needed; SVG output asks for `DejaVu Sans, sans-serif`. PNG output places
//! glyphs and anti-aliases lines itself, working around plotters' bitmap drawing
//! (see `glyphs.rs` and `raster.rs`).

mod axis;
mod font;
mod glyphs;
mod raster;
mod render;

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{ensure, Context};
use plotters::prelude::*;

use crate::experiment::outputs::Figure;
use render::Plan;

/// Default canvas size in pixels (width, height) of [`render_png`] and [`render_svg`].
pub const DEFAULT_SIZE: (u32, u32) = (1000, 620);

/// Draws `fig` as a PNG file at `path` ([`DEFAULT_SIZE`] pixels).
///
/// `path` must end in `.png`; missing parent directories are created. The file is
/// replaced atomically, and nothing is written when the figure is invalid.
pub fn render_png(fig: &Figure, path: &Path) -> anyhow::Result<()> {
    render_png_with_size(fig, path, DEFAULT_SIZE)
}

/// Draws `fig` as a PNG file at `path` on a canvas of `size` (width, height) pixels,
/// from 300x200 to 8000x8000.
pub fn render_png_with_size(fig: &Figure, path: &Path, size: (u32, u32)) -> anyhow::Result<()> {
    let is_png = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("png"));
    ensure!(
        is_png,
        "PNG output path {} must end in .png",
        path.display()
    );
    font::ensure_fonts()?;
    let plan =
        Plan::new(fig, size).with_context(|| format!("cannot draw figure {:?}", fig.name))?;
    let (w, h) = plan.size();

    // Draw into memory first so that a failed drawing leaves no partial file.
    let mut pixels = vec![0u8; w as usize * h as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut pixels, (w, h)).into_drawing_area();
        plan.draw(&root, true)
            .with_context(|| format!("cannot draw figure {:?}", fig.name))?;
        root.present()
            .map_err(|e| anyhow::anyhow!("cannot finish figure {:?}: {e}", fig.name))?;
    }
    write_png_atomic(path, &pixels, (w, h))
}

/// Encodes RGB `pixels` as PNG into a temporary file next to `path`, then renames
/// it over `path`, so that readers never see a half-written image.
fn write_png_atomic(path: &Path, pixels: &[u8], (w, h): (u32, u32)) -> anyhow::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let name = path
        .file_name()
        .map_or_else(Default::default, |n| n.to_string_lossy());
    // Unique per process and call, so that concurrent writers never share it.
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let tmp = dir.join(format!(".{name}.{}-{n}.tmp.png", std::process::id()));
    let written = save_png(&tmp, pixels, (w, h)).and_then(|()| Ok(std::fs::rename(&tmp, path)?));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written.with_context(|| format!("cannot write {}", path.display()))
}

/// Encodes RGB `pixels` as a PNG file at `path` (which must end in `.png`).
fn save_png(path: &Path, pixels: &[u8], (w, h): (u32, u32)) -> anyhow::Result<()> {
    let mut file = BitMapBackend::new(path, (w, h));
    file.blit_bitmap((0, 0), (w, h), pixels)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    file.present().map_err(|e| anyhow::anyhow!("{e}"))
}

/// Draws `fig` as an SVG document ([`DEFAULT_SIZE`] pixels) and returns its text.
pub fn render_svg(fig: &Figure) -> anyhow::Result<String> {
    render_svg_with_size(fig, DEFAULT_SIZE)
}

/// Draws `fig` as an SVG document of `size` (width, height) pixels, from 300x200
/// to 8000x8000, and returns its text.
pub fn render_svg_with_size(fig: &Figure, size: (u32, u32)) -> anyhow::Result<String> {
    font::ensure_fonts()?;
    let plan =
        Plan::new(fig, size).with_context(|| format!("cannot draw figure {:?}", fig.name))?;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, plan.size()).into_drawing_area();
        plan.draw(&root, false)
            .with_context(|| format!("cannot draw figure {:?}", fig.name))?;
        root.present()
            .map_err(|e| anyhow::anyhow!("cannot finish figure {:?}: {e}", fig.name))?;
    }
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::experiment::outputs::{Point, Scale, Series, SeriesStyle};
    use std::path::PathBuf;

    /// A fresh directory under the system temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(tag: &str) -> TempDir {
            let dir = std::env::temp_dir().join(format!("wb-plot-{tag}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn series(name: &str, group: Option<&str>, style: SeriesStyle, points: Vec<Point>) -> Series {
        Series {
            name: name.to_string(),
            group: group.map(str::to_string),
            style,
            points,
        }
    }

    fn figure(title: &str, x_scale: Scale, y_scale: Scale, series: Vec<Series>) -> Figure {
        Figure {
            name: "test".to_string(),
            title: title.to_string(),
            x_label: "x value".to_string(),
            y_label: "y value".to_string(),
            x_scale,
            y_scale,
            y_range: None,
            series,
            caption: String::new(),
        }
    }

    /// A figure using every series style, error bars and a shared colour group.
    fn every_style(x_scale: Scale, y_scale: Scale) -> Figure {
        let xs: Vec<f64> = (1..=8).map(f64::from).collect();
        let curve = |f: fn(f64) -> f64| xs.iter().map(|&x| Point::new(x, f(x))).collect();
        let with_ci = xs
            .iter()
            .map(|&x| Point::with_interval(x, x.sqrt(), x.sqrt() * 0.9, x.sqrt() * 1.1))
            .collect();
        figure(
            &format!("Every style {x_scale:?}-{y_scale:?}"),
            x_scale,
            y_scale,
            vec![
                series("bars alpha", None, SeriesStyle::Bars, curve(|x| x * 0.5)),
                series(
                    "bars beta",
                    None,
                    SeriesStyle::Bars,
                    curve(|x| x * 0.3 + 0.2),
                ),
                series(
                    "exact sqrt",
                    Some("sqrt"),
                    SeriesStyle::Line,
                    curve(f64::sqrt),
                ),
                series("sampled sqrt", Some("sqrt"), SeriesStyle::Markers, with_ci),
                series(
                    "log curve",
                    None,
                    SeriesStyle::LineMarkers,
                    curve(|x| 1.0 + x.ln()),
                ),
            ],
        )
    }

    #[test]
    fn renders_every_style_and_scale_to_png_and_svg() {
        let dir = TempDir::new("styles");
        for x_scale in [Scale::Linear, Scale::Log] {
            for y_scale in [Scale::Linear, Scale::Log] {
                let fig = every_style(x_scale, y_scale);
                let path = dir.0.join(format!("{x_scale:?}_{y_scale:?}.png"));
                render_png(&fig, &path).unwrap();
                let bytes = std::fs::read(&path).unwrap();
                assert!(bytes.len() > 1000, "PNG is suspiciously small");
                assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");

                let svg = render_svg(&fig).unwrap();
                assert!(svg.starts_with("<svg"), "{}", &svg[..svg.len().min(80)]);
                assert!(svg.contains(&fig.title));
                for s in &fig.series {
                    assert!(svg.contains(&s.name), "SVG lacks series name {:?}", s.name);
                }
                assert!(svg.contains("x value") && svg.contains("y value"));
            }
        }
    }

    #[test]
    fn svg_is_deterministic() {
        let fig = every_style(Scale::Log, Scale::Linear);
        assert_eq!(render_svg(&fig).unwrap(), render_svg(&fig).unwrap());
    }

    #[test]
    fn duplicate_names_get_one_legend_row() {
        let fig = every_style(Scale::Linear, Scale::Linear);
        let mut twice = fig.clone();
        twice.series[3].name = "exact sqrt".to_string();
        let svg = render_svg(&twice).unwrap();
        assert_eq!(svg.matches(">\nexact sqrt\n<").count(), 1, "{svg}");
        assert!(!svg.contains("sampled sqrt"));
    }

    #[test]
    fn empty_figure_renders_a_no_data_note() {
        let dir = TempDir::new("empty");
        let fig = figure("Nothing here", Scale::Linear, Scale::Log, vec![]);
        let svg = render_svg(&fig).unwrap();
        assert!(svg.contains("Nothing here") && svg.contains("no data"));
        let fig = figure("p < q & r", Scale::Linear, Scale::Linear, vec![]);
        assert!(render_svg(&fig).unwrap().contains("p &lt; q &amp; r"));
        render_png(&fig, &dir.0.join("empty.png")).unwrap();

        // Series whose points a log axis cannot show count as no data too.
        let fig = figure(
            "Only negatives",
            Scale::Log,
            Scale::Log,
            vec![series(
                "neg",
                None,
                SeriesStyle::Line,
                vec![Point::new(-1.0, 2.0)],
            )],
        );
        assert!(render_svg(&fig).unwrap().contains("no data"));
    }

    #[test]
    fn degenerate_data_does_not_panic() {
        let one = vec![series(
            "one",
            None,
            SeriesStyle::LineMarkers,
            vec![Point::new(2.0, 5.0)],
        )];
        for (xs, ys) in [(Scale::Linear, Scale::Linear), (Scale::Log, Scale::Log)] {
            render_svg(&figure("single", xs, ys, one.clone())).unwrap();
        }
        let flat: Vec<Point> = (0..5).map(|i| Point::new(f64::from(i), 0.0)).collect();
        for style in [SeriesStyle::Line, SeriesStyle::Markers, SeriesStyle::Bars] {
            let fig = figure(
                "flat",
                Scale::Linear,
                Scale::Linear,
                vec![series("f", None, style, flat.clone())],
            );
            render_svg(&fig).unwrap();
        }
        // Non-positive values on log axes are skipped, including error-bar bounds.
        let mixed = vec![
            Point::new(0.0, 1.0),
            Point::new(1.0, -2.0),
            Point::with_interval(2.0, 0.5, -0.1, 0.9),
            Point::new(4.0, 3.0),
        ];
        for style in [
            SeriesStyle::Line,
            SeriesStyle::Markers,
            SeriesStyle::LineMarkers,
            SeriesStyle::Bars,
        ] {
            let fig = figure(
                "mixed",
                Scale::Log,
                Scale::Log,
                vec![series("m", None, style, mixed.clone())],
            );
            render_svg(&fig).unwrap();
        }
        // Extreme magnitudes and a fixed range that hides most of the data.
        let huge = vec![Point::new(1e-300, 1e300), Point::new(1e300, 1e-300)];
        render_svg(&figure(
            "huge",
            Scale::Log,
            Scale::Log,
            vec![series("h", None, SeriesStyle::Line, huge)],
        ))
        .unwrap();
        let mut fig = every_style(Scale::Linear, Scale::Linear);
        fig.y_range = Some((1.0, 1.5));
        render_svg(&fig).unwrap();
        // Many series cycle the palette, and a very long title still fits.
        let many: Vec<Series> = (0..30)
            .map(|i| {
                series(
                    &format!("series {i}"),
                    None,
                    SeriesStyle::Line,
                    vec![Point::new(0.0, 0.0), Point::new(1.0, f64::from(i))],
                )
            })
            .collect();
        let mut fig = figure(
            &"a long title ".repeat(20),
            Scale::Linear,
            Scale::Linear,
            many,
        );
        fig.x_label = "a long axis label ".repeat(20);
        render_svg(&fig).unwrap();
    }

    #[test]
    fn small_canvases_render_or_fail_cleanly() {
        let fig = every_style(Scale::Linear, Scale::Log);
        for size in [(300, 200), (320, 240), (640, 400), (2000, 1200)] {
            let svg = render_svg_with_size(&fig, size).unwrap();
            assert!(svg.contains(&format!("width=\"{}\"", size.0)));
        }
        let dir = TempDir::new("sizes");
        render_png_with_size(&fig, &dir.0.join("small.png"), (300, 200)).unwrap();
    }

    #[test]
    fn invalid_figures_are_errors() {
        let bad = |p: Point| {
            figure(
                "bad",
                Scale::Linear,
                Scale::Linear,
                vec![series("b", None, SeriesStyle::Markers, vec![p])],
            )
        };
        assert!(render_svg(&bad(Point::new(f64::NAN, 1.0))).is_err());
        assert!(render_svg(&bad(Point::new(1.0, f64::INFINITY))).is_err());
        assert!(render_svg(&bad(Point::with_interval(1.0, 1.0, 2.0, 0.5))).is_err());
        assert!(render_svg(&bad(Point::with_interval(1.0, 1.0, f64::NAN, 2.0))).is_err());
        let mut fig = bad(Point::new(1.0, 1.0));
        fig.y_range = Some((2.0, 1.0));
        assert!(render_svg(&fig).is_err());
        fig.y_range = Some((0.0, 1.0));
        fig.y_scale = Scale::Log;
        assert!(render_svg(&fig).is_err());
        let dir = TempDir::new("bad");
        let fig = bad(Point::new(1.0, 1.0));
        assert!(render_png(&fig, &dir.0.join("plot.svg")).is_err());
        std::fs::write(dir.0.join("file"), b"not a directory").unwrap();
        assert!(render_png(&fig, &dir.0.join("file/plot.png")).is_err());
        assert!(!dir.0.join("plot.png").exists());
        // Missing directories are created, and only the image is left behind.
        render_png(&fig, &dir.0.join("new/dir/plot.png")).unwrap();
        let left: Vec<_> = std::fs::read_dir(dir.0.join("new/dir")).unwrap().collect();
        assert_eq!(left.len(), 1);
        assert!(render_svg_with_size(&fig, (10, 10)).is_err());
    }

    /// A heat map of `rows` rows ("layer 0", …) by `cols` channels whose values
    /// rise along the rows and down the layers, with one outlier channel.
    fn heat_map(rows: usize, cols: usize, y_scale: Scale) -> Figure {
        let series = (0..rows)
            .map(|r| {
                let points = (0..cols)
                    .map(|c| {
                        let v = 0.05 + (c as f64 / cols as f64) * (1.0 + r as f64 * 0.2);
                        let v = if c == cols / 3 { v * 8.0 } else { v };
                        Point::new(c as f64, v)
                    })
                    .collect();
                series(&format!("layer {r}"), None, SeriesStyle::Cells, points)
            })
            .collect();
        let mut fig = figure(
            &format!("Activation magnitude, {rows} layers x {cols} channels"),
            Scale::Linear,
            y_scale,
            series,
        );
        fig.x_label = "channel".to_string();
        fig.y_label = "mean |activation|".to_string();
        fig
    }

    #[test]
    fn heat_map_renders_to_png_and_svg() {
        let dir = TempDir::new("heat");
        for (rows, cols) in [(8, 64), (4, 512), (2, 1000)] {
            let fig = heat_map(rows, cols, Scale::Linear);
            let path = dir.0.join(format!("heat_{rows}x{cols}.png"));
            render_png(&fig, &path).unwrap();
            let bytes = std::fs::read(&path).unwrap();
            assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
            assert!(bytes.len() > 1000, "PNG is suspiciously small");

            let svg = render_svg(&fig).unwrap();
            assert!(svg.contains(&fig.title));
            for s in &fig.series {
                assert!(svg.contains(&s.name), "SVG lacks row label {:?}", s.name);
            }
            assert!(svg.contains("channel") && svg.contains("mean |activation|"));
            assert!(!svg.contains("no data"));
            // The lowest and highest values take the ends of the colour scale.
            assert!(
                svg.contains("#440154") && svg.contains("#FDE725"),
                "{rows}x{cols}"
            );
            // Cells are drawn per run of pixels, not per cell: at most one
            // rectangle per pixel column and row (plus the colour bar's).
            let rects = svg.matches("<rect").count();
            assert!(
                rects <= rows * 800 + 700,
                "{rects} rectangles for {rows}x{cols}"
            );
        }
        // A single cell takes the middle colour of a scale widened around it.
        let svg = render_svg(&heat_map(1, 1, Scale::Log)).unwrap();
        assert!(svg.contains("layer 0") && !svg.contains("no data"));
        // Identical bytes on every rendering.
        let fig = heat_map(8, 64, Scale::Linear);
        assert_eq!(render_svg(&fig).unwrap(), render_svg(&fig).unwrap());
        let (a, b) = (dir.0.join("a.png"), dir.0.join("b.png"));
        render_png(&fig, &a).unwrap();
        render_png(&fig, &b).unwrap();
        assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
        // Small canvases still fit, thin rows get every other label at most.
        let many = heat_map(120, 16, Scale::Linear);
        let svg = render_svg_with_size(&many, (300, 200)).unwrap();
        assert!(svg.contains("layer 0") && !svg.contains("layer 119"));
        render_png_with_size(&many, &dir.0.join("small.png"), (300, 200)).unwrap();
    }

    #[test]
    fn heat_map_log_scale_ranges_and_empty_rows() {
        // Non-positive values on a log scale are grey, and the colour bar says so.
        let mut fig = heat_map(3, 10, Scale::Log);
        fig.series[1].points[4].y = 0.0;
        fig.series[2].points[7].y = -1.5;
        let svg = render_svg(&fig).unwrap();
        assert!(svg.contains("≤ 0") && svg.contains("#B4B4B4"), "{svg}");
        render_png(&fig, &TempDir::new("heatlog").0.join("log.png")).unwrap();
        let positive = render_svg(&heat_map(3, 10, Scale::Log)).unwrap();
        assert!(!positive.contains("≤ 0"));

        // A fixed range clamps values outside it to the end colours.
        let mut fig = heat_map(2, 10, Scale::Linear);
        fig.y_range = Some((0.5, 0.6));
        assert!(render_svg(&fig).unwrap().contains("#FDE725"));
        fig.y_range = Some((0.0, 1.0));
        fig.y_scale = Scale::Log;
        assert!(render_svg(&fig).is_err());

        // Empty rows keep their label; a map without any cell says "no data".
        let mut fig = heat_map(3, 10, Scale::Linear);
        fig.series[1].points.clear();
        let svg = render_svg(&fig).unwrap();
        assert!(svg.contains("layer 1") && !svg.contains("no data"));
        for s in &mut fig.series {
            s.points.clear();
        }
        let svg = render_svg(&fig).unwrap();
        assert!(svg.contains("layer 2") && svg.contains("no data"));

        // All values equal, and long names cut with an ellipsis.
        let mut fig = heat_map(2, 5, Scale::Linear);
        for p in fig.series.iter_mut().flat_map(|s| &mut s.points) {
            p.y = 3.0;
        }
        fig.series[0].name = "model.layers.17.self_attn.o_proj ".repeat(4);
        let svg = render_svg(&fig).unwrap();
        assert!(svg.contains("model.layers.17") && svg.contains('…'));
        assert!(!svg.contains(&fig.series[0].name));
    }

    #[test]
    fn invalid_heat_maps_are_errors() {
        let mut fig = heat_map(2, 4, Scale::Linear);
        fig.series.push(series(
            "a line",
            None,
            SeriesStyle::Line,
            vec![Point::new(0.0, 1.0)],
        ));
        let err = format!("{:#}", render_svg(&fig).unwrap_err());
        assert!(err.contains("mixes heat-map rows"), "{err}");
        assert!(render_png(&fig, &TempDir::new("heatbad").0.join("mixed.png")).is_err());
        for bad in [f64::NAN, f64::INFINITY] {
            let mut fig = heat_map(2, 4, Scale::Linear);
            fig.series[1].points[2].y = bad;
            assert!(render_svg(&fig).is_err());
            let mut fig = heat_map(2, 4, Scale::Linear);
            fig.series[0].points[0].x = bad;
            assert!(render_svg(&fig).is_err());
        }
    }
}
