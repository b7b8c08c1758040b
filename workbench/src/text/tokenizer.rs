//! [`TextTokenizer`]: a Hugging Face tokenizer, trained here as a GPT-2 style
//! byte-level BPE or loaded from any `tokenizer.json`.

use std::io::Write;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::{BpeTrainerBuilder, BPE};
use tokenizers::models::TrainerWrapper;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::processors::byte_level::ByteLevel as ByteLevelProcessor;
use tokenizers::{AddedToken, Tokenizer};

/// The beginning-of-sequence token of [`TextTokenizer::train_bpe`]; it gets id 0.
pub const BOS_TOKEN: &str = "<|bos|>";
/// The end-of-sequence token of [`TextTokenizer::train_bpe`]; it gets id 1.
pub const EOS_TOKEN: &str = "<|eos|>";

/// Spellings of a beginning-of-sequence token, most specific first, looked up by
/// [`TextTokenizer::bos`] in tokenizers loaded from other projects.
const BOS_CANDIDATES: &[&str] = &[
    BOS_TOKEN,
    "<|begin_of_text|>",
    "<|startoftext|>",
    "<s>",
    "<bos>",
    "[CLS]",
];
/// Spellings of an end-of-sequence token, as for [`BOS_CANDIDATES`]. GPT-2's
/// `<|endoftext|>` serves as both, as in GPT-2 itself.
const EOS_CANDIDATES: &[&str] = &[
    EOS_TOKEN,
    "<|end_of_text|>",
    "<|endoftext|>",
    "</s>",
    "<eos>",
    "[SEP]",
];

/// Size of the pieces the training text is fed to the trainer in (cut at line
/// ends), so that pre-tokenisation of a large corpus runs in parallel. Fixed, so
/// the pieces, and with them the word counts, do not depend on the machine.
const FEED_CHUNK_BYTES: usize = 1 << 16;

/// A tokenizer: a [`tokenizers::Tokenizer`] with the few operations training and
/// evaluation need, with errors as [`anyhow::Error`].
///
/// Ids are `u32`. [`encode`](Self::encode) adds no special tokens; callers put
/// [`bos`](Self::bos) and [`eos`](Self::eos) where they want them.
#[derive(Clone)]
pub struct TextTokenizer {
    inner: Tokenizer,
    vocab_size: usize,
    bos: Option<u32>,
    eos: Option<u32>,
}

impl std::fmt::Debug for TextTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextTokenizer")
            .field("vocab_size", &self.vocab_size)
            .field("bos", &self.bos)
            .field("eos", &self.eos)
            .finish_non_exhaustive()
    }
}

impl TextTokenizer {
    /// Trains a byte-level BPE tokenizer on `text` with `vocab_size` entries in
    /// all: the specials [`BOS_TOKEN`] (id 0) and [`EOS_TOKEN`] (id 1), the 256
    /// byte symbols (ids 2..258, in code-point order of GPT-2's byte-to-character
    /// map, whether or not the text uses them, so any text encodes), then one
    /// token per merge, in merge order.
    ///
    /// It is GPT-2's scheme: byte-level pre-tokenizer with GPT-2's regex and no
    /// added prefix space, byte-level decoder, no normaliser, no `<unk>`, so
    /// `decode(encode(s)) == s` for every string. The vocabulary comes out
    /// smaller than `vocab_size` only where the text has fewer distinct
    /// adjacent pairs than merges asked for.
    ///
    /// Deterministic: the same `text` and `vocab_size` give a byte-identical
    /// `tokenizer.json`, whatever the number of threads. The `tokenizers` trainer
    /// counts words and pairs in parallel with rayon (as `TOKENIZERS_PARALLELISM`
    /// allows), but those are sums of integers, and it picks each merge by
    /// (count, then smallest pair of ids), with ids given in a fixed order: the
    /// specials, the sorted byte alphabet, then merges as made. The test
    /// `tests/text.rs` trains under rayon pools of different sizes and compares
    /// the JSON bytes.
    ///
    /// # Errors
    /// If `vocab_size` cannot hold the 2 specials and 256 bytes, or the trainer
    /// fails.
    pub fn train_bpe(text: &str, vocab_size: usize) -> Result<TextTokenizer> {
        let alphabet = ByteLevel::alphabet();
        let minimum = 2 + alphabet.len();
        if vocab_size < minimum {
            bail!(
                "vocab_size {vocab_size} is too small for a byte-level BPE: it needs at \
                 least {minimum} (2 special tokens and 256 bytes)"
            );
        }
        let specials = vec![
            AddedToken::from(BOS_TOKEN, true),
            AddedToken::from(EOS_TOKEN, true),
        ];
        let mut trainer: TrainerWrapper = BpeTrainerBuilder::new()
            .vocab_size(vocab_size)
            .min_frequency(0)
            .show_progress(false)
            .special_tokens(specials)
            .initial_alphabet(alphabet.into_iter().collect())
            .build()
            .into();

        let mut tokenizer = Tokenizer::new(BPE::default());
        tokenizer
            .with_pre_tokenizer(Some(ByteLevel::new(false, true, true)))
            .with_post_processor(Some(ByteLevelProcessor::new(false, true, true)))
            .with_decoder(Some(ByteLevelDecoder::new(false, true, true)));
        tokenizer
            .train(&mut trainer, line_chunks(text, FEED_CHUNK_BYTES))
            .map_err(anyhow::Error::from_boxed)
            .context("training the byte-level BPE tokenizer")?;

        let trained = TextTokenizer::from_tokenizer(tokenizer);
        debug_assert_eq!(trained.bos, Some(0));
        debug_assert_eq!(trained.eos, Some(1));
        Ok(trained)
    }

