//! SURT, self unsupervised re-training (paper §3.3; docs/methods.md §2.6): masked-LM training
//! of the pre-trained encoder on the task's own training inputs (no labels, the
//! fine-tuning template, the 90% train split only), then FineTune from the re-trained
//! encoder with a fresh pooler and head.
//!
//! Masked LM as HF `run_mlm.py` / `DataCollatorForLanguageModeling`: dynamic masking (a
//! new mask each time a row is batched) of `mask_rate` = 15% of the non-special, non-pad
//! tokens, selected tokens replaced 80% by the mask token, 10% by a random token, 10%
//! unchanged; the loss is the cross-entropy on the selected positions only. The MLM head
//! (dense → activation → LayerNorm → decoder tied to the word embeddings + bias) is the
//! checkpoint's, or HF-initialised from the preparation seed when the checkpoint lacks it
//! (MiniLM). AdamW β (0.9, 0.999), ε 1e-8, no weight decay, lr 5e-5 decaying linearly to
//! 0 without warmup, batch 8, 3 epochs, gradient clip 1.0.
//!
//! On a decoder (GPT-2, Llama, Mistral, Qwen) the re-training is causal-LM training instead,
//! the objective it was pre-trained with ([`causal_lm_training`]): every real token but the
//! last predicts the next one, `L = −mean log softmax(h_t Wᵀ)[x_{t+1}]` over the batch's
//! real pairs, as HF's `*ForCausalLM` with padding labelled −100, through the model's own LM
//! head W: the word embeddings when they are tied, else `lm_head.weight` (trained with the
//! model during this phase, then dropped; drawn N(0, σ²) when the checkpoint lacks it).
//! `mask_rate` does not apply there. The same optimiser, schedule, batch and epochs.
//!
//! `share_mlm = true` (default) re-trains once per task from a task-level seed; the
//! engine caches the encoder on disk and every seed fine-tunes from it (in head tuning,
//! its frozen features are cached too). `false` re-trains per run from the run's seed on
//! the run's own training rows.

use burn::module::{Module, Param};
use burn::tensor::activation::log_softmax;
use burn::tensor::{Int, Tensor, TensorData};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use stab_core::Refusal;
use stab_core::derive_seed;
use stab_core::recipe::TrainMode;
use stab_data::encode::{EncodedRow, collate};
use stab_models::{Encoder, TokenBatch};

use stab_train::optim::{AdamWSettings, adamw_with, clip_global_norm};
use stab_train::{
    Capabilities, EncoderChange, LinearWarmupDecay, Method, MethodPlugin, PrepareContext, Prepared,
    SeedBatching,
};

/// The masked-LM phase's settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MaskedLmSettings {
    pub mask_rate: f64,
    pub epochs: u64,
    pub lr: f64,
    pub batch_size: usize,
    /// 0 = no cap.
    pub max_steps: u64,
}

/// SURT: masked-LM re-training, then FineTune.
#[derive(Debug, Clone, Copy)]
pub struct SelfUnsupervisedRetraining {
    pub mlm: MaskedLmSettings,
    pub share_mlm: bool,
}

/// The masked positions of one batch: flat position and original token id.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MaskedTokens {
    pub positions: Vec<usize>,
    pub labels: Vec<i64>,
}

/// Dynamic masking of a padded batch in place (HF's collator): each real, non-special
/// token is selected with probability `rate`; a selected token becomes `mask_id` with
/// probability 0.8, a uniformly random id below `vocab` with 0.1, and stays with 0.1.
pub fn mask_tokens(
    ids: &mut [i64],
    attention: &[i64],
    special: &[i64],
    mask_id: i64,
    vocab: usize,
    rate: f64,
    rng: &mut impl Rng,
) -> MaskedTokens {
    let mut out = MaskedTokens::default();
    for (k, id) in ids.iter_mut().enumerate() {
        if attention[k] == 0 || special.binary_search(id).is_ok() {
            continue;
        }
        if !rng.random_bool(rate) {
            continue;
        }
        out.positions.push(k);
        out.labels.push(*id);
        let r: f64 = rng.random();
        if r < 0.8 {
            *id = mask_id;
        } else if r < 0.9 {
            *id = rng.random_range(0..vocab as i64);
        }
    }
    out
}

