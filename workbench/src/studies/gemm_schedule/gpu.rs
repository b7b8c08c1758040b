//! The GPU run's CSVs (`kernels/gpu/run_gemm.sh`: `gemm_gpu.csv` times per
//! schedule and shape, `gemm_l2.csv` Nsight Compute's L2 hit rate), read at
//! plan time into tables shown beside the CPU's.

use std::path::Path;

use anyhow::{bail, Context, Result};

use super::config::GpuResults;
use crate::experiment::outputs::{Column, Table};

/// The GPU tables (empty without a `[gpu]` section).
#[derive(Clone, Debug, Default)]
pub struct GpuTables {
    tables: Vec<Table>,
}

/// A header-first CSV without quoting as a table: columns whose cells all
/// parse as numbers (or are empty) become F64, the rest text; plus a first
/// column `card`.
pub fn read_csv(path: &Path, name: &str, card: &str) -> Result<Table> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header: Vec<&str> = lines
        .next()
        .with_context(|| format!("{}: empty file", path.display()))?
        .split(',')
        .collect();
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    for (i, r) in rows.iter().enumerate() {
        if r.len() != header.len() {
            bail!(
                "{}: line {} has {} fields, the header {}",
                path.display(),
                i + 2,
                r.len(),
                header.len()
            );
        }
    }
    let mut t = Table::new(name).with(
        "card",
        Column::Str(vec![Some(card.to_string()); rows.len()]),
    );
    for (j, h) in header.iter().enumerate() {
        let cells: Vec<&str> = rows.iter().map(|r| r[j].trim()).collect();
        let numeric = cells
            .iter()
            .all(|c| c.is_empty() || c.parse::<f64>().is_ok());
        let col = if numeric {
            Column::F64(cells.iter().map(|c| c.parse().ok()).collect())
        } else {
            Column::Str(cells.iter().map(|c| Some(c.to_string())).collect())
        };
        t = t.with(h.trim(), col);
    }
    Ok(t)
}

impl GpuTables {
    /// Reads the CSVs a `[gpu]` section names.
    pub fn load(gpu: Option<&GpuResults>) -> Result<Self> {
        let mut tables = Vec::new();
        if let Some(g) = gpu {
            if let Some(p) = &g.times_csv {
                tables.push(read_csv(p, "gemm_schedule_gpu_times", &g.card)?);
            }
            if let Some(p) = &g.l2_csv {
                tables.push(read_csv(p, "gemm_schedule_gpu_l2", &g.card)?);
            }
        }
        Ok(GpuTables { tables })
    }

    /// The tables read.
    pub fn tables(&self) -> Vec<Table> {
        self.tables.clone()
    }
}
