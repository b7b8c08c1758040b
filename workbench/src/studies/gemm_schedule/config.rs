//! The gemm_schedule study's config: tile sizes, schedules, timing, the
//! models whose weight shapes are measured (their dimensions stated in the
//! config), row counts M, square sizes, and optionally the CSVs a GPU run
//! wrote (`kernels/gpu/run_gemm.sh`).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use wb_kernels::gemm::Schedule;

use crate::experiment::config::{ConfigErrors, KeyPath};
use crate::experiment::study::{PointDoc, Problems};

/// A model's dimensions, from its `config.json`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ModelDims {
    /// Name shown in tables.
    pub name: String,
    /// `hidden_size`.
    pub hidden: usize,
    /// `intermediate_size`.
    pub intermediate: usize,
    /// `num_attention_heads`.
    pub heads: usize,
    /// `num_key_value_heads`.
    pub kv_heads: usize,
    /// `head_dim` (hidden / heads when the config has none).
    pub head_dim: usize,
}

impl ModelDims {
    /// The distinct weight shapes (label, N outputs, K inputs) of one
    /// decoder layer; projections of equal shape share a row (`q_o`...).
    pub fn weights(&self) -> Vec<(String, usize, usize)> {
        let (h, q, kv) = (
            self.hidden,
            self.heads * self.head_dim,
            self.kv_heads * self.head_dim,
        );
        let all = [
            ("q", q, h),
            ("k", kv, h),
            ("v", kv, h),
            ("o", h, q),
            ("gate", self.intermediate, h),
            ("up", self.intermediate, h),
            ("down", h, self.intermediate),
        ];
        let mut out: Vec<(String, usize, usize)> = Vec::new();
        for (name, n, k) in all {
            match out.iter_mut().find(|(_, on, ok)| *on == n && *ok == k) {
                Some(row) => row.0 = format!("{}_{name}", row.0),
                None => out.push((name.to_string(), n, k)),
            }
        }
        out
    }
}

/// Results of a GPU run to show beside the CPU's.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GpuResults {
    /// The card, as nvidia-smi names it.
    pub card: String,
    /// `gemm_gpu.csv` of `run_gemm.sh` (times per schedule and shape),
    /// relative to the config file.
    pub times_csv: Option<PathBuf>,
    /// `gemm_l2.csv` (Nsight Compute's L2 hit rate per schedule), relative
    /// to the config file.
    pub l2_csv: Option<PathBuf>,
}

/// The config as written.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GemmScheduleConfig {
    /// Free text shown at the top of the report.
    #[serde(default)]
    pub description: Option<String>,
    /// Seed of the int8 operands.
    #[serde(default)]
    pub seed: u64,
    /// Worker threads of the timed products (default: all cores). Units are
    /// timed one at a time whatever the run's thread count.
    #[serde(default)]
    pub threads: Option<usize>,
    /// Schedules (`row_major` is always measured: the baseline).
    #[serde(default = "default_schedules")]
    pub schedules: Vec<String>,
    /// CPU tile rows for M > 16.
    #[serde(default = "default_tile_m")]
    pub tile_m: usize,
    /// CPU tile rows for M ≤ 16 (verification).
    #[serde(default = "default_small_tile_m")]
    pub small_tile_m: usize,
    /// CPU tile columns.
    #[serde(default = "default_tile_n")]
    pub tile_n: usize,
    /// CPU K block (a multiple of 16).
    #[serde(default = "default_tile_k")]
    pub tile_k: usize,
    /// Timed repetitions per variant (median and its order-statistic
    /// interval).
    #[serde(default = "default_repeats")]
    pub repeats: usize,
    /// Each repetition times a batch of calls lasting at least this long.
    #[serde(default = "default_min_seconds")]
    pub min_seconds: f64,
    /// Also time candle's f32 matmul on the same shape.
    #[serde(default = "default_true")]
    pub compare_f32: bool,
    /// Row counts M against each model weight.
    #[serde(default)]
    pub ms: Vec<usize>,
    /// The models whose weight shapes are measured.
    #[serde(default)]
    pub models: Vec<ModelDims>,
    /// Square sizes M = N = K.
    #[serde(default)]
    pub squares: Vec<usize>,
    /// A GPU run's results, shown beside the CPU's.
    #[serde(default)]
    pub gpu: Option<GpuResults>,
}

