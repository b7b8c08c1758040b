//! The gemm_schedule study's units: one per shape (a model weight at one M,
//! or a square), each timing every schedule and candle's f32 matmul,
//! interleaved repetition by repetition so that drift in the machine's speed
//! affects all alike, and checking that every schedule's int32 result is the
//! same (and equals the plain reference on the rows it checks).
//!
//! Units are timed one at a time (a process-wide lock) on a thread pool of
//! the config's size, whatever the run's thread count: concurrent units
//! would share the cores and the last-level cache being measured. Times are
//! measurements, not reproducible bit for bit; everything else in a unit's
//! output is.

use std::sync::Mutex;
use std::time::Instant;

use anyhow::{Context, Result};
use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};
use wb_kernels::gemm::{gemm_i32_cpu, reference_i32, GemmConfig};

use super::config::GemmScheduleConfig;
use super::gpu::GpuTables;
use crate::experiment::outputs::Table;
use crate::experiment::study::{Plan, UnitContext, UnitOutput};

/// One measured shape.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Shape {
    /// `model` or `square`.
    pub set: String,
    /// Model name (`-` for squares).
    pub model: String,
    /// Projections of this shape (`q_o`, `gate_up`...; `-` for squares).
    pub proj: String,
    /// Rows of A.
    pub m: usize,
    /// Outputs (rows of the stored weight).
    pub n: usize,
    /// Inputs.
    pub k: usize,
}

/// Per-call seconds of one variant, one value per repetition.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VariantTimes {
    /// Schedule name, or `candle_f32`.
    pub name: String,
    /// Seconds per call, per repetition.
    pub seconds: Vec<f64>,
}

/// One unit's output.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UnitResult {
    /// The shape.
    pub shape: Shape,
    /// `tile_m x tile_n x tile_k`.
    pub tile: String,
    /// Threads of the timed products.
    pub threads: usize,
    /// Calls per timed batch.
    pub calls: usize,
    /// Row-major first, then the other schedules, then candle's f32 matmul.
    pub variants: Vec<VariantTimes>,
    /// Every schedule's int32 result equal to row-major's, and the checked
    /// rows equal to the plain reference.
    pub identical: bool,
    /// Rows compared with the plain reference.
    pub reference_rows: usize,
}

/// The validated study point.
pub struct GemmSchedulePlan {
    pub(super) config: GemmScheduleConfig,
    pub(super) gpu: GpuTables,
}

/// Serialises the timing of units across the runner's workers.
static TIMING: Mutex<()> = Mutex::new(());

impl GemmSchedulePlan {
    /// Plans a validated config (reading the GPU CSVs it names).
    pub fn new(config: GemmScheduleConfig) -> Result<Self> {
        let gpu = GpuTables::load(config.gpu.as_ref())?;
        Ok(GemmSchedulePlan { config, gpu })
    }

    /// Every shape, models first (model × weight × M), then squares.
    pub fn shapes(&self) -> Vec<Shape> {
        let c = &self.config;
        let mut v = Vec::new();
        for model in &c.models {
            for (proj, n, k) in model.weights() {
                for &m in &c.ms {
                    v.push(Shape {
                        set: "model".into(),
                        model: model.name.clone(),
                        proj: proj.clone(),
                        m,
                        n,
                        k,
                    });
                }
            }
        }
        for &s in &c.squares {
            v.push(Shape {
                set: "square".into(),
                model: "-".into(),
                proj: "-".into(),
                m: s,
                n: s,
                k: s,
            });
        }
        v
    }

    fn tile(&self, m: usize) -> (usize, usize, usize) {
        let c = &self.config;
        let tm = if m <= 16 { c.small_tile_m } else { c.tile_m };
        (tm, c.tile_n, c.tile_k)
    }
}

/// splitmix64 int8 codes for a stream.
fn codes(seed: u64, len: usize) -> Vec<i8> {
    let mut s = seed;
    (0..len)
        .map(|_| {
            s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = s;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            ((z ^ (z >> 31)) >> 56) as i8
        })
        .collect()
}

fn per_call<F: FnMut()>(calls: usize, mut f: F) -> f64 {
    let t = Instant::now();
    for _ in 0..calls {
        f();
    }
    t.elapsed().as_secs_f64() / calls as f64
}

impl Plan for GemmSchedulePlan {
    fn resolved(&self) -> serde_json::Value {
        serde_json::to_value(&self.config).expect("config serialises")
    }

    fn seed(&self) -> u64 {
        self.config.seed
    }

