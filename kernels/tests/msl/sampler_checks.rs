//! The sampler's kernels on the host (part of `tests/msl_group_check.rs`).

use candle_core::{DType, Device, Tensor};
use wb_kernels::metal_plan::gumbel_sample::{sample, sample_in_chunks};
use wb_kernels::sample::GumbelSampler;
use wb_kernels::test_support::f32_bits;

use super::data::{upload, words};
use super::emu::{execute, executor, Buffer, Dev};
use super::host::xorshift;

/// Samples `[batch, vocab]` logits (converted to each dtype) with each
/// sampler on the host and on the CPU: tokens and score bits must agree.
/// Threads are ready in reverse order for every other sampler. The number
/// of comparisons.
fn sampler_cases(
    logits: &[f32],
    (batch, vocab): (usize, usize),
    chunk: Option<usize>,
    positions: &[u64],
    dtypes: &[DType],
    samplers: &[GumbelSampler],
) -> usize {
    let mut dev = Dev::default();
    let mut jobs = Vec::new();
    for &dtype in dtypes {
        let x = Tensor::from_slice(logits, (batch, vocab), &Device::Cpu)
            .unwrap()
            .to_dtype(dtype)
            .unwrap();
        let xb = upload(&mut dev, &x);
        for g in samplers {
            let want = g.sample(&x, positions).unwrap();
            let tw: Vec<u32> = want.tokens.to_vec1().unwrap();
            let sw = f32_bits(&want.scores);
            dev.reverse_order(jobs.len() % 2 == 1);
            let plan = match chunk {
                None => sample(g, dtype, (batch, vocab), positions),
                Some(c) => sample_in_chunks(g, dtype, (batch, vocab), positions, c),
            }
            .unwrap();
            let [t, s] = execute(&mut dev, &plan, &[xb])[..] else {
                panic!("the sampler: two outputs")
            };
            let what = format!("[{batch}, {vocab}] chunk {chunk:?} {dtype:?} {g:?}");
            jobs.push(([t, s], (tw, sw), what));
        }
    }
    let outs: Vec<Buffer> = jobs.iter().flat_map(|j| j.0).collect();
    let got = dev
        .run(&outs)
        .unwrap_or_else(|e| panic!("[{batch}, {vocab}]: {e}"));
    for ((_, want, what), got) in jobs.iter().zip(got.chunks(2)) {
        assert_eq!(&(words(&got[0]), words(&got[1])), want, "{what}");
    }
    jobs.len()
}

/// gumbel_sample.metal as its plan dispatches it (top-k in groups of 1024
/// threads, the partial scores in groups of 256, chunks of 8192) gives the
/// CPU's tokens and score bits; small vocabularies also with shorter chunks
/// (`sample_in_chunks`; the Metal op always uses 8192) for chunk edges. Ties,
/// NaN logits, infinities, temperatures, top-k (at the count of non-NaN
/// logits too), f32, bf16 and f16.
#[test]
fn metal_sampler_on_the_host_matches_cpu() {
    let Some(_) = executor() else { return };
    let mut next = xorshift(0x2545_F491_4F6C_DD1Du64);
    let mut cases = 0;
    for (case, (batch, vocab, chunk)) in [
        (3, 20_000, None),
        (2, 131_071, None),
        (4, 1_003, Some(64)),
        (1, 7, None),
        (5, 4_096, Some(100)),
        (2, 50_257, None),
        (16, 6, None),
    ]
    .into_iter()
    .enumerate()
    {
        let mut logits: Vec<f32> = (0..batch * vocab)
            .map(|_| ((next() >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 16.0)
            .collect();
        if case % 2 == 1 {
            for (i, v) in logits.iter_mut().enumerate() {
                match next() % 97 {
                    0 => *v = f32::NAN,
                    1 => *v = 3.0,
                    2 => *v = f32::NEG_INFINITY,
                    3 if i % 5 == 0 => *v = 1e30,
                    _ => {}
                }
            }
        }
        let mut ks = vec![None, None, Some(50), Some(1), Some(3000)];
        if vocab < 10 {
            // Close logits (any token may win), one NaN a row, and top-k at
            // the count of the others and one off it.
            for (i, v) in logits.iter_mut().enumerate() {
                *v = if i % vocab == i / vocab % vocab {
                    f32::NAN
                } else {
                    *v / 32.0
                };
            }
            ks.extend([Some(vocab - 2), Some(vocab - 1), Some(vocab)]);
        }
        let samplers: Vec<GumbelSampler> = ks
            .into_iter()
            .enumerate()
            .map(|(i, top_k)| GumbelSampler {
                seed: next(),
                stream: next() as u32,
                temperature: [1.0, 0.7, 2.5, 1.0, 1.3][i % 5],
                top_k,
            })
            .collect();
        let positions: Vec<u64> = (0..batch).map(|_| next() >> (next() % 64)).collect();
        cases += sampler_cases(
            &logits,
            (batch, vocab),
            chunk,
            &positions,
            &[DType::F32, DType::BF16, DType::F16],
            &samplers,
        );
    }
    eprintln!("msl_group_check: Metal sampler on the host = CPU in {cases} cases");
}

/// Near ties that the bucket-bound filter must not cut: in each row two
/// tokens of one thread (one quad, or two quads 256 apart), every other
/// logit −inf, the later token's logit chosen so that its exact score is
/// the first float above the earlier one's. A filter bound below the exact
/// noise (the bucket's lower bound, say) drops the winner.
#[test]
fn metal_sampler_keeps_near_ties() {
    let Some(_) = executor() else { return };
    let (batch, vocab) = (6, 3000);
    let positions: Vec<u64> = (0..batch as u64).map(|r| 1000 + 77 * r).collect();
    for temperature in [1.0f32, 0.7] {
        let g = GumbelSampler {
            seed: 0x5eed_0000 + temperature.to_bits() as u64,
            stream: 3,
            temperature,
            top_k: None,
        };
        let inv_t = g.inv_temperature();
        let noise = |r: usize, t: usize| {
            wb_kernels::sample::noise::gumbel_f32(wb_kernels::philox::bits(
                g.seed,
                positions[r],
                t as u32,
                g.stream,
            ))
        };
        let mut logits = vec![f32::NEG_INFINITY; batch * vocab];
        let mut winners = Vec::new();
        for r in 0..batch {
            let q = 40 + 31 * r;
            let (t0, t1) = if r % 2 == 0 {
                (4 * q + 1, 4 * q + 2)
            } else {
                (4 * q + 3, 4 * (q + 256))
            };
            let s0 = 2.0f32.mul_add(inv_t, noise(r, t0));
            let g1 = noise(r, t1);
            let mut l1 = ((f64::from(s0) - f64::from(g1)) / f64::from(inv_t)) as f32;
            while l1.mul_add(inv_t, g1) > s0 {
                l1 = l1.next_down();
            }
            while l1.mul_add(inv_t, g1) <= s0 {
                l1 = l1.next_up();
            }
            logits[r * vocab + t0] = 2.0;
            logits[r * vocab + t1] = l1;
            winners.push(t1 as u32);
        }
        let x = Tensor::from_slice(&logits, (batch, vocab), &Device::Cpu).unwrap();
        let cpu: Vec<u32> = g.sample(&x, &positions).unwrap().tokens.to_vec1().unwrap();
        assert_eq!(cpu, winners, "the later token of each pair wins on the CPU");
        sampler_cases(
            &logits,
            (batch, vocab),
            None,
            &positions,
            &[DType::F32],
            &[g],
        );
    }
}
