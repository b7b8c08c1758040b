use candle_core::{DType, Device, Tensor};

use super::*;
use crate::testing::Rng;

/// Relative agreement of two moment sets, on scale-free quantities.
fn close(a: &ChannelMoments, b: &ChannelMoments, tol: f64) -> bool {
    let sd = (b.m2 / b.count).sqrt().max(1e-30);
    a.count == b.count
        && (a.mean - b.mean).abs() <= tol * (b.mean.abs() + sd)
        && (a.m2 - b.m2).abs() <= tol * b.m2.abs().max(1e-30)
        && (a.m3 / (a.count * sd.powi(3)) - b.m3 / (b.count * sd.powi(3))).abs() <= tol * 10.0
        && (a.m4 - b.m4).abs() <= tol * 10.0 * b.m4.abs().max(1e-30)
        && a.absmax == b.absmax
}

fn data(rng: &mut Rng, rows: usize, channels: usize) -> Vec<f32> {
    // Channel c: offset 10^(c mod 4) (up to 1000, to defeat raw power sums),
    // spread 1, and a planted outlier in channel 1.
    let mut x: Vec<f32> = (0..rows * channels)
        .map(|i| 10f32.powi((i % channels % 4) as i32) + rng.uniform() + rng.uniform())
        .collect();
    if channels > 1 && rows > 3 {
        x[3 * channels + 1] = 500.0;
    }
    x
}

#[test]
fn partials_match_the_two_pass_reference_per_block() {
    let mut rng = Rng(31);
    for (rows, channels, block) in [
        (1, 1, 1),
        (7, 3, 2),
        (100, 513, 33),
        (1000, 9, 1000),
        (257, 70, 64),
    ] {
        let x = data(&mut rng, rows, channels);
        let t = Tensor::from_slice(&x, (rows, channels), &Device::Cpu).unwrap();
        let p = channel_stats(&t, block).unwrap();
        assert_eq!(p.dims(), &[rows.div_ceil(block), channels, FIELDS]);
        let p: Vec<f32> = p.flatten_all().unwrap().to_vec1().unwrap();
        for (b, pb) in p.chunks(channels * FIELDS).enumerate() {
            let r0 = b * block;
            let r1 = (r0 + block).min(rows);
            let want = reference(&x[r0 * channels..r1 * channels], r1 - r0, channels);
            for (c, (f, w)) in pb.chunks(FIELDS).zip(&want).enumerate() {
                let got = ChannelMoments {
                    count: f64::from(f[0]),
                    mean: f64::from(f[1]),
                    m2: f64::from(f[2]),
                    m3: f64::from(f[3]),
                    m4: f64::from(f[4]),
                    absmax: f64::from(f[5]),
                };
                if w.count >= 2.0 {
                    assert!(
                        close(&got, w, 2e-3),
                        "rows {rows} block {b} channel {c}: {got:?} vs {w:?}"
                    );
                } else {
                    assert_eq!((got.count, got.mean, got.m2), (w.count, w.mean, 0.0));
                }
            }
        }
    }
}

#[test]
fn merged_partials_equal_one_pass_over_everything() {
    let mut rng = Rng(32);
    let (rows, channels) = (5000, 6);
    let x = data(&mut rng, rows, channels);
    let want = reference(&x, rows, channels);
    let t = Tensor::from_slice(&x, (rows, channels), &Device::Cpu).unwrap();
    for block in [1, 7, 256, 5000] {
        let got = merge_partials(&channel_stats(&t, block).unwrap()).unwrap();
        for (c, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!(
                close(g, w, 1e-4),
                "block {block} channel {c}: {g:?} vs {w:?}"
            );
        }
    }
    // Two calls on two halves, merged, give the same as one.
    let a = merge_partials(&channel_stats(&t.narrow(0, 0, 1234).unwrap(), 100).unwrap()).unwrap();
    let b = merge_partials(&channel_stats(&t.narrow(0, 1234, rows - 1234).unwrap(), 100).unwrap())
        .unwrap();
    for c in 0..channels {
        let mut m = a[c];
        m.merge(&b[c]);
        assert!(close(&m, &want[c], 1e-4), "channel {c}");
    }
    // The planted outlier is the absmax of its channel, and inflates its kurtosis.
    assert_eq!(want[1].absmax, 500.0);
    assert!(want[1].kurtosis() > 100.0 && want[0].kurtosis() < 4.0);
}

#[test]
fn nan_is_skipped_and_inf_propagates() {
    let x = [1.0f32, f32::NAN, 3.0, 2.0, f32::NAN, f32::INFINITY];
    let t = Tensor::from_slice(&x, (3, 2), &Device::Cpu).unwrap();
    let m = merge_partials(&channel_stats(&t, 2).unwrap()).unwrap();
    // Rows [1, NaN], [3, 2], [NaN, inf]: channel 0 holds 1, 3; channel 1 holds 2, inf.
    assert_eq!((m[0].count, m[0].mean, m[0].absmax), (2.0, 2.0, 3.0));
    assert_eq!(m[1].count, 2.0);
    assert!(m[1].absmax.is_infinite());
}

#[test]
fn half_precision_inputs_and_errors() {
    let mut rng = Rng(33);
    let x = data(&mut rng, 64, 5);
    let t = Tensor::from_slice(&x, (64, 5), &Device::Cpu)
        .unwrap()
        .to_dtype(DType::BF16)
        .unwrap();
    let rounded: Vec<f32> = t
        .to_dtype(DType::F32)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    let got = merge_partials(&channel_stats(&t, 16).unwrap()).unwrap();
    for (g, w) in got.iter().zip(&reference(&rounded, 64, 5)) {
        assert!(close(g, w, 1e-3));
    }
    assert!(channel_stats(&t, 0).is_err());
    assert!(channel_stats(&t.reshape(320).unwrap(), 4).is_err());
    let ints = Tensor::zeros((4, 4), DType::U32, &Device::Cpu).unwrap();
    assert!(channel_stats(&ints, 4).is_err());
}
