//! The speculative decoding loop on stories260K: γ = 0 is plain decoding, the
//! `gumbel` rule reproduces plain seeded sampling whatever the drafter, caches
//! roll back correctly, and the lossless rules emit the target's distribution.

mod common;

use std::collections::HashMap;

use candle_core::Device;
use workbench::model::llama::Model;
use workbench::model::llama2c;
use workbench::model::transforms::weight_variant;
use workbench::primitives::rotation::Rotation;
use workbench::speculative::cached::CachedModel;
use workbench::speculative::decode::{plain, speculative, Settings, SpecRule};
use workbench::speculative::drafter::{Drafter, ModelDrafter, NgramDrafter};
use workbench::speculative::lossless::{likely_continuations, test};
use workbench::speculative::sampling::{distribution, Shaping};

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
    let expected = plain(
        &mut CachedModel::new(model.clone()),
        &PROMPT,
        40,
        Shaping::temperature(0.8),
        3,
    )
    .unwrap();
    for rule in [SpecRule::Standard, SpecRule::Gumbel, SpecRule::Naive] {
        let mut target = CachedModel::new(model.clone());
        let mut drafter = ModelDrafter {
            label: "w4".into(),
            model: CachedModel::new(quantized(&model, "w4")),
        };
        let settings = Settings::new(0, 0.8, 3, rule);
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
            Shaping::temperature(temperature),
            seed,
        )
        .unwrap();
        for mut drafter in drafters(&model) {
            for gamma in [1, 3, 6] {
                let mut target = CachedModel::new(model.clone());
                let settings = Settings::new(gamma, temperature, seed, SpecRule::Gumbel);
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
    let settings = Settings::new(4, 1.0, 5, SpecRule::Standard);
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
            let settings = Settings::new(1, temperature, seed, rule);
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
fn the_speculation_study_runs_reports_and_reproduces() {
    let Some((dir, data)) = common::with_stories260k("speculation") else {
        return;
    };
    let config = "kind = \"speculation\"\nseed = 2\n\
         drafters = [\"w8\", \"w3\", \"w3+hadamard\", \"ngram2\"]\nrules = [\"standard\", \"gumbel\"]\n\
         gammas = [3]\ntemperatures = [0.0, 1.0]\nprompt_length = 6\ntokens = 24\n\
         [model]\ncheckpoint = \"stories260K\"\n[data]\nsequences = 4\nlength = 32\n\
         [lossless]\ndrafter = \"w8\"\nrules = [\"gumbel\", \"standard\"]\nhorizon = 2\nsamples = 400\n";
    let out = common::run_config(dir.path(), &data, "speculation", config);
    let text = std::fs::read_to_string(out.join("tables/speculation_runs.csv")).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |n: &str| header.iter().position(|h| *h == n).unwrap();
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 4 * 2 * 2);
    let get = |d: &str, r: &str, t: &str, what: &str| -> f64 {
        rows.iter()
            .find(|x| x[col("drafter")] == d && x[col("rule")] == r && x[col("temperature")] == t)
            .unwrap()[col(what)]
        .parse()
        .unwrap()
    };
    for d in ["w8", "w3", "w3+hadamard", "ngram2"] {
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
    for plot in [
        "tokens_per_call_vs_temperature",
        "observed_vs_exact_acceptance",
        "acceptance_vs_drafter_bits",
    ] {
        assert!(out.join(format!("plots/{plot}.png")).is_file(), "{plot}");
    }
    // The losslessness table: plain sampling and both rules pass.
    let lossless = std::fs::read_to_string(out.join("tables/speculation_lossless.csv")).unwrap();
    let mut lines = lossless.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let p = header.iter().position(|h| *h == "p_value").unwrap();
    let methods: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(
        methods.iter().map(|r| r[0]).collect::<Vec<_>>(),
        ["plain", "gumbel", "standard"]
    );
    for r in &methods {
        assert!(r[p].parse::<f64>().unwrap() > 1e-3, "{r:?}");
    }
    assert!(out.join("tables/speculation_timing.csv").is_file());
    // A rerun on another thread count gives identical tables (timing aside).
    let config_path = dir.path().join("speculation.toml");
    let again = dir.path().join("again");
    let o = common::workbench(&data)
        .args([
            "run",
            config_path.to_str().unwrap(),
            "--quiet",
            "--threads",
            "1",
            "--out",
        ])
        .arg(&again)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for table in [
        "speculation_runs",
        "speculation_positions",
        "speculation_lossless",
    ] {
        let f = format!("tables/{table}.csv");
        assert_eq!(
            std::fs::read(out.join(&f)).unwrap(),
            std::fs::read(again.join(&f)).unwrap(),
            "{table}"
        );
    }
}

/// The target rotated (QuaRot-style) and then quantized by `variant`.
fn rotated_quantized(model: &Model, variant: &str) -> Model {
    let mut m = model.clone();
    workbench::model::rotate::rotate_model(&mut m, Rotation::Hadamard).unwrap();
    let transform = weight_variant(variant).unwrap().unwrap();
    for linear in m.linears_mut() {
        let mut config = linear.config().clone();
        config.weight_transform = Some(transform.clone());
        linear.configure(config).unwrap();
    }
    m
}

fn shaped(temperature: f64, top_k: usize, top_p: f64) -> Shaping {
    Shaping {
        temperature,
        top_k,
        top_p,
    }
}

#[test]
fn filters_and_trees_keep_plain_decoding_and_gumbel_invariance() {
    let Some(model) = stories260k() else { return };
    let mut all: Vec<Box<dyn Drafter>> = drafters(&model);
    all.push(Box::new(ModelDrafter::new(
        "w4+hadamard",
        rotated_quantized(&model, "w4"),
    )));
    for (i, shaping) in [
        shaped(1.0, 20, 1.0),
        shaped(0.8, 0, 0.9),
        shaped(1.2, 50, 0.8),
    ]
    .into_iter()
    .enumerate()
    {
        let seed = 40 + i as u64;
        let expected = plain(
            &mut CachedModel::new(model.clone()),
            &PROMPT,
            40,
            shaping,
            seed,
        )
        .unwrap();
        let settings = |gamma, rule, branches| Settings {
            top_k: shaping.top_k,
            top_p: shaping.top_p,
            branches,
            ..Settings::new(gamma, shaping.temperature, seed, rule)
        };
        // γ = 0 is plain decoding of the filtered target for every rule.
        for rule in SpecRule::ALL {
            let mut target = CachedModel::new(model.clone());
            let mut drafter = NgramDrafter { n: 2, vocab: 512 };
            let g =
                speculative(&mut target, &mut drafter, &PROMPT, 40, settings(0, rule, 1)).unwrap();
            if rule != SpecRule::Greedy {
                assert_eq!(g.tokens, expected, "{rule:?} γ = 0 with {shaping:?}");
            }
        }
        // Gumbel chains and trees reproduce it whatever the drafter, γ and K.
        for drafter in all.iter_mut() {
            for (gamma, branches) in [(2, 1), (5, 1), (2, 2), (4, 3)] {
                let mut target = CachedModel::new(model.clone());
                let g = speculative(
                    &mut target,
                    drafter.as_mut(),
                    &PROMPT,
                    40,
                    settings(gamma, SpecRule::Gumbel, branches),
                )
                .unwrap();
                assert_eq!(
                    g.tokens,
                    expected,
                    "{} γ {gamma} K {branches} {shaping:?}",
                    drafter.name()
                );
                let accepted = g.verified.iter().filter(|v| v.accepted).count() as u64;
                assert_eq!(g.target_calls, 40 - accepted);
            }
        }
    }
}

#[test]
fn tree_verification_rolls_back_to_the_kept_branch() {
    let Some(model) = stories260k() else { return };
    for rule in [SpecRule::SpecInfer, SpecRule::Gumbel] {
        let mut target = CachedModel::new(model.clone());
        let mut drafter = ModelDrafter::new("w3", quantized(&model, "w3"));
        let settings = Settings {
            branches: 3,
            ..Settings::new(3, 1.0, 21, rule)
        };
        let g = speculative(&mut target, &mut drafter, &PROMPT, 50, settings).unwrap();
        let roots: Vec<_> = g.verified.iter().filter(|v| v.index == 0).collect();
        let (kept, rejected) = (
            roots.iter().filter(|v| v.accepted).count(),
            g.verified.iter().filter(|v| !v.accepted).count(),
        );
        assert!(
            kept > 3 && rejected > 3,
            "{rule:?}: {kept} roots kept, {rejected} rejections"
        );
        // Three branches of three drafts per round, every round until the end.
        assert!(g.drafted > 3 * g.target_calls);
        if rule == SpecRule::SpecInfer {
            // SpecInfer's root acceptance has a closed form; it is a probability.
            assert!(roots.iter().all(|v| v
                .exact_rule
                .is_some_and(|e| (0.0..=1.0 + 1e-9).contains(&e))));
        }
        // The cache, left with one row per branch, continues the committed tokens
        // exactly as a fresh model does.
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
        assert!(
            worst < 1e-3,
            "{rule:?}: cached and fresh logits differ by {worst}"
        );
    }
}

/// Continuations of `horizon` tokens from `samples` seeds, as counts.
fn continuations(
    model: &Model,
    drafter_model: &Model,
    settings: Option<Settings>,
    shaping: Shaping,
    horizon: usize,
    samples: u64,
) -> HashMap<Vec<u32>, u64> {
    let mut target = CachedModel::new(model.clone());
    let mut drafter = ModelDrafter::new("w3", drafter_model.clone());
    let mut counts = HashMap::new();
    for seed in 0..samples {
        let tokens = match settings {
            None => plain(&mut target, &PROMPT, horizon, shaping, 1000 + seed).unwrap(),
            Some(s) => {
                let s = Settings {
                    seed: 1000 + seed,
                    ..s
                };
                speculative(&mut target, &mut drafter, &PROMPT, horizon, s)
                    .unwrap()
                    .tokens
            }
        };
        *counts.entry(tokens).or_insert(0) += 1;
    }
    counts
}

#[test]
fn lossless_rules_emit_the_targets_continuations_and_typical_does_not() {
    let Some(model) = stories260k() else { return };
    let (w3, w8) = (quantized(&model, "w3"), quantized(&model, "w8"));
    let (horizon, samples) = (3, 2000);
    for shaping in [shaped(1.0, 0, 1.0), shaped(1.0, 12, 0.9)] {
        let exact = likely_continuations(
            &model,
            &PROMPT,
            horizon,
            shaping,
            2.5 / samples as f64,
            20_000,
        )
        .unwrap();
        let with = |rule, branches| Settings {
            top_k: shaping.top_k,
            top_p: shaping.top_p,
            branches,
            ..Settings::new(2, shaping.temperature, 0, rule)
        };
        let mut methods = vec![
            ("standard", Some(with(SpecRule::Standard, 1))),
            ("gumbel K=2", Some(with(SpecRule::Gumbel, 2))),
            ("specinfer K=2", Some(with(SpecRule::SpecInfer, 2))),
        ];
        if !shaping.filters() {
            methods.push(("plain", None));
            methods.push(("gumbel", Some(with(SpecRule::Gumbel, 1))));
        }
        for (name, settings) in methods {
            let counts = continuations(&model, &w3, settings, shaping, horizon, samples);
            let t = test(&counts, &exact);
            eprintln!("{name} {shaping:?}: {t:?}");
            assert!(t.dof >= 10, "{name}: only {} degrees of freedom", t.dof);
            assert!(
                t.p_value > 1e-3,
                "{name} {shaping:?}: chi-square p = {}",
                t.p_value
            );
        }
        // Negative control: typical acceptance keeps a draft whenever the target
        // finds it plausible enough, so a good (W8) drafter's samples of p pass
        // while the target's rare tokens are emitted only after rejections: the
        // test sees the distortion. (With a poor drafter few drafts are kept and
        // the output is nearly p: W2 drafts gave p = 0.67.)
        let settings = Some(with(SpecRule::Typical, 1));
        let counts = continuations(&model, &w8, settings, shaping, horizon, samples);
        let t = test(&counts, &exact);
        eprintln!("typical {shaping:?}: {t:?}");
        assert!(
            t.p_value < 1e-6,
            "typical {shaping:?}: chi-square p = {}",
            t.p_value
        );
    }
}

// ---- Full draft trees: one target pass with a tree mask. ----

use candle_core::Tensor;
use workbench::model::cache::KvCache;
use workbench::speculative::tree::Shape;

/// A fixed tree after `PROMPT`: depth 3, 2–3 children per node, parents
/// before children.
const TREE_TOKENS: [u32; 9] = [300, 410, 262, 500, 271, 333, 290, 281, 420];
const TREE_PARENTS: [Option<usize>; 9] = [
    None,
    None,
    None,
    Some(0),
    Some(0),
    Some(1),
    Some(3),
    Some(3),
    Some(5),
];

fn tree_path(node: usize) -> Vec<u32> {
    let mut path = Vec::new();
    let mut at = Some(node);
    while let Some(n) = at {
        path.push(TREE_TOKENS[n]);
        at = TREE_PARENTS[n];
    }
    path.reverse();
    path
}

/// Logits of a plain causal forward over `tokens` from an empty cache.
fn causal_rows(model: &Model, tokens: &[u32]) -> (Vec<Vec<f32>>, KvCache) {
    let mut cache = KvCache::new(model.config.n_layers);
    let t = Tensor::new(tokens, &Device::Cpu)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    let logits = model.forward(&t, &mut cache, None).unwrap();
    (logits.squeeze(0).unwrap().to_vec2::<f32>().unwrap(), cache)
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()))
}

