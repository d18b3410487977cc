//! Throughput of the synthetic-study solvers (release build):
//!
//!     cargo bench -p stab-synthetic --bench synthetic
//!
//! Reports GD point-steps per second per core (one σ-weighted gradient term of one
//! weight vector at one point is one point-step), on one thread and on all threads, and
//! the hard-margin SMO solve time at n = 2,000.

use std::time::Instant;

use rayon::prelude::*;
use stab_synthetic::linear::{AugmentedPoints, LogisticGd, Smo, kernel_isa};
use stab_synthetic::points::TwoBalls;

fn gd_rate(vectors: usize, steps: u64, datasets: usize) -> f64 {
    let n = 2000;
    let sets: Vec<_> = (0..datasets)
        .map(|s| {
            AugmentedPoints::new(&TwoBalls::with_margin_and_bound(n, 2, 0.5, 3.0).sample(s as u64))
        })
        .collect();
    let start = Instant::now();
    sets.par_iter().for_each(|a| {
        let gd = LogisticGd::new(a, 0.0);
        let mut ws: Vec<f64> = (0..vectors * 3).map(|i| (i as f64 * 0.37).sin()).collect();
        let removed = vec![None; vectors];
        gd.run(&mut ws, &removed, steps, &[], |_, _| {});
        std::hint::black_box(&ws);
    });
    let secs = start.elapsed().as_secs_f64();
    (datasets * vectors * n) as f64 * steps as f64 / secs
}

fn main() {
    let threads = rayon::current_num_threads();
    println!("kernel: {}  threads: {threads}", kernel_isa());
    for vectors in [1usize, 4, 11, 110] {
        let steps = (20_000 / vectors as u64).max(200);
        let one = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap()
            .install(|| gd_rate(vectors, steps, 2));
        let all = gd_rate(vectors, steps, 2 * threads);
        println!(
            "GD n=2000 d=2, {vectors:>3} vectors/pass: {:>7.1} M point-steps/s on 1 thread; {:>7.1} M/s on {threads} threads ({:.1} M/s per core)",
            one / 1e6,
            all / 1e6,
            all / 1e6 / threads as f64
        );
    }
    for (margin, label) in [(0.5, "γ=0.5"), (0.05, "γ=0.05")] {
        let mut times = Vec::new();
        let mut iters = Vec::new();
        for s in 0..20u64 {
            let data = TwoBalls::with_margin_and_bound(2000, 2, margin, 3.0).sample(1000 + s);
            let start = Instant::now();
            let sol = Smo::default().solve(&data).expect("separable");
            times.push(start.elapsed().as_secs_f64());
            iters.push(sol.iterations);
        }
        times.sort_by(|a, b| a.partial_cmp(b).unwrap());
        iters.sort_unstable();
        println!(
            "SVM (SMO, hard margin, tol 1e-6) n=2000 d=2 {label}: median {:.2} ms, max {:.2} ms, median {} iterations",
            times[10] * 1e3,
            times[19] * 1e3,
            iters[10]
        );
    }
}
