//! Exact checks of every supported order and of the fast transform against
//! the dense product.

use super::*;

/// Largest order checked exhaustively (the brief's 172·8).
const MAX_ORDER: usize = 172 * 8;

/// Every supported order m·2^k ≤ MAX_ORDER, m ∈ {1} ∪ BASE_ORDERS.
fn all_orders() -> Vec<usize> {
    let mut orders: Vec<usize> = std::iter::once(1)
        .chain(BASE_ORDERS.iter().copied())
        .flat_map(|m| (0..).map(move |k| m << k).take_while(|&n| n <= MAX_ORDER))
        .collect();
    orders.sort_unstable();
    orders.dedup();
    orders
}

/// Checks a share of the orders (split so the test harness can run the
/// shares on both cores).
fn check_orders(share: usize, shares: usize) {
    for (idx, n) in all_orders().into_iter().enumerate() {
        if idx % shares != share {
            continue;
        }
        let h = hadamard(n).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(h.n, n);
        assert!(is_hadamard(&h), "order {n} is not Hadamard");
        let (m, k) = factor(n).expect("supported");
        assert_eq!(m << k, n);
    }
}

#[test]
fn every_order_is_hadamard_a() {
    check_orders(0, 4);
}
#[test]
fn every_order_is_hadamard_b() {
    check_orders(1, 4);
}
#[test]
fn every_order_is_hadamard_c() {
    check_orders(2, 4);
}
#[test]
fn every_order_is_hadamard_d() {
    check_orders(3, 4);
}

#[test]
fn every_base_matrix_is_hadamard() {
    // Including 40, which hadamard() never builds directly (it factors as 20·2).
    for &m in [1, 2].iter().chain(BASE_ORDERS) {
        let entries = base_matrix(m).unwrap_or_else(|| panic!("no base {m}"));
        assert!(is_hadamard(&Hadamard { n: m, entries }), "base {m}");
    }
}

#[test]
fn is_hadamard_rejects_broken_matrices() {
    let mut h = hadamard(12).expect("12");
    h.entries[5] = -h.entries[5];
    assert!(!is_hadamard(&h));
    let mut h = hadamard(8).expect("8");
    h.entries[0] = 0;
    assert!(!is_hadamard(&h));
    assert!(!is_hadamard(&Hadamard {
        n: 2,
        entries: vec![1, 1, 1]
    }));
}

#[test]
fn factor_takes_largest_power_of_two() {
    assert_eq!(factor(1), Some((1, 0)));
    assert_eq!(factor(2), Some((1, 1)));
    assert_eq!(factor(1024), Some((1, 10)));
    assert_eq!(factor(12), Some((12, 0)));
    assert_eq!(factor(40), Some((20, 1)));
    assert_eq!(factor(80), Some((20, 2)));
    assert_eq!(factor(344), Some((172, 1)));
    assert_eq!(factor(0), None);
    assert_eq!(factor(44), None);
}

#[test]
fn unsupported_orders_are_errors() {
    for n in [44, 3, 0, 6, 88, 100, 116] {
        let err = hadamard(n).expect_err("unsupported");
        assert!(err.contains(&format!("order {n}:")), "{err}");
        assert!(
            err.contains("m in {1, 12, 20, 28, 36, 40, 52, 60, 108, 140, 156, 172}"),
            "{err}"
        );
        let mut data = vec![0.0f32; 8];
        assert!(fwht_rows(&mut data, n).is_err());
    }
}

#[test]
fn bad_data_length_is_an_error() {
    let mut data = vec![0.0f32; 13];
    assert!(fwht_rows(&mut data, 12).is_err());
}

