use std::sync::Arc;

use candle_core::{DType, Device, Tensor, Var};

use super::*;
use crate::testing::{base, dense, rel_err, Rng};

/// Base orders the tests use: trivial, Sylvester 2 (exercises the mix's
/// leftover rows), and Paley I orders, 180 being larger than any the
/// workbench needs.
const BASES: &[usize] = &[1, 2, 12, 20, 44, 180];

fn plan(m: usize, k: u32) -> HadamardPlan {
    HadamardPlan::new(m << k, m, &base(m)).expect("valid plan")
}

#[test]
fn test_bases_are_hadamard() {
    for &m in BASES {
        assert!(HadamardPlan::new(m, m, &base(m)).is_ok(), "m = {m}");
    }
}

#[test]
fn bad_plans_are_clear_errors() {
    let err = |r: Result<HadamardPlan>| r.expect_err("should fail").to_string();
    assert!(err(HadamardPlan::pow2(0)).contains("positive"));
    assert!(err(HadamardPlan::pow2(12)).contains("not the base order 1 times a power of two"));
    assert!(err(HadamardPlan::new(24, 12, &base(12)[..10])).contains("needs 144 entries"));
    let mut b = base(12);
    b[5] = 0;
    assert!(err(HadamardPlan::new(24, 12, &b)).contains("±1"));
    b[5] = -base(12)[5];
    assert!(err(HadamardPlan::new(24, 12, &b)).contains("not Hadamard"));
    assert!(err(HadamardPlan::pow2(1 << 25)).contains("exceeds"));
    let p = plan(12, 3);
    assert!(p
        .apply(&mut [0.0; 95], Direction::Forward)
        .unwrap_err()
        .to_string()
        .contains("not a multiple"));
}

#[test]
fn portable_path_equals_dense_reference() {
    let mut rng = Rng(1);
    for &m in BASES {
        for k in [0, 1, 3, 4, 6] {
            let n = m << k;
            let p = plan(m, k).with_path(CpuPath::Portable);
            let rows = 1 + rng.below(3);
            let x = rng.vec(rows * n);
            for dir in [Direction::Forward, Direction::Transposed] {
                let mut y = x.clone();
                p.apply(&mut y, dir).unwrap();
                let r = dense(&base(m), m, &x, n, dir == Direction::Transposed);
                let e = rel_err(&y, &r);
                assert!(e < 1e-6, "m={m} k={k} {dir:?}: rel err {e}");
            }
        }
    }
}

#[test]
fn sylvester_order_is_the_natural_order() {
    // The transform of e_i is column i of H/√n: S[j][i] = (−1)^popcount(i & j).
    let n = 64;
    let p = HadamardPlan::pow2(n).unwrap();
    for i in 0..n {
        let mut e = vec![0.0f32; n];
        e[i] = 1.0;
        p.apply(&mut e, Direction::Forward).unwrap();
        for (j, &v) in e.iter().enumerate() {
            let want = if (i & j).count_ones() % 2 == 0 {
                1.0
            } else {
                -1.0
            };
            assert_eq!(v * 8.0, want, "i={i} j={j}");
        }
    }
}

/// The fast path must compute exactly what the portable path computes, for
/// every order, row count and direction, on ordinary and wide-range data.
#[test]
fn fast_path_is_bit_identical_to_portable() {
    if CpuPath::detect() == CpuPath::Portable {
        eprintln!("no AVX2 on this CPU: the fast path is the portable path");
        return;
    }
    let mut rng = Rng(2);
    let mut orders: Vec<(usize, u32)> = (0..=15).map(|k| (1, k)).collect();
    for &m in &BASES[1..] {
        orders.extend([0, 1, 2, 3, 4, 5, 7, 9].map(|k| (m, k)));
    }
    for (m, k) in orders {
        let n = m << k;
        let fast = plan(m, k);
        assert_eq!(fast.path(), CpuPath::Avx2);
        let slow = plan(m, k).with_path(CpuPath::Portable);
        let rows = [1, 3, 7][rng.below(3)].min((1 << 17) / n).max(1);
        let x = if rng.below(2) == 0 {
            rng.vec(rows * n)
        } else {
            rng.wide(rows * n)
        };
        for dir in [Direction::Forward, Direction::Transposed] {
            let (mut a, mut b) = (x.clone(), x.clone());
            fast.apply(&mut a, dir).unwrap();
            slow.apply_seq(&mut b, dir).unwrap();
            let same = a.iter().zip(&b).all(|(p, q)| p.to_bits() == q.to_bits());
            assert!(same, "m={m} k={k} rows={rows} {dir:?}");
        }
    }
}