/// HF's initialisation of an MLM head absent from the checkpoint, drawn from `seed`:
/// N(0, 0.02²) dense weight, zero biases, unit LayerNorm.
fn init_mlm_head(encoder: &mut Encoder, seed: u64, device: &burn::tensor::Device) {
    let m = &mut encoder.mlm;
    let [d_in, d_out] = m.dense.weight.dims();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let normal = Normal::new(0.0f32, 0.02).expect("valid std");
    let w: Vec<f32> = (0..d_in * d_out).map(|_| normal.sample(&mut rng)).collect();
    m.dense.weight =
        Param::from_tensor(Tensor::from_data(TensorData::new(w, [d_in, d_out]), device));
    if let Some(b) = &mut m.dense.bias {
        *b = Param::from_tensor(Tensor::zeros([d_out], device));
    }
    m.layer_norm.gamma = Param::from_tensor(Tensor::ones([d_out], device));
    if let Some(beta) = &mut m.layer_norm.beta {
        *beta = Param::from_tensor(Tensor::zeros([d_out], device));
    }
    let v = m.bias.dims()[0];
    m.bias = Param::from_tensor(Tensor::zeros([v], device));
}

/// Masked-LM training of `encoder` on `rows`; returns the encoder and the record details
/// (the loss curve: mean loss per 1/20 of the steps, and per epoch).
pub fn masked_lm_training(
    mut encoder: Encoder,
    ctx: &PrepareContext,
    s: &MaskedLmSettings,
) -> stab_core::Result<Prepared> {
    let device = ctx.device;
    if ctx.initialised.iter().any(|p| p.starts_with("mlm")) {
        init_mlm_head(&mut encoder, derive_seed(ctx.seed, &["mlm-head"]), device);
    }
    let special = ctx.tokenizer.special_ids();
    let mask_id = ctx.tokenizer.mask_id().ok_or_else(|| {
        stab_core::internal!("SURT needs a mask token ([MASK] or <mask>) in the model's vocabulary")
    })?;
    let vocab = encoder.config.vocab_size;
    let mut masking = ChaCha8Rng::seed_from_u64(derive_seed(ctx.seed, &["mlm-mask"]));
    let (mut selected, mut eligible) = (0usize, 0usize);
    let (encoder, curves) = retrain(encoder, ctx, s, "masked-LM", |encoder, mut tokens| {
        eligible += tokens
            .input_ids
            .iter()
            .zip(&tokens.attention_mask)
            .filter(|&(id, &m)| m == 1 && special.binary_search(id).is_err())
            .count();
        let masked = mask_tokens(
            &mut tokens.input_ids,
            &tokens.attention_mask,
            &special,
            mask_id,
            vocab,
            s.mask_rate,
            &mut masking,
        );
        if masked.positions.is_empty() {
            return None;
        }
        selected += masked.positions.len();
        let positions = masked.positions.iter().map(|&p| p as i64).collect();
        let last = encoder.forward(&tokens).last();
        Some(cross_entropy_at(last, positions, masked.labels, |h| {
            encoder.mlm_logits(h)
        }))
    })?;
    Ok(Prepared {
        encoder,
        details: serde_json::json!({
            "method": "surt",
            "mlm_loss": curves.curve,
            "mlm_epoch_loss": curves.epochs,
            "mlm_steps": curves.steps,
            "mlm_rows": ctx.train.len(),
            "selected_share": selected as f64 / eligible.max(1) as f64,
        }),
    })
}

/// The loss curves of a re-training phase: the mean loss per 1/20 of the steps and per
/// epoch, and the steps taken.
struct Curves {
    curve: Vec<(u64, f64)>,
    epochs: Vec<f64>,
    steps: u64,
}