/// Largest difference relative to `b`'s largest magnitude: f32 rounding of
/// differently shaped matmuls (the tree's masked-out keys change the
/// summation blocking) leaves a few 1e-6 of it; a wrong position or mask
/// changes logits by O(1).
fn relative_diff(a: &[f32], b: &[f32]) -> f32 {
    max_diff(a, b) / b.iter().fold(0f32, |m, x| m.max(x.abs())).max(1e-30)
}

#[test]
fn a_tree_forward_gives_every_node_its_paths_logits_and_keeps_a_path_as_plain_cache() {
    let Some(model) = stories260k() else { return };
    let mut worst = 0f32;
    // All nodes at once, and grown in two passes (the first level, then the rest).
    for split in [0, 3] {
        let (_, mut cache) = causal_rows(&model, &PROMPT);
        let mut rows = Vec::new();
        if split > 0 {
            let l = model
                .forward_tree(&TREE_TOKENS[..split], &TREE_PARENTS[..split], 4, &mut cache)
                .unwrap();
            rows.extend(l.squeeze(0).unwrap().to_vec2::<f32>().unwrap());
        }
        let l = model
            .forward_tree(&TREE_TOKENS[split..], &TREE_PARENTS, 4, &mut cache)
            .unwrap();
        rows.extend(l.squeeze(0).unwrap().to_vec2::<f32>().unwrap());
        assert_eq!(cache.len(), 4 + TREE_TOKENS.len());
        for (node, row) in rows.iter().enumerate() {
            let mut path = PROMPT.to_vec();
            path.extend(tree_path(node));
            let (plain_rows, _) = causal_rows(&model, &path);
            let d = relative_diff(row, plain_rows.last().unwrap());
            worst = worst.max(d);
        }
        // Keep the path to node 6 (300 → 500 → 290): the cache equals a plain
        // forward's over the prompt and that path.
        let mut kept = cache.clone();
        kept.keep_path(4, &[0, 3, 6]).unwrap();
        let mut path = PROMPT.to_vec();
        path.extend(tree_path(6));
        let (_, plain_cache) = causal_rows(&model, &path);
        assert_eq!(kept.len(), plain_cache.len());
        for layer in 0..model.config.n_layers {
            let (k, v) = kept.layer(layer).unwrap();
            let (pk, pv) = plain_cache.layer(layer).unwrap();
            for (a, b) in [(k, pk), (v, pv)] {
                let a = a.flatten_all().unwrap().to_vec1::<f32>().unwrap();
                let b = b.flatten_all().unwrap().to_vec1::<f32>().unwrap();
                assert_eq!(a.len(), b.len());
                let d = relative_diff(&a, &b);
                assert!(
                    d < 1e-5,
                    "layer {layer}: kept path's cache differs by {d} (relative)"
                );
            }
        }
    }
    eprintln!("tree forward against path forwards: max |Δ logit| / max |logit| = {worst:e}");
    assert!(
        worst < 1e-5,
        "tree and path logits differ by {worst} (relative)"
    );
    // A malformed tree is an error, not a panic.
    let (_, mut cache) = causal_rows(&model, &PROMPT);
    assert!(model
        .forward_tree(&[5, 6], &[Some(1), None], 4, &mut cache)
        .is_err());
    assert!(model.forward_tree(&[5], &[None], 3, &mut cache).is_err());
}

