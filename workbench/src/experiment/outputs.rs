//! Plain data that an experiment hands to the results layer: tables, figures and
//! report text. Nothing here knows how it is written, drawn or rendered.

use serde::{Deserialize, Serialize};

/// One typed column of a [`Table`]. Missing values are `None` (an empty CSV cell).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Column {
    /// Text values.
    Str(Vec<Option<String>>),
    /// Signed integers.
    I64(Vec<Option<i64>>),
    /// Floating-point values.
    F64(Vec<Option<f64>>),
    /// Booleans.
    Bool(Vec<Option<bool>>),
}

impl Column {
    /// Number of rows in the column.
    pub fn len(&self) -> usize {
        match self {
            Column::Str(v) => v.len(),
            Column::I64(v) => v.len(),
            Column::F64(v) => v.len(),
            Column::Bool(v) => v.len(),
        }
    }

    /// Whether the column has no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A named table with columns in a fixed order.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Table {
    /// File stem under `tables/` (e.g. `acceptance`).
    pub name: String,
    /// `(column name, values)` in display order; all columns have the same length.
    pub columns: Vec<(String, Column)>,
}

/// How one series of a figure is drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SeriesStyle {
    /// Connected line, no markers (exact curves, models).
    Line,
    /// Markers only (Monte-Carlo estimates); error bars when the points carry bounds.
    Markers,
    /// Line with markers.
    LineMarkers,
    /// Vertical bars from zero (distributions over a small categorical axis).
    Bars,
    /// One row of a heat map: each point is a cell centred on `x` whose colour shows
    /// `y`. A figure whose series are all `Cells` is drawn as a heat map (one row per
    /// series, top to bottom, labelled with the series name; the y axis becomes a
    /// colour bar); `Cells` cannot be mixed with other styles in one figure.
    Cells,
}

/// One point; `y_low`/`y_high` give an error bar (e.g. a 95% confidence interval).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Point {
    /// Horizontal coordinate.
    pub x: f64,
    /// Vertical coordinate.
    pub y: f64,
    /// Lower end of the error bar, if any.
    pub y_low: Option<f64>,
    /// Upper end of the error bar, if any.
    pub y_high: Option<f64>,
}

impl Point {
    /// A point without an error bar.
    pub fn new(x: f64, y: f64) -> Self {
        Point {
            x,
            y,
            y_low: None,
            y_high: None,
        }
    }

    /// A point with an error bar from `low` to `high`.
    pub fn with_interval(x: f64, y: f64, low: f64, high: f64) -> Self {
        Point {
            x,
            y,
            y_low: Some(low),
            y_high: Some(high),
        }
    }
}

/// A named series of points; series with the same `group` share a colour.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Series {
    /// Legend label.
    pub name: String,
    /// Colour group: series with equal groups get the same colour (e.g. a rule's
    /// exact curve and its Monte-Carlo markers). `None` uses the series' own index.
    pub group: Option<String>,
    /// How the series is drawn.
    pub style: SeriesStyle,
    /// The points, drawn in this order.
    pub points: Vec<Point>,
}

/// Axis scale.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Scale {
    /// Linear axis.
    #[default]
    Linear,
    /// Base-10 logarithmic axis (all values must be positive).
    Log,
}

/// A 2-D figure: what the results layer draws as PNG and SVG.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Figure {
    /// File stem under `plots/` (e.g. `acceptance_vs_tv`).
    pub name: String,
    /// Title drawn above the plot.
    pub title: String,
    /// Horizontal axis label.
    pub x_label: String,
    /// Vertical axis label.
    pub y_label: String,
    /// Horizontal scale.
    pub x_scale: Scale,
    /// Vertical scale.
    pub y_scale: Scale,
    /// Fixed vertical range; `None` fits the data with a margin.
    pub y_range: Option<(f64, f64)>,
    /// The series, drawn in order (later on top).
    pub series: Vec<Series>,
    /// One or two sentences shown under the figure in the report.
    pub caption: String,
}

/// One section of a report: prose, then tables, then figures.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Section {
    /// Section heading.
    pub heading: String,
    /// Paragraphs of plain text (no markup); shown in order.
    pub paragraphs: Vec<String>,
    /// Tables shown in full (or their first rows, see [`TableView::max_rows`]).
    pub tables: Vec<TableView>,
    /// Names of figures (see [`Figure::name`]) shown in this section.
    pub figures: Vec<String>,
}

/// A table as shown in the report: which columns, how many rows, how numbers look.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TableView {
    /// Caption above the table.
    pub caption: String,
    /// The table itself (already filtered and ordered for display).
    pub table: Table,
    /// Show at most this many rows; the report says how many were left out and
    /// where the full table is.
    pub max_rows: Option<usize>,
    /// Significant digits for floating-point cells.
    pub digits: usize,
}

