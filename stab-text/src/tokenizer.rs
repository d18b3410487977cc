//! Tokenization with the `tokenizers` crate: singles and pairs, `longest_first`
//! truncation to `max_len` (special tokens included), padding to the batch's longest with
//! the model's pad id. Whatever padding or truncation `tokenizer.json` has built in
//! (MiniLM's pads to a fixed 128) is overridden. Character offsets and sequence ids are
//! kept for span projection (WSC, WiC).
//!
//! Without `tokenizer.json` the tokenizer is assembled from the classic files:
//! `vocab.txt` → BERT WordPiece (normaliser, pre-tokenizer, `[CLS] A [SEP] B [SEP]`),
//! `vocab.json` + `merges.txt` → byte-level BPE with RoBERTa's `<s> A </s></s> B </s>`.

use std::path::Path;

/// What a tokenizer needs from a model's `config.json`: the pad id it pads with and the
/// vocabulary size every id it produces must stay below. The model crate implements it for
/// its config; a tokenizer-only caller can implement it for its own.
pub trait VocabConfig {
    fn pad_id(&self) -> usize;
    fn vocab_size(&self) -> usize;
}

use stab_core::InputError;
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::decoders::wordpiece::WordPiece as WordPieceDecoder;
use tokenizers::models::bpe::BPE;
use tokenizers::models::wordpiece::WordPiece;
use tokenizers::normalizers::BertNormalizer;
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::processors::bert::BertProcessing;
use tokenizers::processors::roberta::RobertaProcessing;
use tokenizers::{Tokenizer, TruncationDirection};

/// One input: a text and an optional second text.
#[derive(Debug, Clone, PartialEq)]
pub struct TextInput {
    pub text: String,
    pub text_pair: Option<String>,
}

impl TextInput {
    pub fn single(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            text_pair: None,
        }
    }
    pub fn pair(a: impl Into<String>, b: impl Into<String>) -> Self {
        Self {
            text: a.into(),
            text_pair: Some(b.into()),
        }
    }
}

/// Read `stab embed --inputs`: JSON lines `{"text": "...", "text_pair": "..." | null}`,
/// blank lines ignored; every bad line is one error naming the file and line.
pub fn read_inputs(path: &Path) -> Result<Vec<TextInput>, InputError> {
    let file = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| {
        InputError::new(format!("cannot read the inputs: {e}"))
            .file(file.clone())
            .hint("--inputs takes a JSON-lines file")
    })?;
    let text = String::from_utf8(bytes).map_err(|e| {
        let good = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        InputError::new("not UTF-8 text")
            .file(file.clone())
            .line(Some(good.iter().filter(|&&b| b == b'\n').count() + 1))
            .hint("--inputs takes a UTF-8 JSON-lines file")
    })?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let bad = |m: String| {
            InputError::new(m)
                .file(file.clone())
                .line(Some(i + 1))
                .hint("each line must be {\"text\": \"...\", \"text_pair\": \"...\" or null}")
        };
        let v: serde_json::Value =
            serde_json::from_str(line).map_err(|e| bad(format!("invalid JSON: {e}")))?;
        let text = v
            .get("text")
            .and_then(|t| t.as_str())
            .ok_or_else(|| bad("missing string field `text`".into()))?;
        let pair = match v.get("text_pair") {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::String(s)) => Some(s.clone()),
            Some(_) => return Err(bad("`text_pair` must be a string or null".into())),
        };
        out.push(TextInput {
            text: text.to_string(),
            text_pair: pair,
        });
    }
    if out.is_empty() {
        return Err(InputError::new("no inputs")
            .file(file)
            .hint("write at least one JSON line"));
    }
    Ok(out)
}

/// A padded batch, row-major [batch × seq_len].
#[derive(Debug, Clone, PartialEq)]
pub struct TokenBatch {
    pub batch: usize,
    pub seq_len: usize,
    pub input_ids: Vec<i64>,
    pub attention_mask: Vec<i64>,
    pub token_type_ids: Vec<i64>,
    /// Per row and token: character offsets into the text it came from (0, 0 for specials/padding).
    pub offsets: Vec<Vec<(usize, usize)>>,
    /// Per row and token: 0 = first text, 1 = second text, None = special or padding.
    pub sequence_ids: Vec<Vec<Option<usize>>>,
}

