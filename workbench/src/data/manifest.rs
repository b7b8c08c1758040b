//! The dataset manifest: which external files the workbench uses, where they come from and
//! how to check them.
//!
//! The manifest is a TOML file of `[[dataset]]` tables (see `datasets/manifest.toml` at the
//! root of the repository). A copy is compiled into the binary ([`Manifest::embedded`]);
//! [`Manifest::load`] reads another one from disk. Errors point at the file, line, column
//! and key that are wrong.

use std::collections::HashMap;
use std::fmt;
use std::path::{Component, Path};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use toml::Spanned;

/// The text of `datasets/manifest.toml`, compiled into the binary.
const EMBEDDED: &str = include_str!("../../../datasets/manifest.toml");

/// One external file (data set or checkpoint) that the workbench can fetch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dataset {
    /// Short name used on the command line, e.g. `tinyshakespeare`.
    pub name: String,
    /// Relative path of the file inside the cache or a mirror folder, with `/` separators,
    /// e.g. `tinyshakespeare/input.txt`.
    pub path: String,
    /// Canonical download address.
    pub url: String,
    /// Expected sha256 of the file, 64 lowercase hex digits.
    pub sha256: String,
    /// Expected size of the file in bytes.
    pub bytes: u64,
    /// Licence of the content, as a short human-readable phrase.
    pub licence: String,
    /// One-line description of what the file is.
    pub what: String,
}

/// A list of datasets, as read from a manifest file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// The `[[dataset]]` entries, in file order.
    #[serde(rename = "dataset")]
    pub datasets: Vec<Dataset>,
}

/// On-disk form of the manifest, with spans kept for the values that are checked after
/// parsing.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    #[serde(default)]
    dataset: Vec<RawDataset>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDataset {
    name: Spanned<String>,
    path: Spanned<String>,
    url: Spanned<String>,
    sha256: Spanned<String>,
    bytes: u64,
    licence: String,
    what: String,
}

/// 1-based line and column of a byte offset in `text`.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let col = before[line_start..].chars().count() + 1;
    (line, col)
}

/// Where an error is: `origin:line:column`.
struct Location<'a> {
    origin: &'a str,
    line: usize,
    col: usize,
}

impl fmt::Display for Location<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.origin, self.line, self.col)
    }
}

fn locate_span<'a>(origin: &'a str, text: &str, span: std::ops::Range<usize>) -> Location<'a> {
    let (line, col) = line_col(text, span.start);
    Location { origin, line, col }
}

/// Checks one value after parsing; `key` is the full key path, e.g. `dataset[1].sha256`.
fn check_value(
    origin: &str,
    text: &str,
    key: &str,
    value: &Spanned<String>,
    check: impl FnOnce(&str) -> std::result::Result<(), String>,
) -> Result<()> {
    if let Err(why) = check(value.get_ref()) {
        let at = locate_span(origin, text, value.span());
        bail!("{at}: invalid value for key `{key}`: {why}");
    }
    Ok(())
}

fn check_name(name: &str) -> std::result::Result<(), String> {
    if name.is_empty() {
        return Err("the name is empty".into());
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(format!(
            "`{name}` may hold only ASCII letters, digits, `-`, `_` and `.`"
        ));
    }
    Ok(())
}

fn check_path(path: &str) -> std::result::Result<(), String> {
    if path.is_empty() {
        return Err("the path is empty".into());
    }
    if path.contains('\\') {
        return Err(format!("`{path}` must use `/` as separator"));
    }
    let p = Path::new(path);
    if p.is_absolute() || path.starts_with('/') {
        return Err(format!("`{path}` must be relative to the cache folder"));
    }
    if !p.components().all(|c| matches!(c, Component::Normal(_))) {
        return Err(format!(
            "`{path}` must not contain `.`, `..` or a root; it names a file inside the cache folder"
        ));
    }
    Ok(())
}

fn check_url(url: &str) -> std::result::Result<(), String> {
    if url.starts_with("https://") || url.starts_with("http://") {
        Ok(())
    } else {
        Err(format!("`{url}` is not an http:// or https:// address"))
    }
}

fn check_sha256(sha: &str) -> std::result::Result<(), String> {
    if sha.len() == 64 && sha.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        Ok(())
    } else {
        Err(format!(
            "`{sha}` is not a sha256 (64 lowercase hexadecimal digits)"
        ))
    }
}

