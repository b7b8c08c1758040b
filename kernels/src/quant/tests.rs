use std::sync::Arc;

use candle_core::{DType, Device, Tensor, Var};

use super::cpu::unpack;
use super::*;
use crate::hadamard::{hadamard, Direction, HadamardOp, HadamardPlan};
use crate::testing::{base, dense, Rng};

fn op(m: usize, k: u32, dir: Direction) -> HadamardOp {
    HadamardOp::new(
        Arc::new(HadamardPlan::new(m << k, m, &base(m)).unwrap()),
        dir,
    )
}

fn vec_of(t: &Tensor) -> Vec<f32> {
    t.to_dtype(DType::F32)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap()
}

/// Plain reference in f64: dense rotation, then the documented rule.
fn reference(
    x: &[f32],
    m: usize,
    n: usize,
    dir: Direction,
    cfg: &QuantConfig,
) -> (Vec<i32>, Vec<f64>) {
    let y = dense(&base(m), m, x, n, dir == Direction::Transposed);
    let g = cfg.group.unwrap_or(n);
    let qmax = f64::from(cfg.bits.qmax());
    let (mut codes, mut scales) = (Vec::new(), Vec::new());
    for yg in y.chunks(g) {
        let absmax = yg.iter().fold(0.0f64, |a, v| a.max(v.abs()));
        let scale = f64::from(cfg.clip_ratio) * absmax / qmax;
        scales.push(scale);
        codes.extend(yg.iter().map(|v| {
            if scale > 0.0 {
                (v / scale).round().clamp(-qmax, qmax) as i32
            } else {
                0
            }
        }));
    }
    (codes, scales)
}

fn unpack_all(codes: &[u8], n: usize, bits: Bits) -> Vec<i32> {
    let bytes = bits.row_bytes(n);
    codes
        .chunks(bytes)
        .flat_map(|row| (0..n).map(move |i| unpack(row, i, bits)))
        .collect()
}

#[test]
fn codes_and_scales_match_the_f64_reference() {
    let mut rng = Rng(21);
    for (m, k) in [(1usize, 6u32), (12, 2), (20, 0), (2, 3), (44, 1)] {
        for bits in [Bits::Int8, Bits::Int4] {
            for group in [None, Some(4), Some(8)] {
                if group.is_some_and(|g| !(m << k).is_multiple_of(g)) {
                    continue;
                }
                for dir in [Direction::Forward, Direction::Transposed] {
                    let o = op(m, k, dir);
                    let n = o.plan().n();
                    let cfg = QuantConfig {
                        bits,
                        group,
                        clip_ratio: [1.0, 0.9][rng.below(2)],
                    };
                    let rows = 1 + 2 * rng.below(3); // odd row counts
                    let x = rng.wide(rows * n);
                    let t = Tensor::from_slice(&x, (rows, n), &Device::Cpu).unwrap();
                    let (codes, scales) = rotate_quantize(&t, &o, &cfg).unwrap();
                    assert_eq!(codes.dims(), &[rows, bits.row_bytes(n)]);
                    assert_eq!(scales.dims(), &[rows, n / cfg.group.unwrap_or(n)]);
                    let got = unpack_all(
                        &codes.flatten_all().unwrap().to_vec1::<u8>().unwrap(),
                        n,
                        bits,
                    );
                    let (want, want_scales) = reference(&x, m, n, dir, &cfg);
                    let differ = got.iter().zip(&want).filter(|(a, b)| a != b).count();
                    assert!(
                        got.iter().zip(&want).all(|(a, b)| (a - b).abs() <= 1),
                        "m={m} k={k} {bits:?} {group:?}"
                    );
                    assert!(
                        differ * 100 <= got.len().max(100),
                        "{differ} of {} codes differ",
                        got.len()
                    );
                    for (s, w) in vec_of(&scales).iter().zip(&want_scales) {
                        assert!((f64::from(*s) - w).abs() <= 1e-5 * w, "scale {s} vs {w}");
                    }
                }
            }
        }
    }
}

