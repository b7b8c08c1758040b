//! External datasets and checkpoints: the manifest that lists them, fetching them into a
//! local cache with checksums, and finding them again.
//!
//! Nothing in this module is committed data. Each file named in `datasets/manifest.toml`
//! is downloaded from its canonical `url`, or copied from a *mirror* folder that has the
//! same layout (each file at its manifest `path`, e.g. `../shared/datasets`), and is only
//! ever used after its size and sha256 match the manifest.
//!
//! ```no_run
//! use workbench::data::{fetch, locate, FetchOptions, Manifest};
//!
//! let manifest = Manifest::embedded();
//! let options = FetchOptions {
//!     mirror: Some("../shared/datasets".into()),
//!     ..FetchOptions::default()
//! };
//! fetch(&manifest, &["tinyshakespeare".to_string()], &options)?;
//! let text = std::fs::read_to_string(locate(&manifest, "tinyshakespeare", &options)?)?;
//! # Ok::<(), anyhow::Error>(())
//! ```

mod fetch;
mod manifest;
mod verify;

use std::path::PathBuf;

pub use fetch::{fetch, locate, FetchOptions, Fetched, Source, DEFAULT_TIMEOUT};
pub use manifest::{Dataset, Manifest};
pub use verify::sha256_file;

/// Environment variable that overrides the cache folder.
pub const DATA_DIR_ENV: &str = "WORKBENCH_DATA_DIR";

/// Cache folder: `$WORKBENCH_DATA_DIR` if set (and not empty), else
/// `$HOME/.cache/workbench/datasets` (or, without `HOME`, `workbench/datasets` under the
/// system's temporary folder).
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os(DATA_DIR_ENV).filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    match std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        Some(home) => PathBuf::from(home)
            .join(".cache")
            .join("workbench")
            .join("datasets"),
        None => std::env::temp_dir().join("workbench").join("datasets"),
    }
}