/// The loop SURT's two objectives share: `s.epochs` shuffles of the training rows (from
/// the preparation seed) in batches of `s.batch_size`, capped at `s.max_steps`; AdamW
/// (no weight decay) at `s.lr` decaying linearly to 0 without warmup, gradients clipped
/// to norm 1.0. `batch_loss` gives a padded batch's loss, or `None` when it has nothing
/// to predict (the step still counts). `objective` names the loss in errors.
fn retrain<M: Module>(
    mut model: M,
    ctx: &PrepareContext,
    s: &MaskedLmSettings,
    objective: &str,
    mut batch_loss: impl FnMut(&M, TokenBatch) -> Option<Tensor<1>>,
) -> stab_core::Result<(M, Curves)> {
    let n = ctx.train.len();
    if n == 0 {
        return Err(stab_core::internal!(
            "SURT has no training rows to re-train on"
        ));
    }
    let batch = s.batch_size.max(1);
    let mut total = s.epochs.saturating_mul(n.div_ceil(batch) as u64);
    if s.max_steps > 0 {
        total = total.min(s.max_steps);
    }
    let schedule = LinearWarmupDecay::new(s.lr, 0.0, total);
    let settings = AdamWSettings {
        weight_decay: 0.0,
        bias_correction: true,
    };
    let mut optim = adamw_with(&model, settings, |_| 1.0);
    let mut order = ChaCha8Rng::seed_from_u64(derive_seed(ctx.seed, &["mlm-order"]));
    let report_every = (total / 20).max(1);
    let (mut curve, mut epochs) = (Vec::new(), Vec::new());
    let (mut window, mut epoch_sum) = ((0.0, 0u64), (0.0, 0u64));
    let mut step = 0u64;
    'epochs: for _ in 0..s.epochs.max(1) {
        let mut rows: Vec<usize> = (0..n).collect();
        rows.shuffle(&mut order);
        for chunk in rows.chunks(batch) {
            if step >= total {
                break 'epochs;
            }
            let refs: Vec<&EncodedRow> = chunk.iter().map(|&i| &ctx.train[i]).collect();
            let tokens = collate(&refs, ctx.pad_id);
            step += 1;
            let Some(loss) = batch_loss(&model, tokens) else {
                continue;
            };
            let value = stab_models::HostReads::scalar(loss.clone());
            if !value.is_finite() {
                return Err(stab_core::internal!(
                    "SURT's {objective} loss diverged at step {step}"
                ));
            }
            let mut grads = burn::optim::GradientsParams::from_grads(loss.backward(), &model);
            clip_global_norm(&model, &mut grads, 1.0);
            model = optim.step(schedule.lr(step - 1), model, grads);
            (ctx.report)(step, total, value);
            window = (window.0 + value, window.1 + 1);
            epoch_sum = (epoch_sum.0 + value, epoch_sum.1 + 1);
            if step.is_multiple_of(report_every) || step == total {
                curve.push((step, window.0 / window.1.max(1) as f64));
                window = (0.0, 0);
            }
        }
        epochs.push(epoch_sum.0 / epoch_sum.1.max(1) as f64);
        epoch_sum = (0.0, 0);
    }
    let steps = step;
    Ok((
        model,
        Curves {
            curve,
            epochs,
            steps,
        },
    ))
}

/// The mean cross-entropy `−mean log softmax(logits(h_p))[y_p]` over the given positions
/// p of hidden states `last` [B, T, H] (flat indices b·T + t) and their labels y_p.
fn cross_entropy_at(
    last: Tensor<3>,
    positions: Vec<i64>,
    labels: Vec<i64>,
    logits: impl FnOnce(Tensor<3>) -> Tensor<3>,
) -> Tensor<1> {
    let k = positions.len();
    let device = last.device();
    let [b, t, h] = last.dims();
    let pos = Tensor::<1, Int>::from_data(TensorData::new(positions, [k]), &device);
    let picked = last.reshape([b * t, h]).select(0, pos).reshape([1, k, h]);
    let labels = Tensor::<3, Int>::from_data(TensorData::new(labels, [1, k, 1]), &device);
    log_softmax(logits(picked), 2)
        .gather(2, labels)
        .mean()
        .neg()
}

/// A decoder with its LM head, for the causal-LM phase: `lm_head` `[V, H]` when the head is
/// not the word embeddings.
#[derive(Module, Debug)]
struct CausalLm {
    encoder: Encoder,
    lm_head: Option<Param<Tensor<2>>>,
}

