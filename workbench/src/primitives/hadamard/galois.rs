//! Arithmetic in a finite field GF(q), q = p^k, as far as the Paley
//! constructions need it: subtraction and the quadratic character.
//!
//! Elements are encoded as integers in `0..q` whose base-p digits are the
//! coefficients of a polynomial of degree < k (digit i = coefficient of x^i),
//! so element 0 is zero, 1 is one, and the encoding doubles as an index into
//! the rows of the Paley matrices. Multiplication is polynomial
//! multiplication modulo a monic irreducible polynomial of degree k found by
//! exhaustive search; for the field sizes used here (q ≤ a few hundred) every
//! operation is cheap and the whole square table is built once.

/// The finite field GF(p^k) with its table of nonzero squares.
#[derive(Debug, Clone)]
pub(crate) struct GaloisField {
    p: usize,
    k: usize,
    q: usize,
    /// Coefficients c_0..c_{k-1} of the monic modulus x^k + Σ c_i x^i.
    modulus: Vec<usize>,
    /// `is_square[x]` for x ≠ 0: whether x is a nonzero square.
    is_square: Vec<bool>,
}

/// Returns (p, k) when q = p^k for a prime p and k ≥ 1, else None.
pub(crate) fn prime_power(q: usize) -> Option<(usize, usize)> {
    if q < 2 {
        return None;
    }
    // The smallest divisor ≥ 2 of q is its only possible prime factor.
    let p = (2..=q).find(|&d| q.is_multiple_of(d))?;
    let (mut rest, mut k) = (q, 0);
    while rest % p == 0 {
        rest /= p;
        k += 1;
    }
    (rest == 1).then_some((p, k))
}

/// Remainder of polynomial `a` (coefficients low → high, mod p) by monic `m`.
fn poly_rem(mut a: Vec<usize>, m: &[usize], p: usize) -> Vec<usize> {
    let dm = m.len() - 1;
    while a.len() > dm {
        let lead = a.pop().unwrap_or(0);
        if lead != 0 {
            // a -= lead · x^(len-dm) · m, dropping the (cancelled) top term.
            let shift = a.len() - dm;
            for (i, &mi) in m[..dm].iter().enumerate() {
                a[shift + i] = (a[shift + i] + p - (lead * mi) % p) % p;
            }
        }
    }
    a
}

/// Base-p digits of `n`, `len` of them, low first.
fn digits(mut n: usize, p: usize, len: usize) -> Vec<usize> {
    (0..len)
        .map(|_| {
            let d = n % p;
            n /= p;
            d
        })
        .collect()
}

/// Whether the monic polynomial `f` (low → high, degree ≥ 1) is irreducible
/// over GF(p): by trial division with every monic polynomial of degree
/// 1..=deg/2, which is exhaustive because a reducible f has a factor that small.
fn is_irreducible(f: &[usize], p: usize) -> bool {
    let deg = f.len() - 1;
    for d in 1..=deg / 2 {
        for low in 0..p.pow(d as u32) {
            let mut g = digits(low, p, d);
            g.push(1);
            if poly_rem(f.to_vec(), &g, p).iter().all(|&c| c == 0) {
                return false;
            }
        }
    }
    true
}

impl GaloisField {
    /// GF(q) for a prime power q, or None if q is not one.
    pub(crate) fn new(q: usize) -> Option<Self> {
        let (p, k) = prime_power(q)?;
        // The first monic irreducible of degree k in counting order; any one
        // gives an isomorphic field, and the quadratic character (all the
        // Paley constructions use) does not depend on the choice.
        let modulus = (0..q).map(|low| digits(low, p, k)).find(|low| {
            let mut f = low.clone();
            f.push(1);
            is_irreducible(&f, p)
        })?;
        let mut field = GaloisField {
            p,
            k,
            q,
            modulus,
            is_square: vec![false; q],
        };
        for x in 1..q {
            let s = field.mul(x, x);
            field.is_square[s] = true;
        }
        Some(field)
    }

    /// The number of elements q.
    pub(crate) fn order(&self) -> usize {
        self.q
    }

    /// x − y (digit-wise mod p).
    pub(crate) fn sub(&self, x: usize, y: usize) -> usize {
        let (mut x, mut y, mut out, mut place) = (x, y, 0, 1);
        for _ in 0..self.k {
            out += ((x % self.p + self.p - y % self.p) % self.p) * place;
            x /= self.p;
            y /= self.p;
            place *= self.p;
        }
        out
    }

    /// x · y (polynomial product reduced by the modulus).
    pub(crate) fn mul(&self, x: usize, y: usize) -> usize {
        let (a, b) = (digits(x, self.p, self.k), digits(y, self.p, self.k));
        let mut prod = vec![0; 2 * self.k - 1];
        for (i, &ai) in a.iter().enumerate() {
            for (j, &bj) in b.iter().enumerate() {
                prod[i + j] = (prod[i + j] + ai * bj) % self.p;
            }
        }
        let mut m = self.modulus.clone();
        m.push(1);
        poly_rem(prod, &m, self.p)
            .iter()
            .rev()
            .fold(0, |acc, &c| acc * self.p + c)
    }

    /// The quadratic character χ(x): 0 for x = 0, +1 for a nonzero square,
    /// −1 otherwise. Only meaningful for odd q (in characteristic 2 every
    /// element is a square).
    pub(crate) fn chi(&self, x: usize) -> i8 {
        if x == 0 {
            0
        } else if self.is_square[x] {
            1
        } else {
            -1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prime_powers() {
        assert_eq!(prime_power(27), Some((3, 3)));
        assert_eq!(prime_power(25), Some((5, 2)));
        assert_eq!(prime_power(139), Some((139, 1)));
        assert_eq!(prime_power(39), None);
        assert_eq!(prime_power(1), None);
    }

    #[test]
    fn field_axioms_small() {
        for q in [3, 4, 5, 8, 9, 25, 27, 49] {
            let f = GaloisField::new(q).expect("prime power");
            // Every nonzero element has an inverse: multiplication by x is a
            // bijection, which fails when the modulus is reducible.
            for x in 1..q {
                let mut seen = vec![false; q];
                for y in 0..q {
                    seen[f.mul(x, y)] = true;
                }
                assert!(seen.iter().all(|&s| s), "q={q} x={x}");
            }
            if q % 2 == 1 {
                // Exactly half the nonzero elements are squares.
                let squares = (1..q).filter(|&x| f.chi(x) == 1).count();
                assert_eq!(squares, (q - 1) / 2, "q={q}");
            }
        }
    }
}
