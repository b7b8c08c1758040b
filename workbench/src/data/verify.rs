//! Checksums and verified, atomic installation of files.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

use super::Dataset;

const BUFFER: usize = 64 * 1024;

/// Lowercase hex of a digest.
fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// Hashes everything `reader` yields, writing it to `sink` on the way; returns the sha256
/// (lowercase hex) and the number of bytes.
fn copy_hashing(reader: &mut dyn Read, sink: &mut dyn Write) -> io::Result<(String, u64)> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; BUFFER];
    let mut total = 0u64;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
        sink.write_all(&buf[..n])?;
        total += n as u64;
    }
    Ok((hex(&hasher.finalize()), total))
}

/// sha256 of a file as lowercase hex, read in a streaming fashion.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut file =
        File::open(path).with_context(|| format!("cannot open {} to hash it", path.display()))?;
    let (sha, _) = copy_hashing(&mut file, &mut io::sink())
        .with_context(|| format!("cannot read {} to hash it", path.display()))?;
    Ok(sha)
}

/// Outcome of checking a file on disk against a dataset's size and checksum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Check {
    /// Size and sha256 match.
    Good,
    /// The file does not exist.
    Missing,
    /// The file exists with the wrong content; `sha256` is what it hashes to (empty when
    /// the size alone already differed and the file was not hashed).
    Wrong { bytes: u64, sha256: String },
}

/// Checks `path` against `dataset` (size first, then sha256).
pub(crate) fn check_file(path: &Path, dataset: &Dataset) -> Result<Check> {
    let meta = match fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Check::Missing),
        Err(e) => return Err(e).with_context(|| format!("cannot inspect {}", path.display())),
    };
    if !meta.is_file() {
        bail!("{} exists but is not a regular file", path.display());
    }
    if meta.len() != dataset.bytes {
        return Ok(Check::Wrong {
            bytes: meta.len(),
            sha256: String::new(),
        });
    }
    let sha = sha256_file(path)?;
    if sha == dataset.sha256 {
        Ok(Check::Good)
    } else {
        Ok(Check::Wrong {
            bytes: meta.len(),
            sha256: sha,
        })
    }
}

/// Error text for a file whose content does not match the manifest; `actual` describes
/// what was found, e.g. `sha256 ab12... (1000 bytes)`.
pub(crate) fn mismatch_message(dataset: &Dataset, file: &str, actual: &str) -> String {
    format!(
        "checksum mismatch for dataset `{}` in {file}: expected sha256 {} ({} bytes), actual {actual}",
        dataset.name, dataset.sha256, dataset.bytes
    )
}

/// Describes a wrong file found by [`check_file`].
pub(crate) fn describe_wrong(bytes: u64, sha256: &str) -> String {
    if sha256.is_empty() {
        format!("size {bytes} bytes (not hashed)")
    } else {
        format!("sha256 {sha256} ({bytes} bytes)")
    }
}

/// A temporary file beside its final path, deleted on drop unless it was renamed into place.
struct TempFile {
    path: PathBuf,
    armed: bool,
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if self.armed {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// A unique temporary name in the destination's folder: `.<file>.part-<pid>-<n>`.
fn temp_path(dest: &Path) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let file = dest
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_else(|| "download".into());
    dest.with_file_name(format!(".{file}.part-{}-{n}", std::process::id()))
}

/// Writes what `reader` yields to a temporary file beside `dest`, checks size and sha256
/// against `dataset`, and renames it to `dest` only when both match. On any failure the
/// temporary file is removed and `dest` is left untouched. `origin` names where the bytes
/// came from (a mirror file or a URL) in error messages. Returns the number of bytes.
///
/// At most `dataset.bytes + 1` bytes are read, so an oversized source fails the size check
/// without filling the disk.
pub(crate) fn install_verified(
    reader: &mut dyn Read,
    dest: &Path,
    dataset: &Dataset,
    origin: &str,
) -> Result<u64> {
    let dir = dest
        .parent()
        .with_context(|| format!("{} has no parent folder", dest.display()))?;
    fs::create_dir_all(dir).with_context(|| format!("cannot create folder {}", dir.display()))?;
    let mut temp = TempFile {
        path: temp_path(dest),
        armed: false,
    };
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&temp.path)
        .with_context(|| format!("cannot create temporary file {}", temp.path.display()))?;
    temp.armed = true;

    let mut limited = reader.take(dataset.bytes.saturating_add(1));
    let (sha, bytes) = copy_hashing(&mut limited, &mut file).with_context(|| {
        format!(
            "copying dataset `{}` from {origin} to {} failed",
            dataset.name,
            temp.path.display()
        )
    })?;
    file.sync_all()
        .with_context(|| format!("cannot flush {}", temp.path.display()))?;
    drop(file);

    if bytes != dataset.bytes || sha != dataset.sha256 {
        let actual = if bytes > dataset.bytes {
            format!(
                "more than {} bytes (sha256 of the first {bytes} bytes: {sha})",
                dataset.bytes
            )
        } else {
            format!("sha256 {sha} ({bytes} bytes)")
        };
        bail!(
            "{}; nothing was written to {}",
            mismatch_message(dataset, origin, &actual),
            dest.display()
        );
    }
    fs::rename(&temp.path, dest)
        .with_context(|| format!("cannot move {} to {}", temp.path.display(), dest.display()))?;
    temp.armed = false;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_known_vectors() {
        let mut sink = Vec::new();
        let (sha, n) = copy_hashing(&mut &b"abc"[..], &mut sink).unwrap();
        assert_eq!(
            sha,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(n, 3);
        assert_eq!(sink, b"abc");
        let (sha, _) = copy_hashing(&mut &b""[..], &mut io::sink()).unwrap();
        assert_eq!(
            sha,
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn temp_names_are_hidden_and_unique() {
        let dest = Path::new("/x/y/input.txt");
        let a = temp_path(dest);
        let b = temp_path(dest);
        assert_ne!(a, b);
        assert_eq!(a.parent(), dest.parent());
        assert!(a
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with(".input.txt.part-"));
    }
}
