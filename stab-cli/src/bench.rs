//! `stab bench step --model DIR [--device D] [--batch B] [--seq T] [--repeats N]`
//!
//! The speed of one full fine-tuning update and of one eval forward on a device, as the
//! engine does them: the encoder with dropout (masks drawn on the host), a 2-class head on
//! the first token, cross-entropy, global-norm clipping and AdamW, then a read of the loss.
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
use stab_methods::engine::cross_entropy;
use stab_methods::engine::optim::clip_global_norm;
use stab_models::{Encoder, HostReads, NoiseStream, TextEncoder, TextInput, load_encoder};

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
    },
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

pub fn bench(args: BenchArgs) -> anyhow::Result<()> {
    let BenchCommand::Step {
        model,
        device,
        batch,
        seq,
        repeats,
    } = args.command;
    use stab_core::limits;
    limits::BATCH_SIZE.check_usize("--batch", batch)?;
    limits::MAX_LEN.check_usize("--seq", seq)?;
    limits::SEEDS.check_usize("--repeats", repeats)?;
    let chosen = crate::device::parse(&device)?;
    let plain = chosen.device.clone();
    let (encoder, _) = load_encoder(&model, &plain)?;
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
    let (mut encoder, _) = load_encoder(&model, &train_device)?;
    encoder.set_noise(&NoiseStream::new(0));
    let head = LinearConfig::new(encoder.config.hidden_size, 2).init(&train_device);
    let mut model_ = Classifier { encoder, head };
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
        let logits = model_.head.forward(out.first_token()).unsqueeze_dim(0);
        let loss = cross_entropy(logits, &labels, &train_device);
        HostReads::scalar(loss.clone());
        let mut grads = GradientsParams::from_grads(loss.backward(), &model_);
        clip_global_norm(&model_, &mut grads, 1.0);
        model_ = optim.step(2e-5, model_, grads);
        // Wait for the update itself (a device queues it).
        plain
            .sync()
            .map_err(|e| anyhow::anyhow!("device sync: {e:?}"))?;
        if i > 0 {
            train_times.push(t0.elapsed().as_secs_f64());
        }
    }
    let reads = (HostReads::count() - reads_before) as f64 / (repeats + 1) as f64;
    let (tr, ev) = (median(train_times), median(eval_times));
    let name = crate::device::describe(&chosen);
    println!(
        "{device} ({name}), batch {batch} x {seq}: training update median {tr:.3} s, eval forward median {ev:.3} s ({repeats} repeats, {reads} host reads per update)"
    );
    println!(
        "json: {}",
        json!({"device": device, "adapter": name, "batch": batch, "seq": seq, "repeats": repeats,
               "train_step_s": tr, "eval_forward_s": ev, "host_reads_per_update": reads,
               "threads": rayon::current_num_threads()})
    );
    Ok(())
}
