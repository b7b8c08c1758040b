//! Integration tests of `workbench::text`: byte-level BPE training on Tiny
//! Shakespeare (vocabulary, exact round trip, compression, byte-identical
//! retraining under different thread counts, save/load), errors that name the
//! file, the train/validation split, training batches and evaluation windows.
//!
//! The Tiny Shakespeare tests skip, with a printed note, where
//! `shared/datasets/tinyshakespeare/input.txt` is missing.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Instant;

use workbench::text::{eval_windows, split_text, BatchSampler, TextTokenizer};

/// Bytes of Tiny Shakespeare the tokenizer is trained on.
const TRAIN_BYTES: usize = 200_000;
/// Vocabulary size of the trained tokenizer.
const VOCAB: usize = 512;
/// Fraction of the text held out for validation.
const VALID_FRACTION: f64 = 0.1;

fn shakespeare_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/datasets/tinyshakespeare/input.txt")
}

/// The first [`TRAIN_BYTES`] of Tiny Shakespeare (cut back to a character
/// boundary), or `None` with a note when the file is missing.
fn shakespeare() -> Option<&'static str> {
    static TEXT: OnceLock<Option<String>> = OnceLock::new();
    TEXT.get_or_init(|| {
        let path = shakespeare_path();
        match fs::read_to_string(&path) {
            Ok(mut text) => {
                let mut end = TRAIN_BYTES.min(text.len());
                while !text.is_char_boundary(end) {
                    end -= 1;
                }
                text.truncate(end);
                Some(text)
            }
            Err(e) => {
                eprintln!("note: skipping: cannot read {}: {e}", path.display());
                None
            }
        }
    })
    .as_deref()
}

/// The tokenizer trained on the train split, shared by the tests of one run.
fn trained() -> Option<&'static (TextTokenizer, String)> {
    static TRAINED: OnceLock<Option<(TextTokenizer, String)>> = OnceLock::new();
    TRAINED
        .get_or_init(|| {
            let (train, _) = split_text(shakespeare()?, VALID_FRACTION);
            let start = Instant::now();
            let tokenizer = TextTokenizer::train_bpe(train, VOCAB).unwrap();
            eprintln!(
                "trained a {VOCAB}-token BPE on {} bytes in {:.2?}",
                train.len(),
                start.elapsed()
            );
            let json = tokenizer.to_json().unwrap();
            Some((tokenizer, json))
        })
        .as_ref()
}

/// A fresh temporary folder, removed when dropped.
fn temp_dir(label: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("workbench-text-test-{label}-"))
        .tempdir()
        .unwrap()
}

/// The full error chain of `e` in one string.
fn chain(e: &anyhow::Error) -> String {
    format!("{e:#}")
}

#[test]
fn trained_tokenizer_has_the_vocab_round_trips_and_compresses() {
    let (Some(text), Some((tokenizer, _))) = (shakespeare(), trained()) else {
        return;
    };
    assert_eq!(tokenizer.vocab_size(), VOCAB);
    assert_eq!(tokenizer.inner().get_vocab_size(true), VOCAB);
    assert_eq!(tokenizer.bos(), Some(0));
    assert_eq!(tokenizer.eos(), Some(1));
    assert_eq!(tokenizer.decode(&[0, 1]).unwrap(), "<|bos|><|eos|>");

    let (_, valid) = split_text(text, VALID_FRACTION);
    assert!(valid.len() > 10_000, "validation has {} bytes", valid.len());
    let ids = tokenizer.encode(valid).unwrap();
    assert!(ids.iter().all(|&id| (id as usize) < VOCAB));
    assert!(!ids.contains(&0) && !ids.contains(&1), "no specials added");
    assert_eq!(tokenizer.decode(&ids).unwrap(), valid);
    let ratio = ids.len() as f64 / valid.len() as f64;
    eprintln!(
        "validation: {} bytes -> {} tokens ({ratio:.3} tokens per byte)",
        valid.len(),
        ids.len()
    );
    assert!(ratio < 0.6, "{ratio:.3} tokens per byte");

    // Text outside the training alphabet still round-trips, byte for byte.
    let odd = "Zw\u{f6}lf Boxk\u{e4}mpfer \u{2014} \u{1F3AD}\t\r\n  x\u{0}";
    assert_eq!(
        tokenizer.decode(&tokenizer.encode(odd).unwrap()).unwrap(),
        odd
    );
    assert!(tokenizer.encode("").unwrap().is_empty());
}

