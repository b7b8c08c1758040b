//! Finished units on disk: one JSON file per unit, written atomically, so that a
//! crash or kill loses no finished unit and a rerun skips them.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Writes `bytes` to `path` atomically: a temporary file in the same folder,
/// flushed to disk, then renamed over the target.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("out");
    // Unique per process and call: threads may write the same target at once.
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = dir.join(format!(".{name}.{}-{n}.tmp", std::process::id()));
    {
        let mut f =
            std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)
        .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))?;
    Ok(())
}

/// A finished unit as stored.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct StoredUnit {
    /// The unit's identity (see [`unit_id`]).
    pub id: String,
    /// Which sweep point it belongs to.
    pub point: usize,
    /// The unit's key within the point.
    pub key: String,
    /// What it measured.
    pub output: serde_json::Value,
}

/// The identity of a unit: a hash of the study kind, the plan's revision (see
/// [`Plan::revision`](crate::experiment::study::Plan::revision); revision 0
/// adds nothing, so ids from before revisions existed stay valid), the
/// point's resolved config and the unit key. A changed config or revision
/// gives new ids, so stale results are never reused.
pub fn unit_id(kind: &str, revision: u32, resolved: &serde_json::Value, key: &str) -> String {
    let mut h = Sha256::new();
    h.update(kind.as_bytes());
    if revision > 0 {
        h.update(format!("@{revision}").as_bytes());
    }
    h.update([0]);
    h.update(resolved.to_string().as_bytes());
    h.update([0]);
    h.update(key.as_bytes());
    h.finalize()
        .iter()
        .take(12)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The folder of unit files of a run.
pub struct UnitStore {
    dir: PathBuf,
}

impl UnitStore {
    /// The store under `run_dir/units`.
    pub fn new(run_dir: &Path) -> Self {
        UnitStore {
            dir: run_dir.join("units"),
        }
    }

    fn path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }

    /// The stored unit with this id, if a complete, matching file exists.
    pub fn load(&self, id: &str, key: &str) -> Option<StoredUnit> {
        let text = std::fs::read_to_string(self.path(id)).ok()?;
        let unit: StoredUnit = serde_json::from_str(&text).ok()?;
        (unit.id == id && unit.key == key).then_some(unit)
    }

    /// Saves a finished unit atomically.
    pub fn save(&self, unit: &StoredUnit) -> Result<()> {
        write_atomic(
            &self.path(&unit.id),
            serde_json::to_string(unit)?.as_bytes(),
        )
    }
}
