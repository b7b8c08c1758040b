//! Sylvester's construction: the Hadamard matrix of order 2^k.

/// Entry (i, j) of the Sylvester matrix of any order 2^k ≥ max(i, j) + 1:
/// (−1)^popcount(i & j). This closed form equals the k-fold Kronecker power
/// of [[1, 1], [1, −1]] (each bit of i and j picks one factor's entry), and is
/// the ordering the butterfly network of the fast Walsh–Hadamard transform
/// produces, which is why the fast transform can use it directly.
pub(crate) fn sylvester_entry(i: usize, j: usize) -> i8 {
    if (i & j).count_ones().is_multiple_of(2) {
        1
    } else {
        -1
    }
}

/// Row-major entries of the Sylvester matrix of order `size` (a power of two).
pub(crate) fn sylvester(size: usize) -> Vec<i8> {
    debug_assert!(size.is_power_of_two());
    (0..size * size)
        .map(|idx| sylvester_entry(idx / size, idx % size))
        .collect()
}
