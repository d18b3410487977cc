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
use tokenizers::{
    PaddingDirection, PaddingParams, PaddingStrategy, Tokenizer, TruncationDirection,
    TruncationParams, TruncationStrategy,
};

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
        } else {
            return Err(load_error(dir, "no tokenizer files".to_string()));
        };
        let pad_id = pad_id as u32;
        tokenizer.id_to_token(pad_id).ok_or_else(|| {
            load_error(dir, format!("the pad id {pad_id} is not in the vocabulary"))
        })?;
        Ok(Self { tokenizer, pad_id })
    }

    /// Special tokens the template adds to a pair (3 for BERT, 4 for RoBERTa).
    pub fn pair_special_tokens(&self) -> usize {
        use tokenizers::PostProcessor;
        self.tokenizer
            .get_post_processor()
            .map_or(0, |p| p.added_tokens(true))
    }

    /// The underlying tokenizer.
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// Encode `inputs` as one batch, truncated `longest_first` to `max_len` tokens
    /// (special tokens included) and padded to the longest row.
    pub fn encode(&self, inputs: &[TextInput], max_len: usize) -> anyhow::Result<TokenBatch> {
        let mut tok = self.tokenizer.clone();
        tok.with_truncation(Some(TruncationParams {
            max_length: max_len,
            strategy: TruncationStrategy::LongestFirst,
            direction: TruncationDirection::Right,
            stride: 0,
        }))
        .map_err(|e| anyhow::anyhow!("cannot truncate to {max_len} tokens: {e}"))?;
        let pad_token = tok.id_to_token(self.pad_id).expect("checked at load");
        tok.with_padding(Some(PaddingParams {
            strategy: PaddingStrategy::BatchLongest,
            direction: PaddingDirection::Right,
            pad_to_multiple_of: None,
            pad_id: self.pad_id,
            pad_type_id: 0,
            pad_token,
        }));
        let encs = tok
            .encode_batch_char_offsets(
                inputs
                    .iter()
                    .map(|i| match &i.text_pair {
                        Some(b) => {
                            tokenizers::EncodeInput::Dual(i.text.as_str().into(), b.as_str().into())
                        }
                        None => tokenizers::EncodeInput::Single(i.text.as_str().into()),
                    })
                    .collect::<Vec<_>>(),
                true,
            )
            .map_err(|e| anyhow::anyhow!("tokenization failed: {e}"))?;
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
        for e in &encs {
            out.input_ids
                .extend(e.get_ids().iter().map(|&v| i64::from(v)));
            out.attention_mask
                .extend(e.get_attention_mask().iter().map(|&v| i64::from(v)));
            out.token_type_ids
                .extend(e.get_type_ids().iter().map(|&v| i64::from(v)));
            out.offsets.push(e.get_offsets().to_vec());
            out.sequence_ids.push(e.get_sequence_ids());
        }
        Ok(out)
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
