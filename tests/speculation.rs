//! The speculative decoding loop on stories260K: γ = 0 is plain decoding, the
//! `gumbel` rule reproduces plain seeded sampling whatever the drafter, caches
//! roll back correctly, and the lossless rules emit the target's distribution.

mod common;

use workbench::speculative::cached::CachedModel;
use workbench::speculative::decode::{plain, speculative, Settings, SpecRule};
use workbench::speculative::drafter::{Drafter, ModelDrafter, NgramDrafter};
use workbench::speculative::lossless::{likely_continuations, test};
use workbench::speculative::sampling::{distribution, Shaping};

use common::speculation::{
    continuations, drafters, quantized, rotated_quantized, shaped, stories260k, PROMPT,
};

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
