//! Decode tokens per second of stories260K with the KV cache: greedy decoding of
//! `--tokens` tokens one at a time from BOS, as llama2.c's run.c does with
//! `-t 0 -n N` (its "achieved tok/s" is the peer; see BENCHMARKS.md). Also
//! prefill tokens per second for the same length in one pass.
//!
//! `cargo bench --bench decode -- [--checkpoint PATH] [--tokens N] [--repeats R]`
//! (default checkpoint: ../shared/datasets/stories260K/stories260K.bin).

use std::path::PathBuf;
use std::time::Instant;

use candle_core::{Device, Tensor};
use workbench::model::cache::KvCache;
use workbench::model::llama::{argmax_last, last_logits, Model};
use workbench::model::llama2c;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    // Run the loop on a rayon worker: candle's CPU kernels call into rayon, and
    // from a thread outside the pool every call is a hand-off and a wake-up.
    let pool = rayon::ThreadPoolBuilder::new().build()?;
    pool.install(|| run(&args))
}

fn run(args: &[String]) -> anyhow::Result<()> {
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let checkpoint = value("--checkpoint").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../shared/datasets/stories260K/stories260K.bin")
    });
    let tokens: usize = value("--tokens")
        .and_then(|v| v.parse().ok())
        .unwrap_or(511);
    let repeats: usize = value("--repeats").and_then(|v| v.parse().ok()).unwrap_or(3);
    let (config, weights) = llama2c::load(&checkpoint, &Device::Cpu)?;
    let model = Model::from_weights(config, weights)?;
    let n = model.config.n_layers;
    for _ in 0..repeats {
        let mut cache = KvCache::new(n);
        let mut token = 1u32; // BOS
        let mut generated = Vec::with_capacity(tokens);
        let start = Instant::now();
        for _ in 0..tokens {
            let input = Tensor::new(&[[token]], &Device::Cpu)?;
            let logits = model.forward(&input, &mut cache, None)?;
            token = argmax_last(&last_logits(&logits)?)?
                .squeeze(0)?
                .to_scalar::<u32>()?;
            generated.push(token);
        }
        let decode = tokens as f64 / start.elapsed().as_secs_f64();
        let mut sequence = vec![1u32];
        sequence.extend(&generated[..tokens - 1]);
        let input = Tensor::new(sequence.as_slice(), &Device::Cpu)?.unsqueeze(0)?;
        let start = Instant::now();
        model.forward(&input, &mut KvCache::new(n), None)?;
        let prefill = tokens as f64 / start.elapsed().as_secs_f64();
        println!(
            "{{\"model\":\"stories260K\",\"tokens\":{tokens},\"decode_tok_per_s\":{decode:.1},\"prefill_tok_per_s\":{prefill:.1},\"first_tokens\":{:?}}}",
            &generated[..8]
        );
    }
    Ok(())
}