#[test]
fn cached_tree_logits_reuse_the_tree_and_keep_the_accepted_path() {
    let Some(model) = stories260k() else { return };
    let mut cached = CachedModel::new(model.clone());
    // The prompt's last token uncached: it is fed as a chain before the tree.
    cached.logits(&PROMPT[..3], 2).unwrap();
    let first = cached
        .tree_logits(&PROMPT, 3, &TREE_TOKENS[..3], &TREE_PARENTS[..3])
        .unwrap();
    let (root, rows) = (first.sequence, first.nodes);
    // Growing the same tree feeds only the new nodes (one more pass).
    let calls = cached.calls;
    let grown = cached
        .tree_logits(&PROMPT, 3, &TREE_TOKENS, &TREE_PARENTS)
        .unwrap();
    let (root2, rows2) = (grown.sequence, grown.nodes);
    assert_eq!(cached.calls, calls + 1);
    assert_eq!(cached.cached(), 4 + TREE_TOKENS.len());
    assert_eq!(root, root2);
    assert_eq!(&rows[..], &rows2[..3]);
    let (plain_rows, _) = causal_rows(&model, &PROMPT);
    assert!(relative_diff(&root[0], plain_rows.last().unwrap()) < 1e-5);
    for (node, row) in rows2.iter().enumerate() {
        let mut path = PROMPT.to_vec();
        path.extend(tree_path(node));
        let (p, _) = causal_rows(&model, &path);
        let d = relative_diff(row, p.last().unwrap());
        assert!(d < 1e-5, "node {node}: {d}");
    }
    // The next sequence accepts 410 → 333 and appends a token of its own: the
    // cache keeps that path and feeds only the new token.
    let mut sequence = PROMPT.to_vec();
    sequence.extend([410, 333, 7]);
    let calls = cached.calls;
    let next = cached.logits(&sequence, sequence.len() - 1).unwrap();
    assert_eq!(cached.calls, calls + 1);
    assert_eq!(cached.cached(), sequence.len());
    let (p, _) = causal_rows(&model, &sequence);
    assert!(relative_diff(&next[0], p.last().unwrap()) < 1e-5);
}