impl CausalLm {
    /// The decoder and its head: tied (`tie_word_embeddings`, or no `lm_head.weight` when
    /// the key is absent), the checkpoint's `lm_head.weight`, or N(0, σ²) from `seed`.
    fn new(
        encoder: Encoder,
        model_dir: &std::path::Path,
        seed: u64,
        device: &burn::tensor::Device,
    ) -> stab_core::Result<Self> {
        let c = &encoder.config;
        let stored = match c.tie_word_embeddings {
            Some(true) => None,
            _ => stab_models::loader::read_tensor(model_dir, LM_HEAD)?,
        };
        let (v, h) = (c.vocab_size, c.hidden_size);
        let lm_head = match (c.tie_word_embeddings, stored) {
            (Some(true), _) | (None, None) => None,
            (_, Some((values, shape))) => {
                Some(Tensor::from_data(TensorData::new(values, shape), device))
            }
            (Some(false), None) => {
                let mut rng = ChaCha8Rng::seed_from_u64(derive_seed(seed, &["lm-head"]));
                let normal = Normal::new(0.0f32, c.initializer_range as f32).expect("valid std");
                let w: Vec<f32> = (0..v * h).map(|_| normal.sample(&mut rng)).collect();
                Some(Tensor::from_data(TensorData::new(w, [v, h]), device))
            }
        };
        if let Some(w) = &lm_head
            && w.dims() != [v, h]
        {
            return Err(stab_core::internal!(
                "lm_head.weight has shape {:?}, not [{v}, {h}]",
                w.dims()
            ));
        }
        Ok(Self {
            encoder,
            lm_head: lm_head.map(Param::from_tensor),
        })
    }

    /// The mean next-token cross-entropy over the given (position, next token) pairs.
    fn loss(&self, tokens: &TokenBatch, positions: Vec<i64>, labels: Vec<i64>) -> Tensor<1> {
        let last = self.encoder.forward(tokens).last();
        cross_entropy_at(last, positions, labels, |h| self.logits(h))
    }

    /// Next-token logits `[1, K, V]` of hidden states `[1, K, H]`.
    fn logits(&self, hidden: Tensor<3>) -> Tensor<3> {
        let w = match &self.lm_head {
            Some(w) => w.val(),
            None => self.encoder.embeddings.word_embeddings.weight.val(),
        };
        let [_, k, h] = hidden.dims();
        let v = w.dims()[0];
        hidden
            .reshape([k, h])
            .matmul(w.transpose())
            .reshape([1, k, v])
    }
}

/// The checkpoint name of a decoder's untied LM head (beside the task model's prefix).
const LM_HEAD: &str = "lm_head.weight";

/// The (input position, next token) pairs of a right- or left-padded batch: every real
/// token whose successor in its row is real.
fn next_token_pairs(ids: &[i64], attention: &[i64], seq_len: usize) -> (Vec<i64>, Vec<i64>) {
    let (mut positions, mut labels) = (Vec::new(), Vec::new());
    for (k, &m) in attention.iter().enumerate() {
        if m == 1 && (k + 1) % seq_len != 0 && attention[k + 1] == 1 {
            positions.push(k as i64);
            labels.push(ids[k + 1]);
        }
    }
    (positions, labels)
}

/// Causal-LM training of a decoder on `rows` (SURT on decoders; the module docs give the
/// loss); returns the decoder and the record details, as [`masked_lm_training`] does.
pub fn causal_lm_training(
    encoder: Encoder,
    ctx: &PrepareContext,
    s: &MaskedLmSettings,
) -> stab_core::Result<Prepared> {
    let model = CausalLm::new(encoder, ctx.model_dir, ctx.seed, ctx.device)?;
    let tied = model.lm_head.is_none();
    let mut predicted = 0usize;
    let (model, curves) = retrain(model, ctx, s, "causal-LM", |model, tokens| {
        let (positions, labels) =
            next_token_pairs(&tokens.input_ids, &tokens.attention_mask, tokens.seq_len);
        if positions.is_empty() {
            return None;
        }
        predicted += positions.len();
        Some(model.loss(&tokens, positions, labels))
    })?;
    Ok(Prepared {
        encoder: model.encoder,
        details: serde_json::json!({
            "method": "surt",
            "objective": "causal_lm",
            "lm_head": if tied { "tied" } else { "own" },
            "clm_loss": curves.curve,
            "clm_epoch_loss": curves.epochs,
            "clm_steps": curves.steps,
            "clm_rows": ctx.train.len(),
            "predicted_tokens": predicted,
        }),
    })
}

