//! The page as plain, already-formatted data: what the template walks over.
//!
//! Everything that needs a decision (number formatting, row limits, manifest
//! look-ups, SVG clean-up) happens here, so the template only lays things out.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value as Json;

use super::format::{format_opt, format_seconds, json_display, MISSING};
use crate::experiment::outputs::{Column, Figure, ReportContent, Section, TableView};

/// Significant digits used when a [`TableView`] leaves `digits` at 0 (its default).
const DEFAULT_DIGITS: usize = 4;

/// The whole page.
#[derive(Serialize)]
pub(crate) struct PageView<'a> {
    pub title: &'a str,
    pub question: &'a str,
    pub findings: &'a [String],
    pub summary: Vec<SummaryItem>,
    pub sections: Vec<SectionView<'a>>,
    pub config_text: &'a str,
    pub manifest_json: String,
    pub table_files: &'a [String],
    pub css: &'static str,
}

/// One line of the run summary box.
#[derive(Serialize)]
pub(crate) struct SummaryItem {
    pub label: &'static str,
    pub value: String,
    /// Whether the value is an identifier best shown in a monospace font.
    pub code: bool,
    /// Whether the item takes a whole row of the box (long values such as a commit hash).
    pub wide: bool,
}

/// One report section.
#[derive(Serialize)]
pub(crate) struct SectionView<'a> {
    pub id: String,
    pub heading: &'a str,
    pub paragraphs: &'a [String],
    pub tables: Vec<TableHtml<'a>>,
    pub figures: Vec<FigureView<'a>>,
}

/// A table with its cells already formatted.
#[derive(Serialize)]
pub(crate) struct TableHtml<'a> {
    /// 1-based number across the whole report.
    pub number: usize,
    pub caption: &'a str,
    pub head: Vec<Cell>,
    pub rows: Vec<Vec<Cell>>,
    /// Rows left out because of `max_rows`.
    pub more_rows: usize,
    /// `"row"` or `"rows"`.
    pub more_rows_word: &'static str,
    /// Where the full table is (`tables/<name>.csv`); empty when the table has no name.
    pub file: String,
}

/// One header or body cell: its text and CSS class.
#[derive(Serialize)]
pub(crate) struct Cell {
    pub text: String,
    pub class: &'static str,
}

/// A figure with its SVG ready to inline.
#[derive(Serialize)]
pub(crate) struct FigureView<'a> {
    /// 1-based number across the whole report.
    pub number: usize,
    pub name: &'a str,
    pub title: &'a str,
    pub caption: &'a str,
    /// The `<svg>` element (prolog removed); `None` when no SVG was supplied.
    pub svg: Option<String>,
}

/// Running figure and table numbers while sections are built.
#[derive(Default)]
pub(crate) struct Counters {
    tables: usize,
    figures: usize,
}

impl<'a> SectionView<'a> {
    /// Build section `index` (0-based), numbering its tables and figures on from `counters`.
    pub fn new(
        index: usize,
        section: &'a Section,
        content: &'a ReportContent,
        svgs: &BTreeMap<String, String>,
        counters: &mut Counters,
    ) -> Self {
        let tables = section
            .tables
            .iter()
            .map(|view| {
                counters.tables += 1;
                TableHtml::new(counters.tables, view)
            })
            .collect();
        let figures = section
            .figures
            .iter()
            .map(|name| {
                counters.figures += 1;
                let figure = content.figures.iter().find(|f| &f.name == name);
                FigureView::new(counters.figures, name, figure, svgs.get(name))
            })
            .collect();
        SectionView {
            id: format!("section-{}", index + 1),
            heading: &section.heading,
            paragraphs: &section.paragraphs,
            tables,
            figures,
        }
    }
}

impl<'a> TableHtml<'a> {
    fn new(number: usize, view: &'a TableView) -> Self {
        let digits = if view.digits == 0 {
            DEFAULT_DIGITS
        } else {
            view.digits
        };
        let columns = &view.table.columns;
        let n_rows = columns.iter().map(|(_, c)| c.len()).max().unwrap_or(0);
        let shown = view.max_rows.map_or(n_rows, |m| m.min(n_rows));
        let head = columns
            .iter()
            .map(|(name, col)| Cell {
                text: name.clone(),
                class: column_class(col),
            })
            .collect();
        let rows = (0..shown)
            .map(|i| {
                columns
                    .iter()
                    .map(|(_, col)| cell(col, i, digits))
                    .collect()
            })
            .collect();
        let more_rows = n_rows - shown;
        TableHtml {
            number,
            caption: &view.caption,
            head,
            rows,
            more_rows,
            more_rows_word: if more_rows == 1 { "row" } else { "rows" },
            file: if view.table.name.is_empty() {
                String::new()
            } else {
                format!("tables/{}.csv", view.table.name)
            },
        }
    }
}