impl TokenBatch {
    /// Row `r` of a row-major field.
    pub fn row<'a>(&self, field: &'a [i64], r: usize) -> &'a [i64] {
        &field[r * self.seq_len..(r + 1) * self.seq_len]
    }
    /// Real (non-pad) tokens of each row.
    pub fn lengths(&self) -> Vec<usize> {
        (0..self.batch)
            .map(|r| {
                self.row(&self.attention_mask, r)
                    .iter()
                    .filter(|&&m| m != 0)
                    .count()
            })
            .collect()
    }
}

/// Special-token names of BERT and RoBERTa vocabularies.
const SPECIAL_NAMES: [&str; 10] = [
    "[CLS]", "[SEP]", "[PAD]", "[MASK]", "[UNK]", "<s>", "</s>", "<pad>", "<mask>", "<unk>",
];

/// A model's tokenizer with stab's padding and truncation.
#[derive(Clone)]
pub struct TextEncoder {
    tokenizer: Tokenizer,
    /// The tokenizer without truncation, padding and post-processor, and with only the
    /// post-processor: the parts of [`TextEncoder::encode`].
    plain: std::sync::Arc<(Tokenizer, Tokenizer)>,
    pub pad_id: u32,
}

fn load_error(dir: &Path, what: String) -> InputError {
    InputError::new(what)
        .file(dir.display().to_string())
        .hint("a model directory needs tokenizer.json, or vocab.txt (WordPiece), or vocab.json + merges.txt (byte-level BPE)")
}

impl TextEncoder {
    /// Load the tokenizer of a model directory; `pad_id` comes from the model config.
    pub fn from_dir(dir: &Path, pad_id: usize) -> Result<Self, InputError> {
        let json = dir.join("tokenizer.json");
        let tokenizer = if json.exists() {
            Tokenizer::from_file(&json)
                .map_err(|e| load_error(dir, format!("cannot read tokenizer.json: {e}")))?
        } else if dir.join("vocab.txt").exists() {
            wordpiece_from_vocab(dir)?
        } else if dir.join("vocab.json").exists() && dir.join("merges.txt").exists() {
            bpe_from_vocab(dir)?
        } else if dir.join("spm.model").exists() {
            // DeBERTa-v3 on the Hub ships only the SentencePiece model.
            return Err(InputError::new(
                "only a SentencePiece spm.model is here, and stab reads tokenizer.json",
            )
            .file(dir.display().to_string())
            .hint(format!(
                "convert it once with transformers: python -c \"from transformers import AutoTokenizer; AutoTokenizer.from_pretrained('{0}').save_pretrained('{0}')\" (writes tokenizer.json)",
                dir.display()
            )));
        } else {
            return Err(load_error(dir, "no tokenizer files".to_string()));
        };
        let pad_id = pad_id as u32;
        tokenizer.id_to_token(pad_id).ok_or_else(|| {
            load_error(dir, format!("the pad id {pad_id} is not in the vocabulary"))
        })?;
        let mut full = tokenizer.clone();
        full.with_truncation(None)
            .map_err(|e| load_error(dir, format!("cannot configure the tokenizer: {e}")))?;
        full.with_padding(None);
        let mut raw = full.clone();
        raw.with_post_processor(None::<tokenizers::PostProcessorWrapper>);
        Ok(Self {
            tokenizer,
            plain: std::sync::Arc::new((raw, full)),
            pad_id,
        })
    }

    /// The tokenizer of a model directory, checked against the model's `config`: every
    /// id the tokenizer can produce must have a row in the embedding table (an id past
    /// `vocab_size` would index out of bounds in the first forward pass).
    pub fn for_model(dir: &Path, config: &impl VocabConfig) -> Result<Self, InputError> {
        let tok = Self::from_dir(dir, config.pad_id())?;
        let vocab_size = config.vocab_size();
        let max_id = tok
            .tokenizer
            .get_vocab(true)
            .into_values()
            .max()
            .unwrap_or(0) as usize;
        if max_id >= vocab_size {
            return Err(InputError::new(format!(
                "the tokenizer produces ids up to {max_id}, but config.json has vocab_size = {vocab_size} (ids 0..{vocab_size})"
            ))
            .file(dir.join("config.json").display().to_string())
            .key("vocab_size")
            .hint("the tokenizer files and config.json belong to different models; download the model again"));
        }
        Ok(tok)
    }

