use super::*;
use candle_core::Device;
use candle_nn::Optimizer;
use wb_kernels::philox;

fn gaussian(rows: usize, cols: usize, seed: u64) -> Tensor {
    let v: Vec<f32> = (0..(rows * cols) as u64)
        .map(|i| {
            let u1 = philox::uniform(seed, i, 0, 91);
            let u2 = philox::uniform(seed, i, 1, 91);
            ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
        })
        .collect();
    Tensor::from_vec(v, (rows, cols), &Device::Cpu).unwrap()
}

/// Eigenvalues of a symmetric matrix (cyclic Jacobi rotations, f64).
fn symmetric_eigenvalues(mut a: Vec<Vec<f64>>) -> Vec<f64> {
    let n = a.len();
    for _sweep in 0..100 {
        let off: f64 = (0..n)
            .flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| a[i][j] * a[i][j])
            .sum();
        if off < 1e-22 {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                if a[p][q].abs() < 1e-300 {
                    continue;
                }
                let theta = (a[q][q] - a[p][p]) / (2.0 * a[p][q]);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for row in a.iter_mut() {
                    let (akp, akq) = (row[p], row[q]);
                    row[p] = c * akp - s * akq;
                    row[q] = s * akp + c * akq;
                }
                let (rp, rq) = (a[p].clone(), a[q].clone());
                for (k, (apk, aqk)) in rp.into_iter().zip(rq).enumerate() {
                    a[p][k] = c * apk - s * aqk;
                    a[q][k] = s * apk + c * aqk;
                }
            }
        }
    }
    (0..n).map(|i| a[i][i]).collect()
}

/// Singular values of a matrix, from the eigenvalues of its smaller Gram matrix.
fn singular_values(m: &Tensor) -> Vec<f64> {
    let (r, c) = m.dims2().unwrap();
    let m = if r > c { m.t().unwrap() } else { m.clone() };
    let rows: Vec<Vec<f64>> = m
        .to_vec2::<f32>()
        .unwrap()
        .into_iter()
        .map(|r| r.into_iter().map(f64::from).collect())
        .collect();
    let n = rows.len();
    let gram: Vec<Vec<f64>> = (0..n)
        .map(|i| {
            (0..n)
                .map(|j| rows[i].iter().zip(&rows[j]).map(|(a, b)| a * b).sum())
                .collect()
        })
        .collect();
    let mut s: Vec<f64> = symmetric_eigenvalues(gram)
        .into_iter()
        .map(|e| e.max(0.0).sqrt())
        .collect();
    s.sort_by(f64::total_cmp);
    s
}

#[test]
fn newton_schulz_brings_singular_values_into_the_band() {
    // Shapes of the recipe model (q/o, k/v, gate/up, down) and a square one.
    for (i, (rows, cols)) in [(128, 128), (64, 128), (352, 128), (128, 352), (40, 40)]
        .into_iter()
        .enumerate()
    {
        let g = gaussian(rows, cols, i as u64);
        let before = singular_values(&g);
        let frobenius = before.iter().map(|s| s * s).sum::<f64>().sqrt();
        let o = newton_schulz(&g, 5).unwrap();
        assert_eq!(o.dims(), [rows, cols]);
        let after = singular_values(&o);
        // Singular values map monotonically: pair them in sorted order. Inputs not
        // vanishingly small relative to the norm land in the band; the smallest
        // of a square random matrix may not, which is how the iteration is tuned.
        let mut in_band = 0;
        for (b, a) in before.iter().zip(&after) {
            assert!(*a < 1.2, "{rows}x{cols}: output singular value {a}");
            if b / frobenius >= 2e-3 {
                assert!(*a > 0.68, "{rows}x{cols}: {b} -> {a}");
                in_band += 1;
            }
        }
        assert!(in_band * 10 >= after.len() * 9, "{rows}x{cols}: {in_band}");
        // Input singular values spread over more than a factor 10; outputs do not.
        let spread = after.last().unwrap() / after[after.len() / 10];
        assert!(spread < 1.8, "{rows}x{cols}: output spread {spread}");
    }
    // A zero update stays zero.
    let z = newton_schulz(
        &Tensor::zeros((4, 6), candle_core::DType::F32, &Device::Cpu).unwrap(),
        5,
    )
    .unwrap();
    assert_eq!(
        z.abs()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap(),
        0.0
    );
}

/// The pattern `matrix(rows, cols, seed)` of tests/reference/muon_step.py.
fn pattern(rows: usize, cols: usize, seed: usize) -> Tensor {
    let v: Vec<f32> = (0..rows)
        .flat_map(|i| {
            (0..cols).map(move |j| {
                (((i * 7 + j * 3 + seed) % 11) as f64 - 5.0) / 4.0
                    + 0.1 * seed as f64 * (i as f64 - j as f64)
            })
        })
        .map(|x| x as f32)
        .collect();
    Tensor::from_vec(v, (rows, cols), &Device::Cpu).unwrap()
}

/// Steps `muon` with gradient `g` (the gradient of Σ W ⊙ g is g).
fn step_with(muon: &mut Muon, var: &Var, g: &Tensor) {
    let loss = (var.as_tensor() * g).unwrap().sum_all().unwrap();
    muon.step(&loss.backward().unwrap()).unwrap();
}

