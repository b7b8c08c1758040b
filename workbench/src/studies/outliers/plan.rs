//! The outlier study's units: one per rotation scheme. Each runs the model over
//! the tokens with an observer that rotates every site's channels and streams
//! them into per-channel statistics.

use std::collections::BTreeMap;
use std::sync::Mutex;

use anyhow::{Context, Result};
use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::config::{Criteria, OutliersConfig};
use crate::experiment::outputs::Table;
use crate::experiment::study::{Plan, UnitContext, UnitOutput};
use crate::model::cache::KvCache;
use crate::model::linear::Observer;
use crate::primitives::channel_stats::ChannelStats;
use crate::primitives::rotation::{self, Rotation};
use crate::studies::eval::plan::EvalPlan;

/// One channel's summary.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ChannelRow {
    /// Largest |x|.
    pub absmax: f64,
    /// Mean.
    pub mean: f64,
    /// Standard deviation.
    pub std: f64,
    /// Kurtosis (3 for a Gaussian).
    pub kurtosis: f64,
    /// 99th percentile of |x| (to one histogram bin).
    pub abs_q99: f64,
    /// Median |x| (to one histogram bin).
    #[serde(default)]
    pub abs_q50: f64,
    /// 99.9th percentile of |x| (to one histogram bin).
    #[serde(default)]
    pub abs_q999: f64,
    /// Share of values with |x| at or above the LLM.int8() threshold.
    #[serde(default)]
    pub int8_share: f64,
}

/// One massive activation: where it occurred and how large it was.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct MassiveHit {
    /// Evaluation sequence (-1 for a weight, whose rows are output channels).
    pub sequence: i64,
    /// Position in the sequence (the output row for a weight).
    pub position: i64,
    /// Token id at that position (-1 for a weight).
    pub token: i64,
    /// Channel.
    pub channel: i64,
    /// The value.
    pub value: f64,
}

/// One site under one scheme.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SiteResult {
    /// Site name (`model.layers.3.mlp.down_proj` input, `residual.3`, `weight:...`).
    pub site: String,
    /// `attn_input`, `attn_output`, `mlp_input`, `mlp_hidden`, `head_input`,
    /// `residual` or `weight`.
    pub kind: String,
    /// Block index (-1 for the head).
    pub layer: i64,
    /// Values per channel.
    pub count: u64,
    /// Kurtosis of all values pooled.
    pub kurtosis: f64,
    /// Largest |x| of the site.
    pub absmax: f64,
    /// Largest channel absmax over the median channel absmax.
    pub max_over_median: f64,
    /// LLM.int8() outlier features (|x| ≥ 6 in ≥ 6% of tokens).
    pub int8_features: usize,
    /// Channels holding massive activations (|x| ≥ 100 and ≥ 1000× the median |x|).
    pub massive: usize,
    /// Per channel.
    pub channels: Vec<ChannelRow>,
    /// The massive activations themselves (at most [`MAX_HITS`] per site).
    #[serde(default)]
    pub massive_hits: Vec<MassiveHit>,
    /// Pooled |x| histogram: (lower bin edge, count) for the non-empty bins.
    #[serde(default)]
    pub histogram: Vec<(f64, u64)>,
}

/// Massive activations kept per site, largest first.
pub const MAX_HITS: usize = 200;

/// One scheme's output.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SchemeResult {
    /// Scheme name.
    pub scheme: String,
    /// Tokens observed.
    pub tokens: usize,
    /// Every measured site.
    pub sites: Vec<SiteResult>,
    /// Sites skipped because the rotation has no construction for their width.
    pub skipped: Vec<String>,
}

/// The validated study point.
pub struct OutliersPlan {
    config: OutliersConfig,
}

impl OutliersPlan {
    /// Plans a validated config.
    pub fn new(config: OutliersConfig) -> Self {
        OutliersPlan { config }
    }
}

/// Which activation sites are measured: one per distinct linear input (q, k and v
/// share theirs, as do gate and up).
fn site_kind(linear: &str) -> Option<(&'static str, i64)> {
    let layer = linear
        .strip_prefix("model.layers.")
        .and_then(|r| r.split('.').next())
        .and_then(|l| l.parse().ok())
        .unwrap_or(-1);
    let kind = if linear.ends_with("q_proj") {
        "attn_input"
    } else if linear.ends_with("o_proj") {
        "attn_output"
    } else if linear.ends_with("gate_proj") {
        "mlp_input"
    } else if linear.ends_with("down_proj") {
        "mlp_hidden"
    } else if linear == "lm_head" {
        "head_input"
    } else {
        return None;
    };
    Some((kind, layer))
}

