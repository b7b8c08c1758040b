use super::*;
use crate::primitives::quant::{ActivationQuantizer, Clip, Granularity, WeightQuantizer};
use candle_core::Device;
use wb_kernels::philox;

/// Deterministic test data: Gaussian-ish values with a few large ones.
fn data(n: usize, seed: u64) -> Vec<f32> {
    (0..n as u64)
        .map(|i| {
            let u1 = philox::uniform(seed, i, 0, 77);
            let u2 = philox::uniform(seed, i, 1, 77);
            let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
            (if i % 37 == 5 { 6.0 * z } else { z }) as f32
        })
        .collect()
}

fn tensor(v: &[f32], shape: &[usize]) -> Tensor {
    Tensor::from_slice(v, shape, &Device::Cpu).unwrap()
}

#[test]
fn ste_forward_is_the_rtn_quantizer_to_the_bit() {
    let (rows, cols) = (6, 64);
    let w = data(rows * cols, 1);
    for (bits, group) in [
        (4u8, Some(32usize)),
        (3, None),
        (8, Some(16)),
        (2, Some(64)),
    ] {
        let ours = FakeQuantWeight {
            bits,
            group,
            clip: 1.0,
            step: None,
        }
        .apply(&tensor(&w, &[rows, cols]))
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
        let reference = WeightQuantizer {
            bits,
            symmetric: true,
            granularity: group.map_or(Granularity::PerChannel, Granularity::PerGroup),
            clip: Clip::None,
        }
        .fake_quantize(&w, rows, cols)
        .unwrap();
        let bits_of = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits_of(&ours), bits_of(&reference), "w{bits} g{group:?}");
        // The tensor-operation path (used for clipping) computes the same bits.
        let g = group.unwrap_or(cols);
        let tensor_path = ste_tensor(&tensor(&w, &[rows * cols / g, g]), bits, 1.0)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        assert_eq!(
            bits_of(&tensor_path),
            bits_of(&reference),
            "tensor path w{bits}"
        );
    }
    // Activations per token, on a [batch, tokens, features] tensor.
    let x = data(2 * 5 * 40, 2);
    for bits in [4u8, 6, 8] {
        let ours = FakeQuantActivation {
            bits,
            clip: 1.0,
            step: None,
        }
        .apply(&tensor(&x, &[2, 5, 40]))
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
        let reference = ActivationQuantizer {
            bits,
            per_token: true,
            clip_ratio: 1.0,
            static_scale: None,
        }
        .fake_quantize(&x, 10, 40)
        .unwrap();
        assert_eq!(ours, reference, "a{bits}");
    }
    // An all-zero token stays zero (no division by a zero step).
    let zeros = FakeQuantActivation {
        bits: 8,
        clip: 1.0,
        step: None,
    }
    .apply(&Tensor::zeros((3, 8), DType::F32, &Device::Cpu).unwrap())
    .unwrap();
    assert_eq!(
        zeros
            .abs()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap(),
        0.0
    );
}

#[test]
fn ste_gradient_is_the_identity_inside_the_clip_range_and_zero_outside() {
    let (rows, cols) = (4, 32);
    let x = data(rows * cols, 3);
    let c = data(rows * cols, 4);
    let weights = tensor(&c, &[rows, cols]);
    for clip in [1.0, 0.6] {
        let var = Var::from_tensor(&tensor(&x, &[rows, cols])).unwrap();
        let y = ste_rows(var.as_tensor(), cols, 4, clip).unwrap();
        let loss = (y * &weights).unwrap().sum_all().unwrap();
        let grads = loss.backward().unwrap();
        let g = grads
            .get(var.as_tensor())
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let mut clipped = 0;
        for r in 0..rows {
            let row = &x[r * cols..(r + 1) * cols];
            let absmax = row.iter().fold(0f32, |m, v| m.max(v.abs()));
            for (j, value) in row.iter().enumerate() {
                let i = r * cols + j;
                let inside = value.abs() <= clip as f32 * absmax;
                clipped += !inside as usize;
                assert_eq!(g[i], if inside { c[i] } else { 0.0 }, "clip {clip}, {i}");
            }
        }
        // The clipped case really clips something; the unclipped one nothing.
        assert_eq!(clipped > 0, clip < 1.0, "clip {clip}: {clipped} clipped");
    }
}

#[test]
fn lsq_gradients_follow_their_definition() {
    let (rows, cols, bits) = (3, 16, 3u8);
    let q = qmax(bits) as f32;
    let x = data(rows * cols, 5);
    let c = data(rows * cols, 6);
    // Steps small enough that some values saturate.
    let steps = [0.2f32, 0.5, 0.9];
    let grad_scale = 0.25;
    let xv = Var::from_tensor(&tensor(&x, &[rows, cols])).unwrap();
    let sv = Var::from_tensor(&tensor(&steps, &[rows, 1])).unwrap();
    let y = lsq(xv.as_tensor(), sv.as_tensor(), bits, grad_scale).unwrap();
    let out = y.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let loss = (y * tensor(&c, &[rows, cols])).unwrap().sum_all().unwrap();
    let grads = loss.backward().unwrap();
    let gx = grads.get(xv.as_tensor()).unwrap().flatten_all().unwrap();
    let gx = gx.to_vec1::<f32>().unwrap();
    let gs = grads.get(sv.as_tensor()).unwrap().flatten_all().unwrap();
    let gs = gs.to_vec1::<f32>().unwrap();
    let mut saturated = 0;
    for r in 0..rows {
        let s = steps[r];
        let mut expected_gs = 0f64;
        for j in 0..cols {
            let i = r * cols + j;
            let v = x[i] / s;
            let inside = (-q..=q).contains(&v);
            saturated += !inside as usize;
            let code = v.clamp(-q, q).round();
            assert!((out[i] - code * s).abs() <= 1e-6, "forward {i}");
            // Inside, the chain (1/s)·s is the identity up to float rounding.
            if inside {
                assert!((gx[i] - c[i]).abs() <= 1e-6 * c[i].abs(), "dx {i}");
            } else {
                assert_eq!(gx[i], 0.0, "dx {i}");
            }
            let ds = if inside { code - v } else { v.signum() * q };
            expected_gs += (grad_scale as f32 * c[i] * ds) as f64;
        }
        assert!(
            (gs[r] as f64 - expected_gs).abs() <= 1e-4 * (1.0 + expected_gs.abs()),
            "ds row {r}: {} vs {expected_gs}",
            gs[r]
        );
    }
    assert!(saturated > 0, "the test must exercise saturation");
}

#[test]
fn lsq_at_its_initial_step_reproduces_the_absmax_grid() {
    let (rows, cols) = (5, 48);
    let w = tensor(&data(rows * cols, 7), &[rows, cols]);
    let step = FakeQuantWeight::initial_step(&w, 4, Some(16)).unwrap();
    assert_eq!(step.dims(), [5, 3]);
    let learned = FakeQuantWeight {
        bits: 4,
        group: Some(16),
        clip: 1.0,
        step: Some(Var::from_tensor(&step).unwrap()),
    };
    let absmax = FakeQuantWeight {
        bits: 4,
        group: Some(16),
        clip: 1.0,
        step: None,
    };
    let a = learned.apply(&w).unwrap().flatten_all().unwrap();
    let b = absmax.apply(&w).unwrap().flatten_all().unwrap();
    let diff = (a - b).unwrap().abs().unwrap().max(0).unwrap();
    assert!(diff.to_scalar::<f32>().unwrap() < 1e-5);
}