    /// Special tokens the template adds to a pair (3 for BERT, 4 for RoBERTa).
    pub fn pair_special_tokens(&self) -> usize {
        self.added_tokens(true)
    }

    /// The underlying tokenizer.
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// Encode `inputs` as one batch, truncated `longest_first` to `max_len` tokens
    /// (special tokens included) and padded to the longest row.
    ///
    /// The result is exactly what `tokenizers` gives with `longest_first` truncation, but
    /// memory does not grow with the text: a text longer than [`WHOLE_TEXT_BYTES`] is
    /// tokenized only as far as truncation can keep (see [`TextEncoder::bounded_prefix`]).
    pub fn encode(&self, inputs: &[TextInput], max_len: usize) -> stab_core::Result<TokenBatch> {
        self.encode_chunked(inputs, max_len, WHOLE_TEXT_BYTES)
    }

    /// [`TextEncoder::encode`] with texts above `whole_bytes` read in chunks (tests use
    /// small chunks to exercise the bounded path on short texts).
    #[doc(hidden)]
    pub fn encode_chunked(
        &self,
        inputs: &[TextInput],
        max_len: usize,
        whole_bytes: usize,
    ) -> stab_core::Result<TokenBatch> {
        use rayon::prelude::*;
        let single = self.added_tokens(false);
        let pair = self.added_tokens(true);
        // Special tokens of an input, and its smallest max_len (one token per text).
        let added = |i: &TextInput| match i.text_pair {
            Some(_) => (pair, pair + 2, "pair"),
            None => (single, single + 1, "single text"),
        };
        if let Some((n, needed, what)) = inputs.iter().map(added).find(|a| max_len < a.1) {
            return Err(InputError::new(format!(
                "max_len {max_len} leaves no room for the text: this tokenizer adds {n} special tokens to a {what}"
            ))
            .key("max_len")
            .hint(format!("use a max_len of at least {needed} (8 or more; 128 is usual)"))
            .into());
        }
        let parts = self.pieces(whole_bytes);
        let encs: Vec<tokenizers::Encoding> = inputs
            .par_iter()
            .map(|i| parts.encode(i, max_len, added(i).0))
            .collect::<stab_core::Result<_>>()?;
        if let Some((k, e)) = encs.iter().enumerate().find(|(_, e)| e.len() > max_len) {
            return Err(stab_core::internal!(
                "input {k} has {} tokens after truncation to {max_len} (a tokenizer that adds tokens after truncation?)",
                e.len()
            ));
        }
        Ok(self.pad(&encs))
    }

