//! Inputs and outputs of the host runs of the Metal kernels
//! (`tests/msl_group_check.rs`): seeded inputs, Hadamard bases, tensors into
//! buffers and buffer bytes back into values, and the parity tests' error.

use std::sync::Arc;

use candle_core::{DType, Device, Tensor};
use half::{bf16, f16};
use wb_kernels::hadamard::HadamardPlan;
use wb_kernels::test_support::paley_i;

use super::emu::{Buffer, Dev};
use super::host::xorshift;

/// A seeded stream of f32 in [-1, 1).
pub fn uniform(seed: u64) -> impl FnMut() -> f32 {
    let mut next = xorshift(seed);
    move || ((next() >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
}

pub fn host(t: &Tensor) -> Vec<f32> {
    t.to_dtype(DType::F32)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap()
}

/// A CPU tensor's elements into a new buffer (f32, bf16, f16, u8), at
/// offset 0.
pub fn upload(dev: &mut Dev, t: &Tensor) -> (Buffer, usize) {
    upload_after(dev, t, 0)
}

/// A CPU tensor's elements into a new buffer after `skip` elements of
/// poison-free filler, as a tensor that starts inside its storage: the
/// buffer and the byte offset of the first element.
pub fn upload_after(dev: &mut Dev, t: &Tensor, skip: usize) -> (Buffer, usize) {
    let t = t.flatten_all().unwrap();
    let filler = Tensor::full(7f32, skip, &Device::Cpu)
        .unwrap()
        .to_dtype(t.dtype())
        .unwrap();
    let t = Tensor::cat(&[filler, t], 0).unwrap();
    let buf = match t.dtype() {
        DType::F32 => dev.new_buffer_with_data(&t.to_vec1::<f32>().unwrap()),
        DType::BF16 => dev.new_buffer_with_data(&t.to_vec1::<bf16>().unwrap()),
        DType::F16 => dev.new_buffer_with_data(&t.to_vec1::<f16>().unwrap()),
        DType::U8 => dev.new_buffer_with_data(&t.to_vec1::<u8>().unwrap()),
        other => panic!("no upload of {other:?}"),
    };
    (buf, skip * t.dtype().size_in_bytes())
}

/// A buffer's bytes as f32 values of `dtype`.
pub fn floats(bytes: &[u8], dtype: DType) -> Vec<f32> {
    match dtype {
        DType::F32 => bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
            .collect(),
        DType::BF16 => bytes
            .chunks_exact(2)
            .map(|b| bf16::from_le_bytes(b.try_into().unwrap()).to_f32())
            .collect(),
        DType::F16 => bytes
            .chunks_exact(2)
            .map(|b| f16::from_le_bytes(b.try_into().unwrap()).to_f32())
            .collect(),
        other => panic!("no floats of {other:?}"),
    }
}

pub fn words(bytes: &[u8]) -> Vec<u32> {
    bytes
        .chunks_exact(4)
        .map(|b| u32::from_le_bytes(b.try_into().unwrap()))
        .collect()
}

/// Paley II base of order 2(q + 1) (q prime, q ≡ 1 mod 4): the symmetric
/// conference matrix C of order q + 1, each 0 replaced by [[1, −1], [−1, −1]]
/// and each ±1 by ±[[1, 1], [1, −1]].
pub fn paley2(q: usize) -> Vec<i8> {
    let chi = |a: usize| -> i8 {
        match a % q {
            0 => 0,
            a if (1..q).any(|x| x * x % q == a) => 1,
            _ => -1,
        }
    };
    let c = |i: usize, j: usize| -> i8 {
        match (i, j) {
            (0, 0) => 0,
            (0, _) | (_, 0) => 1,
            _ => chi(j + q - i),
        }
    };
    let m = 2 * (q + 1);
    let mut h = vec![0i8; m * m];
    for i in 0..m {
        for j in 0..m {
            let (bi, bj, r, s) = (i / 2, j / 2, i % 2, j % 2);
            h[i * m + j] = match c(bi, bj) {
                0 => [[1, -1], [-1, -1]][r][s],
                v => v * [[1, 1], [1, -1]][r][s],
            };
        }
    }
    h
}

pub fn plan(m: usize, k: u32) -> Arc<HadamardPlan> {
    let b = match m {
        1 => vec![1],
        28 => paley2(13),
        _ => paley_i(m - 1),
    };
    Arc::new(HadamardPlan::new(m << k, m, &b).unwrap())
}

pub fn signs(n: usize, seed: u64) -> Vec<f32> {
    let mut next = xorshift(seed);
    (0..n)
        .map(|_| if next().is_multiple_of(2) { 1.0 } else { -1.0 })
        .collect()
}
