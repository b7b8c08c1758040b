//! AdamW whose state can be saved and restored, so that a killed training run
//! resumes exactly where it stopped.
//!
//! The update is candle-nn's `AdamW`, operation for operation (a test checks the
//! two agree to the bit); candle-nn keeps its moments private, which is the only
//! reason this type exists.

use std::collections::HashMap;

use anyhow::{bail, Context, Result};
use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};
use candle_nn::ParamsAdamW;

/// One parameter with its moments.
struct Slot {
    name: String,
    var: Var,
    m: Var,
    v: Var,
}

/// AdamW with named, checkpointable state.
pub struct AdamW {
    slots: Vec<Slot>,
    step: usize,
    /// Hyper-parameters (the learning rate changes with the schedule).
    pub params: ParamsAdamW,
}

impl AdamW {
    /// An optimizer for named variables.
    pub fn new(vars: Vec<(String, Var)>, params: ParamsAdamW) -> Result<Self> {
        let slots = vars
            .into_iter()
            .map(|(name, var)| {
                let m = Var::zeros(var.shape(), var.dtype(), var.device())?;
                let v = Var::zeros(var.shape(), var.dtype(), var.device())?;
                Ok(Slot { name, var, m, v })
            })
            .collect::<Result<_>>()?;
        Ok(AdamW {
            slots,
            step: 0,
            params,
        })
    }

    /// Steps taken so far.
    pub fn steps(&self) -> usize {
        self.step
    }

    /// One update from `grads` (parameters without a gradient are left alone).
    pub fn step(&mut self, grads: &GradStore) -> Result<()> {
        self.step += 1;
        let p = &self.params;
        let (beta1, beta2) = (p.beta1, p.beta2);
        let scale_m = 1f64 / (1f64 - beta1.powi(self.step as i32));
        let scale_v = 1f64 / (1f64 - beta2.powi(self.step as i32));
        for s in &self.slots {
            let Some(g) = grads.get(s.var.as_tensor()) else {
                continue;
            };
            let next_m = ((s.m.as_tensor() * beta1)? + (g * (1.0 - beta1))?)?;
            let next_v = ((s.v.as_tensor() * beta2)? + (g.sqr()? * (1.0 - beta2))?)?;
            let m_hat = (&next_m * scale_m)?;
            let v_hat = (&next_v * scale_v)?;
            let decayed = (s.var.as_tensor() * (1f64 - p.lr * p.weight_decay))?;
            let adjusted = (m_hat / (v_hat.sqrt()? + p.eps)?)?;
            let next = (decayed - (adjusted * p.lr)?)?;
            s.m.set(&next_m)?;
            s.v.set(&next_v)?;
            s.var.set(&next)?;
        }
        Ok(())
    }

    /// The moments as named tensors (`m.NAME`, `v.NAME`) plus the step count.
    pub fn state(&self) -> (HashMap<String, Tensor>, usize) {
        let mut map = HashMap::new();
        for s in &self.slots {
            map.insert(format!("m.{}", s.name), s.m.as_tensor().clone());
            map.insert(format!("v.{}", s.name), s.v.as_tensor().clone());
        }
        (map, self.step)
    }

    /// Restores moments and step count saved by [`state`](Self::state).
    pub fn load_state(&mut self, mut map: HashMap<String, Tensor>, step: usize) -> Result<()> {
        for s in &self.slots {
            for (kind, var) in [("m", &s.m), ("v", &s.v)] {
                let key = format!("{kind}.{}", s.name);
                let t = map
                    .remove(&key)
                    .with_context(|| format!("optimizer state lacks `{key}`"))?;
                if t.dims() != var.dims() {
                    bail!(
                        "optimizer state `{key}` has shape {:?}; expected {:?}",
                        t.dims(),
                        var.dims()
                    );
                }
                var.set(&t)?;
            }
        }
        self.step = step;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;
    use candle_nn::Optimizer;

    #[test]
    fn matches_candle_nn_adamw_to_the_bit_and_resumes() {
        let params = ParamsAdamW {
            lr: 0.01,
            weight_decay: 0.1,
            ..ParamsAdamW::default()
        };
        let start = Tensor::new(&[[0.5f32, -1.5], [2.0, 0.25]], &Device::Cpu).unwrap();
        let target = Tensor::new(&[[1.0f32, 1.0], [-1.0, 0.0]], &Device::Cpu).unwrap();
        let ours_var = Var::from_tensor(&start).unwrap();
        let theirs_var = Var::from_tensor(&start).unwrap();
        let mut ours = AdamW::new(vec![("w".into(), ours_var.clone())], params.clone()).unwrap();
        let mut theirs = candle_nn::AdamW::new(vec![theirs_var.clone()], params.clone()).unwrap();
        let loss = |v: &Var| {
            (v.as_tensor() - &target)
                .unwrap()
                .sqr()
                .unwrap()
                .sum_all()
                .unwrap()
        };
        for _ in 0..5 {
            ours.step(&loss(&ours_var).backward().unwrap()).unwrap();
            theirs.step(&loss(&theirs_var).backward().unwrap()).unwrap();
        }
        let a = ours_var.as_tensor().to_vec2::<f32>().unwrap();
        let b = theirs_var.as_tensor().to_vec2::<f32>().unwrap();
        assert_eq!(a, b);

        // Save after 5 steps, restore into a fresh optimizer, take 3 more steps:
        // identical to 8 uninterrupted steps.
        let (state, step) = ours.state();
        // A copy: `Var::from_tensor` of a variable would share its storage, and
        // the two optimizers would then step the same numbers.
        let resumed_var = Var::from_tensor(&ours_var.as_tensor().copy().unwrap()).unwrap();
        let mut resumed = AdamW::new(vec![("w".into(), resumed_var.clone())], params).unwrap();
        resumed.load_state(state, step).unwrap();
        for _ in 0..3 {
            ours.step(&loss(&ours_var).backward().unwrap()).unwrap();
            resumed
                .step(&loss(&resumed_var).backward().unwrap())
                .unwrap();
        }
        assert_eq!(
            ours_var.as_tensor().to_vec2::<f32>().unwrap(),
            resumed_var.as_tensor().to_vec2::<f32>().unwrap()
        );
    }
}