#[test]
fn two_steps_match_the_python_reference() {
    // Printed by `python3 tests/reference/muon_step.py` (float64, written from the
    // update's definition): weights after two steps with lr 0.1, β 0.95,
    // Nesterov, weight decay 0.1.
    #[rustfmt::skip]
    let expected: [(usize, usize, MuonScale, Vec<f64>); 4] = [
        (3, 5, MuonScale::Shape, vec![
            -0.943253455, -0.309302512, 0.266414982, 1.096383576, -1.009728691,
            0.719003212, -1.113614351, -0.563702824, 0.066527947, 0.711820039,
            -0.088043770, 0.481803682, 1.325732797, -0.777608956, -0.188530511]),
        (3, 5, MuonScale::AdamRms, vec![
            -0.963621724, -0.327949373, 0.281680188, 1.005014298, -1.074618246,
            0.782066073, -1.175255922, -0.577167140, 0.056841500, 0.697585767,
            -0.066463668, 0.540540730, 1.270118175, -0.808275359, -0.192670598]),
        (5, 3, MuonScale::Shape, vec![
            -0.892211097, -0.312518181, 0.271031507,
            0.711463950, -1.084792247, -0.499589981,
            -0.113211795, 0.468813594, 1.336699359,
            -0.940269090, -0.394206194, 0.186282863,
            0.663405956, 1.528794740, -0.584338626]),
        (5, 3, MuonScale::AdamRms, vec![
            -0.949654391, -0.332463664, 0.286063088,
            0.790954232, -1.176512308, -0.557413086,
            -0.071246886, 0.546751833, 1.263775492,
            -0.934272998, -0.328732052, 0.288734467,
            0.806335625, 1.522494304, -0.554741708]),
    ];
    for (rows, cols, scale, want) in expected {
        let var = Var::from_tensor(&pattern(rows, cols, 1)).unwrap();
        let params = ParamsMuon {
            lr: 0.1,
            momentum: 0.95,
            nesterov: true,
            ns_steps: 5,
            weight_decay: 0.1,
            scale,
        };
        let mut muon = Muon::new_named(vec![("w".into(), var.clone())], params).unwrap();
        step_with(&mut muon, &var, &pattern(rows, cols, 2));
        step_with(&mut muon, &var, &pattern(rows, cols, 3));
        let got: Vec<f32> = var.as_tensor().flatten_all().unwrap().to_vec1().unwrap();
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!(
                (*g as f64 - w).abs() < 2e-5,
                "{rows}x{cols} {scale:?} [{i}]: {g} vs {w}"
            );
        }
    }
}

#[test]
fn state_survives_a_checkpoint_bit_for_bit() {
    let params = ParamsMuon {
        lr: 0.05,
        weight_decay: 0.01,
        ..ParamsMuon::default()
    };
    let start = gaussian(6, 10, 9);
    let grads: Vec<Tensor> = (0..8).map(|s| gaussian(6, 10, 100 + s)).collect();
    let var = Var::from_tensor(&start).unwrap();
    let mut whole = Muon::new_named(vec![("w".into(), var.clone())], params.clone()).unwrap();
    for g in &grads[..5] {
        step_with(&mut whole, &var, g);
    }
    let (state, step) = whole.state();
    assert_eq!(step, 5);
    // Round trip through a safetensors file, as the trainer's checkpoints do.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("muon.safetensors");
    candle_core::safetensors::save(&state, &file).unwrap();
    let mut loaded = candle_core::safetensors::load(&file, &Device::Cpu).unwrap();
    let checkpointed = var.as_tensor().copy().unwrap();
    let resumed_var = Var::from_tensor(&checkpointed).unwrap();
    let mut resumed = Muon::new_named(vec![("w".into(), resumed_var.clone())], params).unwrap();
    resumed.load_state(&mut loaded, step).unwrap();
    assert!(loaded.is_empty());
    for g in &grads[5..] {
        step_with(&mut whole, &var, g);
        step_with(&mut resumed, &resumed_var, g);
    }
    assert_eq!(
        var.as_tensor().to_vec2::<f32>().unwrap(),
        resumed_var.as_tensor().to_vec2::<f32>().unwrap()
    );
    // Without the restored momentum the same steps end elsewhere: the state matters.
    let forgetful_var = Var::from_tensor(&checkpointed).unwrap();
    let mut forgetful = Muon::new_named(
        vec![("w".into(), forgetful_var.clone())],
        whole.params.clone(),
    )
    .unwrap();
    for g in &grads[5..] {
        step_with(&mut forgetful, &forgetful_var, g);
    }
    assert_ne!(
        var.as_tensor().to_vec2::<f32>().unwrap(),
        forgetful_var.as_tensor().to_vec2::<f32>().unwrap()
    );
}

#[test]
fn works_through_candle_nns_optimizer_trait() {
    // Minimise ‖W − T‖²: Muon's fixed-size steps reach T to within about lr.
    let target = gaussian(8, 12, 4);
    let var =
        Var::from_tensor(&Tensor::zeros((8, 12), candle_core::DType::F32, &Device::Cpu).unwrap())
            .unwrap();
    let mut opt = <Muon as Optimizer>::new(
        vec![var.clone()],
        ParamsMuon {
            lr: 0.2,
            ..ParamsMuon::default()
        },
    )
    .unwrap();
    let distance = |v: &Var| -> f32 {
        (v.as_tensor() - &target)
            .unwrap()
            .sqr()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar()
            .unwrap()
    };
    let initial = distance(&var);
    for step in 0..60 {
        opt.set_learning_rate(0.2 * (1.0 - step as f64 / 60.0));
        let loss = (var.as_tensor() - &target)
            .unwrap()
            .sqr()
            .unwrap()
            .sum_all()
            .unwrap();
        opt.backward_step(&loss).unwrap();
    }
    assert!(
        distance(&var) < 0.05 * initial,
        "{} vs {initial}",
        distance(&var)
    );
    assert!(Muon::new_named(
        vec![(
            "gain".into(),
            Var::ones(4, candle_core::DType::F32, &Device::Cpu).unwrap()
        )],
        ParamsMuon::default()
    )
    .is_err());
}
