//! Muon (Jordan et al. 2024): SGD with Nesterov momentum whose update is replaced
//! by its nearest semi-orthogonal matrix, computed with a quintic Newton–Schulz
//! iteration, for the hidden 2-D weights of a network.
//!
//! One step for a weight `W` (`A × B`) with gradient `G`, momentum `β`:
//!
//! ```text
//! M ← β M + (1 − β) G                       (momentum buffer)
//! U ← (1 − β) G + β M   (Nesterov)  or  M
//! O ← NS5(U)                                 (≈ U V^T of U's SVD)
//! W ← (1 − lr · wd) W − lr · scale · O
//! ```
//!
//! `NS5` normalises `U` by its Frobenius norm (so every singular value is at most
//! one), works on the wide orientation (transposing tall matrices, so the Gram
//! matrix is the small one), and runs five steps of `X ← a X + (b A + c A²) X`
//! with `A = X Xᵀ` and `(a, b, c) = (3.4445, −4.7750, 2.0315)`: coefficients that
//! push small singular values up fast at the price of leaving them in roughly
//! [0.7, 1.2] rather than at exactly one. `scale` is either Keller Jordan's
//! `√max(1, A/B)` or Moonshot's `0.2 · √max(A, B)` (Liu et al. 2025), which
//! makes the update's RMS about AdamW's so both can share a learning rate and
//! weight decay. The state (momentum buffers and step count) is named and
//! checkpointable like [`super::adamw::AdamW`]'s.

use std::collections::HashMap;

use anyhow::{bail, Context, Result};
use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};
use serde::{Deserialize, Serialize};

/// The quintic Newton–Schulz coefficients.
pub const NS_COEFFICIENTS: (f64, f64, f64) = (3.4445, -4.7750, 2.0315);

/// Added to the Frobenius norm before dividing (a zero update stays zero).
const NORM_EPS: f64 = 1e-7;

/// How the orthogonalised update is scaled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MuonScale {
    /// `√max(1, rows / cols)` (Keller Jordan's reference).
    Shape,
    /// `0.2 · √max(rows, cols)`: AdamW's update RMS, so AdamW's learning rate
    /// and weight decay carry over (Moonshot's "Muon is scalable").
    AdamRms,
}

impl MuonScale {
    /// The factor for a `rows × cols` weight.
    pub fn factor(self, rows: usize, cols: usize) -> f64 {
        let (r, c) = (rows as f64, cols as f64);
        match self {
            MuonScale::Shape => (r / c).max(1.0).sqrt(),
            MuonScale::AdamRms => 0.2 * r.max(c).sqrt(),
        }
    }
}

/// Muon's hyper-parameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ParamsMuon {
    /// Learning rate.
    pub lr: f64,
    /// Momentum β.
    pub momentum: f64,
    /// Nesterov momentum (the reference's default).
    pub nesterov: bool,
    /// Newton–Schulz steps.
    pub ns_steps: usize,
    /// Decoupled weight decay (multiplied by the learning rate).
    pub weight_decay: f64,
    /// Update scaling.
    pub scale: MuonScale,
}

impl Default for ParamsMuon {
    fn default() -> Self {
        ParamsMuon {
            lr: 0.02,
            momentum: 0.95,
            nesterov: true,
            ns_steps: 5,
            weight_decay: 0.0,
            scale: MuonScale::Shape,
        }
    }
}

/// Approximately orthogonalises a 2-D `g`: `steps` quintic Newton–Schulz
/// iterations on `g / (‖g‖_F + 1e-7)`, in the orientation with fewer rows.
pub fn newton_schulz(g: &Tensor, steps: usize) -> Result<Tensor> {
    let (rows, cols) = g.dims2().context("Newton–Schulz needs a matrix")?;
    let (a, b, c) = NS_COEFFICIENTS;
    let tall = rows > cols;
    let mut x = if tall {
        g.t()?.contiguous()?
    } else {
        g.clone()
    };
    let norm = x.sqr()?.sum_all()?.sqrt()?;
    x = x.broadcast_div(&(norm + NORM_EPS)?)?;
    for _ in 0..steps {
        let gram = x.matmul(&x.t()?)?;
        let poly = ((&gram * b)? + (gram.matmul(&gram)? * c)?)?;
        x = ((&x * a)? + poly.matmul(&x)?)?;
    }
    Ok(if tall { x.t()?.contiguous()? } else { x })
}