/// What an experiment wants the report to say, built from its saved tables.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ReportContent {
    /// Report title.
    pub title: String,
    /// The study's question, shown first.
    pub question: String,
    /// Headline findings in one line each (computed from the tables, never fixed text).
    pub findings: Vec<String>,
    /// The sections, in order.
    pub sections: Vec<Section>,
    /// Every figure the sections refer to.
    pub figures: Vec<Figure>,
}

impl Table {
    /// An empty table called `name`.
    pub fn new(name: &str) -> Self {
        Table {
            name: name.to_string(),
            columns: Vec::new(),
        }
    }

    /// Appends a column (builder style).
    pub fn with(mut self, name: &str, column: Column) -> Self {
        self.columns.push((name.to_string(), column));
        self
    }

    /// Number of rows (0 for a table without columns).
    pub fn rows(&self) -> usize {
        self.columns.first().map_or(0, |(_, c)| c.len())
    }

    /// The column called `name`.
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|(n, _)| n == name).map(|(_, c)| c)
    }

    /// A float column (integers are widened); `None` if absent or not numeric.
    pub fn f64s(&self, name: &str) -> Option<Vec<Option<f64>>> {
        match self.column(name)? {
            Column::F64(v) => Some(v.clone()),
            Column::I64(v) => Some(v.iter().map(|x| x.map(|i| i as f64)).collect()),
            _ => None,
        }
    }

    /// A text column; `None` if absent or not text.
    pub fn strs(&self, name: &str) -> Option<&[Option<String>]> {
        match self.column(name)? {
            Column::Str(v) => Some(v),
            _ => None,
        }
    }

    /// A boolean column; `None` if absent or not boolean.
    pub fn bools(&self, name: &str) -> Option<&[Option<bool>]> {
        match self.column(name)? {
            Column::Bool(v) => Some(v),
            _ => None,
        }
    }

    /// The rows whose index satisfies `keep`, in order.
    pub fn filter(&self, keep: impl Fn(usize) -> bool) -> Table {
        let rows: Vec<usize> = (0..self.rows()).filter(|&i| keep(i)).collect();
        self.select_rows(&rows)
    }

    /// The given rows, in the given order.
    pub fn select_rows(&self, rows: &[usize]) -> Table {
        fn pick<T: Clone>(v: &[T], rows: &[usize]) -> Vec<T> {
            rows.iter().map(|&i| v[i].clone()).collect()
        }
        let columns = self
            .columns
            .iter()
            .map(|(n, c)| {
                let c = match c {
                    Column::Str(v) => Column::Str(pick(v, rows)),
                    Column::I64(v) => Column::I64(pick(v, rows)),
                    Column::F64(v) => Column::F64(pick(v, rows)),
                    Column::Bool(v) => Column::Bool(pick(v, rows)),
                };
                (n.clone(), c)
            })
            .collect();
        Table {
            name: self.name.clone(),
            columns,
        }
    }

    /// Only the named columns, in the given order (missing names are skipped).
    pub fn select_columns(&self, names: &[&str]) -> Table {
        let columns = names
            .iter()
            .filter_map(|n| self.column(n).map(|c| (n.to_string(), c.clone())))
            .collect();
        Table {
            name: self.name.clone(),
            columns,
        }
    }
}

impl Table {
    /// A numeric column as floats (missing cells as NaN), or an error naming it.
    pub fn floats(&self, name: &str) -> anyhow::Result<Vec<f64>> {
        Ok(self
            .f64s(name)
            .ok_or_else(|| anyhow::anyhow!("table {} has no numeric column {name}", self.name))?
            .into_iter()
            .map(|v| v.unwrap_or(f64::NAN))
            .collect())
    }

    /// A text column (missing cells as empty strings), or an error naming it.
    pub fn texts(&self, name: &str) -> anyhow::Result<Vec<String>> {
        Ok(self
            .strs(name)
            .ok_or_else(|| anyhow::anyhow!("table {} has no text column {name}", self.name))?
            .iter()
            .map(|v| v.clone().unwrap_or_default())
            .collect())
    }
}

/// The table called `name` among a run's saved tables.
pub fn find_table<'a>(tables: &'a [Table], name: &str) -> anyhow::Result<&'a Table> {
    tables
        .iter()
        .find(|t| t.name == name)
        .ok_or_else(|| anyhow::anyhow!("the run saved no table `{name}`"))
}

/// The distinct values of `v` in order of first appearance.
pub fn distinct<T: PartialEq + Clone>(v: &[T]) -> Vec<T> {
    let mut out: Vec<T> = Vec::new();
    for x in v {
        if !out.contains(x) {
            out.push(x.clone());
        }
    }
    out
}