    fn pieces(&self, whole_bytes: usize) -> Pieces<'_> {
        Pieces {
            raw: &self.plain.0,
            full: &self.plain.1,
            whole_bytes: whole_bytes.max(1),
        }
    }

    /// The tokens of `text` alone: no special tokens, and none of the truncation or
    /// padding `tokenizer.json` may have built in.
    pub fn encode_plain(&self, text: &str) -> stab_core::Result<tokenizers::Encoding> {
        self.pieces(WHOLE_TEXT_BYTES).raw(text)
    }

    /// Special tokens the post-processor adds to a single text or a pair.
    fn added_tokens(&self, is_pair: bool) -> usize {
        use tokenizers::PostProcessor;
        self.tokenizer
            .get_post_processor()
            .map_or(0, |p| p.added_tokens(is_pair))
    }

    /// Right-pad encodings to the longest (pad id, type 0, mask 0, offsets (0, 0), no
    /// sequence id), as `tokenizers`' batch-longest padding does.
    fn pad(&self, encs: &[tokenizers::Encoding]) -> TokenBatch {
        let batch = encs.len();
        let seq_len = encs.iter().map(|e| e.len()).max().unwrap_or(0);
        let mut out = TokenBatch {
            batch,
            seq_len,
            input_ids: Vec::with_capacity(batch * seq_len),
            attention_mask: Vec::with_capacity(batch * seq_len),
            token_type_ids: Vec::with_capacity(batch * seq_len),
            offsets: Vec::with_capacity(batch),
            sequence_ids: Vec::with_capacity(batch),
        };
        for e in encs {
            let pad = seq_len - e.len();
            out.input_ids.extend(
                e.get_ids()
                    .iter()
                    .map(|&v| i64::from(v))
                    .chain(std::iter::repeat_n(i64::from(self.pad_id), pad)),
            );
            out.attention_mask.extend(
                e.get_attention_mask()
                    .iter()
                    .map(|&v| i64::from(v))
                    .chain(std::iter::repeat_n(0, pad)),
            );
            out.token_type_ids.extend(
                e.get_type_ids()
                    .iter()
                    .map(|&v| i64::from(v))
                    .chain(std::iter::repeat_n(0, pad)),
            );
            let mut offsets = e.get_offsets().to_vec();
            offsets.resize(seq_len, (0, 0));
            out.offsets.push(offsets);
            let mut ids = e.get_sequence_ids();
            ids.resize(seq_len, None);
            out.sequence_ids.push(ids);
        }
        out
    }

    /// The shortest prefix of `text` whose tokens (no special tokens) number at least
    /// `tokens`, or the whole text. Its tokens are the first tokens of the whole text's:
    /// texts are cut only where whitespace follows a non-whitespace character, a point no
    /// pre-tokenizer of these families merges across. Memory is bounded by the prefix.
    pub fn bounded_prefix<'t>(&self, text: &'t str, tokens: usize) -> stab_core::Result<&'t str> {
        self.pieces(WHOLE_TEXT_BYTES).prefix(text, tokens)
    }

    /// The number of tokens of `text` (no special tokens), counted chunk by chunk in
    /// bounded memory, stopping once it reaches `cap`.
    pub fn count_tokens_upto(&self, text: &str, cap: usize) -> stab_core::Result<usize> {
        self.pieces(WHOLE_TEXT_BYTES).count(text, cap)
    }

    /// Ids of the special tokens (the tokenizer's special added tokens and the usual
    /// BERT/RoBERTa names), sorted: masked-LM training never selects them.
    pub fn special_ids(&self) -> Vec<i64> {
        let mut ids: Vec<i64> = self
            .tokenizer
            .get_added_tokens_decoder()
            .iter()
            .filter(|(_, t)| t.special)
            .map(|(&id, _)| i64::from(id))
            .collect();
        for name in SPECIAL_NAMES {
            if let Some(id) = self.tokenizer.token_to_id(name) {
                ids.push(i64::from(id));
            }
        }
        ids.push(i64::from(self.pad_id));
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// The mask token's id (`[MASK]` or `<mask>`), if the vocabulary has one.
    pub fn mask_id(&self) -> Option<i64> {
        ["[MASK]", "<mask>"]
            .iter()
            .find_map(|t| self.tokenizer.token_to_id(t))
            .map(i64::from)
    }

    /// Vocabulary size, added tokens included.
    pub fn vocab_size(&self) -> usize {
        self.tokenizer.get_vocab_size(true)
    }

    /// Token strings of a row (for debugging).
    pub fn tokens(&self, batch: &TokenBatch, r: usize) -> Vec<String> {
        batch
            .row(&batch.input_ids, r)
            .iter()
            .map(|&id| self.tokenizer.id_to_token(id as u32).unwrap_or_default())
            .collect()
    }
}