impl Method for SelfUnsupervisedRetraining {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            seed_batch: SeedBatching::Stacked,
            ..Capabilities::default()
        }
    }

    fn encoder_change(&self, _mode: TrainMode) -> EncoderChange {
        if self.share_mlm {
            let s = &self.mlm;
            EncoderChange::PerTask(format!(
                "surt|rate={}|epochs={}|lr={}|batch={}|max_steps={}",
                s.mask_rate, s.epochs, s.lr, s.batch_size, s.max_steps
            ))
        } else {
            EncoderChange::PerRun
        }
    }

    fn prepare_encoder(
        &self,
        encoder: Encoder,
        ctx: &PrepareContext,
    ) -> stab_core::Result<Prepared> {
        if encoder.config.family.is_decoder() {
            causal_lm_training(encoder, ctx, &self.mlm)
        } else {
            masked_lm_training(encoder, ctx, &self.mlm)
        }
    }
}

stab_core::method_params! {
    /// SURT's parameters.
    pub struct SurtParams {
        /// fraction of tokens selected for MLM (80/10/10 replacement)
        pub mask_rate: f64 = float(0.01, 0.99, 0.15),
        /// MLM epochs over the 90% train split
        pub mlm_epochs: u64 = int(1, 1000, 3),
        /// MLM peak learning rate (linear decay, no warmup)
        pub mlm_lr: f64 = float(0.0, 1.0, 5e-5),
        /// MLM batch size
        pub mlm_batch_size: usize = int(1, 4096, 8),
        /// cap on MLM steps (0 = none)
        pub mlm_max_steps: u64 = int(0, 100_000_000, 0),
        /// true: one MLM phase per task, cached and shared by every seed; false: one per run
        pub share_mlm: bool = flag(true),
    }
}

impl MethodPlugin for SelfUnsupervisedRetraining {
    const NAME: &'static str = "surt";
    const SUMMARY: &'static str =
        "self unsupervised re-training (§2.6): MLM on the task's train inputs, then fine-tune";
    const COST: f64 = 1.3;
    type Params = SurtParams;

    fn from_params(p: SurtParams) -> Result<Self, Refusal> {
        Ok(SelfUnsupervisedRetraining {
            mlm: MaskedLmSettings {
                mask_rate: p.mask_rate,
                epochs: p.mlm_epochs,
                lr: p.mlm_lr,
                batch_size: p.mlm_batch_size,
                max_steps: p.mlm_max_steps,
            },
            share_mlm: p.share_mlm,
        })
    }
}

stab_train::register_method!(SelfUnsupervisedRetraining);

#[cfg(test)]
mod tests {
    use super::*;

