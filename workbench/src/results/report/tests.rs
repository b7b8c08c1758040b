use std::collections::BTreeMap;

use serde_json::json;

use super::view::{self, inline_svg};
use super::*;
use crate::experiment::outputs::{
    Column, Figure, Point, ReportContent, Scale, Section, Series, SeriesStyle, Table, TableView,
};

const SVG: &str = r##"<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN" "http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd">
<svg width="640" height="480" xmlns="http://www.w3.org/2000/svg">
<rect x="0" y="0" width="640" height="480" fill="#FFFFFF"/>
<text x="320" y="20">Acceptance vs TV</text>
</svg>
"##;

const CONFIG: &str = "# study config\nstudy = \"acceptance\"\nfilter = \"tv < 0.5 && n > 3\"\n";

fn sample_content() -> ReportContent {
    let table = Table {
        name: "acceptance".into(),
        columns: vec![
            (
                "rule".into(),
                Column::Str(vec![
                    Some("greedy".into()),
                    Some("<sampled>".into()),
                    None,
                    Some("typical".into()),
                    Some("hidden-1".into()),
                    Some("hidden-2".into()),
                ]),
            ),
            (
                "n".into(),
                Column::I64(vec![Some(1000), Some(-7), Some(3), None, Some(5), Some(6)]),
            ),
            (
                "rate".into(),
                Column::F64(vec![
                    Some(0.0049871),
                    Some(12345.6),
                    Some(1e-9),
                    Some(f64::NAN),
                    None,
                    Some(0.25),
                ]),
            ),
            (
                "exact".into(),
                Column::Bool(vec![Some(true), Some(false), None, Some(true), None, None]),
            ),
        ],
    };
    let figure = Figure {
        name: "acceptance_vs_tv".into(),
        title: "Acceptance vs TV".into(),
        x_label: "TV distance".into(),
        y_label: "acceptance".into(),
        x_scale: Scale::Linear,
        y_scale: Scale::Linear,
        y_range: Some((0.0, 1.0)),
        series: vec![Series {
            name: "exact".into(),
            group: None,
            style: SeriesStyle::Line,
            points: vec![Point::new(0.0, 1.0), Point::new(1.0, 0.0)],
        }],
        caption: "Acceptance falls linearly with the TV distance.".into(),
    };
    ReportContent {
        title: "Acceptance study".into(),
        question: "How does the acceptance rate depend on the TV distance?".into(),
        findings: vec![
            "Acceptance equals 1 − TV within 0.3% everywhere.".into(),
            "Rules with <b>markup</b> are shown as text.".into(),
        ],
        sections: vec![
            Section {
                heading: "Acceptance by rule".into(),
                paragraphs: vec!["First paragraph.".into(), "Second & last.".into()],
                tables: vec![TableView {
                    caption: "Acceptance per rule".into(),
                    table,
                    max_rows: Some(4),
                    digits: 3,
                }],
                figures: vec![],
            },
            Section {
                heading: "Curves".into(),
                paragraphs: vec!["The exact curve.".into()],
                tables: vec![],
                figures: vec!["acceptance_vs_tv".into(), "not_drawn".into()],
            },
        ],
        figures: vec![figure],
    }
}

/// Shaped like the manifest `results::run` writes.
fn sample_manifest() -> serde_json::Value {
    json!({
        "kind": "acceptance",
        "seeds": [42, 43],
        "tables": ["acceptance"],
        "git": {
            "revision": "0123456789abcdef0123456789abcdef01234567",
            "dirty": true,
            "source": "git at run time"
        },
        "versions": { "crates": { "workbench": "0.1.0", "rayon": "1.10.0" }, "rustc": "1.95.0" },
        "device": {
            "kind": "cpu",
            "model": "Example CPU @ 2.0GHz",
            "logical_cores": 16,
            "threads": 8,
            "os": "linux",
            "arch": "x86_64"
        },
        "threads": 8,
        "started_at": "2025-01-02T03:04:05Z",
        "wall_seconds": 754.2,
        "points": [{ "index": 0, "config": { "filter": "tv < 0.5 && n > 3" } }]
    })
}

fn render_sample() -> String {
    let content = sample_content();
    let mut svgs = BTreeMap::new();
    svgs.insert("acceptance_vs_tv".to_string(), SVG.to_string());
    let manifest = sample_manifest();
    let table_files = vec![
        "tables/acceptance.csv".to_string(),
        "tables/acceptance.parquet".to_string(),
    ];
    render_html(&ReportInput {
        content: &content,
        svgs: &svgs,
        config_text: CONFIG,
        manifest: &manifest,
        table_files: &table_files,
    })
    .expect("report renders")
}

/// Position of `needle` in `html`, failing with a readable message.
fn pos(html: &str, needle: &str) -> usize {
    html.find(needle)
        .unwrap_or_else(|| panic!("page lacks {needle:?}"))
}

