//! Williamson's construction: order 4t from four symmetric circulant ±1
//! matrices A, B, C, D of order t with A² + B² + C² + D² = 4t·I.
//!
//! Circulants commute and these are symmetric, so the Williamson array
//!
//! ```text
//!  A  B  C  D
//! −B  A −D  C
//! −C  D  A −B
//! −D −C  B  A
//! ```
//!
//! has orthogonal block rows (the cross terms cancel pairwise, e.g. row 1 ·
//! row 2 = −ABᵀ + BAᵀ − CDᵀ + DCᵀ = 0) and diagonal blocks
//! A² + B² + C² + D² = 4t·I, so it is a Hadamard matrix of order 4t.
//!
//! No search is done here: for t = 39 and 43 the search space is far too
//! large for a naive search, so the first rows are tabulated data. They are
//! trusted only because the tests check H·Hᵀ = n·I for the assembled matrix.

/// First rows of (A, B, C, D) for each tabulated t, as '+'/'−' strings.
///
/// Source: the table of Williamson quadruples in SageMath's
/// `src/sage/combinat/matrices/hadamard_matrix.py`
/// (`williamson_type_quadruples_smallcases`), which cites t = 43 to M. Hall,
/// *Combinatorial Theory* (Sage's reference key `Ha83`; order 4·43 = 172 is
/// the order of Williamson's 1944 example) and t = 39 to S. London's 2013
/// PhD thesis (key `Lon2013`). Only the numeric sequences were taken, not
/// code; the tests verify H·Hᵀ = n·I for both assembled matrices.
const QUADRUPLES: &[(usize, [&str; 4])] = &[
    (
        39,
        [
            "+++--+-+-----+--++----++--+-----+-+--++",
            "+++--++-+---+-+--+----+--+-+---+-++--++",
            "++++---+--++----+-+--+-+----++--+---+++",
            "+---++-+-+-----+++-++-+++-----+-+-++---",
        ],
    ),
    (
        43,
        [
            "++---++++-+--+--++--------++--+--+-++++---+",
            "+++-+-++--+-+-++++-+----+-++++-+-+--++-+-++",
            "++-++++++----+-+--++-++-++--+-+----++++++-+",
            "+---++--++++-+-+++-++--++-+++-+-++++--++---",
        ],
    ),
];

/// The Williamson array's block signs and which of A, B, C, D (0..4) sits in
/// each block.
const ARRAY: [[(i8, usize); 4]; 4] = [
    [(1, 0), (1, 1), (1, 2), (1, 3)],
    [(-1, 1), (1, 0), (-1, 3), (1, 2)],
    [(-1, 2), (1, 3), (1, 0), (-1, 1)],
    [(-1, 3), (-1, 2), (1, 1), (1, 0)],
];

/// Hadamard matrix of order 4t from the tabulated quadruple for t, if any.
pub(crate) fn williamson(t: usize) -> Option<Vec<i8>> {
    let (_, rows) = QUADRUPLES.iter().find(|(tt, _)| *tt == t)?;
    let first: Vec<Vec<i8>> = rows
        .iter()
        .map(|s| s.bytes().map(|b| if b == b'+' { 1 } else { -1 }).collect())
        .collect();
    debug_assert!(first.iter().all(|r| r.len() == t));
    let n = 4 * t;
    let mut h = vec![0i8; n * n];
    for (bi, block_row) in ARRAY.iter().enumerate() {
        for (bj, &(sign, which)) in block_row.iter().enumerate() {
            let seq = &first[which];
            for i in 0..t {
                for j in 0..t {
                    // Circulant: entry (i, j) is the first row at (j − i) mod t.
                    h[(bi * t + i) * n + bj * t + j] = sign * seq[(j + t - i) % t];
                }
            }
        }
    }
    Some(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tabulated_rows_are_symmetric() {
        // Symmetry (a_j = a_{t−j}) is what makes the circulants symmetric, which
        // the Williamson array relies on.
        for (t, rows) in QUADRUPLES {
            for r in rows {
                let b = r.as_bytes();
                assert_eq!(b.len(), *t);
                for j in 1..*t {
                    assert_eq!(b[j], b[t - j], "t={t} row {r}");
                }
            }
        }
    }
}
