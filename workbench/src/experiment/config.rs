//! Reading experiment configs: TOML text, key paths, and errors that name the
//! file, line, column and key of what is wrong.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// One step of a [`KeyPath`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Seg {
    /// A table key.
    Key(String),
    /// An array index.
    Index(usize),
}

/// The path of a value in a config, e.g. `pairs[1].p`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct KeyPath(pub Vec<Seg>);

impl KeyPath {
    /// The root (the whole document).
    pub fn root() -> Self {
        KeyPath(Vec::new())
    }

    /// This path extended by a key.
    pub fn key(&self, key: &str) -> Self {
        let mut v = self.0.clone();
        v.push(Seg::Key(key.to_string()));
        KeyPath(v)
    }

    /// This path extended by an index.
    pub fn index(&self, index: usize) -> Self {
        let mut v = self.0.clone();
        v.push(Seg::Index(index));
        KeyPath(v)
    }

    /// Whether `self` starts with `prefix`.
    pub fn starts_with(&self, prefix: &KeyPath) -> bool {
        self.0.len() >= prefix.0.len() && self.0[..prefix.0.len()] == prefix.0[..]
    }

    /// The path without its last step.
    pub fn parent(&self) -> Option<KeyPath> {
        if self.0.is_empty() {
            None
        } else {
            Some(KeyPath(self.0[..self.0.len() - 1].to_vec()))
        }
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return write!(f, "(top level)");
        }
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                Seg::Key(k) if i == 0 => write!(f, "{k}")?,
                Seg::Key(k) => write!(f, ".{k}")?,
                Seg::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// A problem in a config, located in its file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The config file as given.
    pub file: String,
    /// 1-based line (0 when the file could not be read).
    pub line: usize,
    /// 1-based column in characters.
    pub column: usize,
    /// The key the problem is about.
    pub key: String,
    /// What is wrong and what was expected.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: key `{}`: {}",
            self.file, self.line, self.column, self.key, self.message
        )
    }
}

/// Every problem found in a config (validation reports them all at once).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl From<ConfigError> for ConfigErrors {
    fn from(e: ConfigError) -> Self {
        ConfigErrors(vec![e])
    }
}

/// Where a key and its value sit in the text.
#[derive(Clone, Debug)]
struct Node {
    path: KeyPath,
    key_span: Option<Range<usize>>,
    value_span: Option<Range<usize>>,
}

/// A config file's text, parsed, with the position of every key in it.
#[derive(Clone, Debug)]
pub struct ConfigSource {
    /// The file as given on the command line.
    pub path: PathBuf,
    /// Its text.
    pub text: String,
    nodes: Vec<Node>,
}

impl ConfigSource {
    /// Reads and parses `path`.
    pub fn load(path: &Path) -> Result<(ConfigSource, toml::Table), ConfigErrors> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.display().to_string(),
            line: 0,
            column: 0,
            key: KeyPath::root().to_string(),
            message: format!("cannot read the config file: {e}"),
        })?;
        Self::parse(path, text)
    }

    /// Parses `text` as the contents of `path`.
    pub fn parse(path: &Path, text: String) -> Result<(ConfigSource, toml::Table), ConfigErrors> {
        let mut source = ConfigSource {
            path: path.to_path_buf(),
            text,
            nodes: Vec::new(),
        };
        let table: toml::Table = match toml::from_str(&source.text) {
            Ok(t) => t,
            Err(e) => {
                let offset = e.span().map_or(0, |s| s.start);
                let (line, column) = source.line_column(offset);
                return Err(ConfigError {
                    file: source.file(),
                    line,
                    column,
                    key: "(syntax)".to_string(),
                    message: format!("invalid TOML: {}", e.message().trim()),
                }
                .into());
            }
        };
        if let Ok(doc) = toml_edit::Document::parse(source.text.clone()) {
            let mut nodes = Vec::new();
            collect_table(doc.as_table(), &KeyPath::root(), &mut nodes);
            source.nodes = nodes;
        }
        Ok((source, table))
    }

    /// The file name as shown in errors.
    pub fn file(&self) -> String {
        self.path.display().to_string()
    }

    /// 1-based line and column of a byte offset.
    pub fn line_column(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before[line_start..].chars().count() + 1;
        (line, column)
    }

    /// The byte offset of the key at `path` (or of its value, or of the nearest
    /// enclosing key that exists in the text).
    pub fn offset_of(&self, path: &KeyPath) -> usize {
        let mut p = Some(path.clone());
        while let Some(current) = p {
            if let Some(node) = self.nodes.iter().find(|n| n.path == current) {
                if let Some(s) = node.key_span.clone().or(node.value_span.clone()) {
                    return s.start;
                }
            }
            p = current.parent();
        }
        0
    }

    /// The byte span of the value at `path`, if it is in the text.
    pub fn value_span(&self, path: &KeyPath) -> Option<Range<usize>> {
        self.nodes
            .iter()
            .find(|n| &n.path == path)
            .and_then(|n| n.value_span.clone())
    }

    /// An error about the key at `path`.
    pub fn error_at(&self, path: &KeyPath, message: impl Into<String>) -> ConfigError {
        let (line, column) = self.line_column(self.offset_of(path));
        ConfigError {
            file: self.file(),
            line,
            column,
            key: path.to_string(),
            message: message.into(),
        }
    }
}