/// CSS class of a column: numbers are right-aligned, booleans centred.
fn column_class(col: &Column) -> &'static str {
    match col {
        Column::Str(_) => "text",
        Column::I64(_) | Column::F64(_) => "num",
        Column::Bool(_) => "bool",
    }
}

/// Cell `i` of `col`; rows past the column's end count as missing.
fn cell(col: &Column, i: usize, digits: usize) -> Cell {
    let text = match col {
        Column::Str(v) => v.get(i).cloned().flatten(),
        Column::I64(v) => v.get(i).copied().flatten().map(|x| x.to_string()),
        Column::F64(v) => v
            .get(i)
            .copied()
            .flatten()
            .filter(|x| !x.is_nan())
            .map(|x| format_opt(Some(x), digits)),
        Column::Bool(v) => v
            .get(i)
            .copied()
            .flatten()
            .map(|b| if b { "✓" } else { "✗" }.to_string()),
    };
    match text {
        Some(text) => Cell {
            text,
            class: column_class(col),
        },
        None => Cell {
            text: MISSING.to_string(),
            class: match col {
                Column::Str(_) => "text missing",
                Column::I64(_) | Column::F64(_) => "num missing",
                Column::Bool(_) => "bool missing",
            },
        },
    }
}

impl<'a> FigureView<'a> {
    fn new(number: usize, name: &'a str, figure: Option<&'a Figure>, svg: Option<&String>) -> Self {
        let title = figure.map_or("", |f| f.title.as_str());
        FigureView {
            number,
            name,
            title,
            caption: figure.map_or("", |f| f.caption.as_str()),
            svg: svg.and_then(|s| inline_svg(s, if title.is_empty() { name } else { title })),
        }
    }
}

/// Prepare an SVG document for inlining: drop everything before the root
/// `<svg` element (XML prolog, doctype, comments), make sure the root has a
/// `viewBox` so CSS can scale it, and label it for screen readers.
/// Returns `None` when the text has no `<svg` element.
pub(crate) fn inline_svg(doc: &str, label: &str) -> Option<String> {
    let start = find_svg_root(doc)?;
    let body = doc[start..].trim_end();
    let tag_end = start_tag_end(body)?;
    let (tag, rest) = body.split_at(tag_end);
    let self_closing = tag.ends_with('/');
    let tag = tag.trim_end_matches('/').trim_end();
    let attrs = &tag["<svg".len()..];
    let mut extra = String::new();
    if attr(attrs, "viewBox").is_none() {
        let size = |name| attr(attrs, name).and_then(|v| parse_length(&v));
        if let (Some(w), Some(h)) = (size("width"), size("height")) {
            extra.push_str(&format!(" viewBox=\"0 0 {w} {h}\""));
        }
    }
    if attr(attrs, "role").is_none() {
        extra.push_str(" role=\"img\"");
    }
    if attr(attrs, "aria-label").is_none() && !label.is_empty() {
        extra.push_str(&format!(" aria-label=\"{}\"", super::escape_html(label)));
    }
    if self_closing {
        extra.push_str(" /");
    }
    Some(format!("{tag}{extra}{rest}"))
}

/// Byte offset of the root `<svg` start tag.
fn find_svg_root(doc: &str) -> Option<usize> {
    let mut from = 0;
    while let Some(pos) = doc[from..].find("<svg") {
        let at = from + pos;
        match doc[at + 4..].chars().next() {
            Some(c) if c.is_whitespace() || c == '>' || c == '/' => return Some(at),
            _ => from = at + 4,
        }
    }
    None
}

/// Offset of the `>` that closes the start tag at the beginning of `s`
/// (quoted attribute values may contain `>`).
fn start_tag_end(s: &str) -> Option<usize> {
    let mut quote = None;
    for (i, c) in s.char_indices() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, '>') => return Some(i),
            _ => {}
        }
    }
    None
}

/// Value of attribute `name` in the attribute text of a start tag.
fn attr(attrs: &str, name: &str) -> Option<String> {
    let mut rest = attrs;
    while let Some(pos) = rest.find(name) {
        let before_ok = rest[..pos]
            .chars()
            .next_back()
            .is_none_or(char::is_whitespace);
        let after = rest[pos + name.len()..].trim_start();
        if before_ok {
            if let Some(value) = after.strip_prefix('=') {
                let value = value.trim_start();
                let q = value.chars().next()?;
                if q == '"' || q == '\'' {
                    let inner = &value[1..];
                    return inner.find(q).map(|end| inner[..end].to_string());
                }
                let end = value
                    .find(|c: char| c.is_whitespace() || c == '>' || c == '/')
                    .unwrap_or(value.len());
                return Some(value[..end].to_string());
            }
        }
        rest = &rest[pos + name.len()..];
    }
    None
}

