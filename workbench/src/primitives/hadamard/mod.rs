//! Hadamard matrices of orders 2^k and m·2^k, and the fast normalised
//! Hadamard transform they define.
//!
//! A Hadamard matrix of order n is an n×n ±1 matrix with H·Hᵀ = n·I, so H/√n
//! is orthogonal. Every order here is n = m·2^k with H = B ⊗ S, the Kronecker
//! product of a base matrix B of order m with the Sylvester matrix S of order
//! 2^k; the 2^k part is what makes the transform fast ([`fwht_rows`]).
//!
//! Base matrices and their constructions (module files):
//!
//! | m   | construction                         | file            |
//! |-----|--------------------------------------|-----------------|
//! | 1   | trivial `[1]`                        |                 |
//! | 12  | Paley I, q = 11                      | `paley.rs`      |
//! | 20  | Paley I, q = 19                      | `paley.rs`      |
//! | 28  | Paley I, q = 27 = 3³ (needs GF(27))  | `paley.rs`, `galois.rs` |
//! | 36  | Paley II, q = 17                     | `paley.rs`      |
//! | 40  | Paley I (q = 19) ⊗ Sylvester 2       | `paley.rs`      |
//! | 52  | Paley II, q = 25 = 5² (needs GF(25)) | `paley.rs`, `galois.rs` |
//! | 60  | Paley I, q = 59                      | `paley.rs`      |
//! | 108 | Paley I, q = 107                     | `paley.rs`      |
//! | 140 | Paley I, q = 139                     | `paley.rs`      |
//! | 156 | Williamson, t = 39 (tabulated)       | `williamson.rs` |
//! | 172 | Williamson, t = 43 (tabulated)       | `williamson.rs` |
//!
//! Orders 2^k use m = 1 (pure Sylvester). Everything is checked exactly
//! (integer H·Hᵀ) by the tests for every supported order up to 172·8.

mod fwht;
mod galois;
mod paley;
mod sylvester;
mod williamson;

#[cfg(test)]
mod tests;

pub use fwht::FwhtPlan;

/// A ±1 Hadamard matrix of order n, row-major, with H·Hᵀ = n·I.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hadamard {
    /// The order n.
    pub n: usize,
    /// The n² entries, each +1 or −1, row-major (entry (i, j) at i·n + j).
    pub entries: Vec<i8>,
}

impl Hadamard {
    /// Entry (i, j).
    pub fn get(&self, i: usize, j: usize) -> i8 {
        self.entries[i * self.n + j]
    }

    /// Whether H = Hᵀ, in which case the normalised transform is its own
    /// inverse (true for orders 2^k and for the Paley II bases 36, 52 times
    /// any 2^k; false for the Paley I and Williamson bases).
    pub fn is_symmetric(&self) -> bool {
        (0..self.n).all(|i| (0..i).all(|j| self.get(i, j) == self.get(j, i)))
    }
}

/// The supported base orders m (besides 1, 2): every n = m·2^k with m here or
/// m = 1 has a construction. 40 is listed for completeness although
/// [`factor`] always reduces it to 20·2.
pub const BASE_ORDERS: &[usize] = &[12, 20, 28, 36, 40, 52, 60, 108, 140, 156, 172];

/// The error for an order with no construction, naming n and the factors.
pub(crate) fn unsupported(n: usize) -> String {
    let bases: Vec<String> = std::iter::once(1)
        .chain(BASE_ORDERS.iter().copied())
        .map(|m| m.to_string())
        .collect();
    format!(
        "no Hadamard construction for order {n}: supported orders are m·2^k with m in {{{}}}",
        bases.join(", ")
    )
}

/// Decompose n as (m, k) with m a supported base (or 1) and n = m·2^k, taking
/// the largest such power of two (so the fast transform does as much of the
/// work as possible in butterflies). None for n = 0 or no such m.
pub fn factor(n: usize) -> Option<(usize, usize)> {
    if n == 0 {
        return None;
    }
    let twos = n.trailing_zeros() as usize;
    (0..=twos)
        .rev()
        .map(|k| (n >> k, k))
        .find(|&(m, _)| m == 1 || BASE_ORDERS.contains(&m))
}

