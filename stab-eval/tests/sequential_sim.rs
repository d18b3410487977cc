//! The sequential rule's error rate and power by simulation, bounded for `cargo test`
//! (the full campaign: `cargo run --release -p stab-eval --example sequential_sim`).

use stab_core::sequential::SequentialDesign;
use stab_eval::sequential::simulate::{ArmEffect, Scores, simulate};

fn null() -> ArmEffect {
    ArmEffect {
        ratio: 1.0,
        shift: 0.0,
    }
}

fn repo() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[test]
fn under_the_null_no_more_than_alpha_of_grids_decide_anything() {
    let design = SequentialDesign::default();
    // Bimodal, tied scores: a committed store's FineTune arm, failed runs included.
    let real =
        Scores::from_store(&repo().join("results/minilm-stabilisers-cb"), "finetune").unwrap();
    for (scores, arms, effect) in [
        (Scores::Normal, 5, null()),
        (real.clone(), 9, null()),
        (Scores::Skewed, 9, null()),
        // Equal spreads, different means: not an SD difference.
        (
            real,
            5,
            ArmEffect {
                ratio: 1.0,
                shift: 3.0,
            },
        ),
    ] {
        let grids = 600;
        let s = simulate(&design, &scores, arms, effect, grids, 11);
        // The share over `grids` simulated grids is itself an estimate: fail when it is
        // above alpha by more than its one-sided 99 % Monte Carlo margin (the long
        // campaign, 2,000 grids a row, is in docs/methods.md §13.6).
        let margin = 2.33 * (design.alpha * (1.0 - design.alpha) / grids as f64).sqrt();
        assert!(
            s.any_decision <= design.alpha + margin,
            "{} × {arms}: {s:?}",
            scores.name()
        );
    }
}

#[test]
fn a_clear_difference_is_found_with_far_fewer_seeds_than_max() {
    let design = SequentialDesign::default();
    let s = simulate(
        &design,
        &Scores::Normal,
        1,
        ArmEffect {
            ratio: 0.3,
            shift: 0.0,
        },
        300,
        5,
    );
    assert!(s.lower >= 0.95, "{s:?}");
    assert!(s.mean_arm_seeds <= 25.0, "{s:?}");
    assert_eq!(s.higher, 0.0, "{s:?}");
}