#[test]
fn page_has_parts_in_order() {
    let html = render_sample();
    assert!(html.starts_with("<!DOCTYPE html>\n"));
    assert!(html.ends_with("</html>\n"));
    let order = [
        "<h1>Acceptance study</h1>",
        "How does the acceptance rate depend on the TV distance?",
        ">Findings</h2>",
        ">Run summary</h2>",
        ">Acceptance by rule</h2>",
        ">Curves</h2>",
        ">Configuration</h2>",
        ">Manifest</h2>",
        ">Table files</h2>",
    ];
    let positions: Vec<usize> = order.iter().map(|n| pos(&html, n)).collect();
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "parts out of order: {positions:?}"
    );
    assert!(html.contains("<title>Acceptance study</title>"));
    assert!(html.contains("<li>Acceptance equals 1 − TV within 0.3% everywhere.</li>"));
}

#[test]
fn text_is_escaped() {
    let html = render_sample();
    assert!(html.contains("<li>Rules with &lt;b&gt;markup&lt;/b&gt; are shown as text.</li>"));
    assert!(!html.contains("<b>markup</b>"));
    assert!(html.contains("<p>Second &amp; last.</p>"));
    assert!(html.contains("<td class=\"text\">&lt;sampled&gt;</td>"));
    // The config is shown verbatim, escaped.
    assert!(html.contains("filter = &quot;tv &lt; 0.5 &amp;&amp; n &gt; 3&quot;"));
    assert!(!html.contains("tv < 0.5"));
    assert!(html.contains("<pre class=\"code\"><code># study config\nstudy ="));
}

#[test]
fn table_cells_are_formatted() {
    let html = render_sample();
    assert!(
        html.contains("<caption><span class=\"tag\">Table 1.</span> Acceptance per rule</caption>")
    );
    assert!(html.contains(
        "<tr><th scope=\"col\" class=\"text\">rule</th><th scope=\"col\" class=\"num\">n</th>\
         <th scope=\"col\" class=\"num\">rate</th><th scope=\"col\" class=\"bool\">exact</th></tr>"
    ));
    assert!(html.contains(
        "<tr><td class=\"text\">greedy</td><td class=\"num\">1000</td>\
         <td class=\"num\">0.00499</td><td class=\"bool\">✓</td></tr>"
    ));
    assert!(html.contains(
        "<td class=\"num\">-7</td><td class=\"num\">12346</td><td class=\"bool\">✗</td>"
    ));
    assert!(html.contains(
        "<tr><td class=\"text missing\">—</td><td class=\"num\">3</td>\
         <td class=\"num\">1.00e-9</td><td class=\"bool missing\">—</td></tr>"
    ));
    // NaN and None both show as missing.
    assert!(html.contains("<td class=\"num missing\">—</td><td class=\"num missing\">—</td>"));
    // max_rows = 4 of 6 rows.
    assert_eq!(html.matches("<tr>").count(), 5);
    assert!(!html.contains("hidden-1"));
    assert!(
        html.contains("2 more rows in <a href=\"tables/acceptance.csv\">tables/acceptance.csv</a>")
    );
}

#[test]
fn figures_are_inlined() {
    let html = render_sample();
    assert!(!html.contains("<?xml"));
    assert!(!html.contains("<!DOCTYPE svg"));
    let svg = pos(&html, "<svg width=\"640\" height=\"480\"");
    assert!(html[svg..].starts_with(
        "<svg width=\"640\" height=\"480\" xmlns=\"http://www.w3.org/2000/svg\" \
         viewBox=\"0 0 640 480\" role=\"img\" aria-label=\"Acceptance vs TV\">"
    ));
    let caption = pos(
        &html,
        "<figcaption><span class=\"tag\">Figure 1.</span> Acceptance falls linearly",
    );
    assert!(svg < caption);
    assert!(html.contains("Figure “not_drawn” was not drawn."));
    assert!(html.contains("<span class=\"tag\">Figure 2.</span>"));
}

/// The `<dd>` contents of the run-summary item labelled `label`.
fn summary_value(html: &str, label: &str) -> String {
    let start = pos(html, &format!("<dt>{label}</dt><dd>")) + label.len() + 13;
    let rest = &html[start..];
    rest[..rest.find("</dd>").unwrap()].to_string()
}

#[test]
fn run_summary_reads_manifest() {
    let html = render_sample();
    assert_eq!(
        summary_value(&html, "Git revision"),
        "<code>0123456789abcdef0123456789abcdef01234567 (uncommitted changes)</code>"
    );
    assert_eq!(summary_value(&html, "Seed(s)"), "<code>42, 43</code>");
    assert_eq!(summary_value(&html, "Threads"), "8");
    assert_eq!(
        summary_value(&html, "Device"),
        "Example CPU @ 2.0GHz (cpu, 16 logical cores)"
    );
    assert_eq!(summary_value(&html, "Wall time"), "754 s (12 min 34 s)");
    assert_eq!(
        summary_value(&html, "Workbench version"),
        "<code>0.1.0</code>"
    );
    assert_eq!(summary_value(&html, "Date"), "2025-01-02T03:04:05Z");
    // Full manifest, pretty-printed, in a collapsed <details>.
    let details = pos(&html, "<details>");
    assert!(pos(&html, "&quot;revision&quot;: &quot;0123") > details);
    assert!(html.contains("\n  &quot;threads&quot;: 8,\n"));
}

