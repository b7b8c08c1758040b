//! Turning a validated `[[pairs]]` entry into its (p, q) vectors.

use super::config::PairConfig;
use crate::primitives::distribution::{normalized, with_temperature};
use crate::primitives::families;

/// The target and draft distributions of a pair, before any temperature.
pub fn build(pair: &PairConfig) -> anyhow::Result<(Vec<f64>, Vec<f64>)> {
    let family = pair.family.as_deref().unwrap_or("explicit");
    let vocab = pair.vocab.unwrap_or(0);
    Ok(match family {
        "explicit" => {
            let p = pair
                .p
                .as_ref()
                .ok_or_else(|| anyhow::anyhow!("explicit pair without p"))?;
            let q = pair
                .q
                .as_ref()
                .ok_or_else(|| anyhow::anyhow!("explicit pair without q"))?;
            (normalized(p), normalized(q))
        }
        "identical" => {
            let p = match pair.base.as_deref() {
                Some("zipf") => families::zipf(vocab, pair.exponent.unwrap_or(1.0)),
                _ => families::uniform(vocab),
            };
            (p.clone(), p)
        }
        "zipf" => {
            let p = families::zipf(vocab, pair.exponent.unwrap_or(1.0));
            let q = with_temperature(&p, pair.draft_temperature.unwrap_or(2.0));
            (p, q)
        }
        "dirichlet" => {
            let seed = pair.seed.unwrap_or(0);
            let p = families::dirichlet(vocab, pair.alpha.unwrap_or(1.0), seed)
                .map_err(anyhow::Error::msg)?;
            let q = families::perturbed(&p, pair.sigma.unwrap_or(0.5), seed);
            (p, q)
        }
        "reverse" => {
            let p = families::zipf(vocab, pair.exponent.unwrap_or(1.0));
            let q = families::reversed(&p);
            (p, q)
        }
        other => anyhow::bail!("unknown family {other}"),
    })
}