/// One parameter with its momentum buffer.
struct Slot {
    name: String,
    var: Var,
    momentum: Var,
}

/// Muon over named 2-D variables, with checkpointable state.
pub struct Muon {
    slots: Vec<Slot>,
    step: usize,
    /// Hyper-parameters (the learning rate changes with the schedule).
    pub params: ParamsMuon,
}

impl Muon {
    /// An optimizer for named matrices; anything not 2-D is an error (it
    /// belongs to AdamW).
    pub fn new_named(vars: Vec<(String, Var)>, params: ParamsMuon) -> Result<Self> {
        let slots = vars
            .into_iter()
            .map(|(name, var)| {
                if var.rank() != 2 {
                    bail!("Muon takes matrices; `{name}` has shape {:?}", var.dims());
                }
                let momentum = Var::zeros(var.shape(), var.dtype(), var.device())?;
                Ok(Slot {
                    name,
                    var,
                    momentum,
                })
            })
            .collect::<Result<_>>()?;
        Ok(Muon {
            slots,
            step: 0,
            params,
        })
    }

    /// Steps taken so far.
    pub fn steps(&self) -> usize {
        self.step
    }

    /// The names of the parameters it updates, in order.
    pub fn names(&self) -> Vec<String> {
        self.slots.iter().map(|s| s.name.clone()).collect()
    }

    /// One update from `grads` (parameters without a gradient are left alone).
    pub fn step(&mut self, grads: &GradStore) -> Result<()> {
        self.step += 1;
        let p = &self.params;
        let beta = p.momentum;
        for s in &self.slots {
            let Some(g) = grads.get(s.var.as_tensor()) else {
                continue;
            };
            let m = ((s.momentum.as_tensor() * beta)? + (g * (1.0 - beta))?)?;
            let update = if p.nesterov {
                ((g * (1.0 - beta))? + (&m * beta)?)?
            } else {
                m.clone()
            };
            let (rows, cols) = s.var.dims2()?;
            let o = newton_schulz(&update, p.ns_steps)?;
            let scale = p.scale.factor(rows, cols);
            let decayed = (s.var.as_tensor() * (1.0 - p.lr * p.weight_decay))?;
            let next = (decayed - (o * (p.lr * scale))?)?;
            s.momentum.set(&m)?;
            s.var.set(&next)?;
        }
        Ok(())
    }

    /// The momentum buffers as named tensors (`muon.NAME`) plus the step count.
    pub fn state(&self) -> (HashMap<String, Tensor>, usize) {
        let map = self
            .slots
            .iter()
            .map(|s| (format!("muon.{}", s.name), s.momentum.as_tensor().clone()))
            .collect();
        (map, self.step)
    }

    /// Restores buffers and step count saved by [`state`](Self::state); keys
    /// that are not Muon's are left in `map` for the caller.
    pub fn load_state(&mut self, map: &mut HashMap<String, Tensor>, step: usize) -> Result<()> {
        for s in &self.slots {
            let key = format!("muon.{}", s.name);
            let t = map
                .remove(&key)
                .with_context(|| format!("optimizer state lacks `{key}`"))?;
            if t.dims() != s.momentum.dims() {
                bail!(
                    "optimizer state `{key}` has shape {:?}; expected {:?}",
                    t.dims(),
                    s.momentum.dims()
                );
            }
            s.momentum.set(&t)?;
        }
        self.step = step;
        Ok(())
    }
}

/// candle-nn's optimizer interface; variables are named by their index.
impl candle_nn::Optimizer for Muon {
    type Config = ParamsMuon;

    fn new(vars: Vec<Var>, config: ParamsMuon) -> candle_core::Result<Self> {
        let named = vars
            .into_iter()
            .enumerate()
            .map(|(i, v)| (i.to_string(), v))
            .collect();
        Muon::new_named(named, config).map_err(|e| candle_core::Error::Msg(format!("{e:#}")))
    }

    fn step(&mut self, grads: &GradStore) -> candle_core::Result<()> {
        Muon::step(self, grads).map_err(|e| candle_core::Error::Msg(format!("{e:#}")))
    }

    fn learning_rate(&self) -> f64 {
        self.params.lr
    }

    fn set_learning_rate(&mut self, lr: f64) {
        self.params.lr = lr;
    }
}

#[cfg(test)]
mod tests;
