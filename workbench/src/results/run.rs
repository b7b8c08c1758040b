//! A run from config to report: validate every sweep point before any work, run
//! the units that are not yet on disk in parallel, then write tables, manifest,
//! plots and report.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use anyhow::{anyhow, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use rayon::prelude::*;
use serde_json::{json, Value};

use super::store::{unit_id, write_atomic, StoredUnit, UnitStore};
use super::{manifest, plot, report, tables};
use crate::experiment::config::{ConfigErrors, ConfigSource, KeyPath};
use crate::experiment::outputs::{Column, Table};
use crate::experiment::study::{Plan, PointDoc, Study, UnitContext};
use crate::experiment::sweep::{self, Axis, SweepPoint};
use crate::studies;

/// Environment variable that makes a run abort (as a crash or `kill -9` would)
/// after computing this many units; used by the resume tests.
pub const ABORT_AFTER_UNITS: &str = "WORKBENCH_ABORT_AFTER_UNITS";

/// What `workbench run` was asked to do.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// The config file.
    pub config: PathBuf,
    /// The config's text when it is not read from `config` (the embedded default).
    pub config_text: Option<String>,
    /// Output folder (default `reports/<config stem>`).
    pub out: Option<PathBuf>,
    /// Worker threads (default: all cores).
    pub threads: Option<usize>,
    /// Overrides the config's `seed`.
    pub seed: Option<u64>,
    /// No progress bar and no summary line.
    pub quiet: bool,
}

/// What a run did.
#[derive(Clone, Debug)]
pub struct RunSummary {
    /// The output folder.
    pub out: PathBuf,
    /// Units in the run.
    pub units: usize,
    /// Units found finished on disk and reused.
    pub reused: usize,
    /// Wall time in seconds.
    pub seconds: f64,
}

/// A validated config: its study, sweep axes and one plan per sweep point.
pub struct Planned {
    /// The config file.
    pub source: ConfigSource,
    /// The study its `kind` names.
    pub study: &'static dyn Study,
    /// The sweep axes (empty without `[sweep]`).
    pub axes: Vec<Axis>,
    /// Each sweep point with its plan.
    pub points: Vec<(SweepPoint, Box<dyn Plan>)>,
}

/// Reads and validates a config and every point of its sweep; no work is done.
/// `text` replaces reading the file (for the embedded default config).
pub fn plan(path: &Path, text: Option<&str>, seed: Option<u64>) -> Result<Planned, ConfigErrors> {
    let (source, mut table) = match text {
        Some(text) => ConfigSource::parse(path, text.to_string())?,
        None => ConfigSource::load(path)?,
    };
    let kinds: Vec<&str> = studies::all().iter().map(|s| s.kind()).collect();
    let kind = match table.remove("kind") {
        Some(toml::Value::String(k)) => k,
        Some(other) => {
            return Err(source
                .error_at(
                    &KeyPath::root().key("kind"),
                    format!(
                        "expected a string naming the study ({}), found {other}",
                        kinds.join(", ")
                    ),
                )
                .into())
        }
        None => {
            return Err(source
                .error_at(
                    &KeyPath::root(),
                    format!("missing `kind`; expected one of {}", kinds.join(", ")),
                )
                .into())
        }
    };
    let study = studies::find(&kind).ok_or_else(|| {
        source.error_at(
            &KeyPath::root().key("kind"),
            format!(
                "unknown study kind `{kind}`; expected one of {}",
                kinds.join(", ")
            ),
        )
    })?;
    let axes = match table.remove("sweep") {
        Some(s) => sweep::axes(&source, &s)?,
        None => Vec::new(),
    };
    let mut sweep_points = sweep::expand(&source, &table, &axes)?;
    let mut points = Vec::new();
    let mut errors = Vec::new();
    for point in sweep_points.drain(..) {
        let mut point = point;
        if let Some(seed) = seed {
            point
                .table
                .insert("seed".into(), toml::Value::Integer(seed as i64));
        }
        let doc = PointDoc {
            source: &source,
            table: point.table.clone(),
            overrides: point.overrides.clone(),
        };
        match study.plan(&doc) {
            Ok(plan) => points.push((point, plan)),
            Err(e) => {
                for err in e.0 {
                    if !errors.contains(&err) {
                        errors.push(err);
                    }
                }
            }
        }
    }
    if !errors.is_empty() {
        return Err(ConfigErrors(errors));
    }
    Ok(Planned {
        source,
        study,
        axes,
        points,
    })
}

/// The default output folder of a config: `reports/<stem>`.
pub fn default_out(config: &Path) -> PathBuf {
    let stem = config
        .file_stem()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_else(|| "run".into());
    PathBuf::from("reports").join(stem)
}