#[test]
fn training_is_byte_identical_whatever_the_thread_count() {
    let (Some(text), Some((_, json))) = (shakespeare(), trained()) else {
        return;
    };
    let (train, _) = split_text(text, VALID_FRACTION);
    for threads in [1, 3] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        let again = pool.install(|| TextTokenizer::train_bpe(train, VOCAB).unwrap());
        assert!(
            again.to_json().unwrap() == *json,
            "training with {threads} rayon threads gave a different tokenizer.json"
        );
    }
    // A fingerprint to compare across processes and machines by hand.
    let fingerprint = json.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    });
    eprintln!(
        "tokenizer.json: {} bytes, FNV-1a {fingerprint:016x}",
        json.len()
    );
}

#[test]
fn save_and_load_round_trip() {
    let (Some(text), Some((tokenizer, json))) = (shakespeare(), trained()) else {
        return;
    };
    let dir = temp_dir("save");
    let path = dir.path().join("nested").join("tokenizer.json");
    tokenizer.save(&path).unwrap();
    assert_eq!(fs::read_to_string(&path).unwrap(), *json);
    // Saving again over the file leaves no temporary files behind.
    tokenizer.save(&path).unwrap();
    let names: Vec<_> = fs::read_dir(path.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["tokenizer.json"]);

    let loaded = TextTokenizer::load(&path).unwrap();
    assert_eq!(loaded.vocab_size(), VOCAB);
    assert_eq!((loaded.bos(), loaded.eos()), (Some(0), Some(1)));
    assert_eq!(loaded.to_json().unwrap(), *json);
    let (_, valid) = split_text(text, VALID_FRACTION);
    let ids = tokenizer.encode(valid).unwrap();
    assert_eq!(loaded.encode(valid).unwrap(), ids);
    assert_eq!(loaded.decode(&ids).unwrap(), valid);
}

#[test]
fn load_errors_name_the_file() {
    let dir = temp_dir("malformed");
    let path = dir.path().join("broken-tokenizer.json");
    fs::write(
        &path,
        r#"{"version": "1.0", "model": {"type": "BPE", "vocab": [1, 2"#,
    )
    .unwrap();
    let err = TextTokenizer::load(&path).unwrap_err();
    assert!(
        chain(&err).contains(&path.display().to_string()),
        "{}",
        chain(&err)
    );

    fs::write(&path, r#"{"not": "a tokenizer"}"#).unwrap();
    let err = TextTokenizer::load(&path).unwrap_err();
    assert!(
        chain(&err).contains(&path.display().to_string()),
        "{}",
        chain(&err)
    );

    let missing = dir.path().join("missing.json");
    let err = TextTokenizer::load(&missing).unwrap_err();
    assert!(
        chain(&err).contains(&missing.display().to_string()),
        "{}",
        chain(&err)
    );
}

#[test]
fn load_reads_other_model_types() {
    // A minimal WordLevel tokenizer.json with `</s>` as its end token.
    let json = r#"{
        "version": "1.0", "truncation": null, "padding": null,
        "added_tokens": [{"id": 3, "content": "</s>", "single_word": false, "lstrip": false,
                          "rstrip": false, "normalized": false, "special": true}],
        "normalizer": null,
        "pre_tokenizer": {"type": "Whitespace"},
        "post_processor": null,
        "decoder": null,
        "model": {"type": "WordLevel", "vocab": {"[UNK]": 0, "hello": 1, "world": 2, "</s>": 3},
                  "unk_token": "[UNK]"}
    }"#;
    let dir = temp_dir("wordlevel");
    let path = dir.path().join("tokenizer.json");
    fs::write(&path, json).unwrap();
    let tokenizer = TextTokenizer::load(&path).unwrap();
    assert_eq!(tokenizer.vocab_size(), 4);
    assert_eq!((tokenizer.bos(), tokenizer.eos()), (None, Some(3)));
    assert_eq!(tokenizer.encode("hello world nope").unwrap(), [1, 2, 0]);
}

