//! The speculative decoding loop on stories260K: γ = 0 is plain decoding, the
//! `gumbel` rule reproduces plain seeded sampling whatever the drafter, caches
//! roll back correctly, and the lossless rules emit the target's distribution.

mod common;

use candle_core::Device;
use workbench::model::llama::Model;
use workbench::model::llama2c;
use workbench::model::transforms::weight_variant;
use workbench::speculative::cached::CachedModel;
use workbench::speculative::decode::{plain, speculative, Settings, SpecRule};
use workbench::speculative::drafter::{Drafter, ModelDrafter, NgramDrafter};
use workbench::speculative::sampling::distribution;

fn stories260k() -> Option<Model> {
    let path = common::mirror()?.join("stories260K/stories260K.bin");
    let (config, weights) = llama2c::load(&path, &Device::Cpu).unwrap();
    Some(Model::from_weights(config, weights).unwrap())
}

/// The model with every linear weight quantized by `variant` (e.g. `w4`).
fn quantized(model: &Model, variant: &str) -> Model {
    let mut m = model.clone();
    let transform = weight_variant(variant).unwrap().unwrap();
    for linear in m.linears_mut() {
        let mut config = linear.config().clone();
        config.weight_transform = Some(transform.clone());
        linear.configure(config).unwrap();
    }
    m
}

fn drafters(model: &Model) -> Vec<Box<dyn Drafter>> {
    let mut all: Vec<Box<dyn Drafter>> = vec![Box::new(NgramDrafter { n: 2, vocab: 512 })];
    for variant in ["w8", "w4", "w3"] {
        all.push(Box::new(ModelDrafter {
            label: variant.into(),
            model: CachedModel::new(quantized(model, variant)),
        }));
    }
    all
}

const PROMPT: [u32; 4] = [1, 403, 407, 261];

#[test]
fn gamma_zero_is_plain_decoding_for_every_rule() {
    let Some(model) = stories260k() else { return };
    let expected = plain(&mut CachedModel::new(model.clone()), &PROMPT, 40, 0.8, 3).unwrap();
    for rule in [SpecRule::Standard, SpecRule::Gumbel, SpecRule::Naive] {
        let mut target = CachedModel::new(model.clone());
        let mut drafter = ModelDrafter {
            label: "w4".into(),
            model: CachedModel::new(quantized(&model, "w4")),
        };
        let settings = Settings {
            gamma: 0,
            temperature: 0.8,
            seed: 3,
            rule,
        };
        let g = speculative(&mut target, &mut drafter, &PROMPT, 40, settings).unwrap();
        assert_eq!(g.tokens, expected, "{rule:?}");
        assert_eq!(g.target_calls, 40);
        assert_eq!(g.drafted, 0);
    }
}

#[test]
fn gumbel_speculation_reproduces_plain_sampling_whatever_the_drafter() {
    let Some(model) = stories260k() else { return };
    for (temperature, seed) in [(1.0, 11), (0.6, 12), (0.0, 13)] {
        let expected = plain(
            &mut CachedModel::new(model.clone()),
            &PROMPT,
            60,
            temperature,
            seed,
        )
        .unwrap();
        for mut drafter in drafters(&model) {
            for gamma in [1, 3, 6] {
                let mut target = CachedModel::new(model.clone());
                let settings = Settings {
                    gamma,
                    temperature,
                    seed,
                    rule: SpecRule::Gumbel,
                };
                let g = speculative(&mut target, drafter.as_mut(), &PROMPT, 60, settings).unwrap();
                assert_eq!(
                    g.tokens,
                    expected,
                    "drafter {} γ {gamma} T {temperature}",
                    drafter.name()
                );
                // Accepted drafts save target calls (never more than plain decoding).
                let accepted = g.verified.iter().filter(|v| v.accepted).count() as u64;
                assert_eq!(g.target_calls, 60 - accepted, "{}", drafter.name());
            }
        }
    }
}

