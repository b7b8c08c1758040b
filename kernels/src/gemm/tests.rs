use std::collections::HashSet;

use candle_core::{DType, Device, Tensor};

use super::schedule::{hilbert_index, morton_index, order};
use super::*;
use crate::testing::Rng;

fn codes(rng: &mut Rng, len: usize) -> Vec<i8> {
    // The full int8 range, −128 included, with the extremes over-represented.
    (0..len)
        .map(|_| match rng.below(8) {
            0 => -128,
            1 => 127,
            _ => rng.next_u64() as i8,
        })
        .collect()
}

fn grids() -> Vec<(usize, usize)> {
    let mut g = vec![
        (1, 1),
        (1, 7),
        (7, 1),
        (2, 2),
        (3, 5),
        (8, 8),
        (9, 17),
        (16, 3),
    ];
    g.extend([(33, 65), (64, 64), (1, 448), (5, 112), (100, 1)]);
    g
}

fn schedules() -> Vec<Schedule> {
    let mut s = Schedule::ALL.to_vec();
    s.extend([
        Schedule::Grouped { group_m: 1 },
        Schedule::Grouped { group_m: 3 },
    ]);
    s
}

#[test]
fn every_schedule_visits_every_tile_once() {
    for (tm, tn) in grids() {
        for s in schedules() {
            let o = order(s, tm, tn);
            assert_eq!(o.len(), tm * tn, "{s:?} {tm}x{tn}");
            let seen: HashSet<_> = o.iter().copied().collect();
            assert_eq!(seen.len(), tm * tn, "{s:?} {tm}x{tn} repeats a tile");
            assert!(o.iter().all(|&(r, c)| r < tm && c < tn), "{s:?} {tm}x{tn}");
            let map = tile_map(s, tm, tn).unwrap();
            let unpacked: Vec<_> = map
                .iter()
                .map(|&p| ((p >> 16) as usize, (p & 0xffff) as usize))
                .collect();
            assert_eq!(unpacked, o);
        }
    }
}

#[test]
fn schedules_have_their_shapes() {
    assert_eq!(
        order(Schedule::RowMajor, 2, 3)[..4],
        [(0, 0), (0, 1), (0, 2), (1, 0)]
    );
    assert_eq!(
        order(Schedule::ColumnMajor, 2, 3)[..3],
        [(0, 0), (1, 0), (0, 1)]
    );
    assert_eq!(
        order(Schedule::Morton, 2, 2),
        [(0, 0), (0, 1), (1, 0), (1, 1)]
    );
    // Grouped with one row per band is row-major; with a band as tall as the
    // grid it is column-major.
    for (tm, tn) in grids() {
        let g1 = order(Schedule::Grouped { group_m: 1 }, tm, tn);
        assert_eq!(g1, order(Schedule::RowMajor, tm, tn));
        let gall = order(Schedule::Grouped { group_m: tm }, tm, tn);
        assert_eq!(gall, order(Schedule::ColumnMajor, tm, tn));
    }
    // Triton's example: 9 × 9 tiles, GROUP_M = 3: the first 9 launches
    // cover a 3 × 3 block.
    let g = order(Schedule::Grouped { group_m: 3 }, 9, 9);
    assert!(g[..9].iter().all(|&(r, c)| r < 3 && c < 3));
    // A Hilbert step always moves to a neighbour on a power-of-two square.
    for side in [2usize, 4, 16, 64] {
        let h = order(Schedule::Hilbert, side, side);
        for w in h.windows(2) {
            let d = w[0].0.abs_diff(w[1].0) + w[0].1.abs_diff(w[1].1);
            assert_eq!(d, 1, "Hilbert jump {w:?} on {side}x{side}");
        }
    }
    // The index functions are bijections on the square.
    let n = 32u32;
    let hs: HashSet<u64> = (0..n)
        .flat_map(|x| (0..n).map(move |y| hilbert_index(n, x, y)))
        .collect();
    assert_eq!(hs.len(), (n * n) as usize);
    assert!(hs.iter().all(|&d| d < u64::from(n * n)));
    assert_eq!(morton_index(0b11, 0b01), 0b0111);
}

#[test]
fn schedule_names_round_trip() {
    for s in schedules() {
        assert_eq!(Schedule::parse(&s.name()).unwrap(), s);
    }
    assert!(Schedule::parse("zigzag").is_err());
    assert!(Schedule::parse("grouped0").is_err());
}

#[test]
fn every_schedule_matches_the_reference() {
    let mut rng = Rng(0x6e44);
    let tiles = [
        (4, 2, 16),
        (5, 3, 16),
        (16, 16, 32),
        (8, 24, 48),
        (32, 32, 256),
    ];
    for trial in 0..12 {
        // Shapes that are not multiples of any tile, small and skinny ones.
        let m = [1, 3, 16, 17, 37][trial % 5] + rng.below(20);
        let n = 1 + rng.below(70);
        let k = [1, 15, 16, 17, 100, 300][trial % 6] + rng.below(3);
        let (a, b) = (codes(&mut rng, m * k), codes(&mut rng, n * k));
        let want = reference_i32(&a, &b, m, n, k);
        for &(tm, tn, tk) in &tiles {
            for s in schedules() {
                let cfg = GemmConfig::new(tm, tn, tk, s);
                let mut got = vec![i32::MIN; m * n];
                gemm_i32_cpu(&a, &b, m, n, k, &cfg, &mut got).unwrap();
                assert_eq!(got, want, "M={m} N={n} K={k} {cfg:?}");
            }
        }
    }
}

