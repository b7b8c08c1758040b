//! The trait every experiment family implements, and the config view it plans from.

use serde::de::DeserializeOwned;

use super::config::{ConfigError, ConfigErrors, ConfigSource, KeyPath, Seg};
use super::outputs::{ReportContent, Table};

/// One point of a (possibly swept) config, as a study sees it: the TOML table
/// with sweep values substituted, and what is needed to locate any key of it in
/// the file.
pub struct PointDoc<'a> {
    /// The file the point came from.
    pub source: &'a ConfigSource,
    /// The point's config, without `kind` and `sweep`.
    pub table: toml::Table,
    /// Keys replaced by sweep values, with the `[sweep]` entry that set them.
    pub overrides: Vec<(KeyPath, KeyPath)>,
}

impl PointDoc<'_> {
    /// An error about the key at `path`; a key set by `[sweep]` is reported at
    /// the sweep entry, since that is the text to fix.
    pub fn error_at(&self, path: &KeyPath, message: impl Into<String>) -> ConfigError {
        for (target, sweep_entry) in &self.overrides {
            if path.starts_with(target) {
                let mut e = self.source.error_at(sweep_entry, message);
                e.key = format!("{path} (set by {sweep_entry})");
                return e;
            }
        }
        self.source.error_at(path, message)
    }

    /// Deserializes the point's table into a study's config type; an unknown key,
    /// a wrong type or a missing key becomes a located [`ConfigError`].
    pub fn deserialize<T: DeserializeOwned>(&self) -> Result<T, ConfigErrors> {
        let value = toml::Value::Table(self.table.clone());
        serde_path_to_error::deserialize(value).map_err(|e| {
            let mut path = KeyPath(
                e.path()
                    .iter()
                    .filter_map(|s| match s {
                        serde_path_to_error::Segment::Seq { index } => Some(Seg::Index(*index)),
                        serde_path_to_error::Segment::Map { key } => Some(Seg::Key(key.clone())),
                        serde_path_to_error::Segment::Enum { variant } => {
                            Some(Seg::Key(variant.clone()))
                        }
                        serde_path_to_error::Segment::Unknown => None,
                    })
                    .collect(),
            );
            let message = e.inner().to_string();
            // serde names an unknown key only in its message; point at the key itself.
            if let Some(name) = message
                .strip_prefix("unknown field `")
                .and_then(|rest| rest.split('`').next())
            {
                if path.0.last() != Some(&Seg::Key(name.to_string())) {
                    path = path.key(name);
                }
            }
            self.error_at(&path, message).into()
        })
    }
}

/// Collects located errors during validation so that all are reported at once.
pub struct Problems<'a> {
    doc: &'a PointDoc<'a>,
    errors: Vec<ConfigError>,
}

impl<'a> Problems<'a> {
    /// An empty collection for `doc`.
    pub fn new(doc: &'a PointDoc<'a>) -> Self {
        Problems {
            doc,
            errors: Vec::new(),
        }
    }

    /// Records a problem with the key at `path`.
    pub fn add(&mut self, path: &KeyPath, message: impl Into<String>) {
        self.errors.push(self.doc.error_at(path, message));
    }

    /// `Ok(value)` if nothing was recorded, else every problem.
    pub fn finish<T>(self, value: T) -> Result<T, ConfigErrors> {
        if self.errors.is_empty() {
            Ok(value)
        } else {
            Err(ConfigErrors(self.errors))
        }
    }
}

/// The output of one unit of work, stored as JSON so that a rerun can skip it.
pub type UnitOutput = serde_json::Value;

/// What the runner gives a unit besides its index.
#[derive(Clone, Debug)]
pub struct UnitContext {
    /// A folder of the unit's own for state that must survive a crash (e.g.
    /// training checkpoints); it persists across reruns of the same run.
    pub work_dir: std::path::PathBuf,
    /// Whether the run may print progress (false with `--quiet`).
    pub verbose: bool,
}

/// A validated, fully resolved point of a study, split into independent units.
pub trait Plan: Send + Sync {
    /// The config with every default filled in, as recorded in the manifest.
    fn resolved(&self) -> serde_json::Value;
    /// The seed every unit derives its randomness from.
    fn seed(&self) -> u64;
    /// A stable, human-readable key per unit (part of its identity on disk).
    fn units(&self) -> Vec<String>;
    /// Runs unit `index` of [`units`](Self::units). Must be a pure function of
    /// the resolved config and the index, whatever the thread count.
    fn run_unit(&self, index: usize, context: &UnitContext) -> anyhow::Result<UnitOutput>;
    /// Builds the study's tables from every unit's output, in unit order.
    fn tables(&self, outputs: &[UnitOutput]) -> anyhow::Result<Vec<Table>>;
    /// Raised whenever the code changes what a unit of the same resolved
    /// config outputs, so that a rerun into an old folder recomputes the unit
    /// instead of reusing a stale result. Part of the unit's identity.
    fn revision(&self) -> u32 {
        0
    }
}

/// An experiment family.
pub trait Study: Send + Sync {
    /// The `kind` a config names to select it.
    fn kind(&self) -> &'static str;
    /// One line for `workbench list`.
    fn summary(&self) -> &'static str;
    /// Validates one point of a config and plans its work. Every problem is
    /// reported, located in the file.
    fn plan(&self, doc: &PointDoc) -> Result<Box<dyn Plan>, ConfigErrors>;
    /// What the report says, computed from the tables a run saved (so that
    /// `workbench report` rebuilds it without rerunning anything).
    fn report(
        &self,
        tables: &[Table],
        manifest: &serde_json::Value,
    ) -> anyhow::Result<ReportContent>;
}
