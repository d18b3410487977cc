//! Feature encoding for head tuning (release build):
//!
//!     STAB_MINILM_DIR=…/model STAB_DATA_DIR=../shared/data cargo bench -p stab-train --bench encode
//!
//! Encodes the real RTE train file (premise/hypothesis pairs, max_len 128) with MiniLM in
//! eval mode exactly as head tuning does ([`encode_features`]: rows sorted by length,
//! batches of 64 padded to the batch's longest row, no autodiff graph, mean pooling) and
//! prints examples/s. Threads come from RAYON_NUM_THREADS. The PyTorch side is
//! bench/pytorch_step.py; bench/vs_pytorch.sh runs both.

use std::path::PathBuf;
use std::time::Instant;

use burn::tensor::Device;
use stab_core::recipe::Pooling;
use stab_data::encode::encode_examples;
use stab_models::{TextEncoder, load_encoder};
use stab_train::features::encode_features;

/// The allocator of the `stab` binary (stab-cli/src/main.rs), so the bench measures it.
#[global_allocator]
static GLOBAL: stab_models::Allocator = stab_models::Allocator;

fn main() -> stab_core::Result<()> {
    stab_models::allocator::keep_freed_memory();
    let dir = |var: &str| -> stab_core::Result<PathBuf> {
        std::env::var_os(var)
            .map(PathBuf::from)
            .ok_or_else(|| stab_core::internal!("set {var} (see the header of benches/encode.rs)"))
    };
    let (model, data) = (dir("STAB_MINILM_DIR")?, dir("STAB_DATA_DIR")?);
    let repeats: usize = std::env::var("STAB_BENCH_REPEATS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let device = Device::flex();
    let (encoder, _) = load_encoder(&model, &device)?;
    let tok = TextEncoder::for_model(&model, &encoder.config)?;
    let task = stab_data::task_def("rte")?.load(&data)?;
    let t0 = Instant::now();
    let rows = encode_examples(&tok, &task.train, 128)?;
    let tokenize_s = t0.elapsed().as_secs_f64();
    let mut times = Vec::new();
    for _ in 0..repeats {
        let t0 = Instant::now();
        let set = encode_features(&encoder, Pooling::Mean, &rows, tok.pad_id as i64, &device);
        times.push(t0.elapsed().as_secs_f64());
        std::hint::black_box(set);
    }
    times.sort_by(f64::total_cmp);
    let s = times[times.len() / 2];
    let tokens: usize = rows.iter().map(|r| r.input_ids.len()).sum();
    println!(
        "RTE train encoding, MiniLM-L6, {} rows ({tokens} tokens), {} threads: tokenize {tokenize_s:.2} s, encode {s:.2} s = {:.1} examples/s",
        rows.len(),
        rayon::current_num_threads(),
        rows.len() as f64 / s
    );
    println!(
        "json: {}",
        serde_json::json!({"threads": rayon::current_num_threads(), "rows": rows.len(), "tokens": tokens, "tokenize_s": tokenize_s, "encode_s": s, "examples_per_s": rows.len() as f64 / s})
    );
    Ok(())
}