impl Manifest {
    /// The manifest compiled into the binary (`datasets/manifest.toml` of the repository).
    ///
    /// # Panics
    ///
    /// Never in a released build: the embedded text is checked by the test suite.
    pub fn embedded() -> Manifest {
        match Manifest::parse(EMBEDDED, "datasets/manifest.toml (embedded)") {
            Ok(manifest) => manifest,
            Err(e) => panic!("the embedded dataset manifest is invalid: {e:#}"),
        }
    }

    /// Parse a manifest file.
    ///
    /// Errors name the file, the line and column, and the key at fault, e.g.
    ///
    /// ```text
    /// datasets/manifest.toml:14:9: key `dataset[1].bytes`: invalid type: string "1", expected u64
    /// ```
    pub fn load(path: &Path) -> Result<Manifest> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read dataset manifest {}", path.display()))?;
        Manifest::parse(&text, &path.display().to_string())
    }

    /// Parse manifest text; `origin` names where it came from (a file name) in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Manifest> {
        let raw = parse_raw(text, origin)?;
        let mut seen: HashMap<String, usize> = HashMap::new();
        let mut datasets = Vec::with_capacity(raw.dataset.len());
        for (i, d) in raw.dataset.into_iter().enumerate() {
            let key = |k: &str| format!("dataset[{i}].{k}");
            check_value(origin, text, &key("name"), &d.name, check_name)?;
            check_value(origin, text, &key("path"), &d.path, check_path)?;
            check_value(origin, text, &key("url"), &d.url, check_url)?;
            check_value(origin, text, &key("sha256"), &d.sha256, check_sha256)?;
            let name = d.name.get_ref().clone();
            if let Some(first) = seen.insert(name.clone(), i) {
                let at = locate_span(origin, text, d.name.span());
                bail!(
                    "{at}: invalid value for key `{}`: dataset `{name}` is already defined by dataset[{first}]",
                    key("name")
                );
            }
            datasets.push(Dataset {
                name,
                path: d.path.into_inner(),
                url: d.url.into_inner(),
                sha256: d.sha256.into_inner(),
                bytes: d.bytes,
                licence: d.licence,
                what: d.what,
            });
        }
        Ok(Manifest { datasets })
    }

    /// The dataset called `name`; an unknown name is an error that lists the known ones.
    pub fn find(&self, name: &str) -> Result<&Dataset> {
        match self.datasets.iter().find(|d| d.name == name) {
            Some(d) => Ok(d),
            None => {
                let known: Vec<&str> = self.datasets.iter().map(|d| d.name.as_str()).collect();
                if known.is_empty() {
                    bail!("unknown dataset `{name}`: the manifest lists no datasets")
                }
                bail!(
                    "unknown dataset `{name}`; known datasets: {}",
                    known.join(", ")
                )
            }
        }
    }

    /// The names of all datasets, in manifest order.
    pub fn names(&self) -> Vec<&str> {
        self.datasets.iter().map(|d| d.name.as_str()).collect()
    }
}

/// Deserializes the TOML text, turning errors into `origin:line:col: key ...: message`.
fn parse_raw(text: &str, origin: &str) -> Result<RawManifest> {
    let de = match toml::Deserializer::parse(text) {
        Ok(de) => de,
        Err(e) => bail!("{}", describe_toml_error(origin, text, &e, None)),
    };
    serde_path_to_error::deserialize::<_, RawManifest>(de).map_err(|e| {
        let path = e.path().to_string();
        let key = (path != ".").then_some(path);
        anyhow::anyhow!(
            "{}",
            describe_toml_error(origin, text, e.inner(), key.as_deref())
        )
    })
}