#[test]
fn run_summary_reads_flat_keys() {
    let seeds: Vec<u64> = (1..=20).collect();
    let manifest = json!({
        "git_revision": "abc123",
        "seeds": seeds,
        "device": "NVIDIA H100",
        "wall_time_s": 3725.4,
        "workbench_version": "0.2.0",
    });
    let items = view::run_summary(&manifest);
    let get = |label: &str| {
        items
            .iter()
            .find(|i| i.label == label)
            .map(|i| i.value.as_str())
            .unwrap()
    };
    assert_eq!(get("Git revision"), "abc123");
    assert_eq!(get("Seed(s)"), "1, 2, 3, 4, 5, 6, 7, 8, … (20 in all)");
    assert_eq!(get("Threads"), "—");
    assert_eq!(get("Device"), "NVIDIA H100");
    assert_eq!(get("Wall time"), "3725 s (1 h 02 min 05 s)");
    assert_eq!(get("Workbench version"), "0.2.0");
    assert!(items.iter().all(|i| i.label != "Date"));
}

#[test]
fn summary_handles_empty_manifest() {
    let content = sample_content();
    let svgs = BTreeMap::new();
    let manifest = json!({});
    let html = render_html(&ReportInput {
        content: &content,
        svgs: &svgs,
        config_text: "",
        manifest: &manifest,
        table_files: &[],
    })
    .unwrap();
    assert_eq!(html.matches("<dd>—</dd>").count(), 6);
    assert!(html.contains("No configuration text was recorded."));
    assert!(html.contains("No table files were written."));
    assert!(html.contains("Figure “acceptance_vs_tv” was not drawn."));
}

#[test]
fn no_external_resources() {
    let html = render_sample();
    for attr in ["src=", "href=", "url("] {
        for (i, _) in html.match_indices(attr) {
            let value = html[i + attr.len()..].trim_start_matches(['"', '\'']);
            for bad in ["http:", "https:", "//"] {
                assert!(
                    !value.starts_with(bad),
                    "external resource at {}",
                    &html[i..(i + 60).min(html.len())]
                );
            }
        }
    }
    assert!(!html.contains("<link"));
    assert!(!html.contains("<script"));
    assert!(!html.contains("@import"));
}

#[test]
fn rendering_is_deterministic() {
    assert_eq!(render_sample(), render_sample());
}

#[test]
fn format_number_cases() {
    assert_eq!(format_number(0.0049871, 3), "0.00499");
    assert_eq!(format_number(12345.6, 3), "12346");
    assert_eq!(format_number(1e-9, 3), "1.00e-9");
    assert_eq!(format_number(f64::NAN, 3), "—");
    assert_eq!(format_number(0.0, 3), "0");
    assert_eq!(format_number(-0.0, 3), "0");
    assert_eq!(format_number(1.0, 3), "1.00");
    assert_eq!(format_number(-1.5, 2), "-1.5");
    assert_eq!(format_number(123.456, 3), "123");
    assert_eq!(format_number(0.0099996, 3), "0.0100");
    assert_eq!(format_number(9.9996, 3), "10.0");
    assert_eq!(format_number(0.5, 1), "0.5");
    assert_eq!(format_number(0.26, 0), "0.3");
    assert_eq!(format_number(1e-4, 3), "0.000100");
    assert_eq!(format_number(9.87e-5, 3), "9.87e-5");
    assert_eq!(format_number(-2.5e-7, 2), "-2.5e-7");
    assert_eq!(format_number(1.5e20, 3), "1.50e20");
    assert_eq!(format_number(f64::INFINITY, 3), "∞");
    assert_eq!(format_number(f64::NEG_INFINITY, 3), "-∞");
}

#[test]
fn inline_svg_cleans_the_root() {
    // Existing viewBox is kept; prolog and comments before the root are dropped.
    let svg = "<?xml version=\"1.0\"?>\n<!-- made by hand -->\n<svg viewBox=\"0 0 10 10\" \
               width=\"10\"><circle r=\"1\"/></svg>\n";
    assert_eq!(
        inline_svg(svg, "a \"b\"").unwrap(),
        "<svg viewBox=\"0 0 10 10\" width=\"10\" role=\"img\" aria-label=\"a &quot;b&quot;\">\
         <circle r=\"1\"/></svg>"
    );
    // Sizes in px give a viewBox; a self-closing root stays self-closing.
    assert_eq!(
        inline_svg("<svg width='20px' height='5'/>", "").unwrap(),
        "<svg width='20px' height='5' viewBox=\"0 0 20 5\" role=\"img\" />"
    );
    // `<svgfoo` is not an svg root; text without one is rejected.
    assert!(inline_svg("<svgfoo></svgfoo>", "x").is_none());
    assert!(inline_svg("not an image", "x").is_none());
}
