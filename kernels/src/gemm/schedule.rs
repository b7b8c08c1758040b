//! Tile rasterization: the order in which the output tiles of a GEMM are
//! handed to workers (GPU blocks, CPU tasks).
//!
//! A schedule maps the launch index i ∈ 0..tiles_m·tiles_n to a tile
//! (tile_row, tile_col). Workers that run at the same time take consecutive
//! indices, so the order decides which A row-panels and B column-panels are
//! live in the last-level cache together:
//!
//! - [`Schedule::RowMajor`]: along a row of tiles (one A panel, all B panels);
//! - [`Schedule::ColumnMajor`]: along a column (one B panel, all A panels);
//! - [`Schedule::Grouped`]: Triton's `GROUP_M` swizzle, column-major inside
//!   bands of `group_m` tile rows, the bands in row order;
//! - [`Schedule::Morton`]: Z-order (bit interleaving of column and row);
//! - [`Schedule::Hilbert`]: the Hilbert curve, whose consecutive tiles are
//!   always neighbours.
//!
//! Morton and Hilbert are defined on a 2^k × 2^k square; on other grids the
//! tiles are taken in the order of their index on the smallest enclosing
//! square (cells outside the grid are skipped), so every schedule is a
//! permutation of the grid (tested).
//!
//! Maps are computed once per (schedule, grid) and cached ([`tile_map`]):
//! packed as `row << 16 | col` in a `u32`, the form the GPU kernels read.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use candle_core::{bail, Result};

/// A tile order; see the module docs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Schedule {
    /// Row after row of tiles.
    RowMajor,
    /// Column after column of tiles.
    ColumnMajor,
    /// Triton's grouped order: bands of `group_m` tile rows, column-major
    /// inside a band.
    Grouped {
        /// Tile rows per band (≥ 1; 1 is row-major).
        group_m: usize,
    },
    /// Z-order curve.
    Morton,
    /// Hilbert curve.
    Hilbert,
}

impl Schedule {
    /// The five orders the study compares (`Grouped` with `group_m` = 8, as
    /// in Triton's tutorial).
    pub const ALL: [Schedule; 5] = [
        Schedule::RowMajor,
        Schedule::ColumnMajor,
        Schedule::Grouped { group_m: 8 },
        Schedule::Morton,
        Schedule::Hilbert,
    ];

    /// A short name: `row_major`, `column_major`, `grouped8`, `morton`,
    /// `hilbert`.
    pub fn name(&self) -> String {
        match self {
            Schedule::RowMajor => "row_major".into(),
            Schedule::ColumnMajor => "column_major".into(),
            Schedule::Grouped { group_m } => format!("grouped{group_m}"),
            Schedule::Morton => "morton".into(),
            Schedule::Hilbert => "hilbert".into(),
        }
    }

    /// Parses [`Schedule::name`]'s form (`grouped` alone means `grouped8`).
    pub fn parse(s: &str) -> Result<Schedule> {
        Ok(match s {
            "row_major" => Schedule::RowMajor,
            "column_major" => Schedule::ColumnMajor,
            "morton" => Schedule::Morton,
            "hilbert" => Schedule::Hilbert,
            "grouped" => Schedule::Grouped { group_m: 8 },
            g if g.starts_with("grouped") => match g["grouped".len()..].parse::<usize>() {
                Ok(n) if n >= 1 => Schedule::Grouped { group_m: n },
                _ => bail!("schedule {s:?}: expected grouped<N> with N ≥ 1"),
            },
            _ => bail!(
                "unknown schedule {s:?}: expected row_major, column_major, grouped<N>, morton or hilbert"
            ),
        })
    }

    /// The tile (row, col) at launch index `i` of a `tiles_m × tiles_n`
    /// grid, for the orders given by a formula (row-, column-major,
    /// grouped); None for the curves, which [`order`] sorts.
    fn direct(&self, i: usize, tiles_m: usize, tiles_n: usize) -> Option<(usize, usize)> {
        match *self {
            Schedule::RowMajor => Some((i / tiles_n, i % tiles_n)),
            Schedule::ColumnMajor => Some((i % tiles_m, i / tiles_m)),
            Schedule::Grouped { group_m } => {
                // Triton's tutorial: a band holds group_m · tiles_n tiles; the
                // last band may be shorter.
                let in_band = group_m * tiles_n;
                let first_row = (i / in_band) * group_m;
                let rows = (tiles_m - first_row).min(group_m);
                let j = i % in_band;
                Some((first_row + j % rows, j / rows))
            }
            Schedule::Morton | Schedule::Hilbert => None,
        }
    }
}

