//! The m×m mix B·(X·S) over a block of rows.
//!
//! For one row, output chunk a is Σ_b B[a][b]·chunk_b: B (m×m, ±1) times the
//! m×s matrix of chunks. Its columns are independent, and so are different
//! rows' columns, so a block of r rows is one product B·Z with Z of m rows and
//! r·s columns (column (row, i) holds element i of each chunk of that row). The
//! product runs over packed panels of [`PANEL`] columns: gather the panel
//! (m×16, contiguous), multiply, scatter back with the scale. Small s (down to
//! s = 1, n = m) thereby still fills whole vectors; for those the butterflies
//! also run on the packed panel.
//!
//! # Table method ("four Russians")
//! A dense ±1 product costs m adds per output element. Instead, the m input
//! rows are cut into groups of g; for each group, a table holds all 2^(g−1)
//! sums z_0 ± z_1 ± … ± z_(g−1) (first sign +) and their negatives. Each output
//! row then needs one table entry per group: m·⌈m/g⌉ adds plus ⌈m/g⌉·2^g for
//! the tables, instead of m². For m = 172, g = 6 that is about 4× fewer.
//!
//! Rounding: a table entry is the sequential sum ((z_0 ± z_1) ± z_2) ± …, and
//! an output is the sequential sum of its groups' entries, from 0.0, in group
//! order. The portable and AVX2 paths run this same code (the AVX2 one
//! compiled with AVX2 enabled), so they agree bit for bit; both differ from the
//! plain dense sum only by rounding, which the tests bound.

use super::CpuPath;

/// Columns per packed panel: two 8-lane vectors, one 64-byte line per row.
pub(crate) const PANEL: usize = 16;

/// One panel row: `PANEL` floats on one cache line. Fixed-size element-wise
/// ops on it vectorise to two AVX2 (or four SSE/NEON) instructions, with one
/// bounds check per row instead of one per float.
#[derive(Clone, Copy, Debug, Default)]
#[repr(C, align(64))]
pub(crate) struct V16(pub(crate) [f32; PANEL]);

impl V16 {
    #[inline(always)]
    fn add(mut self, o: V16) -> V16 {
        for (a, b) in self.0.iter_mut().zip(o.0) {
            *a += b;
        }
        self
    }
    #[inline(always)]
    fn sub(mut self, o: V16) -> V16 {
        for (a, b) in self.0.iter_mut().zip(o.0) {
            *a -= b;
        }
        self
    }
    #[inline(always)]
    fn neg(mut self) -> V16 {
        for a in self.0.iter_mut() {
            *a = -*a;
        }
        self
    }
}

/// Largest group: a group's table is 2^g rows of `PANEL` floats (4 KiB at g = 6).
const MAX_GROUP: usize = 6;

/// Table bytes per batch of groups kept in L1 while the outputs accumulate.
const BATCH_BYTES: usize = 16 << 10;

/// The table method's precomputed indices for one base matrix (B or Bᵀ).
#[derive(Debug, Clone)]
pub(crate) struct MixPlan {
    m: usize,
    /// Group size g.
    g: usize,
    /// 2^(g−1): entries with first sign +; entry `half + p` is −entry p.
    half: usize,
    /// ⌈m/g⌉.
    groups: usize,
    /// Groups per batch (tables of a batch fit [`BATCH_BYTES`]).
    batch: usize,
    /// `idx[a·groups + q]`: the entry of group q's table that output row a
    /// takes.
    idx: Vec<u32>,
}

impl MixPlan {
    /// The plan for a row-major ±1.0 base matrix of order m.
    pub(crate) fn new(base: &[f32], m: usize) -> Self {
        // Work model: ⌈m/g⌉ tables of 2^g entries plus m entries per group.
        let g = (1..=MAX_GROUP.min(m))
            .min_by_key(|&g| m.div_ceil(g) * (3 * (1 << g) + m))
            .unwrap_or(1);
        let half = 1 << (g - 1);
        let groups = m.div_ceil(g);
        let mut idx = Vec::with_capacity(m * groups);
        for a in 0..m {
            let row = &base[a * m..(a + 1) * m];
            for q in 0..groups {
                let cols = &row[q * g..(q * g + g).min(m)];
                let s0 = cols[0];
                let pattern = cols[1..]
                    .iter()
                    .enumerate()
                    .filter(|(_, &s)| s != s0)
                    .fold(0usize, |p, (j, _)| p | (1 << j));
                let entry = pattern + if s0 < 0.0 { half } else { 0 };
                idx.push(entry as u32);
            }
        }
        MixPlan {
            m,
            g,
            half,
            groups,
            batch: (BATCH_BYTES / (2 * half * std::mem::size_of::<V16>())).clamp(1, groups),
            idx,
        }
    }