    /// Loads a Hugging Face `tokenizer.json` of any model type (BPE, WordPiece,
    /// WordLevel, Unigram) and any normaliser, pre-tokenizer and decoder the
    /// `tokenizers` crate knows.
    ///
    /// # Errors
    /// If the file cannot be read or is not a valid `tokenizer.json`; the message
    /// names the file.
    pub fn load(path: &Path) -> Result<TextTokenizer> {
        let bytes =
            std::fs::read(path).with_context(|| format!("reading tokenizer {}", path.display()))?;
        let inner = Tokenizer::from_bytes(&bytes)
            .map_err(anyhow::Error::from_boxed)
            .with_context(|| format!("parsing tokenizer {}", path.display()))?;
        Ok(TextTokenizer::from_tokenizer(inner))
    }

    /// Wraps a tokenizer built elsewhere.
    pub fn from_tokenizer(inner: Tokenizer) -> TextTokenizer {
        let vocab_size = inner
            .get_vocab(true)
            .values()
            .max()
            .map_or(0, |&id| id as usize + 1);
        let find = |candidates: &[&str]| candidates.iter().find_map(|t| inner.token_to_id(t));
        let bos = find(BOS_CANDIDATES);
        let eos = find(EOS_CANDIDATES);
        TextTokenizer {
            inner,
            vocab_size,
            bos,
            eos,
        }
    }

    /// The tokenizer as `tokenizer.json` text (pretty-printed, as Hugging Face
    /// writes it; vocabulary in id order and merges in rank order, so equal
    /// tokenizers give equal bytes).
    pub fn to_json(&self) -> Result<String> {
        self.inner
            .to_string(true)
            .map_err(anyhow::Error::from_boxed)
            .context("serialising the tokenizer")
    }

    /// Saves as `tokenizer.json` at `path`, atomically: a temporary file in the
    /// same folder, flushed to disk, then renamed over `path`. Missing parent
    /// folders are created.
    pub fn save(&self, path: &Path) -> Result<()> {
        let json = self.to_json()?;
        write_atomic(path, json.as_bytes())
            .with_context(|| format!("saving tokenizer {}", path.display()))
    }

    /// One more than the largest id, added tokens included: the number of rows an
    /// embedding table needs. Equals the number of tokens when ids have no gaps,
    /// as in every tokenizer trained here.
    pub fn vocab_size(&self) -> usize {
        self.vocab_size
    }