#[test]
fn transposed_inverts_forward() {
    let mut rng = Rng(3);
    for &m in BASES {
        for k in [0, 2, 5, 10] {
            let p = plan(m, k);
            let x = rng.vec(5 * p.n());
            let mut y = x.clone();
            p.apply(&mut y, Direction::Forward).unwrap();
            p.apply(&mut y, Direction::Transposed).unwrap();
            let e = rel_err(&y, &x.iter().map(|&v| f64::from(v)).collect::<Vec<_>>());
            assert!(e < 1e-6, "m={m} k={k}: {e}");
        }
    }
}

#[test]
fn thread_count_does_not_change_results() {
    let mut rng = Rng(4);
    let p = plan(12, 6);
    let x = rng.vec(101 * p.n());
    let mut a = x.clone();
    p.apply(&mut a, Direction::Forward).unwrap();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let mut b = x.clone();
    pool.install(|| p.apply(&mut b, Direction::Forward))
        .unwrap();
    let mut c = x;
    p.apply_seq(&mut c, Direction::Forward).unwrap();
    assert!(a.iter().zip(&b).all(|(p, q)| p.to_bits() == q.to_bits()));
    assert!(a.iter().zip(&c).all(|(p, q)| p.to_bits() == q.to_bits()));
}

#[test]
fn extreme_values_propagate_as_in_the_reference() {
    // Huge values overflow to ±inf, a NaN poisons its whole row (every output
    // reads every input), and the other rows are untouched by either.
    let p = plan(12, 4);
    let n = p.n();
    let mut x = vec![1.0f32; 3 * n];
    x[5] = f32::MAX;
    x[6] = f32::MAX;
    x[n + 7] = f32::NAN;
    x[2 * n + 3] = 1e-40; // subnormal
    let mut slow = x.clone();
    p.clone()
        .with_path(CpuPath::Portable)
        .apply_seq(&mut slow, Direction::Forward)
        .unwrap();
    p.apply(&mut x, Direction::Forward).unwrap();
    assert!(x[..n].iter().any(|v| v.is_infinite()));
    assert!(x[n..2 * n].iter().all(|v| v.is_nan()));
    assert!(x[2 * n..].iter().all(|v| v.is_finite()));
    for (a, b) in x.iter().zip(&slow) {
        assert!(a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()));
    }
}

fn tensor_of(x: &[f32], rows: usize, n: usize, dtype: DType) -> Tensor {
    Tensor::from_slice(x, (rows, n), &Device::Cpu)
        .unwrap()
        .to_dtype(dtype)
        .unwrap()
}

