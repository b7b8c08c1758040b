//! GPU parity of `gemm_w8a8`: every compiled tile and every schedule against
//! the CPU (whose unit tests check it against the plain triple loop), int32
//! results identical and scaled f32 results bit-identical, on random shapes
//! with M and N not multiples of the tile and K a multiple of 16 but not of
//! the K step. `cargo test -p wb-kernels --features cuda --test
//! gemm_parity` (or `--features metal`). Outputs are poisoned first, as in
//! `gpu_parity.rs`.
#![cfg(any(feature = "cuda", feature = "metal"))]

use candle_core::{DType, Device, Tensor};
use wb_kernels::gemm::{
    as_i8, gemm_i32_cpu, gemm_w8a8, gemm_w8a8_i32, reference_i32, scale_output, GemmConfig,
    Schedule,
};

fn gpu() -> Device {
    #[cfg(feature = "cuda")]
    return Device::new_cuda(0).expect("CUDA device 0");
    #[cfg(all(feature = "metal", not(feature = "cuda")))]
    return Device::new_metal(0).expect("Metal device 0");
}

/// (tile_m, tile_n, tile_k) the backend compiles.
fn tiles() -> Vec<(usize, usize, usize)> {
    #[cfg(feature = "cuda")]
    return wb_kernels::gemm::CUDA_TILES
        .iter()
        .map(|&(m, n)| (m, n, 64))
        .collect();
    #[cfg(all(feature = "metal", not(feature = "cuda")))]
    return vec![(
        wb_kernels::gemm::METAL_TILE.0,
        wb_kernels::gemm::METAL_TILE.1,
        32,
    )];
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn codes(&mut self, len: usize) -> Vec<u8> {
        (0..len)
            .map(|_| match self.below(8) {
                0 => 0x80, // −128
                1 => 0x7f,
                _ => self.next() as u8,
            })
            .collect()
    }
}

fn poison(dev: &Device) {
    drop(Tensor::full(f32::NAN, 64 << 20, dev).expect("poison"));
}

fn on(dev: &Device, v: Vec<u8>, shape: (usize, usize)) -> Tensor {
    Tensor::from_vec(v, shape, &Device::Cpu)
        .unwrap()
        .to_device(dev)
        .unwrap()
}

#[test]
fn every_tile_and_schedule_matches_the_cpu() {
    let dev = gpu();
    let mut rng = Rng(0x8a8);
    let mut shapes = vec![(1, 1, 16), (16, 64, 64), (17, 129, 80), (300, 250, 1040)];
    for _ in 0..4 {
        shapes.push((
            1 + rng.below(400),
            1 + rng.below(400),
            16 * (1 + rng.below(60)),
        ));
    }
    for (m, n, k) in shapes {
        let (a, b) = (rng.codes(m * k), rng.codes(n * k));
        let want = if m * n * k <= 1 << 22 {
            reference_i32(as_i8(&a), as_i8(&b), m, n, k)
        } else {
            let mut w = vec![0; m * n];
            let cfg = GemmConfig::new(32, 32, 256, Schedule::RowMajor);
            gemm_i32_cpu(as_i8(&a), as_i8(&b), m, n, k, &cfg, &mut w).unwrap();
            w
        };
        let rs: Vec<f32> = (0..m).map(|i| 0.01 + i as f32 * 1e-3).collect();
        let cs: Vec<f32> = (0..n).map(|j| 0.02 + (j % 7) as f32 * 3e-3).collect();
        let want_f: Vec<u32> = scale_output(&want, &rs, &cs, n)
            .iter()
            .map(|v| v.to_bits())
            .collect();
        let (at, bt) = (on(&dev, a, (m, k)), on(&dev, b, (n, k)));
        let rst = Tensor::from_vec(rs, m, &dev).unwrap();
        let cst = Tensor::from_vec(cs, n, &dev).unwrap();
        for (tm, tn, tk) in tiles() {
            for s in Schedule::ALL {
                let cfg = GemmConfig::new(tm, tn, tk, s);
                poison(&dev);
                let got = gemm_w8a8_i32(&at, &bt, &cfg).unwrap();
                assert_eq!(got.dtype(), DType::I32);
                let got: Vec<i32> = got.flatten_all().unwrap().to_vec1().unwrap();
                assert_eq!(got, want, "int32: M={m} N={n} K={k} {cfg:?}");
                poison(&dev);
                let y = gemm_w8a8(&at, &bt, &rst, &cst, &cfg).unwrap();
                let y: Vec<u32> = y
                    .flatten_all()
                    .unwrap()
                    .to_vec1::<f32>()
                    .unwrap()
                    .iter()
                    .map(|v| v.to_bits())
                    .collect();
                assert_eq!(y, want_f, "f32: M={m} N={n} K={k} {cfg:?}");
            }
        }
        println!("gemm parity M={m} N={n} K={k}: ok");
    }
}

#[test]
fn unsupported_tiles_are_errors() {
    let dev = gpu();
    let a = on(&dev, vec![1; 32 * 64], (32, 64));
    let b = on(&dev, vec![1; 32 * 64], (32, 64));
    let bad = GemmConfig::new(48, 48, 64, Schedule::RowMajor);
    assert!(gemm_w8a8_i32(&a, &b, &bad).is_err());
}