#[test]
fn a_perfect_drafter_is_always_accepted_and_caches_roll_back() {
    let Some(model) = stories260k() else { return };
    // The target drafting for itself: p = q, so the standard rule accepts every
    // draft and each call yields γ + 1 tokens.
    let mut target = CachedModel::new(model.clone());
    let mut drafter = ModelDrafter {
        label: "self".into(),
        model: CachedModel::new(model.clone()),
    };
    let settings = Settings {
        gamma: 4,
        temperature: 1.0,
        seed: 5,
        rule: SpecRule::Standard,
    };
    let g = speculative(&mut target, &mut drafter, &PROMPT, 50, settings).unwrap();
    assert!(g.verified.iter().all(|v| v.accepted));
    assert_eq!(g.target_calls, 10);
    for v in &g.verified {
        // p and q agree up to the rounding of prefill against decode shapes.
        assert!((v.exact_standard - 1.0).abs() < 1e-4 && (v.exact_gumbel - 1.0).abs() < 1e-4);
    }
    // A poor drafter is rejected often; the target's cache then holds exactly the
    // committed tokens but the last, whatever was rolled back.
    let mut target = CachedModel::new(model.clone());
    let mut drafter = ModelDrafter {
        label: "w3".into(),
        model: CachedModel::new(quantized(&model, "w3")),
    };
    let g = speculative(&mut target, &mut drafter, &PROMPT, 50, settings).unwrap();
    let rejected = g.verified.iter().filter(|v| !v.accepted).count();
    assert!(rejected > 5, "only {rejected} rejections");
    assert!(target.cached() < PROMPT.len() + 50);
    // Continuing from the cache gives the same next-token logits as a fresh model.
    let mut sequence = PROMPT.to_vec();
    sequence.extend(&g.tokens);
    let cached = target.logits(&sequence, sequence.len() - 1).unwrap();
    let fresh = CachedModel::new(model.clone())
        .logits(&sequence, sequence.len() - 1)
        .unwrap();
    let worst = cached[0]
        .iter()
        .zip(&fresh[0])
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(worst < 1e-3, "cached and fresh logits differ by {worst}");
}

#[test]
fn lossless_rules_emit_the_target_distribution() {
    let Some(model) = stories260k() else { return };
    let temperature = 1.0;
    // The exact target distribution of the first generated token.
    let p = distribution(
        &CachedModel::new(model.clone())
            .logits(&PROMPT, PROMPT.len() - 1)
            .unwrap()[0],
        temperature,
    );
    let runs = 2000;
    for rule in [SpecRule::Standard, SpecRule::Gumbel, SpecRule::Naive] {
        let mut target = CachedModel::new(model.clone());
        let mut drafter = ModelDrafter {
            label: "w3".into(),
            model: CachedModel::new(quantized(&model, "w3")),
        };
        let mut counts = vec![0u64; p.len()];
        let mut rejections = 0;
        for seed in 0..runs {
            let settings = Settings {
                gamma: 1,
                temperature,
                seed,
                rule,
            };
            // Two tokens: the first is drafted and verified (γ = 1).
            let g = speculative(&mut target, &mut drafter, &PROMPT, 2, settings).unwrap();
            counts[g.tokens[0] as usize] += 1;
            rejections += g.verified.iter().filter(|v| !v.accepted).count();
        }
        assert!(rejections > 100, "{rule:?}: {rejections} rejections");
        let test = workbench::primitives::stats::chi_square(&counts, &p);
        assert!(
            test.p_value > 1e-3,
            "{rule:?}: chi-square p = {} ({} degrees of freedom)",
            test.p_value,
            test.dof
        );
    }
}

#[test]
fn the_speculation_study_runs_and_reports() {
    let Some((dir, data)) = common::with_stories260k("speculation") else {
        return;
    };
    let out = common::run_config(
        dir.path(),
        &data,
        "speculation",
        "kind = \"speculation\"\nseed = 2\ndrafters = [\"w8\", \"w3\", \"ngram2\"]\nrules = [\"standard\", \"gumbel\"]\n\
         gammas = [3]\ntemperatures = [0.0, 1.0]\nprompt_length = 6\ntokens = 24\n\
         [model]\ncheckpoint = \"stories260K\"\n[data]\nsequences = 4\nlength = 32\n",
    );
    let text = std::fs::read_to_string(out.join("tables/speculation_runs.csv")).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |n: &str| header.iter().position(|h| *h == n).unwrap();
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 3 * 2 * 2);
    let get = |d: &str, r: &str, t: &str, what: &str| -> f64 {
        rows.iter()
            .find(|x| x[col("drafter")] == d && x[col("rule")] == r && x[col("temperature")] == t)
            .unwrap()[col(what)]
        .parse()
        .unwrap()
    };
    for d in ["w8", "w3", "ngram2"] {
        for t in ["0.0", "1.0"] {
            // Drafter invariance, reported as a column.
            assert_eq!(get(d, "gumbel", t, "matches_plain"), 1.0, "{d} T {t}");
            assert!(get(d, "standard", t, "tokens_per_call") >= 1.0);
        }
    }
    // A better drafter gets more tokens per call.
    assert!(
        get("w8", "standard", "1.0", "tokens_per_call")
            > get("w3", "standard", "1.0", "tokens_per_call")
    );
    assert!(out
        .join("plots/tokens_per_call_vs_temperature.png")
        .is_file());
    assert!(out.join("tables/speculation_positions.csv").is_file());
}
