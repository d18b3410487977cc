//! The paper's qualitative anchors (docs/methods.md §10) on small synthetic studies:
//! Δ̂ falls as n grows, as γ grows, as B shrinks; rises with ‖w0 − w*‖; more heads bring
//! the averaged head closer to the SVM direction at a fixed t.

use stab_core::{SyntheticSettings, registry};
use stab_synthetic as _;

fn metric(
    factor: &str,
    value: f64,
    tweak: impl Fn(&mut SyntheticSettings),
) -> (f64, serde_json::Value) {
    let study = registry::study(factor).unwrap();
    let mut base = SyntheticSettings::defaults(factor, study.default_steps());
    base.datasets = 40;
    base.points = 300;
    base.loo_samples = 4;
    tweak(&mut base);
    base.checkpoints = SyntheticSettings::default_checkpoints(base.steps);
    let s = study.apply(&base, value).unwrap();
    let out = study.run(&s, &|| {}).unwrap();
    (out.metrics["delta_mean"], out.details)
}

#[test]
fn delta_falls_with_samples_and_margin_and_rises_with_bound() {
    let steps = |s: &mut SyntheticSettings| s.steps = 100;
    assert!(metric("samples", 100.0, steps).0 > 2.0 * metric("samples", 1000.0, steps).0);
    assert!(metric("margin", 0.05, steps).0 > metric("margin", 1.0, steps).0);
    assert!(metric("bound", 20.0, steps).0 > metric("bound", 1.5, steps).0);
}

#[test]
fn delta_rises_with_initial_distance() {
    let keep = |_: &mut SyntheticSettings| {};
    assert!(metric("distance", 30.0, keep).0 > 1.5 * metric("distance", 0.01, keep).0);
}

#[test]
fn more_heads_close_the_direction_gap_sooner() {
    let short = |s: &mut SyntheticSettings| s.steps = 100;
    let gap_at_10 = |h: f64| {
        let (_, d) = metric("heads", h, short);
        d["curve"][0]["direction_gap_mean"].as_f64().unwrap()
    };
    let (one, twenty) = (gap_at_10(1.0), gap_at_10(20.0));
    assert!(
        twenty < 0.8 * one,
        "gap at t = 10: H = 1 {one}, H = 20 {twenty}"
    );
}