    /// Table rows a panel needs.
    pub(crate) fn table_len(&self) -> usize {
        self.batch * 2 * self.half
    }
}

/// Per-thread buffers of the mix: the packed input and output panels and the
/// tables of one batch of groups.
pub(crate) struct Scratch {
    z: Vec<V16>,
    out: Vec<V16>,
    tables: Vec<V16>,
}

impl Scratch {
    pub(crate) fn new(plan: Option<&MixPlan>) -> Self {
        let (len, tables) = plan.map_or((0, 0), |p| (p.m, p.table_len()));
        Scratch {
            z: vec![V16::default(); len],
            out: vec![V16::default(); len],
            tables: vec![V16::default(); tables],
        }
    }
}

/// In place on `block` (whole rows of length n = m·s): every row's chunks are
/// replaced by B·chunks, times `scale`. For s ≥ [`PANEL`] the chunks must
/// already hold X·S (butterflies done); for s < PANEL this does the
/// butterflies itself, on the packed panel (see [`fuses_butterflies`]).
pub(crate) fn mix_rows(
    block: &mut [f32],
    n: usize,
    s: usize,
    plan: &MixPlan,
    scale: f32,
    scratch: &mut Scratch,
    path: CpuPath,
) {
    match s {
        1 => mix_small::<1>(block, n, plan, scale, scratch, path),
        2 => mix_small::<2>(block, n, plan, scale, scratch, path),
        4 => mix_small::<4>(block, n, plan, scale, scratch, path),
        8 => mix_small::<8>(block, n, plan, scale, scratch, path),
        _ => mix_large(block, n, s, plan, scale, scratch, path),
    }
}

/// Whether [`mix_rows`] does the butterflies itself for this s.
pub(crate) fn fuses_butterflies(s: usize) -> bool {
    s < PANEL
}

fn mix_panel_on(path: CpuPath, plan: &MixPlan, scratch: &mut Scratch) {
    match path {
        CpuPath::Avx2 => super::avx2::mix_panel(plan, scratch),
        CpuPath::Portable => mix_panel(plan, scratch),
    }
}

/// s ≥ PANEL: a panel is PANEL consecutive columns of one row, so each of its
/// m rows is one fixed-size copy from chunk b.
fn mix_large(
    block: &mut [f32],
    n: usize,
    s: usize,
    plan: &MixPlan,
    scale: f32,
    scratch: &mut Scratch,
    path: CpuPath,
) {
    for row in block.chunks_exact_mut(n) {
        for i in (0..s).step_by(PANEL) {
            for (b, z) in scratch.z.iter_mut().enumerate() {
                z.0.copy_from_slice(&row[b * s + i..b * s + i + PANEL]);
            }
            mix_panel_on(path, plan, scratch);
            for (a, o) in scratch.out.iter().enumerate() {
                for (d, &v) in row[a * s + i..a * s + i + PANEL].iter_mut().zip(&o.0) {
                    *d = v * scale;
                }
            }
        }
    }
}

/// s < PANEL: a panel holds chunk b of PANEL/S consecutive rows side by side
/// (zeros past the last row). The butterflies on each length-S piece happen
/// here, on the packed panel, rather than one tiny chunk at a time.
fn mix_small<const S: usize>(
    block: &mut [f32],
    n: usize,
    plan: &MixPlan,
    scale: f32,
    scratch: &mut Scratch,
    path: CpuPath,
) {
    let per_panel = PANEL / S;
    let rows = block.len() / n;
    for r0 in (0..rows).step_by(per_panel) {
        let count = per_panel.min(rows - r0);
        for (b, z) in scratch.z.iter_mut().enumerate() {
            for j in 0..per_panel {
                let piece: &mut [f32; S] = (&mut z.0[j * S..(j + 1) * S]).try_into().unwrap();
                if j < count {
                    let src = (r0 + j) * n + b * S;
                    piece.copy_from_slice(&block[src..src + S]);
                    butterflies_small(piece);
                } else {
                    *piece = [0.0; S];
                }
            }
        }
        mix_panel_on(path, plan, scratch);
        for (a, o) in scratch.out.iter().enumerate() {
            for j in 0..count {
                let dst = (r0 + j) * n + a * S;
                for (d, &v) in block[dst..dst + S].iter_mut().zip(&o.0[j * S..(j + 1) * S]) {
                    *d = v * scale;
                }
            }
        }
    }
}

