//! Making datasets present in the cache: reuse, copy from a mirror folder, or download.

use std::fmt;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};

use super::verify::{check_file, describe_wrong, install_verified, mismatch_message, Check};
use super::{cache_dir, Dataset, Manifest};

/// How long a download may wait to resolve, connect, or for each read, unless set otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Hint added to errors when a file cannot be downloaded.
const OFFLINE_HINT: &str =
    "`--mirror DIR` (a folder with the same layout, e.g. ../shared/datasets) works offline";

/// Where [`fetch`] and [`locate`] look for files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchOptions {
    /// A folder with the same layout as the cache (each file at its manifest `path`), used
    /// instead of downloading; e.g. `../shared/datasets`.
    pub mirror: Option<PathBuf>,
    /// The cache folder that fetched files are written to (see [`cache_dir`]).
    pub cache: PathBuf,
    /// Limit for resolving the host, connecting, and each read of a download.
    pub timeout: Duration,
}

impl Default for FetchOptions {
    /// No mirror, the default [`cache_dir`], and [`DEFAULT_TIMEOUT`].
    fn default() -> Self {
        FetchOptions {
            mirror: None,
            cache: cache_dir(),
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

/// Where a fetched file came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The cache already held a file with the right checksum.
    AlreadyCached,
    /// Copied from this file of the mirror folder.
    Mirror(PathBuf),
    /// Downloaded from the dataset's `url`.
    Downloaded,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::AlreadyCached => write!(f, "already cached"),
            Source::Mirror(path) => write!(f, "copied from {}", path.display()),
            Source::Downloaded => write!(f, "downloaded"),
        }
    }
}

/// One dataset that [`fetch`] made present and verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    /// The dataset's name.
    pub name: String,
    /// Its verified path in the cache.
    pub path: PathBuf,
    /// Where it came from.
    pub source: Source,
    /// Its size in bytes.
    pub bytes: u64,
}

/// Path of `dataset` under `root` (the cache or a mirror).
fn path_in(root: &Path, dataset: &Dataset) -> PathBuf {
    dataset
        .path
        .split('/')
        .fold(root.to_path_buf(), |p, c| p.join(c))
}

/// Make each named dataset (all of them when `names` is empty) present and verified in
/// `options.cache`.
///
/// For each dataset: a cached file whose size and sha256 match is kept
/// ([`Source::AlreadyCached`]); otherwise any wrong cached file is removed and the file is
/// copied from `options.mirror` when one is given ([`Source::Mirror`]), else downloaded from
/// its `url` ([`Source::Downloaded`]). New content goes to a temporary file beside the final
/// path and is renamed into place only after its size and sha256 are checked, so the final
/// path never holds a partial or unverified file. Names are handled in order, duplicates
/// once; the first failure stops the fetch with an error that names the dataset.
pub fn fetch(
    manifest: &Manifest,
    names: &[String],
    options: &FetchOptions,
) -> Result<Vec<Fetched>> {
    let mut wanted: Vec<&Dataset> = Vec::new();
    if names.is_empty() {
        wanted.extend(manifest.datasets.iter());
    } else {
        for name in names {
            let dataset = manifest.find(name)?;
            if !wanted.iter().any(|d| d.name == dataset.name) {
                wanted.push(dataset);
            }
        }
    }
    wanted
        .into_iter()
        .map(|dataset| fetch_one(dataset, options))
        .collect()
}

fn fetch_one(dataset: &Dataset, options: &FetchOptions) -> Result<Fetched> {
    let dest = path_in(&options.cache, dataset);
    let fetched = |source| Fetched {
        name: dataset.name.clone(),
        path: dest.clone(),
        source,
        bytes: dataset.bytes,
    };
    match check_file(&dest, dataset)? {
        Check::Good => return Ok(fetched(Source::AlreadyCached)),
        Check::Missing => {}
        Check::Wrong { .. } => {
            // A stale or damaged copy: remove it now so that the final path never holds an
            // unverified file, whatever happens next.
            std::fs::remove_file(&dest).with_context(|| {
                format!(
                    "cannot remove {}, a cached copy of dataset `{}` that does not match the manifest",
                    dest.display(),
                    dataset.name
                )
            })?;
        }
    }
    match &options.mirror {
        Some(mirror) => {
            let src = copy_from_mirror(dataset, mirror, &dest)?;
            Ok(fetched(Source::Mirror(src)))
        }
        None => {
            download(dataset, &dest, options.timeout)?;
            Ok(fetched(Source::Downloaded))
        }
    }
}