#[test]
fn candle_op_matches_reference_in_every_dtype() {
    let mut rng = Rng(5);
    for (m, k) in [(1, 8), (12, 3), (20, 0), (2, 5)] {
        let p = Arc::new(plan(m, k));
        let n = p.n();
        let rows = 3 + rng.below(5);
        let x = rng.vec(rows * n);
        let signs: Vec<f32> = (0..n)
            .map(|_| if rng.below(2) == 0 { 1.0 } else { -1.0 })
            .collect();
        for dir in [Direction::Forward, Direction::Transposed] {
            let op = HadamardOp::new(p.clone(), dir).with_signs(&signs).unwrap();
            // Reference: signs on the input (forward) or the output (transposed).
            let xs: Vec<f32> = match dir {
                Direction::Forward => x
                    .iter()
                    .enumerate()
                    .map(|(i, v)| v * signs[i % n])
                    .collect(),
                Direction::Transposed => x.clone(),
            };
            let mut r = dense(&base(m), m, &xs, n, dir == Direction::Transposed);
            if dir == Direction::Transposed {
                r.iter_mut()
                    .enumerate()
                    .for_each(|(i, v)| *v *= f64::from(signs[i % n]));
            }
            for (dtype, tol) in [(DType::F32, 1e-6), (DType::BF16, 1e-2), (DType::F16, 2e-3)] {
                let t = tensor_of(&x, rows, n, dtype);
                let y = hadamard(&t, &op).unwrap();
                assert_eq!(y.dtype(), dtype);
                assert_eq!(y.dims(), &[rows, n]);
                let y: Vec<f32> = y
                    .to_dtype(DType::F32)
                    .unwrap()
                    .flatten_all()
                    .unwrap()
                    .to_vec1()
                    .unwrap();
                // bf16/f16 inputs are rounded first; compare to the reference on
                // the rounded input, so the tolerance covers the output rounding.
                let xr: Vec<f32> = t
                    .to_dtype(DType::F32)
                    .unwrap()
                    .flatten_all()
                    .unwrap()
                    .to_vec1()
                    .unwrap();
                let r = if dtype == DType::F32 {
                    r.clone()
                } else {
                    let xs: Vec<f32> = match dir {
                        Direction::Forward => xr
                            .iter()
                            .enumerate()
                            .map(|(i, v)| v * signs[i % n])
                            .collect(),
                        Direction::Transposed => xr,
                    };
                    let mut r = dense(&base(m), m, &xs, n, dir == Direction::Transposed);
                    if dir == Direction::Transposed {
                        r.iter_mut()
                            .enumerate()
                            .for_each(|(i, v)| *v *= f64::from(signs[i % n]));
                    }
                    r
                };
                let e = rel_err(&y, &r);
                assert!(e < tol, "m={m} k={k} {dir:?} {dtype:?}: {e}");
                // In place gives the same values as out of place.
                let t2 = t.copy().unwrap();
                hadamard_inplace(&t2, &op).unwrap();
                let y2: Vec<f32> = t2
                    .to_dtype(DType::F32)
                    .unwrap()
                    .flatten_all()
                    .unwrap()
                    .to_vec1()
                    .unwrap();
                assert!(y.iter().zip(&y2).all(|(a, b)| a.to_bits() == b.to_bits()));
            }
        }
    }
}

#[test]
fn candle_op_rejects_bad_input() {
    let p = Arc::new(plan(12, 2));
    let op = HadamardOp::new(p, Direction::Forward);
    let wrong_n = Tensor::zeros((2, 47), DType::F32, &Device::Cpu).unwrap();
    assert!(hadamard(&wrong_n, &op)
        .unwrap_err()
        .to_string()
        .contains("last dimension is 47"));
    let ints = Tensor::zeros((2, 48), DType::U32, &Device::Cpu).unwrap();
    assert!(hadamard(&ints, &op)
        .unwrap_err()
        .to_string()
        .contains("unsupported dtype"));
    assert!(op.clone().with_signs(&[1.0; 47]).is_err());
    assert!(op.clone().with_signs(&[0.5; 48]).is_err());
    // A strided view is made contiguous by `hadamard`, refused in place.
    let t = Tensor::arange(0f32, 96.0, &Device::Cpu)
        .unwrap()
        .reshape((48, 2))
        .unwrap()
        .t()
        .unwrap();
    assert!(hadamard(&t, &op).is_ok());
    assert!(hadamard_inplace(&t, &op).is_err());
}

