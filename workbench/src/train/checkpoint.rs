//! Training checkpoints: weights, optimizer state, the log so far and any
//! evaluations, swapped into place atomically so a crash leaves a whole one.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor, Var};
use serde::{Deserialize, Serialize};

use super::optimizer::TrainOptimizer;
use super::trainer::LogRow;

#[derive(Serialize, Deserialize)]
struct CheckpointState {
    fingerprint: String,
    step: usize,
    history: Vec<LogRow>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    evaluations: Vec<(usize, serde_json::Value)>,
}

/// What a checkpoint holds.
pub struct Loaded {
    /// Every variable, sorted by name.
    pub tensors: Vec<(String, Tensor)>,
    /// Steps taken.
    pub step: usize,
    /// The log of those steps.
    pub history: Vec<LogRow>,
    /// Evaluations made so far, by step.
    pub evaluations: Vec<(usize, serde_json::Value)>,
    /// The optimizer's named buffers.
    pub optimizer: HashMap<String, Tensor>,
}

/// Loads the checkpoint in `dir` if there is one; one written for another
/// fingerprint is an error (the caller's config changed under the same folder).
pub fn load(dir: &Path, fingerprint: &str, device: &Device) -> Result<Option<Loaded>> {
    // A crash between the two renames of `save` leaves only the old checkpoint
    // under its temporary name: put it back.
    if !dir.exists() {
        if let Some(parent) = dir.parent() {
            if let Ok(entries) = std::fs::read_dir(parent) {
                for e in entries.flatten() {
                    if e.file_name()
                        .to_string_lossy()
                        .starts_with("checkpoint.old-")
                    {
                        std::fs::rename(e.path(), dir)?;
                        break;
                    }
                }
            }
        }
    }
    let state_path = dir.join("state.json");
    let Ok(text) = std::fs::read_to_string(&state_path) else {
        return Ok(None);
    };
    let state: CheckpointState =
        serde_json::from_str(&text).with_context(|| format!("reading {}", state_path.display()))?;
    if state.fingerprint != fingerprint {
        bail!(
            "{} belongs to a different model or training config; remove it to start over",
            dir.display()
        );
    }
    let weights = candle_core::safetensors::load(dir.join("weights.safetensors"), device)?;
    let optimizer = candle_core::safetensors::load(dir.join("optimizer.safetensors"), device)?;
    let mut tensors: Vec<(String, Tensor)> = weights.into_iter().collect();
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(Some(Loaded {
        tensors,
        step: state.step,
        history: state.history,
        evaluations: state.evaluations,
        optimizer,
    }))
}

/// What [`save`] writes.
pub struct ToSave<'a> {
    /// Identity of the run (model, spec, optimizer...).
    pub fingerprint: &'a str,
    /// Steps taken.
    pub step: usize,
    /// Their log.
    pub history: &'a [LogRow],
    /// Evaluations so far.
    pub evaluations: &'a [(usize, serde_json::Value)],
    /// Every variable.
    pub vars: &'a [(String, Var)],
    /// The optimizer.
    pub optimizer: &'a TrainOptimizer,
    /// Files copied in as they are (tokenizer, config.json).
    pub extra_files: &'a [(String, Vec<u8>)],
}

/// Writes the checkpoint into a fresh folder, then swaps it in, so a crash
/// leaves either the old checkpoint or the new one, never half of one.
pub fn save(dir: &Path, c: &ToSave) -> Result<()> {
    let parent = dir.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent)?;
    let fresh: PathBuf = parent.join(format!("checkpoint.new-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&fresh);
    std::fs::create_dir_all(&fresh)?;
    let weights: HashMap<String, Tensor> = c
        .vars
        .iter()
        .map(|(n, v)| (n.clone(), v.as_tensor().clone()))
        .collect();
    candle_core::safetensors::save(&weights, fresh.join("weights.safetensors"))?;
    let (state, steps) = c.optimizer.state();
    debug_assert_eq!(steps, c.step);
    candle_core::safetensors::save(&state, fresh.join("optimizer.safetensors"))?;
    let state = CheckpointState {
        fingerprint: c.fingerprint.to_string(),
        step: c.step,
        history: c.history.to_vec(),
        evaluations: c.evaluations.to_vec(),
    };
    std::fs::write(fresh.join("state.json"), serde_json::to_string(&state)?)?;
    for (name, bytes) in c.extra_files {
        std::fs::write(fresh.join(name), bytes)?;
    }
    let old = parent.join(format!("checkpoint.old-{}", std::process::id()));
    if dir.exists() {
        std::fs::rename(dir, &old)?;
    }
    std::fs::rename(&fresh, dir)?;
    let _ = std::fs::remove_dir_all(&old);
    Ok(())
}
