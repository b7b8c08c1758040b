//! Token batches: [`BatchSampler`] for training, [`eval_windows`] for evaluation.

use anyhow::{bail, Result};
use wb_kernels::philox;

/// The Philox stream of [`BatchSampler`]'s window positions. Every random number
/// of the workbench is keyed by `(seed, position, token, stream)`; other modules
/// use streams `0x0001_0000..=0x0011_0000`, this one is kept apart from them.
pub const STREAM_BATCHES: u32 = 0x0020_0000;

/// A token stream cut into training batches of `batch` rows, each a window of
/// `context + 1` consecutive tokens: the inputs are its first `context` tokens,
/// the targets its last `context` (the inputs shifted by one).
///
/// Row `r` of step `s` starts at a position drawn from
/// [`wb_kernels::philox::bits`]`(seed, s, t, STREAM_BATCHES)` for `t = 2r` (low
/// 32 bits) and `t = 2r + 1` (high 32 bits), mapped to the `len - context`
/// possible starts by a 64-bit multiply-shift (bias below `n / 2^64`). A batch is
/// therefore a pure function of `(tokens, context, batch, seed, step)`: resuming
/// training at step `k` gives the batches an uninterrupted run would have seen,
/// and batches can be made in any order or in parallel.
#[derive(Clone, Debug)]
pub struct BatchSampler {
    tokens: Vec<u32>,
    context: usize,
    batch: usize,
    seed: u64,
}

impl BatchSampler {
    /// A sampler over `tokens` with windows of `context + 1` tokens, `batch` rows
    /// per batch, and the given seed.
    ///
    /// # Errors
    /// If `context` or `batch` is 0, `batch` is 2^31 or more (two Philox lanes
    /// per row), or the stream is shorter than `context + 1` tokens.
    pub fn new(tokens: Vec<u32>, context: usize, batch: usize, seed: u64) -> Result<BatchSampler> {
        if context == 0 {
            bail!("context must be at least 1");
        }
        if batch == 0 || batch >= 1 << 31 {
            bail!("batch must be within 1..2^31, got {batch}");
        }
        if tokens.len() <= context {
            bail!(
                "the token stream has {} tokens, fewer than the {} of one window (context {context} + 1)",
                tokens.len(),
                context + 1
            );
        }
        Ok(BatchSampler {
            tokens,
            context,
            batch,
            seed,
        })
    }

    /// The context length (tokens of input per row).
    pub fn context(&self) -> usize {
        self.context
    }

    /// The number of rows per batch.
    pub fn batch_size(&self) -> usize {
        self.batch
    }

    /// The seed.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The token stream.
    pub fn tokens(&self) -> &[u32] {
        &self.tokens
    }

    /// The start of row `row`'s window at step `step`, within
    /// `0..=len - context - 1`.
    ///
    /// # Panics
    /// If `row` is not below [`batch_size`](Self::batch_size).
    pub fn window_start(&self, step: u64, row: usize) -> usize {
        assert!(row < self.batch, "row {row} of a batch of {}", self.batch);
        let starts = (self.tokens.len() - self.context) as u64;
        let lane = 2 * row as u32;
        let lo = philox::bits(self.seed, step, lane, STREAM_BATCHES) as u64;
        let hi = philox::bits(self.seed, step, lane + 1, STREAM_BATCHES) as u64;
        let x = lo | (hi << 32);
        ((x as u128 * starts as u128) >> 64) as usize
    }

    /// Batch `step`: `(inputs, targets)`, each `batch * context` tokens in
    /// row-major order; row `r` of the targets is row `r` of the inputs shifted
    /// left by one, with the window's next token at the end.
    pub fn batch(&self, step: u64) -> (Vec<u32>, Vec<u32>) {
        let mut inputs = Vec::with_capacity(self.batch * self.context);
        let mut targets = Vec::with_capacity(self.batch * self.context);
        for row in 0..self.batch {
            let start = self.window_start(step, row);
            let window = &self.tokens[start..start + self.context + 1];
            inputs.extend_from_slice(&window[..self.context]);
            targets.extend_from_slice(&window[1..]);
        }
        (inputs, targets)
    }
}

/// Consecutive non-overlapping evaluation windows of `context + 1` tokens from
/// the start of `tokens`, in order, as `(inputs, targets)` per window: window `w`
/// is `tokens[w * (context + 1) .. (w + 1) * (context + 1)]`, its inputs the first
/// `context` tokens and its targets the last `context`. The tail shorter than a
/// window is dropped, so there are `tokens.len() / (context + 1)` windows.
///
/// # Panics
/// If `context` is 0.
pub fn eval_windows(tokens: &[u32], context: usize) -> Vec<(Vec<u32>, Vec<u32>)> {
    assert!(context > 0, "context must be at least 1");
    tokens
        .chunks_exact(context + 1)
        .map(|w| (w[..context].to_vec(), w[1..].to_vec()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_stay_in_range_and_reach_both_ends() {
        let sampler = BatchSampler::new((0..10).collect(), 4, 64, 7).unwrap();
        let mut seen = [false; 6];
        for step in 0..20 {
            for row in 0..64 {
                let s = sampler.window_start(step, row);
                assert!(s <= 5, "start {s}");
                seen[s] = true;
            }
        }
        assert!(seen.iter().all(|&x| x), "{seen:?}");
    }

    #[test]
    fn exactly_one_window_is_enough() {
        let sampler = BatchSampler::new(vec![5, 6, 7], 2, 3, 0).unwrap();
        assert_eq!(
            sampler.batch(9),
            (vec![5, 6, 5, 6, 5, 6], vec![6, 7, 6, 7, 6, 7])
        );
        assert!(BatchSampler::new(vec![5, 6], 2, 3, 0).is_err());
        assert!(BatchSampler::new(vec![5, 6, 7], 0, 3, 0).is_err());
        assert!(BatchSampler::new(vec![5, 6, 7], 2, 0, 0).is_err());
    }

    #[test]
    fn eval_windows_drop_the_tail() {
        let tokens: Vec<u32> = (0..11).collect();
        let w = eval_windows(&tokens, 2);
        assert_eq!(w.len(), 3);
        assert_eq!(w[0], (vec![0, 1], vec![1, 2]));
        assert_eq!(w[2], (vec![6, 7], vec![7, 8]));
        assert!(eval_windows(&tokens[..2], 2).is_empty());
    }
}