/// Runs a config end to end. Config problems come back as [`ConfigErrors`]
/// inside the error (see `downcast_ref`).
pub fn run(options: &RunOptions) -> Result<RunSummary> {
    let started = Instant::now();
    let started_at = manifest::now();
    let planned = plan(
        &options.config,
        options.config_text.as_deref(),
        options.seed,
    )?;
    let out = options
        .out
        .clone()
        .unwrap_or_else(|| default_out(&options.config));
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    write_atomic(&out.join("config.toml"), planned.source.text.as_bytes())?;

    let threads = options.threads.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .context("starting the worker threads")?;

    // Every unit of every point, with its identity on disk.
    struct Job {
        point: usize,
        unit: usize,
        key: String,
        id: String,
    }
    let kind = planned.study.kind();
    let mut jobs = Vec::new();
    for (p, (_, plan)) in planned.points.iter().enumerate() {
        let resolved = plan.resolved();
        for (u, key) in plan.units().into_iter().enumerate() {
            let id = unit_id(kind, plan.revision(), &resolved, &key);
            jobs.push(Job {
                point: p,
                unit: u,
                key,
                id,
            });
        }
    }
    let store = UnitStore::new(&out);
    let mut finished: BTreeMap<String, Value> = BTreeMap::new();
    for job in &jobs {
        if let Some(unit) = store.load(&job.id, &job.key) {
            finished.insert(job.id.clone(), unit.output);
        }
    }
    let reused = finished.len();
    let pending: Vec<&Job> = jobs
        .iter()
        .filter(|j| !finished.contains_key(&j.id))
        .collect();

    let bar = if options.quiet || !std::io::stderr().is_terminal() {
        ProgressBar::hidden()
    } else {
        let bar = ProgressBar::new(pending.len() as u64);
        bar.set_style(
            ProgressStyle::with_template(
                "{prefix} [{bar:40}] {pos}/{len} units, {elapsed} elapsed, ~{eta} left",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        bar.set_prefix(kind.to_string());
        bar
    };
    let abort_after: Option<usize> = std::env::var(ABORT_AFTER_UNITS)
        .ok()
        .and_then(|v| v.parse().ok());
    let computed = AtomicUsize::new(0);
    let new_outputs: Vec<(String, Value)> = pool.install(|| {
        pending
            .par_iter()
            .map(|job| -> Result<(String, Value)> {
                let plan = &planned.points[job.point].1;
                let context = UnitContext {
                    work_dir: out.join("work").join(&job.id),
                    verbose: !options.quiet,
                };
                let output = plan
                    .run_unit(job.unit, &context)
                    .with_context(|| format!("unit `{}`", job.key))?;
                store.save(&StoredUnit {
                    id: job.id.clone(),
                    point: job.point,
                    key: job.key.clone(),
                    output: output.clone(),
                })?;
                bar.inc(1);
                let done = computed.fetch_add(1, Ordering::SeqCst) + 1;
                if abort_after.is_some_and(|n| done >= n) {
                    // Simulates a crash: no cleanup, no further writes.
                    std::process::abort();
                }
                Ok((job.id.clone(), output))
            })
            .collect::<Result<Vec<_>>>()
    })?;
    bar.finish_and_clear();
    finished.extend(new_outputs);

    // Tables: each point's, with the sweep values as leading columns, stacked.
    let mut stacked: Vec<Table> = Vec::new();
    for (p, (point, plan)) in planned.points.iter().enumerate() {
        let outputs: Vec<Value> = jobs
            .iter()
            .filter(|j| j.point == p)
            .map(|j| finished[&j.id].clone())
            .collect();
        let tables = plan
            .tables(&outputs)
            .with_context(|| format!("building tables of point {p}"))?;
        for table in tables {
            let table = with_sweep_columns(table, point);
            match stacked.iter_mut().find(|t| t.name == table.name) {
                Some(existing) => append(existing, &table)?,
                None => stacked.push(table),
            }
        }
    }
    for table in &stacked {
        tables::write(&out, table)?;
    }

    let seeds: Vec<u64> = {
        let mut s: Vec<u64> = planned.points.iter().map(|(_, plan)| plan.seed()).collect();
        s.dedup();
        s
    };
    let manifest = json!({
        "kind": kind,
        "config_file": options.config.display().to_string(),
        "command": std::env::args().collect::<Vec<_>>(),
        "seed_override": options.seed,
        "seeds": seeds,
        "sweep": planned.axes.iter().map(|a| json!({
            "key": a.label,
            "values": a.values.iter().map(toml_to_json).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "points": planned.points.iter().map(|(point, plan)| json!({
            "index": point.index,
            "assignments": point.assignments.iter()
                .map(|(k, v)| (k.clone(), toml_to_json(v)))
                .collect::<serde_json::Map<_, _>>(),
            "seed": plan.seed(),
            "revision": plan.revision(),
            "units": plan.units().len(),
            "config": plan.resolved(),
        })).collect::<Vec<_>>(),
        "units": {"total": jobs.len(), "reused": reused, "computed": jobs.len() - reused},
        "tables": stacked.iter().map(|t| t.name.clone()).collect::<Vec<_>>(),
        "git": manifest::git_revision(),
        "versions": manifest::versions(),
        "device": manifest::device(threads),
        "threads": threads,
        "started_at": started_at,
        "finished_at": manifest::now(),
        "wall_seconds": started.elapsed().as_secs_f64(),
    });
    write_atomic(
        &out.join("manifest.json"),
        serde_json::to_string_pretty(&manifest)?.as_bytes(),
    )?;
    build_report(&out)?;
    Ok(RunSummary {
        out,
        units: jobs.len(),
        reused,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Rebuilds plots and `report.html` of a finished run from its saved tables.
pub fn build_report(dir: &Path) -> Result<PathBuf> {
    let manifest_path = dir.join("manifest.json");
    let text = std::fs::read_to_string(&manifest_path).with_context(|| {
        format!(
            "{} is not a finished run: no readable manifest.json",
            dir.display()
        )
    })?;
    let manifest: Value = serde_json::from_str(&text)
        .with_context(|| format!("parsing {}", manifest_path.display()))?;
    let kind = manifest["kind"]
        .as_str()
        .ok_or_else(|| anyhow!("{}: no `kind`", manifest_path.display()))?;
    let study = studies::find(kind)
        .ok_or_else(|| anyhow!("{}: unknown kind `{kind}`", manifest_path.display()))?;
    let names: Vec<String> = manifest["tables"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let tables = names
        .iter()
        .map(|n| tables::read(dir, n))
        .collect::<Result<Vec<_>>>()?;
    let content = study.report(&tables, &manifest)?;
    let mut svgs = BTreeMap::new();
    for figure in &content.figures {
        plot::render_png(
            figure,
            &dir.join("plots").join(format!("{}.png", figure.name)),
        )
        .with_context(|| format!("drawing {}", figure.name))?;
        let svg = plot::render_svg(figure).with_context(|| format!("drawing {}", figure.name))?;
        write_atomic(
            &dir.join("plots").join(format!("{}.svg", figure.name)),
            svg.as_bytes(),
        )?;
        svgs.insert(figure.name.clone(), svg);
    }
    let config_text = std::fs::read_to_string(dir.join("config.toml")).unwrap_or_default();
    let table_files: Vec<String> = names
        .iter()
        .flat_map(|n| [format!("tables/{n}.csv"), format!("tables/{n}.parquet")])
        .collect();
    let html = report::render_html(&report::ReportInput {
        content: &content,
        svgs: &svgs,
        config_text: &config_text,
        manifest: &manifest,
        table_files: &table_files,
    })?;
    let path = dir.join("report.html");
    write_atomic(&path, html.as_bytes())?;
    Ok(path)
}

fn toml_to_json(v: &toml::Value) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// Prepends one column per sweep axis holding this point's value.
fn with_sweep_columns(mut table: Table, point: &SweepPoint) -> Table {
    let rows = table.rows();
    let mut leading = Vec::new();
    for (label, value) in &point.assignments {
        if table.column(label).is_some() {
            continue;
        }
        let column = match value {
            toml::Value::Integer(i) => Column::I64(vec![Some(*i); rows]),
            toml::Value::Float(f) => Column::F64(vec![Some(*f); rows]),
            toml::Value::Boolean(b) => Column::Bool(vec![Some(*b); rows]),
            toml::Value::String(s) => Column::Str(vec![Some(s.clone()); rows]),
            other => Column::Str(vec![Some(other.to_string()); rows]),
        };
        leading.push((label.clone(), column));
    }
    leading.append(&mut table.columns);
    table.columns = leading;
    table
}

/// Appends the rows of `more` to `table` (same columns, same types).
fn append(table: &mut Table, more: &Table) -> Result<()> {
    if table.columns.len() != more.columns.len() {
        anyhow::bail!(
            "table {}: sweep points produced different columns",
            table.name
        );
    }
    for ((name, a), (other, b)) in table.columns.iter_mut().zip(&more.columns) {
        match (a, b) {
            (Column::Str(a), Column::Str(b)) if name == other => a.extend(b.iter().cloned()),
            (Column::I64(a), Column::I64(b)) if name == other => a.extend(b.iter().cloned()),
            (Column::F64(a), Column::F64(b)) if name == other => a.extend(b.iter().cloned()),
            (Column::Bool(a), Column::Bool(b)) if name == other => a.extend(b.iter().cloned()),
            // A sweep value of another type (1 then 1.5): widen integers to floats.
            (a @ Column::I64(_), Column::F64(b)) if name == other => {
                let Column::I64(ints) = a else { unreachable!() };
                let mut floats: Vec<Option<f64>> =
                    ints.iter().map(|x| x.map(|i| i as f64)).collect();
                floats.extend(b.iter().cloned());
                *a = Column::F64(floats);
            }
            (Column::F64(a), Column::I64(b)) if name == other => {
                a.extend(b.iter().map(|x| x.map(|i| i as f64)))
            }
            _ => anyhow::bail!(
                "table {}: column {name} differs between sweep points",
                table.name
            ),
        }
    }
    Ok(())
}