/// The butterflies of a length-S piece, as `scalar::butterflies` does them.
#[inline(always)]
fn butterflies_small<const S: usize>(x: &mut [f32; S]) {
    let mut h = 1;
    while h < S {
        for i in 0..S {
            if i & h == 0 {
                let (u, v) = (x[i], x[i + h]);
                x[i] = u + v;
                x[i + h] = u - v;
            }
        }
        h *= 2;
    }
}

/// One panel: `scratch.out = B · scratch.z` by the table method.
#[inline(always)]
pub(crate) fn mix_panel(plan: &MixPlan, scratch: &mut Scratch) {
    let Scratch { z, out, tables } = scratch;
    let (m, g, half) = (plan.m, plan.g, plan.half);
    let size = 2 * half;
    let mut q0 = 0;
    while q0 < plan.groups {
        let q1 = (q0 + plan.batch).min(plan.groups);
        for q in q0..q1 {
            let t = q - q0;
            build_table(
                &z[q * g..(q * g + g).min(m)],
                &mut tables[t * size..(t + 1) * size],
                half,
            );
        }
        let tables = &tables[..(q1 - q0) * size];
        // Four output rows at a time: eight independent chains of adds.
        let mut a = 0;
        while a + 4 <= m {
            accumulate::<4>(plan, tables, out, a, q0, q1);
            a += 4;
        }
        while a < m {
            accumulate::<1>(plan, tables, out, a, q0, q1);
            a += 1;
        }
        q0 = q1;
    }
}

/// Output rows `a .. a + R`: add the entries of groups `q0 .. q1` (in order)
/// to the sums so far (0.0 for the first batch).
#[inline(always)]
fn accumulate<const R: usize>(
    plan: &MixPlan,
    tables: &[V16],
    out: &mut [V16],
    a: usize,
    q0: usize,
    q1: usize,
) {
    let size = 2 * plan.half;
    assert!(a + R <= plan.m && q1 <= plan.groups && tables.len() >= (q1 - q0) * size);
    let mut acc = [V16::default(); R];
    if q0 > 0 {
        acc.copy_from_slice(&out[a..a + R]);
    }
    for q in q0..q1 {
        let table = &tables[(q - q0) * size..(q - q0 + 1) * size];
        for (r, x) in acc.iter_mut().enumerate() {
            // SAFETY: (a + r)·groups + q < m·groups = idx.len() by the assert,
            // and MixPlan::new only stores entries below 2·half = table.len().
            let v = unsafe {
                let e = *plan.idx.get_unchecked((a + r) * plan.groups + q) as usize;
                *table.get_unchecked(e)
            };
            *x = x.add(v);
        }
    }
    out[a..a + R].copy_from_slice(&acc);
}

/// The table of one group (`z` holds its 1 ≤ len ≤ g rows): entry p is
/// z_0 + Σ_j (bit j−1 of p ? −1 : +1)·z_j, summed in order j = 1, 2, …, and
/// entry `half + p` its negative.
#[inline(always)]
fn build_table(z: &[V16], table: &mut [V16], half: usize) {
    table[0] = z[0];
    for (j, &zj) in z.iter().enumerate().skip(1) {
        let count = 1 << (j - 1);
        let (lo, hi) = table[..2 * count].split_at_mut(count);
        for (t, u) in lo.iter_mut().zip(hi.iter_mut()) {
            let v = *t;
            *t = v.add(zj);
            *u = v.sub(zj);
        }
    }
    let used = 1 << (z.len() - 1);
    let (pos, neg) = table.split_at_mut(half);
    for (n, p) in neg[..used].iter_mut().zip(&pos[..used]) {
        *n = p.neg();
    }
}

/// The plain dense product, summed in order b = 0, 1, … (the tests' reference
/// for the table method).
#[cfg(test)]
pub(crate) fn dense_panel(base: &[f32], m: usize, z: &[f32], out: &mut [f32]) {
    for (orow, brow) in out.chunks_exact_mut(PANEL).zip(base.chunks_exact(m)) {
        orow.fill(0.0);
        for (&sign, zrow) in brow.iter().zip(z.chunks_exact(PANEL)) {
            for (o, &v) in orow.iter_mut().zip(zrow) {
                *o += sign * v;
            }
        }
    }
}

#[cfg(test)]
impl Scratch {
    pub(crate) fn set_z(&mut self, z: &[f32]) {
        for (row, v) in self.z.iter_mut().zip(z.chunks_exact(PANEL)) {
            row.0.copy_from_slice(v);
        }
    }
    pub(crate) fn out(&self) -> Vec<f32> {
        self.out.iter().flat_map(|r| r.0).collect()
    }
}
