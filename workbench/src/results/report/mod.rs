//! The HTML report: one self-contained page per run.
//!
//! [`render_html`] lays out an experiment's [`ReportContent`] together with the
//! run's configuration, manifest and the list of table files. The page needs no
//! network: the stylesheet is inlined and figures are inlined as SVG. Rendering
//! is deterministic — the same input gives a byte-identical page — so reports
//! can be diffed and hashed.
//!
//! The layout lives in `reports/assets/report.html.j2` (a minijinja template
//! with HTML auto-escaping) and `reports/assets/report.css`; both are compiled
//! into the binary.

mod format;
mod view;

use std::collections::BTreeMap;

use anyhow::Context as _;
use minijinja::{AutoEscape, Environment, UndefinedBehavior};

use crate::experiment::outputs::ReportContent;

pub use format::format_number;

/// The page template (minijinja, HTML auto-escaping).
const TEMPLATE: &str = include_str!("../../../../reports/assets/report.html.j2");
/// The stylesheet, inlined into the page's `<style>` element.
const CSS: &str = include_str!("../../../../reports/assets/report.css");
/// Name the template is registered under; the `.html` suffix selects HTML escaping.
const TEMPLATE_NAME: &str = "report.html";

/// Everything one report page is made from.
#[derive(Clone, Copy, Debug)]
pub struct ReportInput<'a> {
    /// What the experiment wants the report to say.
    pub content: &'a ReportContent,
    /// Figure name -> SVG document text (inlined into the page).
    pub svgs: &'a BTreeMap<String, String>,
    /// The config as the user wrote it (TOML text), shown verbatim in a `<pre>`.
    pub config_text: &'a str,
    /// `manifest.json` contents (seeds, git revision, versions, device, threads,
    /// wall time, resolved config).
    pub manifest: &'a serde_json::Value,
    /// Names of the table files written (e.g. `tables/acceptance.csv`), listed
    /// with relative links.
    pub table_files: &'a [String],
}

/// Render one self-contained HTML page (no network: styles inline, images
/// inline as SVG).
///
/// Layout, top to bottom: title, the question, the findings, a run summary
/// from the manifest (missing keys show "—"), each section (paragraphs, tables,
/// figures with captions), the config text, the full manifest (collapsed) and
/// the list of table files. Tables show at most [`TableView::max_rows`] rows
/// with a pointer to the full CSV; floats use the view's significant digits
/// (see [`format_number`]; a `digits` of 0 means 4). A figure named in a
/// section but missing from `svgs` is shown as a note instead of failing.
///
/// The output depends only on the input: rendering twice gives identical bytes.
///
/// [`TableView::max_rows`]: crate::experiment::outputs::TableView::max_rows
pub fn render_html(input: &ReportInput) -> anyhow::Result<String> {
    let content = input.content;
    let mut counters = view::Counters::default();
    let sections = content
        .sections
        .iter()
        .enumerate()
        .map(|(i, s)| view::SectionView::new(i, s, content, input.svgs, &mut counters))
        .collect();
    let page = view::PageView {
        title: &content.title,
        question: &content.question,
        findings: &content.findings,
        summary: view::run_summary(input.manifest),
        sections,
        config_text: input.config_text,
        manifest_json: serde_json::to_string_pretty(input.manifest)
            .context("serialising the manifest for the report")?,
        table_files: input.table_files,
        css: CSS,
    };
    let env = environment().context("loading the report template")?;
    let html = env
        .get_template(TEMPLATE_NAME)
        .and_then(|t| t.render(minijinja::value::Serde(&page)))
        .map_err(|e| anyhow::anyhow!("{e:#}"))
        .context("rendering the HTML report")?;
    Ok(html)
}

/// The template environment: HTML auto-escaping, strict about undefined
/// variables, block tags trimmed so the page source stays tidy.
fn environment() -> Result<Environment<'static>, minijinja::Error> {
    let mut env = Environment::new();
    env.set_syntax(
        minijinja::syntax::SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .keep_trailing_newline(true)
            .build()?,
    );
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_auto_escape_callback(|_| AutoEscape::Html);
    // minijinja's HTML escaping also escapes `/`, which makes paths in the page
    // source unreadable (`tables&#x2f;a.csv`); escaping `& < > " '` is enough
    // for text and quoted attributes.
    env.set_formatter(|out, state, value| {
        if matches!(state.auto_escape(), AutoEscape::Html) && !value.is_safe() {
            out.write_str(&escape_html(&value.to_string()))
                .map_err(minijinja::Error::from)
        } else {
            minijinja::escape_formatter(out, state, value)
        }
    });
    env.add_template(TEMPLATE_NAME, TEMPLATE)?;
    Ok(env)
}

/// Escape `& < > " '` for HTML text and quoted attribute values.
fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + s.len() / 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests;
