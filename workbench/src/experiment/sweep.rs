//! The `[sweep]` table: lists of values for any key, run as their cartesian product.
//!
//! A leaf of `[sweep]` is a list; its path names the key it replaces. Inside an
//! array of tables (such as `[[pairs]]`) a step picks elements by `name`, by
//! index, or all of them with `*`:
//!
//! ```toml
//! [sweep]
//! temperatures = [[0.5], [1.0], [2.0]]
//! pairs.dirichlet64.sigma = [0.25, 0.5, 1.0]
//! ```

use super::config::{ConfigErrors, ConfigSource, KeyPath, Seg};

/// One swept key and its values.
#[derive(Clone, Debug)]
pub struct Axis {
    /// The path as written under `[sweep]` (e.g. `pairs.dirichlet64.sigma`).
    pub label: String,
    /// The steps of the path.
    steps: Vec<String>,
    /// The values, in order.
    pub values: Vec<toml::Value>,
    /// Where the axis is written (for errors).
    source: KeyPath,
}

/// One point of the sweep: the config with the axis values substituted.
#[derive(Clone, Debug)]
pub struct SweepPoint {
    /// Position in the cartesian product (the last axis varies fastest).
    pub index: usize,
    /// `(axis label, value)` for each axis.
    pub assignments: Vec<(String, toml::Value)>,
    /// The config of this point, without `kind` and `sweep`.
    pub table: toml::Table,
    /// Which keys were replaced, and from which `[sweep]` entry.
    pub overrides: Vec<(KeyPath, KeyPath)>,
}

/// Reads the axes of a `[sweep]` table.
pub fn axes(source: &ConfigSource, sweep: &toml::Value) -> Result<Vec<Axis>, ConfigErrors> {
    let root = KeyPath::root().key("sweep");
    let Some(table) = sweep.as_table() else {
        return Err(source
            .error_at(
                &root,
                "expected a table of lists, e.g. `[sweep]` then `temperatures = [[0.5], [1.0]]`",
            )
            .into());
    };
    let mut axes = Vec::new();
    let mut errors = Vec::new();
    flatten(
        source,
        table,
        &root,
        &mut Vec::new(),
        &mut axes,
        &mut errors,
    );
    if errors.is_empty() {
        Ok(axes)
    } else {
        Err(ConfigErrors(errors))
    }
}

fn flatten(
    source: &ConfigSource,
    table: &toml::Table,
    at: &KeyPath,
    steps: &mut Vec<String>,
    axes: &mut Vec<Axis>,
    errors: &mut Vec<super::config::ConfigError>,
) {
    for (key, value) in table {
        let here = at.key(key);
        // A quoted key such as "pairs.a.sigma" counts as a dotted path.
        let parts: Vec<String> = key.split('.').map(str::to_string).collect();
        let depth = steps.len();
        steps.extend(parts);
        match value {
            toml::Value::Table(t) => flatten(source, t, &here, steps, axes, errors),
            toml::Value::Array(values) if values.is_empty() => errors.push(source.error_at(
                &here,
                "empty sweep list; expected at least one value",
            )),
            toml::Value::Array(values) => axes.push(Axis {
                label: steps.join("."),
                steps: steps.clone(),
                values: values.clone(),
                source: here,
            }),
            other => errors.push(source.error_at(
                &here,
                format!(
                    "expected a list of values to sweep over, found a {}; write `[{}]` for a single value",
                    other.type_str(),
                    other
                ),
            )),
        }
        steps.truncate(depth);
    }
}

/// Every point of the cartesian product of `axes` applied to `base`.
pub fn expand(
    source: &ConfigSource,
    base: &toml::Table,
    axes: &[Axis],
) -> Result<Vec<SweepPoint>, ConfigErrors> {
    // Resolve each axis to concrete key paths once; the base shape does not change.
    let mut targets = Vec::new();
    let mut errors = Vec::new();
    for axis in axes {
        match resolve(base, &axis.steps) {
            Ok(paths) => targets.push(paths),
            Err(message) => {
                errors.push(source.error_at(&axis.source, message));
                targets.push(Vec::new());
            }
        }
    }
    if !errors.is_empty() {
        return Err(ConfigErrors(errors));
    }
    let total: usize = axes.iter().map(|a| a.values.len()).product();
    let mut points = Vec::with_capacity(total);
    for index in 0..total {
        let mut table = base.clone();
        let mut assignments = Vec::new();
        let mut overrides = Vec::new();
        let mut rest = index;
        let mut choice = vec![0; axes.len()];
        for (a, axis) in axes.iter().enumerate().rev() {
            choice[a] = rest % axis.values.len();
            rest /= axis.values.len();
        }
        for ((axis, paths), &c) in axes.iter().zip(&targets).zip(&choice) {
            let value = axis.values[c].clone();
            for path in paths {
                set(&mut table, path, value.clone());
                overrides.push((path.clone(), axis.source.index(c)));
            }
            assignments.push((axis.label.clone(), value));
        }
        points.push(SweepPoint {
            index,
            assignments,
            table,
            overrides,
        });
    }
    Ok(points)
}