    /// The causal-LM loss of each tiny decoder on its golden batch (tied heads: GPT-2,
    /// Qwen2; untied: Llama, Qwen3) equals HF's `*ForCausalLM` loss with padding labelled
    /// −100 (the golden `lm.loss`), and the logits at the golden positions its `lm.logits`.
    #[test]
    fn causal_lm_loss_is_hugging_faces() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/fixtures");
        for name in ["tiny-gpt2", "tiny-llama", "tiny-qwen2", "tiny-qwen3"] {
            let dir = root.join(name);
            let golden: serde_json::Value = serde_json::from_str(
                &std::fs::read_to_string(root.join(format!("golden/{name}.json"))).unwrap(),
            )
            .unwrap();
            let device = burn::tensor::Device::flex();
            let (encoder, _) = stab_models::load_encoder(&dir, &device).unwrap();
            let encoder = stab_models::without_dropout(encoder);
            let model = CausalLm::new(encoder, &dir, 0, &device).unwrap();
            let tied = model.lm_head.is_none();
            let ints = |v: &serde_json::Value| -> Vec<i64> {
                v.as_array()
                    .unwrap()
                    .iter()
                    .flat_map(|r| r.as_array().unwrap().iter().map(|x| x.as_i64().unwrap()))
                    .collect()
            };
            let (ids, mask) = (ints(&golden["input_ids"]), ints(&golden["attention_mask"]));
            let t = golden["seq_len"].as_u64().unwrap() as usize;
            let tokens = TokenBatch {
                batch: ids.len() / t,
                seq_len: t,
                token_type_ids: vec![0; ids.len()],
                input_ids: ids.clone(),
                attention_mask: mask.clone(),
                offsets: Vec::new(),
                sequence_ids: Vec::new(),
            };
            let (positions, labels) = next_token_pairs(&ids, &mask, t);
            let loss = stab_models::HostReads::scalar(model.loss(&tokens, positions, labels));
            let want = golden["lm"]["loss"].as_f64().unwrap();
            assert!(
                (loss - want).abs() <= 1e-5 * want,
                "{name}: {loss} vs HF {want}"
            );
            let last = model.encoder.forward(&tokens).last();
            let h = last.dims()[2];
            for (k, p) in golden["lm"]["positions"]
                .as_array()
                .unwrap()
                .iter()
                .enumerate()
            {
                let (row, at) = (
                    p[0].as_u64().unwrap() as usize,
                    p[1].as_u64().unwrap() as usize,
                );
                let hidden = last.clone().slice([row..row + 1, at..at + 1, 0..h]);
                let logits: Vec<f32> = model.logits(hidden).into_data().try_to_vec().unwrap();
                let want = golden["lm"]["logits"][k].as_array().unwrap();
                let worst = logits
                    .iter()
                    .zip(want)
                    .map(|(a, b)| (*a as f64 - b.as_f64().unwrap()).abs())
                    .fold(0.0, f64::max);
                assert!(
                    worst < 1e-4,
                    "{name} position {k}: logits differ by {worst}"
                );
            }
            eprintln!(
                "{name}: causal-LM loss {loss:.6} vs HF {want:.6} ({} head)",
                if tied { "tied" } else { "own" }
            );
        }
    }

    #[test]
    fn masking_selects_fifteen_percent_and_replaces_eighty_ten_ten() {
        let special = vec![0i64, 101, 102];
        let (mask_id, vocab) = (103i64, 30_000usize);
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let (mut eligible, mut sel, mut to_mask, mut kept, mut random) = (0, 0, 0, 0, 0);
        for _ in 0..1100 {
            // 100 real tokens with [CLS]/[SEP] at the ends, then 20 pads.
            let mut ids: Vec<i64> = (0..120)
                .map(|k| match k {
                    0 => 101,
                    99 => 102,
                    k if k >= 100 => 0,
                    k => 1000 + k as i64,
                })
                .collect();
            let att: Vec<i64> = (0..120).map(|k| i64::from(k < 100)).collect();
            let before = ids.clone();
            let m = mask_tokens(&mut ids, &att, &special, mask_id, vocab, 0.15, &mut rng);
            eligible += 98usize;
            sel += m.positions.len();
            for (&p, &l) in m.positions.iter().zip(&m.labels) {
                assert!(p != 0 && p < 99, "special or pad position {p} selected");
                assert_eq!(l, before[p]);
                if ids[p] == mask_id {
                    to_mask += 1;
                } else if ids[p] == before[p] {
                    kept += 1;
                } else {
                    random += 1;
                }
            }
            for k in [0usize, 99, 100, 119] {
                assert_eq!(ids[k], before[k]);
            }
        }
        let within = |count: usize, n: usize, p: f64| {
            let sd = (n as f64 * p * (1.0 - p)).sqrt();
            (count as f64 - n as f64 * p).abs() < 3.0 * sd
        };
        assert!(eligible >= 100_000);
        assert!(within(sel, eligible, 0.15), "selected {sel} of {eligible}");
        // A random replacement equals the original with probability 1/vocab: negligible.
        assert!(within(to_mask, sel, 0.8), "mask {to_mask} of {sel}");
        assert!(within(random, sel, 0.1), "random {random} of {sel}");
        assert!(within(kept, sel, 0.1), "kept {kept} of {sel}");
    }
}
