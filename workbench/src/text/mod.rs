//! Text pipelines for training small language models: a byte-level BPE tokenizer
//! (trained here or loaded from a Hugging Face `tokenizer.json`), a deterministic
//! train/validation split, and the token batches of training and evaluation.
//!
//! Everything here is a pure function of its inputs: the same text and vocabulary
//! size give a byte-identical `tokenizer.json`, the same text and fraction give the
//! same split, and training batch `step` depends only on `(tokens, seed, step)`, so
//! a run resumed at step `k` sees the batches an uninterrupted run would have seen.
//!
//! ```no_run
//! use workbench::text::{eval_windows, split_text, BatchSampler, TextTokenizer};
//! # fn main() -> anyhow::Result<()> {
//! let text = std::fs::read_to_string("input.txt")?;
//! let (train, valid) = split_text(&text, 0.1);
//! let tokenizer = TextTokenizer::train_bpe(train, 512)?;
//! tokenizer.save(std::path::Path::new("tokenizer.json"))?;
//! let sampler = BatchSampler::new(tokenizer.encode(train)?, 256, 32, 1234)?;
//! let (inputs, targets) = sampler.batch(0);
//! let windows = eval_windows(&tokenizer.encode(valid)?, 256);
//! # let _ = (inputs, targets, windows);
//! # Ok(())
//! # }
//! ```

mod batches;
mod split;
mod tokenizer;

pub use batches::{eval_windows, BatchSampler, STREAM_BATCHES};
pub use split::split_text;
pub use tokenizer::{TextTokenizer, BOS_TOKEN, EOS_TOKEN};
