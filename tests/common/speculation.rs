//! Models, drafters and draws shared by the speculative-decoding tests
//! (`tests/speculation.rs` for chains and the study, `tests/speculation_tree.rs`
//! for full draft trees).

use std::collections::HashMap;

use candle_core::Device;
use workbench::model::llama::Model;
use workbench::model::llama2c;
use workbench::model::transforms::weight_variant;
use workbench::primitives::rotation::Rotation;
use workbench::speculative::cached::CachedModel;
use workbench::speculative::decode::{plain, speculative, Settings};
use workbench::speculative::drafter::{Drafter, ModelDrafter, NgramDrafter};
use workbench::speculative::sampling::Shaping;

/// stories260K from the offline mirror, if it is there.
pub fn stories260k() -> Option<Model> {
    let path = super::mirror()?.join("stories260K/stories260K.bin");
    let (config, weights) = llama2c::load(&path, &Device::Cpu).unwrap();
    Some(Model::from_weights(config, weights).unwrap())
}

/// The model with every linear weight quantized by `variant` (e.g. `w4`).
pub fn quantized(model: &Model, variant: &str) -> Model {
    let mut m = model.clone();
    let transform = weight_variant(variant).unwrap().unwrap();
    for linear in m.linears_mut() {
        let mut config = linear.config().clone();
        config.weight_transform = Some(transform.clone());
        linear.configure(config).unwrap();
    }
    m
}

/// The 2-gram drafter and the W8, W4 and W3 self-drafters.
pub fn drafters(model: &Model) -> Vec<Box<dyn Drafter>> {
    let mut all: Vec<Box<dyn Drafter>> = vec![Box::new(NgramDrafter { n: 2, vocab: 512 })];
    for variant in ["w8", "w4", "w3"] {
        all.push(Box::new(ModelDrafter {
            label: variant.into(),
            model: CachedModel::new(quantized(model, variant)),
        }));
    }
    all
}

/// The prompt every test decodes from.
pub const PROMPT: [u32; 4] = [1, 403, 407, 261];

/// The model rotated by a whole-model Hadamard rotation, then quantized by
/// `variant`.
pub fn rotated_quantized(model: &Model, variant: &str) -> Model {
    let mut m = model.clone();
    workbench::model::rotate::rotate_model(&mut m, Rotation::Hadamard).unwrap();
    quantized(&m, variant)
}

/// Temperature, top-k and top-p.
pub fn shaped(temperature: f64, top_k: usize, top_p: f64) -> Shaping {
    Shaping {
        temperature,
        top_k,
        top_p,
    }
}

/// Continuations of `horizon` tokens from `samples` seeds, as counts.
pub fn continuations(
    model: &Model,
    drafter_model: &Model,
    settings: Option<Settings>,
    shaping: Shaping,
    horizon: usize,
    samples: u64,
) -> HashMap<Vec<u32>, u64> {
    let mut target = CachedModel::new(model.clone());
    let mut drafter = ModelDrafter::new("w3", drafter_model.clone());
    let mut counts = HashMap::new();
    for seed in 0..samples {
        let tokens = match settings {
            None => plain(&mut target, &PROMPT, horizon, shaping, 1000 + seed).unwrap(),
            Some(s) => {
                let s = Settings {
                    seed: 1000 + seed,
                    ..s
                };
                speculative(&mut target, &mut drafter, &PROMPT, horizon, s)
                    .unwrap()
                    .tokens
            }
        };
        *counts.entry(tokens).or_insert(0) += 1;
    }
    counts
}
