//! Full draft trees (K children at every level, one target pass with a tree
//! attention mask) on stories260K: the tree forward gives every node its path's
//! logits, the cache keeps the accepted path, `gumbel` trees reproduce plain
//! seeded sampling, and the multi-draft rules stay lossless on trees.

mod common;

use candle_core::Device;
use workbench::model::llama::Model;
use workbench::speculative::cached::CachedModel;
use workbench::speculative::decode::{plain, speculative, Settings, SpecRule};
use workbench::speculative::drafter::{Drafter, ModelDrafter, NgramDrafter};
use workbench::speculative::lossless::{likely_continuations, test};
use workbench::speculative::sampling::Shaping;

use candle_core::Tensor;
use common::speculation::{continuations, drafters, quantized, shaped, stories260k, PROMPT};
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
