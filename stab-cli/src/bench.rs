//! `stab bench step --model DIR [--device D] [--batch B] [--seq T] [--repeats N]`
//!
//! The speed of one full fine-tuning update and of one eval forward on a device, as the
//! engine does them: the encoder with dropout (masks drawn on the host), a 2-class head on
//! the first token (a decoder's last token), cross-entropy, global-norm clipping and AdamW,
//! then a read of the loss. With `--lora R` the update is LoRA's instead: rank R (α = 2R,
//! dropout 0.1) on every linear layer of every block, the rest frozen.
//! Medians of N after one warm-up (which also compiles a GPU device's kernels). Prints a
//! human line and a `json:` line (bench/device_step.sh reads it). Built into the binary so
//! that a machine without a network or a toolchain can run it.

use std::path::PathBuf;
use std::time::Instant;

use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::optim::{AdamWConfig, GradientsParams};
use clap::{Args, Subcommand};
use serde_json::json;
use stab_models::{Encoder, HostReads, NoiseStream, TextEncoder, TextInput, load_encoder};
use stab_train::cross_entropy;
use stab_train::optim::clip_global_norm;

#[derive(Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    command: BenchCommand,
}

#[derive(Subcommand)]
enum BenchCommand {
    /// A training update and an eval forward of a real encoder on synthetic text.
    Step {
        /// A Hugging Face model directory (e.g. MiniLM).
        #[arg(long)]
        model: PathBuf,
        #[arg(long, default_value = "cpu")]
        device: String,
        #[arg(long, default_value_t = 16)]
        batch: usize,
        /// Tokens per row (every row is filled to this length).
        #[arg(long, default_value_t = 128)]
        seq: usize,
        #[arg(long, default_value_t = 10)]
        repeats: usize,
        /// Time LoRA's update of rank R on every linear layer (the base frozen) instead of
        /// full fine-tuning's.
        #[arg(long, value_name = "R")]
        lora: Option<usize>,
    },
}

/// LoRA of rank `r` on every linear layer of every block (PEFT's `all-linear`), every
/// other parameter but the head frozen.
fn with_lora(mut model: Classifier, r: usize, device: &burn::tensor::Device) -> Classifier {
    use burn::module::Param;
    use burn::tensor::Tensor;
    use stab_models::LowRank;
    let c = model.encoder.config.clone();
    let noise = NoiseStream::new(1);
    let (h, d) = (c.hidden_size, c.head_dim());
    let (q, kv) = (c.num_attention_heads * d, c.kv_heads() * d);
    let new = |i: usize, o: usize, seed: u64| {
        Some(LowRank::new(
            i,
            o,
            (r, 2.0 * r as f64, 0.1),
            seed,
            &noise,
            device,
        ))
    };
    for (k, layer) in model.encoder.encoder.layer.iter_mut().enumerate() {
        let seed = 10 * k as u64;
        let a = &mut layer.attention;
        a.self_attn.lora_query = new(h, q, seed);
        a.self_attn.lora_key = new(h, kv, seed + 1);
        a.self_attn.lora_value = new(h, kv, seed + 2);
        a.output.lora = new(q, h, seed + 3);
        layer.intermediate.lora = new(h, c.intermediate_width(), seed + 4);
        if layer.intermediate.up.is_some() {
            layer.intermediate.lora_up = new(h, c.intermediate_size, seed + 5);
        }
        layer.output.lora = new(c.intermediate_size, h, seed + 6);
    }
    struct Freeze;
    impl stab_train::params::ParamRewrite for Freeze {
        fn rewrite<const D: usize>(&mut self, path: &str, p: Param<Tensor<D>>) -> Param<Tensor<D>> {
            if path.contains("lora") || path.starts_with("head.") {
                p
            } else {
                p.set_require_grad(false)
            }
        }
    }
    stab_train::params::rewrite(model, &mut Freeze)
}

