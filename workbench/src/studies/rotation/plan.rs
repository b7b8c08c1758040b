//! The rotation study's units: per scheme, one per-layer unit
//! ([`super::layers`]) and, unless `whole_model = false`, one whole-model unit
//! ([`super::whole_model`]).

use anyhow::Result;
use serde::{Deserialize, Serialize};

use super::config::RotationConfig;
use super::layers::SchemeLayers;
use super::methods::Scheme;
use super::whole_model::SchemeModel;
use crate::experiment::outputs::Table;
use crate::experiment::study::{Plan, UnitContext, UnitOutput};
use crate::primitives::rotation::Rotation;
use crate::studies::eval::plan::EvalPlan;

/// A unit's output: per-layer rows or whole-model settings.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum RotationOutput {
    /// Whole-model settings of one scheme.
    Model(SchemeModel),
    /// Per-layer rows of one scheme.
    Layers(SchemeLayers),
}

/// The validated study point.
pub struct RotationPlan {
    pub(super) config: RotationConfig,
}

impl RotationPlan {
    /// Plans a validated config.
    pub fn new(config: RotationConfig) -> Self {
        RotationPlan { config }
    }

    pub(super) fn scheme(&self, name: &str) -> Scheme {
        Scheme::by_name(name, self.config.seed, self.config.smoothquant_alpha)
            .unwrap_or(Scheme::Rotation(Rotation::None))
    }

    pub(super) fn eval_plan(&self) -> Result<EvalPlan> {
        EvalPlan::new(self.config.as_eval())
    }
}

impl Plan for RotationPlan {
    fn resolved(&self) -> serde_json::Value {
        serde_json::to_value(&self.config).expect("config serialises")
    }

    fn seed(&self) -> u64 {
        self.config.seed
    }

    fn units(&self) -> Vec<String> {
        let mut units: Vec<String> = self
            .config
            .rotations
            .iter()
            .map(|r| format!("rotation={r}"))
            .collect();
        if self.config.whole_model {
            units.extend(
                self.config
                    .rotations
                    .iter()
                    .map(|r| format!("model rotation={r}")),
            );
        }
        units
    }

    fn run_unit(&self, index: usize, _context: &UnitContext) -> Result<UnitOutput> {
        let schemes = self.config.rotations.len();
        let scheme = &self.config.rotations[index % schemes];
        let output = if index < schemes {
            RotationOutput::Layers(self.layer_unit(scheme)?)
        } else {
            RotationOutput::Model(self.model_unit(scheme)?)
        };
        Ok(serde_json::to_value(output)?)
    }

    fn tables(&self, outputs: &[UnitOutput]) -> Result<Vec<Table>> {
        let mut layers = Vec::new();
        let mut models = Vec::new();
        for o in outputs {
            match serde_json::from_value(o.clone())? {
                RotationOutput::Layers(l) => layers.push(l),
                RotationOutput::Model(m) => models.push(m),
            }
        }
        let mut tables = super::tables::layer_tables(&layers);
        if !models.is_empty() {
            tables.push(super::tables::model_table(&self.config, &models));
        }
        Ok(tables)
    }
}
