//! The sequential seed rule by simulation: error rate under the null, power and seeds
//! spent under SD ratios 0.5 and 0.3, for normal, skewed and resampled-real scores.
//!
//! `cargo run --release -p stab-eval --example sequential_sim -- [GRIDS] [RESULTS_DIR] [all|null|power] [all|normal|skewed|resampled]`
//! (default 2000 grids; the resampled scores are the FineTune arm of
//! `results/minilm-stabilisers-cb`, failed runs included).

use stab_core::sequential::SequentialDesign;
use stab_eval::sequential::simulate::{ArmEffect, Scores, simulate};

fn main() -> stab_core::Result<()> {
    let mut args = std::env::args().skip(1);
    let grids: usize = args
        .next()
        .map_or(2000, |a| a.parse().expect("GRIDS is a count"));
    let store = args
        .next()
        .unwrap_or_else(|| "results/minilm-stabilisers-cb".into());
    let rows = args.next().unwrap_or_else(|| "all".into());
    let only = args.next().unwrap_or_else(|| "all".into());
    let Scores::Resampled(real) = Scores::from_store(std::path::Path::new(&store), "finetune")?
    else {
        unreachable!("from_store resamples")
    };
    let design = SequentialDesign::default();
    println!(
        "design: min {} step {} max {} alpha {} smallest_ratio {} beta {}; {grids} grids per row",
        design.min, design.step, design.max, design.alpha, design.smallest_ratio, design.beta
    );
    println!("resampled: {} FineTune scores of {store}", real.len());
    println!(
        "| scores | arms | SD ratio | shift (SDs) | grids with any lower/higher | lower | higher | no difference | undecided | seeds per arm | baseline seeds | fixed design (max seeds) lower, F-test | the same, permutation test |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for scores in [Scores::Normal, Scores::Skewed, Scores::Resampled(real)] {
        if only != "all" && only != scores.name() {
            continue;
        }
        for (arms, ratio, sd_shift) in [
            (1, 1.0, 0.0),
            (5, 1.0, 0.0),
            (9, 1.0, 0.0),
            (1, 1.0, 1.0),
            (9, 1.0, 1.0),
            (1, 0.5, 0.0),
            (5, 0.5, 0.0),
            (1, 0.3, 0.0),
            (5, 0.3, 0.0),
        ] {
            if (rows == "null" && ratio != 1.0) || (rows == "power" && ratio == 1.0) {
                continue;
            }
            let shift = sd_shift * sd(&scores);
            let s = simulate(&design, &scores, arms, ArmEffect { ratio, shift }, grids, 7);
            println!(
                "| {} | {arms} | {ratio} | {sd_shift} | {:.4} | {:.3} | {:.3} | {:.3} | {:.3} | {:.1} | {:.1} | {:.3} | {:.3} |",
                scores.name(),
                s.any_decision,
                s.lower,
                s.higher,
                s.no_difference,
                s.undecided,
                s.mean_arm_seeds,
                s.mean_baseline_seeds,
                s.fixed_lower,
                s.fixed_lower_permutation
            );
        }
    }
    Ok(())
}

/// The scores' standard deviation (log-normal σ = 1: √((e − 1)e)).
fn sd(scores: &Scores) -> f64 {
    match scores {
        Scores::Normal => 1.0,
        Scores::Skewed => ((std::f64::consts::E - 1.0) * std::f64::consts::E).sqrt(),
        Scores::Resampled(v) => stab_eval::Summary::of(v).sd,
    }
}
