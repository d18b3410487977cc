//! The model a run trains: a pre-trained encoder (absent when the head trains on cached
//! features) and a task head, and the batches it reads.

use burn::module::Module;
use burn::tensor::{Device, Int, Tensor, TensorData};
use stab_core::Pooling;
use stab_data::encode::{EncodedRow, collate};
use stab_models::{Encoder, EncoderOutput, HeadInput, HeadOutput, TaskHead, TokenBatch};

/// A fresh head for a task on a model of `config`: the jiant heads of docs/methods.md §1.2
/// on encoders; on decoders Hugging Face's bias-free `score` layer (drawn N(0, σ²) with the
/// config's `initializer_range`, no dropout) for classification, and the span head for
/// span tasks (HF has none). `dropout` is the head's dropout where it has one.
pub fn fresh_head(
    config: &stab_models::EncoderConfig,
    kind: stab_data::HeadKind,
    classes: usize,
    dropout: f64,
    shape: stab_models::HeadShape,
    seed: u64,
    device: &Device,
) -> TaskHead {
    let hidden = config.hidden_size;
    match kind {
        stab_data::HeadKind::Classification if config.family.is_decoder() => TaskHead::score(
            hidden,
            classes,
            config.initializer_range,
            shape,
            seed,
            device,
        ),
        stab_data::HeadKind::Classification => {
            TaskHead::classification(hidden, classes, dropout, shape, seed, device)
        }
        stab_data::HeadKind::SpanComparison => {
            TaskHead::span(hidden, classes, dropout, shape, seed, device)
        }
    }
}

/// Encoder + head. `encoder` is `None` in head tuning on cached features.
#[derive(Module, Debug)]
pub struct TaskModel {
    pub encoder: Option<Encoder>,
    pub head: TaskHead,
    #[module(skip)]
    pub pooling: Pooling,
}

/// Where the two spans of each row sit in a padded token batch: for row b, span k and
/// slot s < width, the flat index b·T + position (padding slots repeat the first token
/// and are masked).
#[derive(Debug, Clone)]
pub struct SpanIndex {
    pub flat: Vec<i64>,
    /// 0 on span tokens, −1e9 on padding slots, `[B, 2, width]` row-major.
    pub mask: Vec<f32>,
    pub width: usize,
}

impl SpanIndex {
    /// Span slots for `rows` in a batch padded to `seq_len`; `width` at least the longest span.
    pub fn new(rows: &[&EncodedRow], seq_len: usize, width: Option<usize>) -> Self {
        let longest = rows
            .iter()
            .flat_map(|r| r.spans.iter().map(|&(a, b)| b + 1 - a))
            .max()
            .unwrap_or(1);
        let width = width.unwrap_or(longest).max(longest);
        let mut flat = Vec::with_capacity(rows.len() * 2 * width);
        let mut mask = Vec::with_capacity(rows.len() * 2 * width);
        for (b, r) in rows.iter().enumerate() {
            for &(first, last) in r.spans.iter().take(2) {
                for s in 0..width {
                    let real = first + s <= last;
                    flat.push((b * seq_len + if real { first + s } else { first }) as i64);
                    mask.push(if real { 0.0 } else { -1e9 });
                }
            }
        }
        Self { flat, mask, width }
    }

    /// Span lengths, two per row.
    pub fn lengths(&self) -> Vec<u32> {
        self.mask
            .chunks(self.width)
            .map(|c| c.iter().filter(|&&m| m == 0.0).count() as u32)
            .collect()
    }
}

/// One batch of tokens with its labels.
#[derive(Debug, Clone)]
pub struct TokenInput {
    pub tokens: TokenBatch,
    pub spans: Option<SpanIndex>,
}

impl TokenInput {
    /// Pad `rows` into one batch; span slots when the rows have spans.
    pub fn new(rows: &[&EncodedRow], pad_id: i64, span_width: Option<usize>) -> Self {
        let tokens = collate(rows, pad_id);
        let spans = rows
            .first()
            .is_some_and(|r| !r.spans.is_empty())
            .then(|| SpanIndex::new(rows, tokens.seq_len, span_width));
        Self { tokens, spans }
    }
}

/// What the head reads, computed by the encoder from tokens (with `word_shift` `[B, T, d]`
/// added to the word embeddings, when given): the pooled vector (pooler, first token or
/// mean) or the two spans' token vectors.
pub fn encoder_head_input(
    encoder: &Encoder,
    pooling: Pooling,
    input: &TokenInput,
    word_shift: Option<Tensor<3>>,
    device: &Device,
) -> (HeadInput, EncoderOutput) {
    let out = encoder.forward_perturbed(&input.tokens, word_shift);
    let head_input = match &input.spans {
        Some(spans) => {
            let last = out.last();
            let [b, t, d] = last.dims();
            let idx = Tensor::<1, Int>::from_data(
                TensorData::new(spans.flat.clone(), [spans.flat.len()]),
                device,
            );
            let tokens = last
                .reshape([b * t, d])
                .select(0, idx)
                .reshape([b, 2, spans.width, d]);
            let mask = Tensor::<3>::from_data(
                TensorData::new(spans.mask.clone(), [b, 2, spans.width]),
                device,
            );
            HeadInput::Spans { tokens, mask }
        }
        None => HeadInput::Pooled(match pooling {
            Pooling::Pooler if encoder.config.family.is_decoder() => {
                encoder.last_token(&out, &input.tokens)
            }
            Pooling::Pooler => encoder.pool(&out, &input.tokens),
            Pooling::Cls => out.first_token(),
            Pooling::Mean => encoder.mean_pool(&out, &input.tokens),
            Pooling::Last => encoder.last_token(&out, &input.tokens),
        }),
    };
    (head_input, out)
}

/// A forward pass: the head's output and, when the encoder ran, its hidden states.
pub struct Forward {
    pub head: HeadOutput,
    pub hidden: Option<EncoderOutput>,
}

impl TaskModel {
    /// Run the model on tokens (the encoder must be present).
    pub fn forward_tokens(&self, input: &TokenInput, device: &Device) -> Forward {
        self.forward_tokens_shifted(input, None, device)
    }

    /// [`TaskModel::forward_tokens`] with `word_shift` `[B, T, d]` added to the word
    /// embeddings before the position and type embeddings.
    pub fn forward_tokens_shifted(
        &self,
        input: &TokenInput,
        word_shift: Option<Tensor<3>>,
        device: &Device,
    ) -> Forward {
        let encoder = self
            .encoder
            .as_ref()
            .expect("a token batch needs the encoder");
        let (head_input, hidden) =
            encoder_head_input(encoder, self.pooling, input, word_shift, device);
        Forward {
            head: self.head.forward(head_input),
            hidden: Some(hidden),
        }
    }

    /// Run the head on cached encoder features.
    pub fn forward_features(&self, input: HeadInput) -> Forward {
        Forward {
            head: self.head.forward(input),
            hidden: None,
        }
    }
}
