use candle_core::{DType, Device, Tensor};

use super::noise::{self, better, gumbel_f32, log_f32, neg_log_uniform};
use super::*;
use crate::philox;
use crate::testing::Rng;

fn ulps(a: f32, b: f64) -> f64 {
    let b32 = b as f32;
    let ulp = f64::from(f32::from_bits(b32.abs().to_bits() + 1) - b32.abs());
    (f64::from(a) - b).abs() / ulp
}

#[test]
fn log_is_accurate_on_its_domain() {
    let mut rng = Rng(11);
    let mut worst: f64 = 0.0;
    for i in 0..200_000u32 {
        // Exponents over the whole range E and u can take, and more.
        let e = (i % 80) as i32 - 40;
        let x = (1.0 + (rng.uniform() + 1.0) / 2.0) as f64 * 2f64.powi(e);
        let x = x as f32;
        let got = log_f32(x);
        let want = f64::from(x).ln();
        if want.abs() > 1e-3 {
            worst = worst.max(ulps(got, want));
        } else {
            assert!((f64::from(got) - want).abs() < 2e-10, "x={x}");
        }
    }
    assert!(worst <= 3.0, "log_f32 off by {worst} ulp");
}

#[test]
fn exponential_variate_is_accurate_everywhere() {
    let mut rng = Rng(12);
    let edges = [
        0u32,
        1,
        2,
        255,
        256,
        0x7fff_ffff,
        0x8000_0000,
        0x8000_0001,
        0xf000_0000,
        0xfeff_ffff,
        u32::MAX - 256,
        u32::MAX - 1,
        u32::MAX,
    ];
    let xs = edges
        .into_iter()
        .chain((0..200_000).map(|_| rng.next_u64() as u32));
    for x in xs {
        let got = neg_log_uniform(x);
        let want = -philox::u01_open_open(x).ln();
        assert!(got > 0.0 && got.is_finite(), "x={x}: {got}");
        let rel = (f64::from(got) - want).abs() / want;
        assert!(rel < 2e-6, "x={x:#x}: {got} vs {want} (rel {rel})");
        let g = gumbel_f32(x);
        let gw = -want.ln();
        assert!(
            (f64::from(g) - gw).abs() < 4e-6 * gw.abs().max(1.0),
            "x={x:#x}: G {g} vs {gw}"
        );
    }
}

#[test]
fn branch_free_noise_is_the_same_function() {
    let mut rng = Rng(15);
    let edges = [
        0u32,
        1,
        0x7fff_ffff,
        0x8000_0000,
        0xf000_0000,
        0xf000_0001,
        0xefff_ffff,
        u32::MAX,
    ];
    for x in edges
        .into_iter()
        .chain((0..300_000).map(|_| rng.next_u64() as u32))
    {
        assert_eq!(
            noise::gumbel_f32_select(x).to_bits(),
            gumbel_f32(x).to_bits(),
            "x={x:#x}"
        );
    }
}

#[test]
fn noise_bits_are_pinned() {
    // The cross-backend contract: these exact bits (computed by this
    // implementation) must not change, or tokens drawn earlier change.
    let got: Vec<u32> = [
        0u32,
        1,
        0x1234_5678,
        0x7fff_ffff,
        0x8000_0000,
        0xdead_beef,
        u32::MAX,
    ]
    .iter()
    .map(|&x| gumbel_f32(x).to_bits())
    .collect();
    let pinned = include_str!("pinned_noise.txt");
    let want: Vec<u32> = pinned
        .split_whitespace()
        .map(|w| u32::from_str_radix(w.trim_start_matches("0x"), 16).unwrap())
        .collect();
    assert_eq!(got, want, "got {:x?}", got);
}

#[test]
fn comparison_is_a_total_order() {
    assert!(better(1.0, 5, 0.5, 1));
    assert!(!better(0.5, 1, 1.0, 5));
    assert!(better(1.0, 1, 1.0, 2));
    assert!(!better(1.0, 2, 1.0, 1));
    assert!(better(-0.0, 1, 0.0, 2)); // equal scores: lower index
    assert!(!better(f32::NAN, 0, 1.0, 9));
    assert!(better(f32::NEG_INFINITY, 9, f32::NAN, 0));
    assert!(!better(f32::NAN, 0, f32::NAN, 9));
}

fn sampler(rng: &mut Rng) -> GumbelSampler {
    GumbelSampler {
        seed: rng.next_u64(),
        stream: rng.below(4) as u32,
        temperature: [1.0, 0.7, 2.5, 1e-3][rng.below(4)],
        top_k: [None, Some(1), Some(5), Some(40)][rng.below(4)],
    }
}

fn logits(rng: &mut Rng, len: usize) -> Vec<f32> {
    (0..len)
        .map(|_| match rng.below(50) {
            0 => f32::NEG_INFINITY,
            1 => f32::NAN,
            2 => 3e38,
            3 => -0.0,
            4 => 0.0,
            5 => 7.0, // repeated values: ties for top-k
            _ => rng.uniform() * 8.0,
        })
        .collect()
}

#[test]
fn fast_sampler_equals_reference() {
    let mut rng = Rng(13);
    for vocab in [1usize, 3, 31, 32, 33, 1000, (1 << 13) + 7, 20_000] {
        let batch = 1 + rng.below(4);
        let s = sampler(&mut rng);
        let x = logits(&mut rng, batch * vocab);
        let positions: Vec<u64> = (0..batch)
            .map(|_| rng.next_u64() >> rng.below(64))
            .collect();
        let fast = sample_rows(&s, &x, vocab, &positions);
        for (b, &(token, score)) in fast.iter().enumerate() {
            let want = reference_row(&s, &x[b * vocab..(b + 1) * vocab], positions[b]);
            assert_eq!(token, want.0, "vocab {vocab} row {b} {s:?}");
            assert_eq!(score.to_bits(), want.1.to_bits(), "vocab {vocab} row {b}");
        }
    }
}