fn tree_settings(gamma: usize, shaping: Shaping, seed: u64, rule: SpecRule, k: usize) -> Settings {
    Settings {
        top_k: shaping.top_k,
        top_p: shaping.top_p,
        branches: k,
        shape: Shape::Full,
        ..Settings::new(gamma, shaping.temperature, seed, rule)
    }
}

#[test]
fn gumbel_trees_reproduce_plain_sampling_and_gamma_zero_trees_are_plain() {
    let Some(model) = stories260k() else { return };
    let mut all: Vec<Box<dyn Drafter>> = drafters(&model);
    all.push(Box::new(NgramDrafter { n: 1, vocab: 512 }));
    for (i, shaping) in [
        shaped(1.0, 0, 1.0),
        shaped(0.0, 0, 1.0),
        shaped(0.8, 30, 0.9),
    ]
    .into_iter()
    .enumerate()
    {
        let seed = 70 + i as u64;
        let expected = plain(
            &mut CachedModel::new(model.clone()),
            &PROMPT,
            40,
            shaping,
            seed,
        )
        .unwrap();
        // γ = 0: a tree of no nodes is plain decoding for every rule.
        for rule in SpecRule::ALL {
            let mut target = CachedModel::new(model.clone());
            let mut drafter = NgramDrafter { n: 2, vocab: 512 };
            let g = speculative(
                &mut target,
                &mut drafter,
                &PROMPT,
                40,
                tree_settings(0, shaping, seed, rule, 1),
            )
            .unwrap();
            if rule != SpecRule::Greedy {
                assert_eq!(g.tokens, expected, "{rule:?} γ = 0 tree with {shaping:?}");
            }
            assert_eq!(g.target_calls, 40);
        }
        for drafter in all.iter_mut() {
            for (gamma, k, budget) in [(1, 3, 64), (3, 2, 64), (4, 3, 64), (5, 3, 10)] {
                let mut target = CachedModel::new(model.clone());
                let settings = Settings {
                    tree_nodes: budget,
                    ..tree_settings(gamma, shaping, seed, SpecRule::Gumbel, k)
                };
                let calls = drafter.calls();
                let g = speculative(&mut target, drafter.as_mut(), &PROMPT, 40, settings).unwrap();
                let what = format!(
                    "{} γ {gamma} K {k} budget {budget} {shaping:?}",
                    drafter.name()
                );
                assert_eq!(g.tokens, expected, "{what}");
                let accepted = g.verified.iter().filter(|v| v.accepted).count() as u64;
                assert_eq!(g.target_calls, 40 - accepted, "{what}");
                // One drafter pass per level, whatever the width.
                if drafter.name() != "ngram2" && drafter.name() != "ngram1" {
                    assert!(
                        drafter.calls() - calls <= gamma as u64 * g.target_calls,
                        "{what}"
                    );
                    // The budget bounds the nodes: K-ary part plus one chain.
                    assert!(
                        g.drafted <= (budget + gamma) as u64 * g.target_calls,
                        "{what}"
                    );
                }
            }
        }
    }
}