/// Streams rotated activations into statistics, one accumulator per site.
struct Collector {
    rotation: Rotation,
    criteria: Criteria,
    matrices: Mutex<BTreeMap<usize, Option<Vec<f32>>>>,
    stats: Mutex<BTreeMap<String, SiteStats>>,
    skipped: Mutex<Vec<String>>,
}

/// What is accumulated per site: moments, counts at the configured LLM.int8()
/// threshold, and candidate massive activations (|x| at or above the massive
/// threshold; the ratio to the median is applied once the median is known).
struct SiteStats {
    kind: String,
    layer: i64,
    moments: ChannelStats,
    int8_counts: Vec<u64>,
    candidates: Vec<MassiveHit>,
}

impl Collector {
    /// `x Q` for rows of `x`, or `None` when Q has no construction for `n`.
    fn rotate(&self, rows: &[f32], n: usize) -> Option<Vec<f32>> {
        if self.rotation == Rotation::None {
            return Some(rows.to_vec());
        }
        let mut cache = self.matrices.lock().unwrap();
        let q = cache
            .entry(n)
            .or_insert_with(|| {
                rotation::matrix(self.rotation, n)
                    .ok()
                    .map(|m| m.iter().map(|&v| v as f32).collect())
            })
            .clone()?;
        drop(cache);
        let mut out = vec![0f32; rows.len()];
        for (x, y) in rows.chunks_exact(n).zip(out.chunks_exact_mut(n)) {
            for (i, &xi) in x.iter().enumerate() {
                if xi == 0.0 {
                    continue;
                }
                let qi = &q[i * n..(i + 1) * n];
                for (yj, &qij) in y.iter_mut().zip(qi) {
                    *yj += xi * qij;
                }
            }
        }
        Some(out)
    }

    fn record(&self, site: &str, kind: &str, layer: i64, x: &Tensor) -> Result<()> {
        let n = *x.dims().last().unwrap_or(&1);
        // Activations are [batch, tokens, n]; a weight is [rows, n] (no sequence).
        let positions = if x.dims().len() == 3 { x.dim(1)? } else { 0 };
        let rows = x.flatten_all()?.to_vec1::<f32>()?;
        let Some(rotated) = self.rotate(&rows, n) else {
            let mut skipped = self.skipped.lock().unwrap();
            if !skipped.iter().any(|s| s == site) {
                skipped.push(site.to_string());
            }
            return Ok(());
        };
        let mut stats = self.stats.lock().unwrap();
        let entry = stats.entry(site.to_string()).or_insert_with(|| SiteStats {
            kind: kind.to_string(),
            layer,
            moments: ChannelStats::new(n),
            int8_counts: vec![0; n],
            candidates: Vec::new(),
        });
        entry.moments.push_rows(&rotated)?;
        let (int8, massive) = (
            self.criteria.int8_threshold,
            self.criteria.massive_threshold,
        );
        for (r, row) in rotated.chunks_exact(n).enumerate() {
            for (c, &v) in row.iter().enumerate() {
                let a = (v as f64).abs();
                if a >= int8 {
                    entry.int8_counts[c] += 1;
                }
                if a >= massive {
                    let (sequence, position) = match r.checked_div(positions) {
                        Some(sequence) => (sequence as i64, (r % positions) as i64),
                        None => (-1, r as i64),
                    };
                    entry.candidates.push(MassiveHit {
                        sequence,
                        position,
                        token: -1,
                        channel: c as i64,
                        value: v as f64,
                    });
                }
            }
        }
        Ok(())
    }
}

impl Observer for Collector {
    fn linear(&self, name: &str, input: &Tensor, _output: &Tensor) -> Result<()> {
        if let Some((kind, layer)) = site_kind(name) {
            self.record(name, kind, layer, input)?;
        }
        Ok(())
    }

    fn residual(&self, layer: usize, x: &Tensor) -> Result<()> {
        self.record(&format!("residual.{layer}"), "residual", layer as i64, x)
    }
}