fn describe_toml_error(
    origin: &str,
    text: &str,
    err: &toml::de::Error,
    key: Option<&str>,
) -> String {
    let at = match err.span() {
        Some(span) => locate_span(origin, text, span).to_string(),
        None => format!("{origin}:?:?"),
    };
    let message = err.message().trim_end();
    match key {
        Some(key) => format!("{at}: key `{key}`: {message}"),
        None => format!("{at}: {message}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str) -> String {
        format!(
            "[[dataset]]\nname = \"{name}\"\npath = \"{name}/f.txt\"\nurl = \"https://example.invalid/{name}\"\nsha256 = \"{}\"\nbytes = 3\nlicence = \"MIT\"\nwhat = \"test\"\n",
            "0".repeat(64)
        )
    }

    #[test]
    fn embedded_manifest_parses() {
        let m = Manifest::embedded();
        assert!(m.find("tinyshakespeare").is_ok());
    }

    #[test]
    fn line_and_column() {
        assert_eq!(line_col("ab\ncd", 0), (1, 1));
        assert_eq!(line_col("ab\ncd", 4), (2, 2));
        assert_eq!(line_col("ab\ncd", 99), (2, 3));
    }

    #[test]
    fn good_manifest() {
        let text = format!("{}\n{}", entry("a"), entry("b"));
        let m = Manifest::parse(&text, "m.toml").unwrap();
        assert_eq!(m.names(), ["a", "b"]);
        assert_eq!(m.datasets[1].bytes, 3);
    }

    #[test]
    fn empty_manifest_has_no_datasets() {
        let m = Manifest::parse("# nothing\n", "m.toml").unwrap();
        assert!(m.datasets.is_empty());
        let e = m.find("x").unwrap_err().to_string();
        assert!(e.contains("no datasets"), "{e}");
    }

    #[test]
    fn wrong_type_names_line_and_key() {
        let text = format!("{}\n{}", entry("a"), entry("b")).replace(
            "bytes = 3\nlicence = \"MIT\"\nwhat = \"test\"\n\n[[dataset]]\nname = \"b\"",
            "bytes = \"three\"\nlicence = \"MIT\"\nwhat = \"test\"\n\n[[dataset]]\nname = \"b\"",
        );
        let e = Manifest::parse(&text, "m.toml").unwrap_err().to_string();
        assert!(e.starts_with("m.toml:6:9:"), "{e}");
        assert!(e.contains("dataset[0].bytes"), "{e}");
    }

    #[test]
    fn unknown_key_is_reported() {
        let text = entry("a").replace("sha256", "sha265");
        let e = Manifest::parse(&text, "m.toml").unwrap_err().to_string();
        assert!(e.starts_with("m.toml:5:"), "{e}");
        assert!(e.contains("sha265"), "{e}");
    }

    #[test]
    fn missing_key_is_reported() {
        let text = entry("a").replace("licence = \"MIT\"\n", "");
        let e = Manifest::parse(&text, "m.toml").unwrap_err().to_string();
        assert!(e.starts_with("m.toml:"), "{e}");
        assert!(e.contains("licence"), "{e}");
    }

    #[test]
    fn syntax_error_has_line() {
        let text = format!("{}name = \n", entry("a"));
        let e = Manifest::parse(&text, "m.toml").unwrap_err().to_string();
        assert!(e.starts_with("m.toml:9:"), "{e}");
    }

    #[test]
    fn bad_values_are_rejected() {
        let bad_sha = entry("a").replace(&"0".repeat(64), "abc");
        let e = Manifest::parse(&bad_sha, "m.toml").unwrap_err().to_string();
        assert!(e.starts_with("m.toml:5:10:"), "{e}");
        assert!(e.contains("dataset[0].sha256"), "{e}");

        let bad_path = entry("a").replace("a/f.txt", "../f.txt");
        let e = Manifest::parse(&bad_path, "m.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("dataset[0].path"), "{e}");

        let abs_path = entry("a").replace("a/f.txt", "/etc/f.txt");
        assert!(Manifest::parse(&abs_path, "m.toml").is_err());

        let bad_url = entry("a").replace("https://", "ftp://");
        let e = Manifest::parse(&bad_url, "m.toml").unwrap_err().to_string();
        assert!(e.contains("dataset[0].url"), "{e}");

        let twice = format!("{}\n{}", entry("a"), entry("a"));
        let e = Manifest::parse(&twice, "m.toml").unwrap_err().to_string();
        assert!(e.starts_with("m.toml:11:8:"), "{e}");
        assert!(e.contains("already defined"), "{e}");
    }

    #[test]
    fn unknown_name_lists_known_ones() {
        let m = Manifest::parse(&entry("alpha"), "m.toml").unwrap();
        let e = m.find("beta").unwrap_err().to_string();
        assert!(e.contains("`beta`") && e.contains("alpha"), "{e}");
    }
}
