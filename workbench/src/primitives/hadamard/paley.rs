//! Paley's two constructions from the quadratic character of GF(q).
//!
//! Both start from the Jacobsthal matrix `Q[a][b] = χ(a − b)` over the q field
//! elements. Q has zero diagonal, ±1 elsewhere, Q·Qᵀ = q·I − J and Q·J = 0;
//! it is antisymmetric when q ≡ 3 (mod 4) (χ(−1) = −1) and symmetric when
//! q ≡ 1 (mod 4) (χ(−1) = +1). Bordering it with a row and column of ones
//! gives a conference matrix C of order q + 1 with C·Cᵀ = q·I, from which:
//!
//! * Paley I (q ≡ 3 mod 4): H = I + C is Hadamard of order q + 1, because C
//!   is antisymmetric, so (I + C)(I + C)ᵀ = I + C·Cᵀ = (q + 1)·I.
//! * Paley II (q ≡ 1 mod 4): C is symmetric; replacing each 0 of C by
//!   [[1, −1], [−1, −1]] and each ±1 by ±[[1, 1], [1, −1]] gives a Hadamard
//!   matrix of order 2(q + 1).

use super::galois::GaloisField;

/// The bordered conference matrix of order q + 1 (row-major, entries 0/±1):
/// row/column 0 is the border, row/column 1 + a is field element a. The
/// border's sign below the corner is chosen so that C is antisymmetric for
/// q ≡ 3 (mod 4) and symmetric for q ≡ 1 (mod 4), as each construction needs.
fn conference(field: &GaloisField) -> Vec<i8> {
    let q = field.order();
    let n = q + 1;
    let antisymmetric = q % 4 == 3;
    let mut c = vec![0i8; n * n];
    for a in 0..q {
        c[a + 1] = 1;
        c[(a + 1) * n] = if antisymmetric { -1 } else { 1 };
        for b in 0..q {
            c[(a + 1) * n + b + 1] = field.chi(field.sub(a, b));
        }
    }
    c
}

/// Paley I: Hadamard matrix of order q + 1 for a prime power q ≡ 3 (mod 4).
pub(crate) fn paley_i(q: usize) -> Option<Vec<i8>> {
    if q % 4 != 3 {
        return None;
    }
    let field = GaloisField::new(q)?;
    let n = q + 1;
    let mut h = conference(&field);
    for i in 0..n {
        h[i * n + i] = 1;
    }
    Some(h)
}

/// Paley II: Hadamard matrix of order 2(q + 1) for a prime power q ≡ 1 (mod 4).
pub(crate) fn paley_ii(q: usize) -> Option<Vec<i8>> {
    if q % 4 != 1 {
        return None;
    }
    let field = GaloisField::new(q)?;
    let c = conference(&field);
    let half = q + 1;
    let n = 2 * half;
    let mut h = vec![0i8; n * n];
    for i in 0..half {
        for j in 0..half {
            let block: [[i8; 2]; 2] = match c[i * half + j] {
                0 => [[1, -1], [-1, -1]],
                s => [[s, s], [s, -s]],
            };
            for (di, row) in block.iter().enumerate() {
                for (dj, &v) in row.iter().enumerate() {
                    h[(2 * i + di) * n + 2 * j + dj] = v;
                }
            }
        }
    }
    Some(h)
}
