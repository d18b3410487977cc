//! Attention alone on the CPU, release build: the fused kernel (`fused_attention`) against
//! the products around the fused softmax that the encoder used before it (Q·Kᵀ, masked
//! softmax, ·V, heads merged), at MiniLM's shape (12 heads of 32) for T = 128 and 512,
//! in evaluation (forward on the plain device) and in training (forward and backward on
//! the autodiff device, dropout 0.1 on the probabilities).
//!
//!     cargo bench -p stab-models --bench attention
//!
//! Threads come from RAYON_NUM_THREADS. Medians over STAB_BENCH_STEPS (default 10) after
//! a warm-up; the last line is the same figures as JSON. `STAB_BENCH_ONLY=fused-eval` times
//! the fused forward alone (to profile it).

use std::time::Instant;

use burn::tensor::{Device, Distribution, Tensor, TensorData};
use stab_models::{FastDropout, NoiseStream, fused, fused_attention};

#[global_allocator]
static GLOBAL: stab_models::Allocator = stab_models::Allocator;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// The encoder's attention before the fused kernel.
fn products(
    q: Tensor<4>,
    k: Tensor<4>,
    v: Tensor<4>,
    mask: &Tensor<4>,
    drop: &FastDropout,
) -> Tensor<3> {
    let [b, n, t, d] = v.dims();
    let probs = fused::masked_softmax(q.matmul(k.swap_dims(2, 3)), mask.clone(), d);
    drop.forward(probs)
        .matmul(v)
        .swap_dims(1, 2)
        .reshape([b, t, n * d])
}

fn fused(
    q: Tensor<4>,
    k: Tensor<4>,
    v: Tensor<4>,
    mask: &Tensor<4>,
    drop: &FastDropout,
) -> Tensor<3> {
    let d = q.dims()[3];
    let dropout = drop.draw(&q.device());
    fused_attention::attention((q, k, v), (mask, None), d, dropout)
}

type Kernel = fn(Tensor<4>, Tensor<4>, Tensor<4>, &Tensor<4>, &FastDropout) -> Tensor<3>;

/// Median seconds of `kernel` on batch × T tokens, evaluation or training.
fn time(kernel: Kernel, (b, t): (usize, usize), train: bool, steps: usize) -> f64 {
    let (n, d) = (12, 32);
    let dev = if train {
        Device::flex().autodiff()
    } else {
        Device::flex()
    };
    let mut drop = FastDropout::new(0.1);
    drop.stream = NoiseStream::new(1);
    // A quarter of each sequence is padding, as in a real batch.
    let m: Vec<f32> = (0..b)
        .flat_map(|_| (0..t).map(move |j| if j >= t * 3 / 4 { f32::MIN } else { 0.0 }))
        .collect();
    let mask = Tensor::<4>::from_data(TensorData::new(m, [b, 1, 1, t]), &dev);
    let mut times = Vec::new();
    for i in 0..=steps {
        // Q, K, V as the encoder has them: heads split from [B, T, heads·d].
        let qkv: Vec<Tensor<4>> = (0..3)
            .map(|_| {
                let x = Tensor::<3>::random([b, t, n * d], Distribution::Normal(0.0, 1.0), &dev);
                let x = if train { x.require_grad() } else { x };
                x.reshape([b, t, n, d]).swap_dims(1, 2)
            })
            .collect();
        let [q, k, v]: [Tensor<4>; 3] = qkv.try_into().unwrap();
        let t0 = Instant::now();
        let out = kernel(q, k, v, &mask, &drop);
        if train {
            let _ = out.sum().backward();
        } else {
            let _ = out.sum().into_scalar::<f32>();
        }
        if i > 0 {
            times.push(t0.elapsed().as_secs_f64());
        }
    }
    median(times)
}

fn main() {
    stab_models::allocator::keep_freed_memory();
    let steps: usize = std::env::var("STAB_BENCH_STEPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    println!("threads: {}", rayon::current_num_threads());
    let mut json = Vec::new();
    for (b, t) in [(16, 128), (4, 512)] {
        for train in [false, true] {
            if std::env::var("STAB_BENCH_ONLY").as_deref() == Ok("fused-eval") {
                // For profiling the fused forward alone (`perf record`).
                if !train {
                    println!(
                        "  {b} x {t}: fused {:.2} ms",
                        time(fused, (b, t), false, steps) * 1e3
                    );
                }
                continue;
            }
            let before = time(products, (b, t), train, steps);
            let after = time(fused, (b, t), train, steps);
            let what = if train { "train" } else { "eval" };
            println!(
                "  {b} x {t}, 12 heads of 32, {what}: products + softmax {:.2} ms, fused {:.2} ms, ratio {:.2}",
                before * 1e3,
                after * 1e3,
                after / before
            );
            json.push(format!(
                "{{\"batch\": {b}, \"t\": {t}, \"mode\": \"{what}\", \"products_s\": {before:.5}, \"fused_s\": {after:.5}}}"
            ));
        }
    }
    println!("json: [{}]", json.join(", "));
}