#[test]
fn split_is_deterministic_and_cuts_at_a_newline() {
    // Without the mirror, forty short lines stand in for the corpus.
    let fallback: String = (0..40)
        .map(|i| format!("line {i} of the stand-in text\n"))
        .collect();
    let text = shakespeare().unwrap_or(&fallback);
    let (train, valid) = split_text(text, VALID_FRACTION);
    assert_eq!(split_text(text, VALID_FRACTION), (train, valid));
    assert_eq!(format!("{train}{valid}"), text);
    assert!(train.ends_with('\n'));
    let nominal = ((1.0 - VALID_FRACTION) * text.len() as f64).floor() as usize;
    assert!(train.len() >= nominal);
    // The cut is at the first line start at or after the nominal point.
    assert!(!text[nominal..train.len() - 1].contains('\n'));
    assert!(!valid.is_empty());
}

#[test]
fn batches_are_pure_functions_of_the_step() {
    let tokens: Vec<u32> = (0..5_000u32)
        .map(|i| i.wrapping_mul(2_654_435_761) % 50_000)
        .collect();
    let (context, batch, seed) = (64, 8, 1234);
    let sampler = BatchSampler::new(tokens.clone(), context, batch, seed).unwrap();
    let resumed = BatchSampler::new(tokens.clone(), context, batch, seed).unwrap();

    let (inputs, targets) = sampler.batch(7);
    assert_eq!(inputs.len(), batch * context);
    assert_eq!(targets.len(), batch * context);
    assert_eq!(sampler.batch(7), (inputs.clone(), targets.clone()));
    // A fresh sampler asked for step 7 first (a resumed run) agrees.
    assert_eq!(resumed.batch(7), (inputs.clone(), targets.clone()));
    assert_ne!(sampler.batch(8).0, inputs);
    assert_ne!(
        BatchSampler::new(tokens.clone(), context, batch, seed + 1)
            .unwrap()
            .batch(7)
            .0,
        inputs
    );

    for step in 0..50 {
        let (inputs, targets) = sampler.batch(step);
        for row in 0..batch {
            let x = &inputs[row * context..(row + 1) * context];
            let y = &targets[row * context..(row + 1) * context];
            assert_eq!(
                x[1..],
                y[..context - 1],
                "targets are inputs shifted by one"
            );
            // Each row is a window of the stream.
            let start = sampler.window_start(step, row);
            assert_eq!(x, &tokens[start..start + context]);
            assert_eq!(y[context - 1], tokens[start + context]);
        }
    }

    assert!(BatchSampler::new(tokens[..context].to_vec(), context, batch, seed).is_err());
    assert!(BatchSampler::new(tokens[..context + 1].to_vec(), context, batch, seed).is_ok());
}

#[test]
fn eval_windows_cover_the_stream_in_order() {
    let tokens: Vec<u32> = (100..1_100).collect();
    let context = 63;
    let windows = eval_windows(&tokens, context);
    assert_eq!(windows.len(), tokens.len() / (context + 1));
    let mut covered = Vec::new();
    for (inputs, targets) in &windows {
        assert_eq!(inputs.len(), context);
        assert_eq!(targets.len(), context);
        assert_eq!(inputs[1..], targets[..context - 1]);
        covered.extend_from_slice(inputs);
        covered.push(*targets.last().unwrap());
    }
    assert_eq!(covered, tokens[..windows.len() * (context + 1)]);
    assert!(
        tokens.len() - covered.len() < context + 1,
        "only a short tail is dropped"
    );
    assert!(eval_windows(&tokens[..context], context).is_empty());
}