/// `tokenizer_config.json`, for the few settings the classic files do not carry.
fn tokenizer_config(dir: &Path) -> serde_json::Value {
    std::fs::read_to_string(dir.join("tokenizer_config.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(serde_json::Value::Null)
}

fn special(tok: &Tokenizer, dir: &Path, names: &[&str]) -> Result<(String, u32), InputError> {
    names
        .iter()
        .find_map(|n| tok.token_to_id(n).map(|id| (n.to_string(), id)))
        .ok_or_else(|| {
            load_error(
                dir,
                format!("the vocabulary has none of the special tokens {names:?}"),
            )
        })
}

fn wordpiece_from_vocab(dir: &Path) -> Result<Tokenizer, InputError> {
    let vocab = dir.join("vocab.txt");
    let cfg = tokenizer_config(dir);
    let lowercase = cfg
        .get("do_lower_case")
        .and_then(|v| v.as_bool())
        .unwrap_or(true);
    let strip_accents = cfg.get("strip_accents").and_then(|v| v.as_bool());
    let model = WordPiece::from_file(&vocab.to_string_lossy())
        .unk_token("[UNK]".into())
        .build()
        .map_err(|e| load_error(dir, format!("cannot read vocab.txt: {e}")))?;
    let mut tok = Tokenizer::new(model);
    tok.with_normalizer(Some(BertNormalizer::new(
        true,
        true,
        strip_accents,
        lowercase,
    )));
    tok.with_pre_tokenizer(Some(BertPreTokenizer));
    let sep = special(&tok, dir, &["[SEP]"])?;
    let cls = special(&tok, dir, &["[CLS]"])?;
    tok.with_post_processor(Some(BertProcessing::new(sep, cls)));
    tok.with_decoder(Some(WordPieceDecoder::default()));
    // Special tokens must never be normalised or split.
    let specials: Vec<tokenizers::AddedToken> = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        .iter()
        .filter(|t| tok.token_to_id(t).is_some())
        .map(|t| tokenizers::AddedToken::from(t.to_string(), true))
        .collect();
    tok.add_special_tokens(&specials);
    Ok(tok)
}

fn bpe_from_vocab(dir: &Path) -> Result<Tokenizer, InputError> {
    let cfg = tokenizer_config(dir);
    let add_prefix_space = cfg
        .get("add_prefix_space")
        .and_then(|v| v.as_bool())
        .unwrap_or(false);
    let model = BPE::from_file(
        &dir.join("vocab.json").to_string_lossy(),
        &dir.join("merges.txt").to_string_lossy(),
    )
    .build()
    .map_err(|e| load_error(dir, format!("cannot read vocab.json/merges.txt: {e}")))?;
    let mut tok = Tokenizer::new(model);
    tok.with_pre_tokenizer(Some(ByteLevel::new(add_prefix_space, true, true)));
    let sep = special(&tok, dir, &["</s>"])?;
    let cls = special(&tok, dir, &["<s>"])?;
    tok.with_post_processor(Some(
        RobertaProcessing::new(sep, cls)
            .trim_offsets(true)
            .add_prefix_space(add_prefix_space),
    ));
    tok.with_decoder(Some(ByteLevelDecoder::default()));
    // Special tokens must never be split by the BPE model.
    let specials: Vec<tokenizers::AddedToken> = ["<s>", "<pad>", "</s>", "<unk>"]
        .iter()
        .filter(|t| tok.token_to_id(t).is_some())
        .map(|t| tokenizers::AddedToken::from(t.to_string(), true))
        .chain(
            tok.token_to_id("<mask>")
                .map(|_| tokenizers::AddedToken::from("<mask>", true).lstrip(true)),
        )
        .collect();
    tok.add_special_tokens(&specials);
    Ok(tok)
}

/// Texts up to this many bytes are tokenized whole; longer ones chunk by chunk.
pub const WHOLE_TEXT_BYTES: usize = 64 * 1024;

/// Tokenization of single texts without the tokenizer's truncation, padding or
/// post-processing (`raw`), and the post-processor that joins them (`full`).
struct Pieces<'a> {
    raw: &'a Tokenizer,
    full: &'a Tokenizer,
    whole_bytes: usize,
}

impl Pieces<'_> {
    fn raw(&self, text: &str) -> stab_core::Result<tokenizers::Encoding> {
        self.raw
            .encode_char_offsets(text, false)
            .map_err(|e| stab_core::internal!("tokenization failed: {e}"))
    }

    /// The chunks of `text`: pieces of about `whole_bytes`, each cut before a space that
    /// follows a non-whitespace character (looking back from the size, else forward up to
    /// 16 times it). Only a single "word" longer than that is cut inside, at a character
    /// boundary: the one place the chunked tokens may differ from the whole text's.
    fn chunks<'t>(&self, text: &'t str) -> impl Iterator<Item = &'t str> {
        let size = self.whole_bytes;
        let reach = (size * 16).max(4096);
        let mut rest = text;
        std::iter::from_fn(move || {
            if rest.is_empty() {
                return None;
            }
            if rest.len() <= size {
                return Some(std::mem::take(&mut rest));
            }
            let bytes = rest.as_bytes();
            let boundary = |i: usize| {
                bytes[i] == b' '
                    && rest[..i]
                        .chars()
                        .next_back()
                        .is_some_and(|p| !p.is_whitespace())
            };
            let back = (1..=size.min(bytes.len() - 1)).rev().find(|&i| boundary(i));
            let cut = back
                .or_else(|| (size + 1..reach.min(bytes.len())).find(|&i| boundary(i)))
                .unwrap_or_else(|| {
                    let mut end = reach.min(rest.len());
                    while !rest.is_char_boundary(end) {
                        end -= 1;
                    }
                    end.max(rest.chars().next().map_or(1, char::len_utf8))
                });
            let (head, tail) = rest.split_at(cut);
            rest = tail;
            Some(head)
        })
    }

    fn prefix<'t>(&self, text: &'t str, tokens: usize) -> stab_core::Result<&'t str> {
        if text.len() <= self.whole_bytes {
            return Ok(text);
        }
        let (mut end, mut count) = (0, 0);
        for chunk in self.chunks(text) {
            count += self.raw(chunk)?.len();
            end += chunk.len();
            if count >= tokens {
                break;
            }
        }
        Ok(&text[..end])
    }

    fn count(&self, text: &str, cap: usize) -> stab_core::Result<usize> {
        let mut count = 0;
        for chunk in self.chunks(text) {
            count += self.raw(chunk)?.len();
            if count >= cap {
                break;
            }
        }
        Ok(count)
    }

    /// One input, as `tokenizers` encodes it with `longest_first` truncation to
    /// `max_len` (of which `added` are special tokens).
    fn encode(
        &self,
        input: &TextInput,
        max_len: usize,
        added: usize,
    ) -> stab_core::Result<tokenizers::Encoding> {
        let budget = max_len - added;
        // One more token than can be kept, so a cut text is known to be cut.
        let need = budget + 1;
        let first_text = self.prefix(&input.text, need)?;
        let mut first = self.raw(first_text)?;
        let second = match &input.text_pair {
            None => {
                first.truncate(budget, 0, TruncationDirection::Right);
                first.take_overflowing();
                None
            }
            Some(pair) => {
                let second_text = self.prefix(pair, need)?;
                let mut second = self.raw(second_text)?;
                second.set_type_ids(vec![1; second.len()]);
                let a_whole = first_text.len() == input.text.len();
                let b_whole = second_text.len() == pair.len();
                let (la, lb) = (first.len(), second.len());
                // Truncation depends on which text is longer, so an open comparison (a
                // cut text against one at least as long) needs the cut text's count.
                let (na, nb) = match (a_whole, b_whole) {
                    (true, true) => (la, lb),
                    (false, true) if la > lb => (la, lb),
                    (true, false) if lb > la => (la, lb),
                    (false, true) => (self.count(&input.text, usize::MAX)?, lb),
                    (true, false) => (la, self.count(pair, usize::MAX)?),
                    (false, false) => (
                        self.count(&input.text, usize::MAX)?,
                        self.count(pair, usize::MAX)?,
                    ),
                };
                let (ka, kb) = longest_first(na, nb, budget);
                first.truncate(ka, 0, TruncationDirection::Right);
                first.take_overflowing();
                second.truncate(kb, 0, TruncationDirection::Right);
                second.take_overflowing();
                Some(second)
            }
        };
        self.full
            .post_process(first, second, true)
            .map_err(|e| stab_core::internal!("tokenization failed: {e}"))
    }
}

/// The lengths `longest_first` truncation keeps of a pair of `a` and `b` tokens within
/// `budget`: nothing is cut when both fit; else the shorter keeps what it can (up to half
/// the budget when both are long) and the longer the rest, the odd token going to the
/// longer (to the second text on a tie) — the rule of `tokenizers` and transformers.
pub fn longest_first(a: usize, b: usize, budget: usize) -> (usize, usize) {
    if a + b <= budget {
        return (a, b);
    }
    let swap = a > b;
    let short = a.min(b);
    let mut n1 = short;
    let mut n2 = if short > budget {
        short
    } else {
        short.max(budget - short)
    };
    if n1 + n2 > budget {
        n1 = budget / 2;
        n2 = n1 + budget % 2;
    }
    if swap { (n2, n1) } else { (n1, n2) }
}