#[test]
fn tree_rounds_keep_target_and_drafter_caches_consistent() {
    let Some(model) = stories260k() else { return };
    for rule in [SpecRule::SpecInfer, SpecRule::Gumbel, SpecRule::Naive] {
        let run = |shape: Shape| {
            let mut target = CachedModel::new(model.clone());
            let mut drafter = ModelDrafter::new("w4", quantized(&model, "w4"));
            let settings = Settings {
                branches: 3,
                shape,
                ..Settings::new(4, 1.0, 21, rule)
            };
            let g = speculative(&mut target, &mut drafter, &PROMPT, 60, settings).unwrap();
            (g, target, drafter)
        };
        let (g, mut target, mut drafter) = run(Shape::Full);
        let rejected = g.verified.iter().filter(|v| !v.accepted).count();
        let deep = g
            .verified
            .iter()
            .filter(|v| v.index >= 1 && v.accepted)
            .count();
        // Naive accepts little (an independent y must land among the children).
        let deep_needed = if rule == SpecRule::Naive { 0 } else { 4 };
        assert!(
            rejected > 3 && deep >= deep_needed,
            "{rule:?}: {rejected} rejections, {deep} deep accepts"
        );
        // Target and drafter caches continue the committed tokens exactly as
        // fresh models do.
        let mut sequence = PROMPT.to_vec();
        sequence.extend(&g.tokens);
        for (name, cached, m) in [
            ("target", &mut target, model.clone()),
            ("drafter", &mut drafter.model, quantized(&model, "w4")),
        ] {
            let a = cached.logits(&sequence, sequence.len() - 1).unwrap();
            let b = CachedModel::new(m)
                .logits(&sequence, sequence.len() - 1)
                .unwrap();
            let d = max_diff(&a[0], &b[0]);
            assert!(
                d < 1e-3,
                "{rule:?} {name}: cached and fresh logits differ by {d}"
            );
        }
        // One target pass per round (the last may have nothing to verify),
        // one drafter pass per level.
        let rounds = g.verified.iter().filter(|v| v.index == 0).count() as u64;
        assert!(g.target_calls == rounds || g.target_calls == rounds + 1);
        assert!(g.draft_calls <= 4 * g.target_calls);
        if rule == SpecRule::Gumbel {
            // The same seed decodes the same text with chains.
            let (c, _, _) = run(Shape::Chains);
            assert_eq!(c.tokens, g.tokens);
            eprintln!(
                "gumbel K=3 γ=4 w4: target calls chains {} full {}",
                c.target_calls, g.target_calls
            );
        }
    }
}

