//! Matrix-product throughput of the flex backend on the shapes of a MiniLM-L6 training step
//! (batch 16 × 128 tokens: T = 2048 rows, hidden 384, intermediate 1536, 12 heads of 32),
//! release build:
//!
//!     cargo bench -p stab-models --bench gemm
//!
//! Each line is one product as the step runs it: forward `x·W`, the input gradient
//! `dy·Wᵀ` and the weight gradient `xᵀ·dy` of every linear layer, and the two batched
//! attention products. It prints the median time over `STAB_BENCH_REPS` repeats (default
//! 20, after 3 warm-ups), GFLOP/s (2·m·n·k per product) and the step's FLOP-weighted
//! throughput. Threads come from RAYON_NUM_THREADS. The last line is the same as JSON,
//! for `bench/gemm_vs_blas.sh`, which runs the same shapes through PyTorch and NumPy.

use std::time::Instant;

use burn::tensor::{Device, Distribution, Tensor};

/// The allocator of the `stab` binary (stab-cli/src/main.rs), so the bench measures it.
#[global_allocator]
static GLOBAL: stab_models::Allocator = stab_models::Allocator;

/// One product of the step: `batch` products of `[m, k] · [k, n]`; `lhs_t` / `rhs_t` when
/// the operand is a transposed view (the backward's strided reads); `count` how many
/// times one training step runs it.
struct Shape {
    name: &'static str,
    batch: usize,
    m: usize,
    k: usize,
    n: usize,
    lhs_t: bool,
    rhs_t: bool,
    count: usize,
}

const fn s(
    name: &'static str,
    m: usize,
    k: usize,
    n: usize,
    lt: bool,
    rt: bool,
    c: usize,
) -> Shape {
    Shape {
        name,
        batch: 1,
        m,
        k,
        n,
        lhs_t: lt,
        rhs_t: rt,
        count: c,
    }
}

/// The products of one MiniLM-L6 training step (6 layers; Q, K, V and the output
/// projection are four 384 × 384 layers per layer).
fn step_shapes() -> Vec<Shape> {
    let (t, h, i) = (2048, 384, 1536);
    let mut v = vec![
        s("proj fwd  x·W", t, h, h, false, false, 24),
        s("proj dX  dy·Wᵀ", t, h, h, false, true, 24),
        s("proj dW  xᵀ·dy", h, t, h, true, false, 24),
        s("up fwd    x·W", t, h, i, false, false, 6),
        s("up dX    dy·Wᵀ", t, i, h, false, true, 6),
        s("up dW    xᵀ·dy", h, t, i, true, false, 6),
        s("down fwd  x·W", t, i, h, false, false, 6),
        s("down dX  dy·Wᵀ", t, h, i, false, true, 6),
        s("down dW  xᵀ·dy", i, t, h, true, false, 6),
    ];
    // Attention per layer over 16 × 12 heads: scores S = Q·Kᵀ and context C = P·V, and
    // the gradients dQ = dS·K, dK = dSᵀ·Q, dP = dC·Vᵀ, dV = Pᵀ·dC.
    let attn = |name, m, k, n, lt, rt| Shape {
        batch: 192,
        ..s(name, m, k, n, lt, rt, 6)
    };
    v.push(attn("attn S = Q·Kᵀ", 128, 32, 128, false, true));
    v.push(attn("attn C = P·V", 128, 128, 32, false, false));
    v.push(attn("attn dQ = dS·K", 128, 128, 32, false, false));
    v.push(attn("attn dK = dSᵀ·Q", 128, 128, 32, true, false));
    v.push(attn("attn dP = dC·Vᵀ", 128, 32, 128, false, true));
    v.push(attn("attn dV = Pᵀ·dC", 128, 128, 32, true, false));
    v
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// A `[batch, rows, cols]` operand, or the transposed view of a `[batch, cols, rows]` one.
fn operand(batch: usize, rows: usize, cols: usize, transposed: bool, dev: &Device) -> Tensor<3> {
    let d = Distribution::Uniform(-1.0, 1.0);
    if transposed {
        Tensor::<3>::random([batch, cols, rows], d, dev).swap_dims(1, 2)
    } else {
        Tensor::<3>::random([batch, rows, cols], d, dev)
    }
}

fn main() {
    stab_models::allocator::keep_freed_memory();
    let reps: usize = std::env::var("STAB_BENCH_REPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let threads = rayon::current_num_threads();
    let dev = Device::flex();
    println!("flex matmul on MiniLM-L6 step shapes, {threads} threads, median of {reps}:");
    let mut rows = Vec::new();
    let (mut flop_total, mut time_total) = (0.0, 0.0);
    for sh in step_shapes() {
        let a = operand(sh.batch, sh.m, sh.k, sh.lhs_t, &dev);
        let b = operand(sh.batch, sh.k, sh.n, sh.rhs_t, &dev);
        let mut times = Vec::new();
        for r in 0..reps + 3 {
            let t0 = Instant::now();
            let c = a.clone().matmul(b.clone());
            // Force the product (the flex backend is eager; this reads one value back).
            let _ = c.slice([0..1, 0..1, 0..1]).into_scalar::<f32>();
            if r >= 3 {
                times.push(t0.elapsed().as_secs_f64());
            }
        }
        let t = median(times);
        let flop = 2.0 * (sh.batch * sh.m * sh.n * sh.k) as f64;
        let gflops = flop / t / 1e9;
        flop_total += flop * sh.count as f64;
        time_total += t * sh.count as f64;
        println!(
            "  {:<16} {:>3} × [{:>4}×{:>4}]·[{:>4}×{:>4}]  {:>8.3} ms  {:>6.1} GFLOP/s  ×{} per step",
            sh.name,
            sh.batch,
            sh.m,
            sh.k,
            sh.k,
            sh.n,
            t * 1e3,
            gflops,
            sh.count
        );
        rows.push(serde_json::json!({
            "name": sh.name, "batch": sh.batch, "m": sh.m, "k": sh.k, "n": sh.n,
            "lhs_t": sh.lhs_t, "rhs_t": sh.rhs_t, "count": sh.count, "s": t, "gflops": gflops,
        }));
    }
    let step_gflops = flop_total / time_total / 1e9;
    println!(
        "  step: {:.1} GFLOP in {:.3} s of products = {step_gflops:.1} GFLOP/s",
        flop_total / 1e9,
        time_total
    );
    println!(
        "json: {}",
        serde_json::json!({"threads": threads, "shapes": rows, "step_gflop": flop_total / 1e9,
            "step_product_s": time_total, "step_gflops": step_gflops})
    );
}