#[test]
fn fused_equals_rotation_then_quantization_exactly() {
    // With the same f32 rotation, the fused kernel is the documented rule
    // bit for bit: codes from the unfused op plus plain loops.
    let mut rng = Rng(22);
    let o = op(12, 3, Direction::Forward);
    let n = o.plan().n();
    for bits in [Bits::Int8, Bits::Int4] {
        let cfg = QuantConfig {
            bits,
            group: Some(16),
            clip_ratio: 0.95,
        };
        let x = rng.vec(7 * n);
        let t = Tensor::from_slice(&x, (7, n), &Device::Cpu).unwrap();
        let y = vec_of(&hadamard(&t, &o).unwrap());
        let (codes, scales) = rotate_quantize(&t, &o, &cfg).unwrap();
        let got = unpack_all(
            &codes.flatten_all().unwrap().to_vec1::<u8>().unwrap(),
            n,
            bits,
        );
        let scales = vec_of(&scales);
        for (gi, yg) in y.chunks(16).enumerate() {
            let absmax = yg.iter().fold(0.0f32, |a, v| a.max(v.abs()));
            let (scale, inv) = group_scale(absmax, &cfg);
            assert_eq!(scale.to_bits(), scales[gi].to_bits());
            for (j, &v) in yg.iter().enumerate() {
                assert_eq!(got[gi * 16 + j], code(v, inv, bits.qmax()));
            }
        }
        // Dequantize and the fused fake quant agree with code·scale exactly.
        let (codes_t, scales_t) = rotate_quantize(&t, &o, &cfg).unwrap();
        let deq = vec_of(&dequantize(&codes_t, &scales_t, &cfg, n).unwrap());
        let fake = vec_of(&rotate_fake_quant(&t, &o, &cfg).unwrap());
        for (i, (&d, &f)) in deq.iter().zip(&fake).enumerate() {
            let want = got[i] as f32 * scales[i / 16];
            assert_eq!(d.to_bits(), want.to_bits());
            assert_eq!(f.to_bits(), want.to_bits());
            // Within half a step of the rotated value (no clipping beyond 0.95·absmax/step).
            assert!((d - y[i]).abs() <= 0.5 * scales[i / 16] + 0.06 * y[i].abs());
        }
    }
}

#[test]
fn int4_nibble_order_and_special_groups() {
    // n = 4: H·(2 e_1)/2 = column 1 of S = (1, −1, 1, −1): codes 7, −7, 7, −7,
    // so each byte is 0x7 | 0x9 << 4.
    let o = op(1, 2, Direction::Forward);
    let cfg = QuantConfig::per_token(Bits::Int4);
    let t = Tensor::new(
        &[
            [0.0f32, 2.0, 0.0, 0.0],
            [0.0; 4],
            [f32::INFINITY, 0.0, 0.0, 0.0],
        ],
        &Device::Cpu,
    )
    .unwrap();
    let (codes, scales) = rotate_quantize(&t, &o, &cfg).unwrap();
    let codes = codes.to_vec2::<u8>().unwrap();
    let scales = scales.to_vec2::<f32>().unwrap();
    assert_eq!(codes[0], vec![0x97, 0x97]);
    assert_eq!(scales[0][0], 1.0 / 7.0);
    // All zeros: scale 0, codes 0. Infinite input: scale inf, codes 0.
    assert_eq!((codes[1].clone(), scales[1][0]), (vec![0, 0], 0.0));
    assert_eq!(codes[2], vec![0, 0]);
    assert!(scales[2][0].is_infinite());
    // A NaN element gets code 0; its neighbours are still quantized.
    assert_eq!(code(f32::NAN, 3.0, 7.0), 0);
    assert_eq!(code(100.0, 3.0, 7.0), 7);
    assert_eq!(code(-2.5, 1.0, 7.0), -2); // ties to even
}