#[test]
fn backward_is_the_transposed_transform() {
    // d/dx Σ w ⊙ (H D x) = (H D)ᵀ w = D Hᵀ w: the gradient is the inverse op on w.
    let mut rng = Rng(6);
    let p = Arc::new(plan(20, 2));
    let n = p.n();
    let signs: Vec<f32> = (0..n)
        .map(|_| if rng.below(2) == 0 { 1.0 } else { -1.0 })
        .collect();
    let op = HadamardOp::new(p, Direction::Forward)
        .with_signs(&signs)
        .unwrap();
    let x = Var::from_tensor(&tensor_of(&rng.vec(3 * n), 3, n, DType::F32)).unwrap();
    let w = tensor_of(&rng.vec(3 * n), 3, n, DType::F32);
    let loss = hadamard(x.as_tensor(), &op)
        .unwrap()
        .mul(&w)
        .unwrap()
        .sum_all()
        .unwrap();
    let grads = loss.backward().unwrap();
    let g: Vec<f32> = grads
        .get(&x)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    let want: Vec<f32> = hadamard(&w, &op.inverse())
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    assert_eq!(g, want);
}

#[test]
fn table_mix_equals_dense_mix() {
    // Any ±1 matrix (Hadamard or not), every order up to 40 and two large
    // ones: all group sizes and short last groups occur.
    let mut rng = Rng(7);
    for m in (1..=40).chain([172, 180]) {
        let b: Vec<f32> = (0..m * m)
            .map(|_| if rng.below(2) == 0 { 1.0 } else { -1.0 })
            .collect();
        let plan = mix::MixPlan::new(&b, m);
        let mut scratch = mix::Scratch::new(Some(&plan));
        let z = rng.vec(m * mix::PANEL);
        scratch.set_z(&z);
        mix::mix_panel(&plan, &mut scratch);
        let mut dense = vec![0.0; m * mix::PANEL];
        mix::dense_panel(&b, m, &z, &mut dense);
        for (i, (&t, &d)) in scratch.out().iter().zip(&dense).enumerate() {
            // Both are sums of m terms of magnitude ≤ 1 in different orders.
            assert!(
                (t - d).abs() <= 1e-6 * m as f32,
                "m={m} element {i}: {t} vs {d}"
            );
        }
    }
}

/// `cargo test --release -p wb-kernels mix_speed -- --ignored --nocapture`:
/// single-thread time of one panel by each method (for tuning).
#[test]
#[ignore]
fn mix_speed() {
    let mut rng = Rng(8);
    for m in [12usize, 44, 180] {
        let b: Vec<f32> = (0..m * m)
            .map(|_| if rng.below(2) == 0 { 1.0 } else { -1.0 })
            .collect();
        let plan = mix::MixPlan::new(&b, m);
        let mut scratch = mix::Scratch::new(Some(&plan));
        let z = rng.vec(m * mix::PANEL);
        scratch.set_z(&z);
        let reps = 200_000 / m;
        for path in [CpuPath::Portable, CpuPath::Avx2] {
            let mut best = f64::INFINITY;
            for _ in 0..5 {
                let t = std::time::Instant::now();
                for _ in 0..reps {
                    match path {
                        CpuPath::Avx2 => avx2::mix_panel(&plan, &mut scratch),
                        CpuPath::Portable => mix::mix_panel(&plan, &mut scratch),
                    }
                }
                best = best.min(t.elapsed().as_secs_f64() / reps as f64);
            }
            let ns_per_elem = best * 1e9 / (m * mix::PANEL) as f64;
            eprintln!(
                "m={m} {path:?}: {:.0} ns/panel, {ns_per_elem:.2} ns/element",
                best * 1e9
            );
        }
        let mut out = vec![0.0; m * mix::PANEL];
        let t = std::time::Instant::now();
        for _ in 0..reps {
            mix::dense_panel(&b, m, &z, &mut out);
        }
        eprintln!(
            "m={m} dense portable: {:.0} ns/panel",
            t.elapsed().as_secs_f64() / reps as f64 * 1e9
        );
    }
}