#[test]
fn extreme_codes_accumulate_exactly() {
    // −128 · −128 everywhere: pairs of products reach 2^15, the sum K · 2^14.
    let (m, n, k) = (5, 3, 4000);
    let a = vec![-128i8; m * k];
    let b = vec![-128i8; n * k];
    let cfg = GemmConfig::new(4, 2, 256, Schedule::Hilbert);
    let mut got = vec![0; m * n];
    gemm_i32_cpu(&a, &b, m, n, k, &cfg, &mut got).unwrap();
    assert!(got.iter().all(|&v| v == 4000 * 16384));
}

#[test]
fn ops_on_tensors_match_and_scale() {
    let mut rng = Rng(91);
    let (m, n, k) = (19, 23, 80);
    let (a, b) = (codes(&mut rng, m * k), codes(&mut rng, n * k));
    let to_u8 = |v: &[i8]| v.iter().map(|&x| x as u8).collect::<Vec<u8>>();
    let at = Tensor::from_vec(to_u8(&a), (m, k), &Device::Cpu).unwrap();
    let bt = Tensor::from_vec(to_u8(&b), (n, k), &Device::Cpu).unwrap();
    let cfg = GemmConfig::new(8, 8, 32, Schedule::Morton);
    let got = gemm_w8a8_i32(&at, &bt, &cfg).unwrap();
    assert_eq!(got.dtype(), DType::I32);
    let want = reference_i32(&a, &b, m, n, k);
    assert_eq!(got.flatten_all().unwrap().to_vec1::<i32>().unwrap(), want);

    let rs: Vec<f32> = rng.vec(m).iter().map(|v| v.abs() + 0.01).collect();
    let cs: Vec<f32> = rng.vec(n).iter().map(|v| v.abs() + 0.01).collect();
    let rst = Tensor::from_vec(rs.clone(), m, &Device::Cpu).unwrap();
    let cst = Tensor::from_vec(cs.clone(), n, &Device::Cpu).unwrap();
    let y = gemm_w8a8(&at, &bt, &rst, &cst, &cfg).unwrap();
    let y: Vec<f32> = y.flatten_all().unwrap().to_vec1().unwrap();
    let want_f = scale_output(&want, &rs, &cs, n);
    assert_eq!(
        y.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
        want_f.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
    );
    // And close to the f64 product of the dequantized operands.
    for i in 0..m {
        for j in 0..n {
            let exact: f64 = (0..k)
                .map(|p| f64::from(a[i * k + p]) * f64::from(b[j * k + p]))
                .sum::<f64>()
                * f64::from(rs[i])
                * f64::from(cs[j]);
            let g = f64::from(y[i * n + j]);
            assert!(
                (g - exact).abs() <= 1e-6 * exact.abs().max(1.0),
                "{g} vs {exact}"
            );
        }
    }
}

#[test]
fn bad_inputs_are_errors() {
    let cpu = Device::Cpu;
    let a = Tensor::zeros((4, 8), DType::U8, &cpu).unwrap();
    let b = Tensor::zeros((5, 9), DType::U8, &cpu).unwrap();
    let cfg = GemmConfig::new(4, 4, 16, Schedule::RowMajor);
    let e = gemm_w8a8_i32(&a, &b, &cfg).unwrap_err().to_string();
    assert!(e.contains("K must agree"), "{e}");
    let bf = Tensor::zeros((5, 8), DType::F32, &cpu).unwrap();
    let e = gemm_w8a8_i32(&a, &bf, &cfg).unwrap_err().to_string();
    assert!(e.contains("must be u8"), "{e}");
    let b = Tensor::zeros((5, 8), DType::U8, &cpu).unwrap();
    let bad = GemmConfig::new(4, 4, 10, Schedule::RowMajor);
    assert!(gemm_w8a8_i32(&a, &b, &bad).is_err());
    let rs = Tensor::ones(3, DType::F32, &cpu).unwrap();
    let cs = Tensor::ones(5, DType::F32, &cpu).unwrap();
    let e = gemm_w8a8(&a, &b, &rs, &cs, &cfg).unwrap_err().to_string();
    assert!(e.contains("row scales"), "{e}");
}

#[test]
fn results_do_not_depend_on_the_thread_count() {
    let mut rng = Rng(5);
    let (m, n, k) = (70, 50, 96);
    let (a, b) = (codes(&mut rng, m * k), codes(&mut rng, n * k));
    let cfg = GemmConfig::new(16, 8, 32, Schedule::Grouped { group_m: 2 });
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        let mut out = vec![0; m * n];
        pool.install(|| gemm_i32_cpu(&a, &b, m, n, k, &cfg, &mut out).unwrap());
        out
    };
    assert_eq!(run(1), run(3));
}