#[test]
fn dtypes_and_shapes() {
    let mut rng = Rng(23);
    let o = op(20, 1, Direction::Forward);
    let n = o.plan().n();
    let cfg = QuantConfig {
        bits: Bits::Int8,
        group: Some(10),
        clip_ratio: 1.0,
    };
    let x = rng.vec(2 * 3 * n);
    let t = Tensor::from_slice(&x, (2, 3, n), &Device::Cpu).unwrap();
    let (c32, s32) = rotate_quantize(&t, &o, &cfg).unwrap();
    assert_eq!(c32.dims(), &[2, 3, n]);
    assert_eq!(s32.dims(), &[2, 3, n / 10]);
    for dtype in [DType::BF16, DType::F16] {
        let th = t.to_dtype(dtype).unwrap();
        let (c, _) = rotate_quantize(&th, &o, &cfg).unwrap();
        let a = c32.flatten_all().unwrap().to_vec1::<u8>().unwrap();
        let b = c.flatten_all().unwrap().to_vec1::<u8>().unwrap();
        // Inputs rounded to 8 or 11 bits move codes by a few steps at most.
        let worst = a
            .iter()
            .zip(&b)
            .map(|(&p, &q)| (p as i8 as i32 - q as i8 as i32).abs())
            .max()
            .unwrap();
        assert!(worst <= 2, "{dtype:?}: {worst}");
        let f = rotate_fake_quant(&th, &o, &cfg).unwrap();
        assert_eq!(f.dtype(), dtype);
    }
}

#[test]
fn fake_quant_backward_is_straight_through() {
    let mut rng = Rng(24);
    let o = op(12, 2, Direction::Forward);
    let n = o.plan().n();
    let cfg = QuantConfig::per_token(Bits::Int4);
    let x =
        Var::from_tensor(&Tensor::from_vec(rng.vec(3 * n), (3, n), &Device::Cpu).unwrap()).unwrap();
    let w = Tensor::from_vec(rng.vec(3 * n), (3, n), &Device::Cpu).unwrap();
    let loss = rotate_fake_quant(x.as_tensor(), &o, &cfg)
        .unwrap()
        .mul(&w)
        .unwrap()
        .sum_all()
        .unwrap();
    let g = loss.backward().unwrap();
    assert_eq!(
        vec_of(g.get(&x).unwrap()),
        vec_of(&hadamard(&w, &o.inverse()).unwrap())
    );
}

#[test]
fn bad_configs_are_errors() {
    let o = op(12, 1, Direction::Forward);
    let t = Tensor::zeros((2, 24), DType::F32, &Device::Cpu).unwrap();
    let bad = |cfg: QuantConfig| rotate_quantize(&t, &o, &cfg).unwrap_err().to_string();
    assert!(bad(QuantConfig {
        bits: Bits::Int8,
        group: Some(5),
        clip_ratio: 1.0
    })
    .contains("divide"));
    assert!(bad(QuantConfig {
        bits: Bits::Int4,
        group: Some(3),
        clip_ratio: 1.0
    })
    .contains("even"));
    assert!(bad(QuantConfig {
        bits: Bits::Int8,
        group: None,
        clip_ratio: 0.0
    })
    .contains("clip_ratio"));
    let wrong = Tensor::zeros((2, 25), DType::F32, &Device::Cpu).unwrap();
    assert!(rotate_quantize(&wrong, &o, &QuantConfig::per_token(Bits::Int8)).is_err());
    let cfg = QuantConfig::per_token(Bits::Int8);
    let (c, s) = rotate_quantize(&t, &o, &cfg).unwrap();
    assert!(dequantize(&c, &s, &cfg, 48).is_err());
    assert!(dequantize(&c, &s.narrow(0, 0, 1).unwrap(), &cfg, 24).is_err());
    assert!(dequantize(&s, &s, &cfg, 24).is_err());
}