#[test]
fn results_do_not_depend_on_threads_or_dtype_path() {
    let mut rng = Rng(14);
    let s = GumbelSampler {
        seed: 5,
        stream: 1,
        temperature: 0.9,
        top_k: Some(100),
    };
    let (batch, vocab) = (3, 50_000);
    let x = logits(&mut rng, batch * vocab);
    let positions = [0, 1 << 40, 17];
    let a = sample_rows(&s, &x, vocab, &positions);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let b = pool.install(|| sample_rows(&s, &x, vocab, &positions));
    assert_eq!(
        a.iter().map(|p| (p.0, p.1.to_bits())).collect::<Vec<_>>(),
        b.iter().map(|p| (p.0, p.1.to_bits())).collect::<Vec<_>>()
    );
    // Through the tensor API, bf16 logits equal f32 logits rounded to bf16.
    let t = Tensor::from_slice(&x, (batch, vocab), &Device::Cpu)
        .unwrap()
        .to_dtype(DType::BF16)
        .unwrap();
    let got = s.sample(&t, &positions).unwrap();
    let rounded: Vec<f32> = t
        .to_dtype(DType::F32)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    let want = sample_rows(&s, &rounded, vocab, &positions);
    let tokens: Vec<u32> = got.tokens.to_vec1().unwrap();
    let scores: Vec<f32> = got.scores.to_vec1().unwrap();
    for b in 0..batch {
        assert_eq!(
            (tokens[b], scores[b].to_bits()),
            (want[b].0, want[b].1.to_bits())
        );
    }
}

#[test]
fn frequencies_follow_the_softmax() {
    // Gumbel-max with logits l and temperature T draws token v with
    // probability softmax(l/T)_v: check over 40 000 positions.
    let s = GumbelSampler {
        seed: 99,
        stream: 0,
        temperature: 0.8,
        top_k: None,
    };
    let l = [0.0f32, 1.0, -1.0, 0.5];
    let n = 40_000;
    let x: Vec<f32> = (0..n).flat_map(|_| l).collect();
    let positions: Vec<u64> = (0..n as u64).collect();
    let mut counts = [0usize; 4];
    for (t, _) in sample_rows(&s, &x, 4, &positions) {
        counts[t as usize] += 1;
    }
    let z: f64 = l.iter().map(|&v| (f64::from(v) / 0.8).exp()).sum();
    for (v, &c) in counts.iter().enumerate() {
        let p = (f64::from(l[v]) / 0.8).exp() / z;
        let sd = (p * (1.0 - p) / n as f64).sqrt();
        let f = c as f64 / n as f64;
        assert!((f - p).abs() < 5.0 * sd, "token {v}: frequency {f} vs {p}");
    }
}

#[test]
fn top_k_and_edge_rows() {
    let s = GumbelSampler {
        seed: 1,
        stream: 0,
        temperature: 1.0,
        top_k: Some(2),
    };
    // Only the two largest logits can win; the winner is one of them.
    let x = [0.0f32, 9.0, -3.0, 9.5, 1.0];
    for p in 0..200 {
        let (t, _) = sample_rows(&s, &x, 5, &[p])[0];
        assert!(t == 1 || t == 3);
    }
    // All NaN: no candidate. A single finite logit among NaN always wins.
    let nan = [f32::NAN; 3];
    assert_eq!(sample_rows(&s, &nan, 3, &[0])[0].0, u32::MAX);
    let one = [f32::NAN, -1e30, f32::NAN];
    assert_eq!(sample_rows(&s, &one, 3, &[0])[0].0, 1);
    // +inf logit wins (lowest index among several).
    let inf = [1.0, f32::INFINITY, 2.0, f32::INFINITY];
    let s2 = GumbelSampler {
        top_k: None,
        ..s.clone()
    };
    assert_eq!(sample_rows(&s2, &inf, 4, &[3])[0].0, 1);
}

#[test]
fn bad_arguments_are_errors() {
    let t = Tensor::zeros((2, 8), DType::F32, &Device::Cpu).unwrap();
    let ok = GumbelSampler {
        seed: 0,
        stream: 0,
        temperature: 1.0,
        top_k: None,
    };
    assert!(ok.sample(&t, &[0, 1]).is_ok());
    assert!(ok
        .sample(&t, &[0])
        .unwrap_err()
        .to_string()
        .contains("1 positions for 2 rows"));
    for temperature in [0.0, -1.0, f32::NAN, f32::INFINITY, 1e-40] {
        let s = GumbelSampler {
            temperature,
            ..ok.clone()
        };
        assert!(s.sample(&t, &[0, 1]).is_err(), "T={temperature}");
    }
    let s = GumbelSampler {
        top_k: Some(0),
        ..ok.clone()
    };
    assert!(s.sample(&t, &[0, 1]).is_err());
    let t3 = Tensor::zeros((2, 2, 2), DType::F32, &Device::Cpu).unwrap();
    assert!(ok
        .sample(&t3, &[0, 1])
        .unwrap_err()
        .to_string()
        .contains("[batch, vocab]"));
    let ints = Tensor::zeros((2, 8), DType::U32, &Device::Cpu).unwrap();
    assert!(ok
        .sample(&ints, &[0, 1])
        .unwrap_err()
        .to_string()
        .contains("unsupported dtype"));
}