    fn units(&self) -> Vec<String> {
        self.shapes()
            .iter()
            .map(|s| {
                format!(
                    "{} {} {} M={} N={} K={}",
                    s.set, s.model, s.proj, s.m, s.n, s.k
                )
            })
            .collect()
    }

    fn run_unit(&self, index: usize, _context: &UnitContext) -> Result<UnitOutput> {
        let c = &self.config;
        let shape = self.shapes()[index].clone();
        let (m, n, k) = (shape.m, shape.n, shape.k);
        let stream = c.seed ^ ((m as u64) << 40 ^ (n as u64) << 20 ^ k as u64);
        let a = codes(stream, m * k);
        let b = codes(stream.wrapping_add(1), n * k);
        let (tm, tn, tk) = self.tile(m);
        let schedules = c.parsed_schedules();
        let cfgs: Vec<GemmConfig> = schedules
            .iter()
            .map(|&s| GemmConfig::new(tm, tn, tk, s))
            .collect();
        let threads = c.threads.unwrap_or_else(rayon::current_num_threads);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .context("starting the timing threads")?;
        let (af, bft) = if c.compare_f32 {
            let af = Tensor::from_vec(
                a.iter().map(|&v| f32::from(v)).collect::<Vec<_>>(),
                (m, k),
                &Device::Cpu,
            )?;
            let bf = Tensor::from_vec(
                b.iter().map(|&v| f32::from(v)).collect::<Vec<_>>(),
                (n, k),
                &Device::Cpu,
            )?;
            (Some(af), Some(bf.t()?))
        } else {
            (None, None)
        };

        // Timed on a thread of its own: a rayon worker waiting in `install`
        // (or for the lock) steals other units, and one could then take the
        // lock twice on the same thread.
        let timed = || -> Result<UnitOutput> {
            let _lock = TIMING.lock().unwrap_or_else(|e| e.into_inner());
            pool.install(|| -> Result<UnitOutput> {
                // Warm-up, which also gives each schedule's result for the check.
                let mut outs = Vec::new();
                for cfg in &cfgs {
                    let mut out = vec![0i32; m * n];
                    gemm_i32_cpu(&a, &b, m, n, k, cfg, &mut out)?;
                    outs.push(out);
                }
                let reference_rows = if m * n * k <= 1 << 24 { m } else { m.min(2) };
                let want = reference_i32(&a[..reference_rows * k], &b, reference_rows, n, k);
                let identical =
                    outs.iter().all(|o| *o == outs[0]) && outs[0][..reference_rows * n] == want[..];
                drop(outs);
                let mut out = vec![0i32; m * n];
                let one = per_call(1, || {
                    gemm_i32_cpu(&a, &b, m, n, k, &cfgs[0], &mut out).expect("checked")
                });
                let calls = ((c.min_seconds / one.max(1e-9)).ceil() as usize).clamp(1, 100_000);
                let mut variants: Vec<VariantTimes> = schedules
                    .iter()
                    .map(|s| VariantTimes {
                        name: s.name(),
                        seconds: Vec::new(),
                    })
                    .collect();
                if c.compare_f32 {
                    variants.push(VariantTimes {
                        name: "candle_f32".into(),
                        seconds: Vec::new(),
                    });
                }
                if let (Some(af), Some(bft)) = (&af, &bft) {
                    let _ = af.matmul(bft)?;
                }
                for _ in 0..c.repeats {
                    for (cfg, v) in cfgs.iter().zip(variants.iter_mut()) {
                        v.seconds.push(per_call(calls, || {
                            gemm_i32_cpu(&a, &b, m, n, k, cfg, &mut out).expect("checked")
                        }));
                    }
                    if let (Some(af), Some(bft)) = (&af, &bft) {
                        let v = variants.last_mut().expect("f32 variant");
                        v.seconds.push(per_call(calls, || {
                            let _ = af.matmul(bft).expect("f32 matmul");
                        }));
                    }
                }
                Ok(serde_json::to_value(UnitResult {
                    shape: shape.clone(),
                    tile: format!("{tm}x{tn}x{tk}"),
                    threads,
                    calls,
                    variants,
                    identical,
                    reference_rows,
                })?)
            })
        };
        std::thread::scope(|scope| {
            scope
                .spawn(timed)
                .join()
                .unwrap_or_else(|_| Err(anyhow::anyhow!("the timing thread panicked")))
        })
    }

    fn tables(&self, outputs: &[UnitOutput]) -> Result<Vec<Table>> {
        let results: Vec<UnitResult> = outputs
            .iter()
            .map(|o| serde_json::from_value(o.clone()))
            .collect::<Result<_, _>>()?;
        let mut t = super::tables::build(&results);
        t.extend(self.gpu.tables());
        Ok(t)
    }
}