#[derive(Module, Debug)]
struct Classifier {
    encoder: Encoder,
    head: Linear,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The model's encoder: its weights, or random ones of its shape when the directory holds
/// only `config.json` and the tokenizer (the speed is the same; a borrowed GPU machine
/// may not have room for the weights).
fn encoder_of(
    dir: &std::path::Path,
    device: &burn::tensor::Device,
) -> stab_core::Result<(Encoder, &'static str)> {
    if stab_models::loader::weights_file(dir).is_ok() {
        return Ok((load_encoder(dir, device)?.0, "pre-trained weights"));
    }
    let config = stab_models::EncoderConfig::from_dir(dir)?;
    Ok((
        Encoder::new(&config, device),
        "random weights (no weights file)",
    ))
}

/// Seconds and bytes of one update's dropout masks, drawn on the host and uploaded as
/// `FastDropout` does (the embeddings', and per layer the attention probabilities' and two
/// hidden states'), median over `repeats`, waiting for the uploads.
fn mask_cost(
    config: &stab_models::EncoderConfig,
    batch: usize,
    seq: usize,
    device: &burn::tensor::Device,
    repeats: usize,
) -> stab_core::Result<(f64, f64)> {
    use burn::tensor::{Tensor, TensorData};
    use stab_models::dropout::host_keep_mask;
    let (h, heads) = (config.hidden_size, config.num_attention_heads);
    let mut shapes = vec![([batch, seq, h, 1], config.hidden_dropout_prob)];
    for _ in 0..config.num_hidden_layers {
        shapes.push((
            [batch, heads, seq, seq],
            config.attention_probs_dropout_prob,
        ));
        shapes.push(([batch, seq, h, 1], config.hidden_dropout_prob));
        shapes.push(([batch, seq, h, 1], config.hidden_dropout_prob));
    }
    let bytes: usize = shapes
        .iter()
        .map(|(s, _)| s.iter().product::<usize>() * 4)
        .sum();
    let mut times = Vec::new();
    for call in 0..repeats.max(1) {
        let t0 = Instant::now();
        let masks: Vec<Tensor<4>> = shapes
            .iter()
            .enumerate()
            .map(|(i, (shape, p))| {
                let n = shape.iter().product();
                let m = host_keep_mask(n, *p, (call * 1000 + i) as u64);
                Tensor::<4>::from_data(TensorData::new(m, *shape), device)
            })
            .collect();
        device
            .sync()
            .map_err(|e| stab_core::internal!("device sync: {e:?}"))?;
        times.push(t0.elapsed().as_secs_f64());
        drop(masks);
    }
    Ok((median(times), bytes as f64))
}

pub fn bench(args: BenchArgs) -> stab_core::Result<()> {
    let BenchCommand::Step {
        model,
        device,
        batch,
        seq,
        repeats,
        lora,
    } = args.command;
    use stab_core::limits;
    limits::BATCH_SIZE.check_usize("--batch", batch)?;
    limits::MAX_LEN.check_usize("--seq", seq)?;
    limits::BENCH_REPEATS.check_usize("--repeats", repeats)?;
    let chosen = crate::device::parse(&device)?;
    let plain = chosen.device.clone();
    let (encoder, weights) = encoder_of(&model, &plain)?;
    encoder.config.check_tokens("--seq", seq)?;
    let tok = TextEncoder::for_model(&model, &encoder.config)?;
    let words = "the committee approved the new budget after a long debate on friday while students visited the museum";
    let inputs: Vec<TextInput> = (0..batch)
        .map(|i| {
            TextInput::single(
                std::iter::repeat_n(words, seq)
                    .collect::<Vec<_>>()
                    .join(&format!(" {i} ")),
            )
        })
        .collect();
    let tokens = tok.encode(&inputs, seq)?;

    let eval = encoder.valid();
    let mut eval_times = Vec::new();
    for i in 0..=repeats {
        let t0 = Instant::now();
        HostReads::scalar(eval.forward(&tokens).last().sum());
        if i > 0 {
            eval_times.push(t0.elapsed().as_secs_f64());
        }
    }

    let train_device = plain.clone().autodiff();
    let (mut encoder, _) = encoder_of(&model, &train_device)?;
    let encoder_config = encoder.config.clone();
    encoder.set_noise(&NoiseStream::new(0));
    let head = LinearConfig::new(encoder.config.hidden_size, 2).init(&train_device);
    let mut model_ = Classifier { encoder, head };
    if let Some(r) = lora {
        model_ = with_lora(model_, r, &train_device);
    }
    let decoder = encoder_config.family.is_decoder();
    let mut optim = AdamWConfig::new()
        .with_epsilon(1e-8)
        .with_weight_decay(0.01)
        .init();
    let labels: Vec<usize> = (0..batch).map(|i| i % 2).collect();
    let mut train_times = Vec::new();
    let reads_before = HostReads::count();
    for i in 0..=repeats {
        let t0 = Instant::now();
        let out = model_.encoder.forward(&tokens);
        let pooled = if decoder {
            model_.encoder.last_token(&out, &tokens)
        } else {
            out.first_token()
        };
        let logits = model_.head.forward(pooled).unsqueeze_dim(0);
        let loss = cross_entropy(logits, &labels, &train_device);
        HostReads::scalar(loss.clone());
        let mut grads = GradientsParams::from_grads(loss.backward(), &model_);
        clip_global_norm(&model_, &mut grads, 1.0);
        model_ = optim.step(2e-5, model_, grads);
        // Wait for the update itself (a device queues it).
        plain
            .sync()
            .map_err(|e| stab_core::internal!("device sync: {e:?}"))?;
        if i > 0 {
            train_times.push(t0.elapsed().as_secs_f64());
        }
    }
    let reads = (HostReads::count() - reads_before) as f64 / (repeats + 1) as f64;
    let masks = mask_cost(&encoder_config, batch, tokens.seq_len, &plain, repeats)?;
    let (tr, ev) = (median(train_times), median(eval_times));
    let name = crate::device::describe(&chosen);
    let update = lora.map_or("full fine-tuning".to_string(), |r| format!("LoRA r = {r}"));
    outln!(
        "{device} ({name}; {weights}), batch {batch} x {seq}: training update ({update}) median {tr:.3} s, eval forward median {ev:.3} s ({repeats} repeats, {reads} host reads per update; of the update, dropout masks drawn on the host and uploaded {:.1} ms, {:.0} MB)",
        masks.0 * 1e3,
        masks.1 / 1e6
    );
    outln!(
        "json: {}",
        json!({"device": device, "adapter": name, "update": update, "weights": weights, "batch": batch, "seq": seq, "repeats": repeats,
               "train_step_s": tr, "eval_forward_s": ev, "host_reads_per_update": reads,
               "mask_s": masks.0, "mask_bytes": masks.1,
               "threads": rayon::current_num_threads()})
    );
    Ok(())
}