/// The concrete paths an axis replaces.
fn resolve(base: &toml::Table, steps: &[String]) -> Result<Vec<KeyPath>, String> {
    let mut frontier: Vec<(KeyPath, Option<&toml::Value>)> = vec![(KeyPath::root(), None)];
    for (i, step) in steps.iter().enumerate() {
        let last = i + 1 == steps.len();
        let mut next = Vec::new();
        for (path, value) in frontier {
            let table = match value {
                None => Some(base),
                Some(toml::Value::Table(t)) => Some(t),
                _ => None,
            };
            if let Some(table) = table {
                match table.get(step) {
                    Some(v) => next.push((path.key(step), Some(v))),
                    // The leaf may be a key the config leaves at its default.
                    None if last => next.push((path.key(step), None)),
                    None => {
                        return Err(format!(
                            "the config has no key `{}` to sweep",
                            steps[..=i].join(".")
                        ))
                    }
                }
                continue;
            }
            let Some(toml::Value::Array(items)) = value else {
                return Err(format!(
                    "cannot descend into `{}`: it is not a table or an array of tables",
                    steps[..i].join(".")
                ));
            };
            let picked: Vec<usize> = if step == "*" {
                (0..items.len()).collect()
            } else if let Ok(n) = step.parse::<usize>() {
                if n < items.len() {
                    vec![n]
                } else {
                    Vec::new()
                }
            } else {
                (0..items.len())
                    .filter(|&k| {
                        items[k].get("name").and_then(|n| n.as_str()) == Some(step.as_str())
                    })
                    .collect()
            };
            if picked.is_empty() {
                return Err(format!(
                    "no element of `{}` is named or numbered `{step}`",
                    steps[..i].join(".")
                ));
            }
            for k in picked {
                next.push((path.index(k), Some(&items[k])));
            }
        }
        frontier = next;
    }
    Ok(frontier.into_iter().map(|(p, _)| p).collect())
}

fn set(table: &mut toml::Table, path: &KeyPath, value: toml::Value) {
    let (first, rest) = path.0.split_first().expect("non-empty sweep path");
    let Seg::Key(key) = first else {
        unreachable!("top level is a table")
    };
    if rest.is_empty() {
        table.insert(key.clone(), value);
        return;
    }
    let mut slot = table.get_mut(key).expect("resolved path exists");
    for (i, seg) in rest.iter().enumerate() {
        let last = i + 1 == rest.len();
        slot = match (seg, slot) {
            (Seg::Key(k), toml::Value::Table(t)) if last => {
                t.insert(k.clone(), value);
                return;
            }
            (Seg::Key(k), toml::Value::Table(t)) => t.get_mut(k).expect("resolved path exists"),
            (Seg::Index(n), toml::Value::Array(a)) if last => {
                a[*n] = value;
                return;
            }
            (Seg::Index(n), toml::Value::Array(a)) => &mut a[*n],
            _ => unreachable!("resolved path matches the table"),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn load(text: &str) -> (ConfigSource, toml::Table) {
        ConfigSource::parse(Path::new("s.toml"), text.to_string()).unwrap()
    }

    #[test]
    fn cartesian_product_with_names_and_wildcards() {
        let (src, mut t) = load(
            "trials = 10\n[[pairs]]\nname = \"a\"\nsigma = 1.0\n[[pairs]]\nname = \"b\"\nsigma = 2.0\n\
             [sweep]\ntrials = [1, 2]\npairs.b.sigma = [0.1, 0.2, 0.3]\n\"pairs.*.vocab\" = [7]\n",
        );
        let sweep = t.remove("sweep").unwrap();
        let axes = axes(&src, &sweep).unwrap();
        assert_eq!(axes.len(), 3);
        let points = expand(&src, &t, &axes).unwrap();
        assert_eq!(points.len(), 6);
        let p = &points[4]; // trials = 2, sigma = 0.2
        assert_eq!(p.table["trials"].as_integer(), Some(2));
        let pairs = p.table["pairs"].as_array().unwrap();
        assert_eq!(pairs[0]["sigma"].as_float(), Some(1.0));
        assert_eq!(pairs[1]["sigma"].as_float(), Some(0.2));
        assert_eq!(pairs[0]["vocab"].as_integer(), Some(7));
        assert_eq!(p.assignments[1].0, "pairs.b.sigma");
    }

    #[test]
    fn bad_axes_are_located() {
        let (src, mut t) = load("trials = 10\n[sweep]\ntrials = []\nseed = 3\n");
        let e = axes(&src, &t.remove("sweep").unwrap()).unwrap_err();
        assert_eq!(e.0.len(), 2);
        assert_eq!((e.0[0].line, e.0[0].key.as_str()), (3, "sweep.trials"));
        assert!(e.0[0].message.contains("empty sweep list"));
        assert_eq!(e.0[1].line, 4);

        let (src, mut t) = load("[[pairs]]\nname = \"a\"\n[sweep]\npairs.zz.sigma = [1]\n");
        let ax = axes(&src, &t.remove("sweep").unwrap()).unwrap();
        let e = expand(&src, &t, &ax).unwrap_err();
        assert!(e.0[0].message.contains("named or numbered `zz`"), "{e}");
        assert_eq!(e.0[0].line, 4);
    }
}