/// Interleaves the bits of x (even positions) and y (odd positions).
pub fn morton_index(x: u32, y: u32) -> u64 {
    fn spread(v: u32) -> u64 {
        let mut v = u64::from(v);
        v = (v | (v << 16)) & 0x0000_FFFF_0000_FFFF;
        v = (v | (v << 8)) & 0x00FF_00FF_00FF_00FF;
        v = (v | (v << 4)) & 0x0F0F_0F0F_0F0F_0F0F;
        v = (v | (v << 2)) & 0x3333_3333_3333_3333;
        v = (v | (v << 1)) & 0x5555_5555_5555_5555;
        v
    }
    spread(x) | (spread(y) << 1)
}

/// The distance of cell (x, y) along the Hilbert curve of an n × n square
/// (n a power of two), the classic rotate-and-flip construction.
pub fn hilbert_index(n: u32, mut x: u32, mut y: u32) -> u64 {
    debug_assert!(n.is_power_of_two() && x < n && y < n);
    let mut d = 0u64;
    let mut s = n / 2;
    while s > 0 {
        let rx = u32::from(x & s > 0);
        let ry = u32::from(y & s > 0);
        d += u64::from(s) * u64::from(s) * u64::from((3 * rx) ^ ry);
        // Rotate the quadrant so the sub-curve starts where the parent's did.
        if ry == 0 {
            if rx == 1 {
                x = n - 1 - x;
                y = n - 1 - y;
            }
            std::mem::swap(&mut x, &mut y);
        }
        s /= 2;
    }
    d
}

/// The tiles of a `tiles_m × tiles_n` grid in launch order, as
/// (tile_row, tile_col).
pub fn order(schedule: Schedule, tiles_m: usize, tiles_n: usize) -> Vec<(usize, usize)> {
    let total = tiles_m * tiles_n;
    if !matches!(schedule, Schedule::Morton | Schedule::Hilbert) {
        return (0..total)
            .map(|i| {
                schedule
                    .direct(i, tiles_m, tiles_n)
                    .expect("a direct order")
            })
            .collect();
    }
    let side = tiles_m.max(tiles_n).max(1).next_power_of_two() as u32;
    let mut keyed: Vec<(u64, usize, usize)> = (0..tiles_m)
        .flat_map(|r| (0..tiles_n).map(move |c| (r, c)))
        .map(|(r, c)| {
            let key = match schedule {
                Schedule::Morton => morton_index(c as u32, r as u32),
                _ => hilbert_index(side, c as u32, r as u32),
            };
            (key, r, c)
        })
        .collect();
    keyed.sort_unstable();
    keyed.into_iter().map(|(_, r, c)| (r, c)).collect()
}

type MapKey = (Schedule, usize, usize);

/// [`order`] packed as `row << 16 | col`, cached per (schedule, grid) for the
/// life of the process (the GPU backends key their device copies on the
/// returned `Arc`'s address, which the cache keeps alive).
pub fn tile_map(schedule: Schedule, tiles_m: usize, tiles_n: usize) -> Result<Arc<[u32]>> {
    if tiles_m > 1 << 16 || tiles_n > 1 << 16 {
        bail!("gemm: at most 65536 tiles along each side, got {tiles_m} × {tiles_n}");
    }
    if let Schedule::Grouped { group_m: 0 } = schedule {
        bail!("gemm: grouped schedule needs group_m ≥ 1");
    }
    static CACHE: Mutex<Option<HashMap<MapKey, Arc<[u32]>>>> = Mutex::new(None);
    let key = (schedule, tiles_m, tiles_n);
    let mut guard = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    let cache = guard.get_or_insert_with(HashMap::new);
    if let Some(m) = cache.get(&key) {
        return Ok(m.clone());
    }
    let map: Arc<[u32]> = order(schedule, tiles_m, tiles_n)
        .into_iter()
        .map(|(r, c)| ((r as u32) << 16) | c as u32)
        .collect();
    cache.insert(key, map.clone());
    Ok(map)
}