fn summarise(
    site: String,
    site_stats: SiteStats,
    criteria: &Criteria,
    seqs: &[Vec<u32>],
) -> SiteResult {
    let stats = &site_stats.moments;
    let pooled = stats.pooled();
    let mut maxes: Vec<f64> = stats.channels.iter().map(|m| m.absmax).collect();
    maxes.sort_by(f64::total_cmp);
    let median = maxes.get(maxes.len() / 2).cloned().unwrap_or(0.0);
    let count = stats.channels.first().map_or(0, |m| m.count);
    let int8_share: Vec<f64> = site_stats
        .int8_counts
        .iter()
        .map(|&c| c as f64 / count.max(1) as f64)
        .collect();
    // Massive: at or above the threshold and the ratio to the site's median |x|.
    let median_abs = pooled.abs_quantile(0.5);
    let mut hits: Vec<MassiveHit> = site_stats
        .candidates
        .into_iter()
        .filter(|h| h.value.abs() >= criteria.massive_ratio * median_abs)
        .map(|mut h| {
            if h.sequence >= 0 {
                h.token = seqs[h.sequence as usize][h.position as usize] as i64;
            }
            h
        })
        .collect();
    let mut massive_channels: Vec<i64> = hits.iter().map(|h| h.channel).collect();
    massive_channels.sort();
    massive_channels.dedup();
    hits.sort_by(|a, b| b.value.abs().total_cmp(&a.value.abs()));
    hits.truncate(MAX_HITS);
    SiteResult {
        site,
        kind: site_stats.kind,
        layer: site_stats.layer,
        count,
        kurtosis: pooled.kurtosis(),
        absmax: pooled.absmax,
        max_over_median: maxes.last().cloned().unwrap_or(0.0) / median.max(f64::MIN_POSITIVE),
        int8_features: int8_share
            .iter()
            .filter(|&&s| count > 0 && s >= criteria.int8_token_share)
            .count(),
        massive: massive_channels.len(),
        channels: stats
            .channels
            .iter()
            .zip(&int8_share)
            .map(|(m, &share)| ChannelRow {
                absmax: m.absmax,
                mean: m.mean,
                std: m.variance().sqrt(),
                kurtosis: m.kurtosis(),
                abs_q99: m.abs_quantile(0.99),
                abs_q50: m.abs_quantile(0.5),
                abs_q999: m.abs_quantile(0.999),
                int8_share: share,
            })
            .collect(),
        massive_hits: hits,
        histogram: pooled
            .histogram
            .iter()
            .enumerate()
            .filter(|(_, &c)| c > 0)
            .map(|(b, &c)| (histogram_lower_edge(b), c))
            .collect(),
    }
}

/// Lower edge on the |x| axis of bin `b` of [`ChannelStats`]' histogram (0 for
/// the first bin, which also holds zeros).
fn histogram_lower_edge(b: usize) -> f64 {
    if b == 0 {
        return 0.0;
    }
    crate::primitives::channel_stats::bin_lower_edge(b)
}

impl Plan for OutliersPlan {
    fn resolved(&self) -> serde_json::Value {
        serde_json::to_value(&self.config).expect("config serialises")
    }

    fn seed(&self) -> u64 {
        self.config.seed
    }

    fn units(&self) -> Vec<String> {
        self.config
            .rotations
            .iter()
            .map(|r| format!("rotation={r}"))
            .collect()
    }

    fn run_unit(&self, index: usize, _context: &UnitContext) -> Result<UnitOutput> {
        let scheme = &self.config.rotations[index];
        let eval = EvalPlan::new(self.config.as_eval())?;
        let model = eval.load()?;
        let seqs = eval.sequences(&model)?;
        let collector = Collector {
            rotation: self.config.rotation(scheme),
            criteria: self.config.criteria.clone(),
            matrices: Mutex::new(BTreeMap::new()),
            stats: Mutex::new(BTreeMap::new()),
            skipped: Mutex::new(Vec::new()),
        };
        let flat: Vec<u32> = seqs.iter().flatten().cloned().collect();
        let tokens = Tensor::from_vec(flat, (seqs.len(), seqs[0].len()), &Device::Cpu)?;
        model
            .forward(
                &tokens,
                &mut KvCache::new(model.config.n_layers),
                Some(&collector),
            )
            .context("running the model")?;
        // Weights by input channel: the columns of W Q, statistics over output rows.
        for block in model.blocks.iter().chain(std::iter::empty()) {
            for linear in [&block.q, &block.o, &block.gate, &block.down] {
                let (kind, layer) = site_kind(&linear.name).expect("measured linear");
                let _ = kind;
                collector.record(
                    &format!("weight:{}", linear.name),
                    "weight",
                    layer,
                    linear.weight(),
                )?;
            }
        }
        let stats = collector.stats.into_inner().unwrap();
        let sites = stats
            .into_iter()
            .map(|(site, s)| summarise(site, s, &self.config.criteria, &seqs))
            .collect();
        Ok(serde_json::to_value(SchemeResult {
            scheme: scheme.clone(),
            tokens: seqs.len() * seqs[0].len(),
            sites,
            skipped: collector.skipped.into_inner().unwrap(),
        })?)
    }

    fn tables(&self, outputs: &[UnitOutput]) -> Result<Vec<Table>> {
        let results: Vec<SchemeResult> = outputs
            .iter()
            .map(|o| serde_json::from_value(o.clone()))
            .collect::<Result<_, _>>()?;
        Ok(super::tables::build(&results, &self.config.criteria))
    }
}