/// A plain or `px` length as a number (`"640"`, `"640px"`, `"640.5"`).
fn parse_length(v: &str) -> Option<f64> {
    let v = v.trim();
    let v = v.strip_suffix("px").unwrap_or(v);
    v.parse::<f64>().ok().filter(|x| x.is_finite() && *x > 0.0)
}

/// The run summary: the labelled facts looked up in the manifest.
pub(crate) fn run_summary(manifest: &Json) -> Vec<SummaryItem> {
    let mut items = Vec::new();
    let mut git = lookup(
        manifest,
        &[
            "git_revision",
            "git_rev",
            "git_commit",
            "git.revision",
            "git.rev",
            "git.commit",
            "git.sha",
            "git",
            "revision",
            "commit",
        ],
        false,
    )
    .map(json_display);
    if let (Some(rev), Some(Json::Bool(true))) = (
        git.as_mut(),
        lookup(manifest, &["git_dirty", "git.dirty", "dirty"], false),
    ) {
        rev.push_str(" (uncommitted changes)");
    }
    let mut git = item("Git revision", git, true);
    git.wide = git.code;
    items.push(git);
    let seeds = lookup(
        manifest,
        &[
            "seeds",
            "seed",
            "resolved_config.seeds",
            "resolved_config.seed",
            "config.seeds",
            "config.seed",
        ],
        true,
    )
    .map(json_display);
    items.push(item("Seed(s)", seeds, true));
    let threads = lookup(
        manifest,
        &[
            "threads",
            "thread_count",
            "num_threads",
            "n_threads",
            "rayon_threads",
            "host.threads",
        ],
        false,
    )
    .map(json_display);
    items.push(item("Threads", threads, false));
    let device = lookup(
        manifest,
        &["device", "device_name", "host.device", "hardware.device"],
        true,
    )
    .map(device_display);
    items.push(item("Device", device, false));
    let wall = lookup(
        manifest,
        &[
            "wall_time_s",
            "wall_time_secs",
            "wall_time_seconds",
            "wall_seconds",
            "wall_secs",
            "wall_time",
            "elapsed_s",
            "elapsed_secs",
            "duration_s",
        ],
        false,
    )
    .map(|v| match v.as_f64() {
        Some(secs) => format_seconds(secs),
        None => json_display(v),
    });
    items.push(item("Wall time", wall, false));
    let version = lookup(
        manifest,
        &[
            "workbench_version",
            "versions.crates.workbench",
            "versions.workbench",
            "version.workbench",
            "version",
        ],
        false,
    )
    .map(json_display);
    items.push(item("Workbench version", version, true));
    let date = lookup(
        manifest,
        &[
            "date",
            "started_at",
            "start_time",
            "created_at",
            "finished_at",
            "timestamp",
        ],
        false,
    )
    .map(json_display);
    if date.is_some() {
        items.push(item("Date", date, false));
    }
    items
}

/// A device as one line: a `{"model": .., "kind": .., "logical_cores": ..}` object
/// becomes `"model (kind, N logical cores)"`; anything else is shown as is.
fn device_display(v: &Json) -> String {
    let Json::Object(map) = v else {
        return json_display(v);
    };
    let text = |key: &str| map.get(key).filter(|x| !x.is_null()).map(json_display);
    let Some(name) = text("model").or_else(|| text("name")) else {
        return json_display(v);
    };
    let details: Vec<String> = [
        text("kind"),
        text("logical_cores").map(|n| format!("{n} logical cores")),
    ]
    .into_iter()
    .flatten()
    .collect();
    if details.is_empty() {
        name
    } else {
        format!("{name} ({})", details.join(", "))
    }
}

fn item(label: &'static str, value: Option<String>, code: bool) -> SummaryItem {
    let value = value.unwrap_or_else(|| MISSING.to_string());
    SummaryItem {
        code: code && value != MISSING,
        wide: false,
        label,
        value,
    }
}

/// The first of `paths` (dotted keys into nested objects) that is present, not
/// `null` and, unless `objects` is set, not an object (so `git` as a table of
/// facts is skipped in favour of the next path).
fn lookup<'j>(manifest: &'j Json, paths: &[&str], objects: bool) -> Option<&'j Json> {
    paths.iter().find_map(|path| {
        let mut v = manifest;
        for key in path.split('.') {
            v = v.as_object()?.get(key)?;
        }
        match v {
            Json::Null => None,
            Json::Object(_) if !objects => None,
            _ => Some(v),
        }
    })
}
