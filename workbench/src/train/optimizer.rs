//! The optimizer a training run uses: AdamW for every parameter, or Muon for the
//! hidden matrices with AdamW for the rest, chosen by parameter name.

use std::collections::HashMap;

use anyhow::Result;
use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};
use candle_nn::ParamsAdamW;
use serde::{Deserialize, Serialize};

use super::adamw::AdamW;
use super::muon::{Muon, ParamsMuon};

/// Which optimizer, with its settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "snake_case")]
pub enum OptimizerChoice {
    /// candle-nn's AdamW update (β = 0.9, 0.999, ε = 1e-8) on every parameter.
    Adamw,
    /// Muon on the hidden matrices ([`uses_muon`]); AdamW on the embedding, the
    /// head, norm gains, biases and learned quantizer steps, at `adamw_lr_ratio`
    /// times the learning rate.
    Muon {
        /// Muon's settings (its `lr` and `weight_decay` are overwritten by the run's).
        params: ParamsMuon,
        /// The AdamW group's learning rate relative to Muon's.
        adamw_lr_ratio: f64,
    },
}

impl OptimizerChoice {
    /// Short name (`adamw`, `muon`).
    pub fn name(&self) -> &'static str {
        match self {
            OptimizerChoice::Adamw => "adamw",
            OptimizerChoice::Muon { .. } => "muon",
        }
    }
}

/// Whether Muon updates the parameter `name` of shape `dims`: the 2-D weights
/// inside the blocks (attention and MLP projections). The embedding, the head,
/// norm gains, biases and anything outside `model.layers.` stay with AdamW, as
/// Muon's authors prescribe.
pub fn uses_muon(name: &str, dims: &[usize]) -> bool {
    dims.len() == 2 && name.starts_with("model.layers.") && name.ends_with("_proj.weight")
}

/// Which group each named parameter goes to under `choice`, in order.
pub fn split(choice: &OptimizerChoice, vars: &[(String, Var)]) -> Vec<(String, &'static str)> {
    vars.iter()
        .map(|(n, v)| {
            let group = match choice {
                _ if is_quantizer_step(n) => "adamw_no_decay",
                OptimizerChoice::Muon { .. } if uses_muon(n, v.dims()) => "muon",
                _ => "adamw",
            };
            (n.clone(), group)
        })
        .collect()
}

/// Whether `name` is a learned quantizer step (LSQ), which is trained by AdamW
/// without weight decay whatever the optimizer (decay would shrink the grid).
pub fn is_quantizer_step(name: &str) -> bool {
    name.starts_with("qat.")
}

/// AdamW, or Muon plus AdamW, behind one interface with one checkpointable state.
pub struct TrainOptimizer {
    adamw: AdamW,
    muon: Option<Muon>,
    steps: Option<AdamW>,
    adamw_lr_ratio: f64,
}

impl TrainOptimizer {
    /// The optimizer `choice` over `vars`, with weight decay `weight_decay`.
    pub fn new(
        choice: &OptimizerChoice,
        vars: &[(String, Var)],
        weight_decay: f64,
    ) -> Result<Self> {
        let adamw_params = ParamsAdamW {
            weight_decay,
            ..ParamsAdamW::default()
        };
        let (quantizer_steps, vars): (Vec<_>, Vec<_>) = vars
            .iter()
            .cloned()
            .partition(|(n, _)| is_quantizer_step(n));
        let steps = if quantizer_steps.is_empty() {
            None
        } else {
            Some(AdamW::new(
                quantizer_steps,
                ParamsAdamW {
                    weight_decay: 0.0,
                    ..ParamsAdamW::default()
                },
            )?)
        };
        match choice {
            OptimizerChoice::Adamw => Ok(TrainOptimizer {
                adamw: AdamW::new(vars, adamw_params)?,
                muon: None,
                steps,
                adamw_lr_ratio: 1.0,
            }),
            OptimizerChoice::Muon {
                params,
                adamw_lr_ratio,
            } => {
                let (hidden, rest): (Vec<_>, Vec<_>) =
                    vars.into_iter().partition(|(n, v)| uses_muon(n, v.dims()));
                let params = ParamsMuon {
                    weight_decay,
                    ..params.clone()
                };
                Ok(TrainOptimizer {
                    adamw: AdamW::new(rest, adamw_params)?,
                    muon: Some(Muon::new_named(hidden, params)?),
                    steps,
                    adamw_lr_ratio: *adamw_lr_ratio,
                })
            }
        }
    }