#[test]
fn lossless_rules_on_full_trees_emit_the_targets_continuations() {
    let Some(model) = stories260k() else { return };
    let w3 = quantized(&model, "w3");
    let (horizon, samples) = (3, 2000);
    let shaping = shaped(1.0, 0, 1.0);
    let exact = likely_continuations(
        &model,
        &PROMPT,
        horizon,
        shaping,
        2.5 / samples as f64,
        20_000,
    )
    .unwrap();
    for (name, rule, k) in [
        ("specinfer K=2", SpecRule::SpecInfer, 2),
        ("specinfer K=3", SpecRule::SpecInfer, 3),
        ("naive K=3", SpecRule::Naive, 3),
        ("gumbel K=3", SpecRule::Gumbel, 3),
    ] {
        let settings = tree_settings(2, shaping, 0, rule, k);
        let counts = continuations(&model, &w3, Some(settings), shaping, horizon, samples);
        let t = test(&counts, &exact);
        eprintln!("{name} full tree: {t:?}");
        assert!(t.dof >= 10, "{name}: only {} degrees of freedom", t.dof);
        assert!(
            t.p_value > 1e-3,
            "{name} full tree: chi-square p = {}",
            t.p_value
        );
    }
}

#[test]
fn the_study_compares_full_trees_with_chains_and_rejects_bad_shapes() {
    let Some((dir, data)) = common::with_stories260k("speculation-tree") else {
        return;
    };
    let base = "kind = \"speculation\"\nseed = 3\n\
         drafters = [\"w8\", \"ngram2\"]\nrules = [\"gumbel\", \"specinfer\", \"standard\"]\n\
         gammas = [3]\ntemperatures = [1.0]\nbranches = [1, 2]\nprompt_length = 6\ntokens = 16\n\
         [model]\ncheckpoint = \"stories260K\"\n[data]\nsequences = 2\nlength = 32\n";
    let config = base.replace("branches =", "trees = [\"chains\", \"full\"]\nbranches =");
    let out = common::run_config(dir.path(), &data, "tree", &config);
    let text = std::fs::read_to_string(out.join("tables/speculation_runs.csv")).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |n: &str| header.iter().position(|h| *h == n).unwrap();
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    // Per drafter: standard K = 1, gumbel and specinfer at K = 1 (chains only: a
    // one-child tree is the chain) and at K = 2 as chains and as a full tree.
    assert_eq!(rows.len(), 2 * (1 + 2 * 3));
    let full: Vec<&Vec<&str>> = rows.iter().filter(|r| r[col("tree")] == "full").collect();
    assert_eq!(full.len(), 2 * 2);
    for r in &full {
        assert_eq!(r[col("branches")], "2");
        assert!(r[col("tokens_per_call")].parse::<f64>().unwrap() >= 1.0);
        if r[col("rule")] == "gumbel" {
            assert_eq!(r[col("matches_plain")], "1.0", "{r:?}");
        }
    }
    let timing = std::fs::read_to_string(out.join("tables/speculation_timing.csv")).unwrap();
    assert!(timing
        .lines()
        .next()
        .unwrap()
        .contains("target_seconds_per_call"));
    // Bad shapes and budgets name the file and the key.
    let bad = dir.path().join("bad_tree.toml");
    let text = base.replace(
        "branches =",
        "trees = [\"chains\", \"bush\"]\ntree_nodes = 0\nbranches =",
    ) + "[lossless]\ndrafter = \"w8\"\nrules = [\"gumbel\"]\ntree = \"forest\"\n";
    std::fs::write(&bad, text).unwrap();
    let err = common::rejected_config(&data, &bad);
    for fragment in [
        "bad_tree.toml:",
        "key `trees[1]`",
        "unknown tree shape `bush`; expected one of chains, full",
        "key `tree_nodes`",
        "key `lossless.tree`",
        "unknown tree shape `forest`",
    ] {
        assert!(err.contains(fragment), "expected `{fragment}` in:\n{err}");
    }
}