fn default_schedules() -> Vec<String> {
    Schedule::ALL.iter().map(|s| s.name()).collect()
}
fn default_tile_m() -> usize {
    32
}
fn default_small_tile_m() -> usize {
    4
}
fn default_tile_n() -> usize {
    64
}
fn default_tile_k() -> usize {
    512
}
fn default_repeats() -> usize {
    7
}
fn default_min_seconds() -> f64 {
    0.02
}
fn default_true() -> bool {
    true
}

impl GemmScheduleConfig {
    /// The schedules, row-major first.
    pub fn parsed_schedules(&self) -> Vec<Schedule> {
        let mut v = vec![Schedule::RowMajor];
        for s in &self.schedules {
            let s = Schedule::parse(s).expect("validated schedule");
            if !v.contains(&s) {
                v.push(s);
            }
        }
        v
    }

    /// Parses and checks one point of a config; GPU CSV paths are resolved
    /// against the config file's folder.
    pub fn from_doc(doc: &PointDoc) -> Result<Self, ConfigErrors> {
        let mut c: GemmScheduleConfig = doc.deserialize()?;
        let root = KeyPath::root();
        let mut p = Problems::new(doc);
        for (i, s) in c.schedules.iter().enumerate() {
            if let Err(e) = Schedule::parse(s) {
                p.add(&root.key("schedules").index(i), e.to_string());
            }
        }
        for (key, v) in [
            ("tile_m", c.tile_m),
            ("small_tile_m", c.small_tile_m),
            ("tile_n", c.tile_n),
            ("repeats", c.repeats),
        ] {
            if v == 0 {
                p.add(&root.key(key), "expected a positive number");
            }
        }
        if c.tile_k == 0 || !c.tile_k.is_multiple_of(16) {
            p.add(
                &root.key("tile_k"),
                format!("{}; expected a positive multiple of 16", c.tile_k),
            );
        }
        if c.threads == Some(0) {
            p.add(&root.key("threads"), "expected at least one thread");
        }
        if !(c.min_seconds.is_finite() && c.min_seconds >= 0.0 && c.min_seconds <= 10.0) {
            p.add(
                &root.key("min_seconds"),
                format!("{}; expected 0 to 10 seconds", c.min_seconds),
            );
        }
        if c.models.is_empty() && c.squares.is_empty() {
            p.add(
                &root.key("models"),
                "expected at least one model or square size",
            );
        }
        if !c.models.is_empty() && c.ms.is_empty() {
            p.add(
                &root.key("ms"),
                "expected row counts M for the model shapes",
            );
        }
        for (i, &m) in c.ms.iter().enumerate() {
            if m == 0 || m > 65536 {
                p.add(
                    &root.key("ms").index(i),
                    format!("{m}; expected 1 to 65536"),
                );
            }
        }
        for (i, &s) in c.squares.iter().enumerate() {
            if s == 0 || s > 16384 {
                p.add(
                    &root.key("squares").index(i),
                    format!("{s}; expected 1 to 16384"),
                );
            }
        }
        for (i, m) in c.models.iter().enumerate() {
            let at = root.key("models").index(i);
            for (key, v) in [
                ("hidden", m.hidden),
                ("intermediate", m.intermediate),
                ("heads", m.heads),
                ("kv_heads", m.kv_heads),
                ("head_dim", m.head_dim),
            ] {
                if v == 0 {
                    p.add(&at.key(key), "expected a positive dimension");
                }
            }
            if m.kv_heads > 0 && m.heads % m.kv_heads != 0 {
                p.add(
                    &at.key("kv_heads"),
                    format!("{} does not divide heads = {}", m.kv_heads, m.heads),
                );
            }
            if m.hidden.max(m.intermediate).max(m.heads * m.head_dim) >= 1 << 17 {
                p.add(
                    &at.key("intermediate"),
                    "dimensions must stay below 131072 (int32 exactness)",
                );
            }
        }
        if let Some(g) = &mut c.gpu {
            let base = doc.source.path.parent().unwrap_or(Path::new("."));
            for (key, path) in [("times_csv", &mut g.times_csv), ("l2_csv", &mut g.l2_csv)] {
                if let Some(rel) = path.as_mut() {
                    let full = base.join(&*rel);
                    if !full.is_file() {
                        p.add(
                            &root.key("gpu").key(key),
                            format!(
                                "{} does not exist (paths are relative to the config file)",
                                full.display()
                            ),
                        );
                    }
                    *rel = full;
                }
            }
        }
        p.finish(c)
    }
}