fn collect_table(table: &toml_edit::Table, path: &KeyPath, nodes: &mut Vec<Node>) {
    for (key, item) in table.iter() {
        let child = path.key(key);
        let key_span = table.key(key).and_then(|k| k.span());
        collect_item(item, child, key_span, nodes);
    }
}

fn collect_item(
    item: &toml_edit::Item,
    path: KeyPath,
    key_span: Option<Range<usize>>,
    nodes: &mut Vec<Node>,
) {
    nodes.push(Node {
        path: path.clone(),
        key_span,
        value_span: item.span(),
    });
    match item {
        toml_edit::Item::Table(t) => collect_table(t, &path, nodes),
        toml_edit::Item::ArrayOfTables(a) => {
            for (i, t) in a.iter().enumerate() {
                let child = path.index(i);
                nodes.push(Node {
                    path: child.clone(),
                    key_span: None,
                    value_span: t.span(),
                });
                collect_table(t, &child, nodes);
            }
        }
        toml_edit::Item::Value(v) => collect_value(v, &path, nodes),
        toml_edit::Item::None => {}
    }
}

fn collect_value(value: &toml_edit::Value, path: &KeyPath, nodes: &mut Vec<Node>) {
    match value {
        toml_edit::Value::Array(a) => {
            for (i, v) in a.iter().enumerate() {
                let child = path.index(i);
                nodes.push(Node {
                    path: child.clone(),
                    key_span: None,
                    value_span: v.span(),
                });
                collect_value(v, &child, nodes);
            }
        }
        toml_edit::Value::InlineTable(t) => {
            for (key, v) in t.iter() {
                let child = path.key(key);
                nodes.push(Node {
                    path: child.clone(),
                    key_span: t.key(key).and_then(|k| k.span()),
                    value_span: v.span(),
                });
                collect_value(v, &child, nodes);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locates_keys_and_reports_syntax_errors() {
        let text = "kind = \"acceptance\"\n\n[[pairs]]\nname = \"a\"\np = [0.5, 0.5]\n".to_string();
        let (src, table) = ConfigSource::parse(Path::new("x.toml"), text).unwrap();
        assert!(table.contains_key("pairs"));
        let p = KeyPath::root().key("pairs").index(0).key("p");
        assert_eq!(p.to_string(), "pairs[0].p");
        let e = src.error_at(&p, "bad");
        assert_eq!((e.line, e.column), (5, 1));
        let e = src.error_at(&p.index(1), "bad");
        assert_eq!((e.line, e.column), (5, 11));
        // A key absent from the text is reported at its nearest present parent.
        let e = src.error_at(&KeyPath::root().key("pairs").index(0).key("q"), "missing");
        assert_eq!(e.line, 3);

        let err = ConfigSource::parse(Path::new("y.toml"), "a = [1, 2\n".into()).unwrap_err();
        assert_eq!(err.0[0].file, "y.toml");
        assert!(err.0[0].line >= 1);
        assert!(err.to_string().contains("invalid TOML"));
    }
}