/// Tiny deterministic generator (splitmix64) so the tests need no crates.
struct Rng(u64);
impl Rng {
    fn uniform(&mut self) -> f32 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        ((z >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
    fn rows(&mut self, rows: usize, n: usize) -> Vec<f32> {
        (0..rows * n).map(|_| self.uniform()).collect()
    }
}

/// Dense reference in f64: each row x ↦ x·(H/√n)ᵀ, or x·(H/√n) if `transpose`.
fn dense(h: &Hadamard, data: &[f32], transpose: bool) -> Vec<f64> {
    let n = h.n;
    let scale = 1.0 / (n as f64).sqrt();
    let mut out = Vec::with_capacity(data.len());
    for x in data.chunks_exact(n) {
        for j in 0..n {
            let sum: f64 = (0..n)
                .map(|i| {
                    let hv = if transpose { h.get(i, j) } else { h.get(j, i) };
                    f64::from(hv) * f64::from(x[i])
                })
                .sum();
            out.push(sum * scale);
        }
    }
    out
}

const FWHT_ORDERS: &[usize] = &[
    1, 2, 8, 12, 24, 28, 36, 40, 52, 60, 108, 140, 156, 172, 256, 344, 416, 1024, 1248, 3072,
];

#[test]
fn fast_transform_equals_dense_product() {
    let mut rng = Rng(7);
    for &n in FWHT_ORDERS {
        let h = hadamard(n).expect("supported");
        let x = rng.rows(3, n);
        for transpose in [false, true] {
            let mut fast = x.clone();
            if transpose {
                fwht_rows_transposed(&mut fast, n).expect("ok");
            } else {
                fwht_rows(&mut fast, n).expect("ok");
            }
            let reference = dense(&h, &x, transpose);
            for (i, (&f, &r)) in fast.iter().zip(&reference).enumerate() {
                assert!(
                    (f64::from(f) - r).abs() < 1e-5,
                    "n={n} transpose={transpose} idx={i}: {f} vs {r}"
                );
            }
        }
    }
}

#[test]
fn transform_then_transpose_recovers_input() {
    let mut rng = Rng(11);
    for &n in FWHT_ORDERS {
        let plan = FwhtPlan::new(n).expect("supported");
        assert_eq!(plan.n(), n);
        let x = rng.rows(4, n);
        let mut y = x.clone();
        plan.apply_rows(&mut y).expect("ok");
        // Orthogonality also means the norm is preserved.
        let norm = |v: &[f32]| v.iter().map(|&a| f64::from(a).powi(2)).sum::<f64>();
        assert!((norm(&x) - norm(&y)).abs() < 1e-4 * norm(&x), "n={n}");
        plan.apply_rows_transposed(&mut y).expect("ok");
        for (&a, &b) in x.iter().zip(&y) {
            assert!((a - b).abs() < 1e-5, "n={n}: {a} vs {b}");
        }
        // When H is symmetric, the forward transform alone is an involution.
        if hadamard(n).expect("supported").is_symmetric() {
            let mut z = x.clone();
            plan.apply_rows(&mut z).expect("ok");
            plan.apply_rows(&mut z).expect("ok");
            for (&a, &b) in x.iter().zip(&z) {
                assert!((a - b).abs() < 1e-5, "n={n} involution: {a} vs {b}");
            }
        }
    }
}

#[test]
fn symmetry_is_as_documented() {
    for n in [1, 2, 64, 36, 72, 52, 104] {
        assert!(hadamard(n).expect("ok").is_symmetric(), "n={n}");
    }
    for n in [12, 20, 28, 60, 108, 140, 156, 172, 24] {
        assert!(!hadamard(n).expect("ok").is_symmetric(), "n={n}");
    }
}

#[test]
fn sylvester_order_is_fwht_order() {
    // Column j of the transform of the unit vector e_i is H[j][i]/√n: the
    // butterflies must produce the Sylvester (natural) ordering.
    let n = 16;
    let h = hadamard(n).expect("16");
    for i in 0..n {
        let mut e = vec![0.0f32; n];
        e[i] = 1.0;
        fwht_rows(&mut e, n).expect("ok");
        for (j, &v) in e.iter().enumerate() {
            assert!((v * 4.0 - f32::from(h.get(j, i))).abs() < 1e-6);
        }
    }
}

#[test]
fn exhaustive_list_covers_the_largest_orders() {
    let orders = all_orders();
    for n in [1, 2, 12, 156, 172, 344, 1024, 1120, 1248, 1280, 1376] {
        assert!(orders.contains(&n), "{n} missing");
    }
    assert!(orders.iter().all(|&n| n <= MAX_ORDER));
}