    /// The ids of `text`, with no special tokens added. (Special tokens written
    /// out in the text, such as a literal `<|eos|>`, still map to their ids.)
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let encoding = self
            .inner
            .encode_fast(text, false)
            .map_err(anyhow::Error::from_boxed)
            .context("encoding text")?;
        Ok(encoding.get_ids().to_vec())
    }

    /// The text of `ids`, special tokens included as written. Byte sequences that
    /// are not valid UTF-8 (an id sequence cut inside a character) decode to
    /// U+FFFD.
    ///
    /// # Errors
    /// If an id is outside the vocabulary.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        if let Some(&bad) = ids.iter().find(|&&id| self.inner.id_to_token(id).is_none()) {
            return Err(anyhow!(
                "id {bad} is outside the tokenizer's vocabulary (size {})",
                self.vocab_size
            ));
        }
        self.inner
            .decode(ids, false)
            .map_err(anyhow::Error::from_boxed)
            .context("decoding ids")
    }

    /// The beginning-of-sequence id: [`BOS_TOKEN`] (0) for tokenizers trained
    /// here; for loaded ones the first of `<|bos|>`, `<|begin_of_text|>`,
    /// `<|startoftext|>`, `<s>`, `<bos>`, `[CLS]` that the vocabulary has.
    pub fn bos(&self) -> Option<u32> {
        self.bos
    }

    /// The end-of-sequence id: [`EOS_TOKEN`] (1) for tokenizers trained here; for
    /// loaded ones the first of `<|eos|>`, `<|end_of_text|>`, `<|endoftext|>`,
    /// `</s>`, `<eos>`, `[SEP]` that the vocabulary has.
    pub fn eos(&self) -> Option<u32> {
        self.eos
    }

    /// The wrapped Hugging Face tokenizer, for anything not covered here.
    pub fn inner(&self) -> &Tokenizer {
        &self.inner
    }
}

/// `text` in pieces of about `chunk` bytes, each ending at a line end (or at the
/// end of the text), in order.
fn line_chunks(text: &str, chunk: usize) -> impl Iterator<Item = &str> + Send {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let cut = match rest.as_bytes().get(chunk..) {
            None => rest.len(),
            Some(tail) => tail
                .iter()
                .position(|&b| b == b'\n')
                .map_or(rest.len(), |i| chunk + i + 1),
        };
        let (head, tail) = rest.split_at(cut);
        rest = tail;
        Some(head)
    })
}

/// Writes `bytes` to `path` through a temporary file in the same folder (unique
/// per process and call), flushed, then renamed over `path`.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("tokenizer.json");
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let tmp = dir.join(format!(".{name}.{}-{n}.tmp", std::process::id()));
    let written = (|| -> Result<()> {
        let mut file =
            std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        file.write_all(bytes)
            .with_context(|| format!("writing {}", tmp.display()))?;
        file.sync_all()
            .with_context(|| format!("flushing {}", tmp.display()))?;
        std::fs::rename(&tmp, path)
            .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_chunks_cover_the_text_and_end_at_lines() {
        let text = "ab\ncd\nef\n\ngh";
        let pieces: Vec<&str> = line_chunks(text, 2).collect();
        assert_eq!(pieces.concat(), text);
        assert_eq!(pieces, ["ab\n", "cd\n", "ef\n", "\ngh"]);
        assert_eq!(line_chunks("", 4).count(), 0);
        assert_eq!(line_chunks("é\né", 1).collect::<Vec<_>>(), ["é\n", "é"]);
    }

    #[test]
    fn small_vocab_is_refused() {
        let err = TextTokenizer::train_bpe("hello", 100).unwrap_err();
        assert!(err.to_string().contains("too small"), "{err}");
    }

    #[test]
    fn tiny_training_round_trips() {
        let text = "hello world\nhello there, world!\n\u{e9}t\u{e9} \u{1F600}\n";
        let tok = TextTokenizer::train_bpe(text, 270).unwrap();
        assert_eq!(tok.bos(), Some(0));
        assert_eq!(tok.eos(), Some(1));
        assert_eq!(tok.vocab_size(), 270);
        let ids = tok.encode(text).unwrap();
        assert!(ids.len() < text.len());
        assert_eq!(tok.decode(&ids).unwrap(), text);
        // Bytes never seen in training still encode.
        let unseen = "\u{4e2d}\u{6587} ~`\t";
        assert_eq!(tok.decode(&tok.encode(unseen).unwrap()).unwrap(), unseen);
        assert!(tok.decode(&[100_000]).is_err());
    }
}