/// Copies `mirror/<path>` to `dest` through a verified temporary file; returns the source.
fn copy_from_mirror(dataset: &Dataset, mirror: &Path, dest: &Path) -> Result<PathBuf> {
    let src = path_in(mirror, dataset);
    if !src.is_file() {
        bail!(
            "dataset `{}` is not in the mirror folder {}: expected the file {}",
            dataset.name,
            mirror.display(),
            src.display()
        );
    }
    let mut file = File::open(&src)
        .with_context(|| format!("cannot open {} (dataset `{}`)", src.display(), dataset.name))?;
    install_verified(&mut file, dest, dataset, &src.display().to_string())?;
    Ok(src)
}

/// Downloads `dataset.url` to `dest` through a verified temporary file.
fn download(dataset: &Dataset, dest: &Path, timeout: Duration) -> Result<u64> {
    let failed = || format!("download of `{}` from {} failed", dataset.name, dataset.url);
    let agent = ureq::Agent::config_builder()
        .timeout_resolve(Some(timeout))
        .timeout_connect(Some(timeout))
        .timeout_send_request(Some(timeout))
        .timeout_recv_response(Some(timeout))
        .timeout_per_read(Some(timeout))
        .build()
        .new_agent();
    let response = agent
        .get(&dataset.url)
        .call()
        .map_err(|e| anyhow!("{}: {e}; {OFFLINE_HINT}", failed()))?;
    let mut reader = response.into_body().into_reader();
    install_verified(&mut reader, dest, dataset, &dataset.url)
        .map_err(|e| anyhow!("{}: {e:#}; {OFFLINE_HINT}", failed()))
}

/// The verified local path of dataset `name`: its cached copy, or else, when
/// `options.mirror` is set, the mirror's file itself (verified, not copied).
///
/// Nothing is written. When neither place holds a good copy, the error says to run
/// `workbench data fetch NAME --mirror DIR` (or without `--mirror` to download).
pub fn locate(manifest: &Manifest, name: &str, options: &FetchOptions) -> Result<PathBuf> {
    let dataset = manifest.find(name)?;
    let cached = path_in(&options.cache, dataset);
    let cache_problem = match check_file(&cached, dataset)? {
        Check::Good => return Ok(cached),
        Check::Missing => format!(
            "dataset `{name}` is not in the cache ({})",
            cached.display()
        ),
        Check::Wrong { bytes, sha256 } => mismatch_message(
            dataset,
            &cached.display().to_string(),
            &describe_wrong(bytes, &sha256),
        ),
    };
    let mirror_problem = match &options.mirror {
        None => String::new(),
        Some(mirror) => {
            let src = path_in(mirror, dataset);
            match check_file(&src, dataset)? {
                Check::Good => return Ok(src),
                Check::Missing => format!(
                    "; nor is it in the mirror folder {} (expected the file {})",
                    mirror.display(),
                    src.display()
                ),
                Check::Wrong { bytes, sha256 } => bail!(
                    "{}",
                    mismatch_message(
                        dataset,
                        &src.display().to_string(),
                        &describe_wrong(bytes, &sha256)
                    )
                ),
            }
        }
    };
    bail!(
        "{cache_problem}{mirror_problem}; run `workbench data fetch {name} --mirror DIR` \
         (DIR a folder with the same layout, e.g. ../shared/datasets), or \
         `workbench data fetch {name}` to download it from {}",
        dataset.url
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_follow_the_manifest_layout() {
        let d = Dataset {
            name: "n".into(),
            path: "a/b/c.txt".into(),
            url: "http://127.0.0.1:9/x".into(),
            sha256: "0".repeat(64),
            bytes: 1,
            licence: String::new(),
            what: String::new(),
        };
        assert_eq!(
            path_in(Path::new("/root"), &d),
            Path::new("/root").join("a").join("b").join("c.txt")
        );
    }

    #[test]
    fn source_display() {
        assert_eq!(Source::AlreadyCached.to_string(), "already cached");
        assert_eq!(Source::Downloaded.to_string(), "downloaded");
        assert!(Source::Mirror("/m/x".into()).to_string().contains("/m/x"));
    }
}