    /// Sets the learning rate of this step (AdamW's group gets its ratio of it).
    pub fn set_lr(&mut self, lr: f64) {
        self.adamw.params.lr = lr * self.adamw_lr_ratio;
        if let Some(s) = &mut self.steps {
            s.params.lr = lr * self.adamw_lr_ratio;
        }
        if let Some(m) = &mut self.muon {
            m.params.lr = lr;
        }
    }

    /// One update.
    pub fn step(&mut self, grads: &GradStore) -> Result<()> {
        self.adamw.step(grads)?;
        if let Some(m) = &mut self.muon {
            m.step(grads)?;
        }
        if let Some(s) = &mut self.steps {
            s.step(grads)?;
        }
        Ok(())
    }

    /// Every buffer, named (`m.`/`v.` for AdamW as before, `muon.` for Muon), and
    /// the step count.
    pub fn state(&self) -> (HashMap<String, Tensor>, usize) {
        let (mut map, step) = self.adamw.state();
        if let Some(m) = &self.muon {
            map.extend(m.state().0);
        }
        if let Some(s) = &self.steps {
            map.extend(s.state().0);
        }
        (map, step)
    }

    /// Restores what [`state`](Self::state) saved.
    pub fn load_state(&mut self, mut map: HashMap<String, Tensor>, step: usize) -> Result<()> {
        if let Some(m) = &mut self.muon {
            m.load_state(&mut map, step)?;
        }
        if let Some(s) = &mut self.steps {
            // AdamW's keys are `m.NAME` / `v.NAME`: hand the steps' own to it.
            let (own, rest): (HashMap<_, _>, HashMap<_, _>) =
                map.into_iter().partition(|(k, _)| {
                    k.split_once('.')
                        .is_some_and(|(_, name)| is_quantizer_step(name))
                });
            s.load_state(own, step)?;
            map = rest;
        }
        self.adamw.load_state(map, step)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hidden_matrices_go_to_muon_and_the_rest_to_adamw() {
        let c = crate::model::config::ModelConfig {
            dim: 8,
            hidden_dim: 16,
            n_layers: 2,
            n_heads: 2,
            n_kv_heads: 1,
            head_dim: 4,
            vocab_size: 20,
            max_seq_len: 8,
            rope_theta: 10000.0,
            rope_style: crate::model::config::RopeStyle::HalfSplit,
            norm_eps: 1e-5,
            tied_embeddings: false,
            qk_norm: true,
            attention_bias: true,
        };
        let vars: Vec<(String, Var)> = crate::train::init::tensor_shapes(&c)
            .into_iter()
            .map(|(n, s)| {
                let v = Var::zeros(s, candle_core::DType::F32, &candle_core::Device::Cpu);
                (n, v.unwrap())
            })
            .collect();
        let muon = OptimizerChoice::Muon {
            params: ParamsMuon::default(),
            adamw_lr_ratio: 1.0,
        };
        let groups = split(&muon, &vars);
        let to_muon: Vec<&str> = groups
            .iter()
            .filter(|g| g.1 == "muon")
            .map(|g| g.0.as_str())
            .collect();
        // 7 projections per block; nothing else.
        assert_eq!(to_muon.len(), 14);
        assert!(to_muon.iter().all(|n| n.ends_with("_proj.weight")));
        for n in [
            "model.embed_tokens.weight",
            "lm_head.weight",
            "model.norm.weight",
            "model.layers.0.self_attn.q_proj.bias",
            "model.layers.1.self_attn.q_norm.weight",
            "model.layers.0.input_layernorm.weight",
        ] {
            assert!(groups.iter().any(|g| g.0 == n && g.1 == "adamw"), "{n}");
        }
        assert!(split(&OptimizerChoice::Adamw, &vars)
            .iter()
            .all(|g| g.1 == "adamw"));
        // A hybrid's state names both parts and loads back.
        let mut opt = TrainOptimizer::new(&muon, &vars, 0.1).unwrap();
        // Copies: a variable cannot be set from its own storage.
        let state: HashMap<String, Tensor> = opt
            .state()
            .0
            .into_iter()
            .map(|(k, t)| (k, t.copy().unwrap()))
            .collect();
        assert_eq!(state.keys().filter(|k| k.starts_with("muon.")).count(), 14);
        assert_eq!(
            state.keys().filter(|k| k.starts_with("m.")).count(),
            vars.len() - 14
        );
        opt.load_state(state, 3).unwrap();
        assert!(opt.load_state(HashMap::new(), 3).is_err());
    }
}