/// Row-major entries of the base matrix of order m (1, 2 or in
/// [`BASE_ORDERS`]), None for any other m.
pub(crate) fn base_matrix(m: usize) -> Option<Vec<i8>> {
    match m {
        1 | 2 => Some(sylvester::sylvester(m)),
        12 => paley::paley_i(11),
        20 => paley::paley_i(19),
        // 27 = 3³ ≡ 3 (mod 4); Paley II with q = 13 would also give 28.
        28 => paley::paley_i(27),
        36 => paley::paley_ii(17),
        // 39 is not a prime power and 19 ≡ 3 (mod 4), so neither Paley
        // construction reaches 40 directly; doubling 20 does.
        40 => Some(kronecker(
            &paley::paley_i(19)?,
            20,
            &sylvester::sylvester(2),
            2,
        )),
        52 => paley::paley_ii(25),
        60 => paley::paley_i(59),
        108 => paley::paley_i(107),
        140 => paley::paley_i(139),
        // 155 and 171 are not prime powers, nor are 77 and 85 (Paley II).
        156 => williamson::williamson(39),
        172 => williamson::williamson(43),
        _ => None,
    }
}

/// Kronecker product A ⊗ B of square matrices of orders na and nb: entry
/// (a·nb + i, b·nb + j) is `A[a][b]·B[i][j]`. This block layout is the one the
/// fast transform assumes (chunk a of a row = base index a).
fn kronecker(a: &[i8], na: usize, b: &[i8], nb: usize) -> Vec<i8> {
    let n = na * nb;
    let mut out = vec![0i8; n * n];
    for (r, out_row) in out.chunks_exact_mut(n).enumerate() {
        let (ra, rb) = (r / nb, r % nb);
        for (c, o) in out_row.iter_mut().enumerate() {
            *o = a[ra * na + c / nb] * b[rb * nb + c % nb];
        }
    }
    out
}

/// Hadamard matrix of order n = m·2^k for a supported m (k ≥ 0), as the
/// Kronecker product B ⊗ S of the base matrix B of order m with the Sylvester
/// matrix S of order 2^k (entry (a·2^k + i, b·2^k + j) = `B[a][b]·S[i][j]`),
/// using the factorisation of [`factor`]. Unsupported n gives Err with a
/// message naming n and listing the supported factors.
pub fn hadamard(n: usize) -> Result<Hadamard, String> {
    let (m, k) = factor(n).ok_or_else(|| unsupported(n))?;
    let base = base_matrix(m).ok_or_else(|| unsupported(n))?;
    let s = 1usize << k;
    let entries = if s == 1 {
        base
    } else {
        kronecker(&base, m, &sylvester::sylvester(s), s)
    };
    Ok(Hadamard { n, entries })
}

/// Checks H·Hᵀ = n·I exactly (integer arithmetic), along with the shape
/// (n² entries) and that every entry is ±1.
pub fn is_hadamard(h: &Hadamard) -> bool {
    let n = h.n;
    if h.entries.len() != n * n || h.entries.iter().any(|&v| v != 1 && v != -1) {
        return false;
    }
    // With ±1 entries the diagonal of H·Hᵀ is n automatically; only distinct
    // row pairs need checking, and by symmetry of H·Hᵀ only i < j.
    let rows: Vec<&[i8]> = h.entries.chunks_exact(n.max(1)).collect();
    rows.iter().enumerate().all(|(i, ri)| {
        rows[..i].iter().all(|rj| {
            ri.iter()
                .zip(rj.iter())
                .map(|(&a, &b)| i32::from(a) * i32::from(b))
                .sum::<i32>()
                == 0
        })
    })
}

/// In-place normalised fast transform of each row of `data` (rows of length
/// n = m·2^k): the 2^k butterflies (fast Walsh–Hadamard, Sylvester ordering)
/// on each length-2^k chunk, then the dense m×m product mixing the chunks,
/// scaled by 1/√n.
///
/// Convention: each row x becomes x·(H/√n)ᵀ — equivalently (H/√n)·x for x as
/// a column vector — with H = [`hadamard`]\(n). Its inverse is
/// [`fwht_rows_transposed`]; when H is symmetric ([`Hadamard::is_symmetric`],
/// e.g. n a power of two) the transform is its own inverse. Err for an
/// unsupported n or a `data` length that is not a multiple of n. For repeated
/// calls of one order, [`FwhtPlan`] avoids rebuilding the base matrix.
pub fn fwht_rows(data: &mut [f32], n: usize) -> Result<(), String> {
    FwhtPlan::new(n)?.apply_rows(data)
}

/// The transpose (= inverse) of [`fwht_rows`]: each row x becomes x·(H/√n).
pub fn fwht_rows_transposed(data: &mut [f32], n: usize) -> Result<(), String> {
    FwhtPlan::new(n)?.apply_rows_transposed(data)
}
