//! stab-eval's hand-written statistics against the implementations they follow, on the
//! fixed inputs of `testdata/stats/reference.json` (written by scripts/stats_reference.py
//! with deep-significance 1.2.8, rliable 1.2.0 and SciPy):
//!
//! * ASO's violation ratio exactly; ε_min within the two bootstraps' noise;
//! * IQM and the probability of improvement exactly; their stratified-bootstrap
//!   intervals within the bootstraps' noise;
//! * Brown–Forsythe power against a 100,000-draw SciPy simulation, within binomial noise.

use stab_eval::aggregate::{
    iqm, paired_stratified_interval, probability_of_improvement, stratified_interval,
};
use stab_eval::aso::{AsoSettings, aso_eps_min, violation_ratio};
use stab_eval::power::{PowerSettings, bf_power};

#[path = "../../testsupport/assets.rs"]
mod assets;

fn reference() -> serde_json::Value {
    let path = assets::root().join("testdata/stats/reference.json");
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

fn floats(v: &serde_json::Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

fn strata(v: &serde_json::Value) -> Vec<Vec<f64>> {
    v.as_array().unwrap().iter().map(floats).collect()
}

#[test]
fn aso_matches_deep_significance() {
    for case in reference()["aso"].as_array().unwrap() {
        let (a, b) = (floats(&case["a"]), floats(&case["b"]));
        let name = case["name"].as_str().unwrap();
        let vr = violation_ratio(&a, &b, 0.005);
        let want = case["violation_ratio"].as_f64().unwrap();
        assert!(
            (vr - want).abs() < 1e-12,
            "{name}: violation ratio {vr} vs {want}"
        );
        // ε_min over 10 of our bootstrap seeds against deep-significance's over 20.
        let ours: Vec<f64> = (0..10)
            .map(|seed| {
                let s = AsoSettings {
                    seed,
                    ..AsoSettings::default()
                };
                aso_eps_min(&a, &b, &s).unwrap()
            })
            .collect();
        let mean = ours.iter().sum::<f64>() / ours.len() as f64;
        let (ref_mean, ref_sd) = (
            case["eps_min_mean"].as_f64().unwrap(),
            case["eps_min_sd"].as_f64().unwrap(),
        );
        // Both sides are bootstraps of 1000 draws: their ε_min differ by the noise of σ̂,
        // whose relative sd is about 1/√(2·1000).
        let noise = (ref_mean - vr).abs() / (2.0f64 * 1000.0).sqrt();
        let tol = 4.0 * (ref_sd.powi(2) + noise.powi(2) / 10.0).sqrt().max(1e-3);
        eprintln!(
            "ASO {name}: ε_min ours {mean:.4}, deep-significance {ref_mean:.4} ± {ref_sd:.4}"
        );
        assert!(
            (mean - ref_mean).abs() < tol,
            "{name}: {mean} vs {ref_mean} ± {ref_sd}"
        );
    }
}

#[test]
fn iqm_and_probability_of_improvement_match_rliable() {
    for case in reference()["aggregate"].as_array().unwrap() {
        let (x, y) = (strata(&case["x_by_task"]), strata(&case["y_by_task"]));
        let got = iqm(&x).unwrap();
        assert!(
            (got - case["iqm"].as_f64().unwrap()).abs() < 1e-12,
            "IQM {got}"
        );
        let got = probability_of_improvement(&x, &y).unwrap();
        assert!(
            (got - case["pi"].as_f64().unwrap()).abs() < 1e-12,
            "PI {got}"
        );
        let reps = case["reps"].as_u64().unwrap() as usize;
        let check = |ours: (f64, f64), mean: &serde_json::Value, sd: &serde_json::Value, what| {
            let (m, s) = (floats(mean), floats(sd));
            for (k, o) in [ours.0, ours.1].into_iter().enumerate() {
                let tol = 4.0 * s[k].max(1e-3);
                eprintln!(
                    "{what} bound {k}: ours {o:.4}, rliable {:.4} ± {:.4}",
                    m[k], s[k]
                );
                assert!((o - m[k]).abs() < tol, "{what} bound {k}: {o} vs {}", m[k]);
            }
        };
        let ci = stratified_interval(&x, iqm, reps, 0.95, 3).unwrap();
        check(ci, &case["iqm_ci_mean"], &case["iqm_ci_sd"], "IQM");
        let ci =
            paired_stratified_interval(&x, &y, probability_of_improvement, reps, 0.95, 3).unwrap();
        check(ci, &case["pi_ci_mean"], &case["pi_ci_sd"], "PI");
    }
}

#[test]
fn brown_forsythe_power_matches_a_large_scipy_simulation() {
    for case in reference()["bf_power"].as_array().unwrap() {
        let n = case["n"].as_u64().unwrap() as usize;
        let m = case["m"].as_u64().unwrap() as usize;
        let r = case["ratio"].as_f64().unwrap();
        let want = case["power"].as_f64().unwrap();
        let s = PowerSettings {
            simulations: 20_000,
            ..PowerSettings::default()
        };
        let got = bf_power(n, m, r, &s);
        let sd = (want * (1.0 - want) / 20_000.0).sqrt() + (want * (1.0 - want) / 1e5).sqrt();
        eprintln!("BF power n={n} m={m} r={r}: ours {got:.4}, SciPy {want:.4}");
        assert!(
            (got - want).abs() < 4.0 * sd,
            "n={n} r={r}: {got} vs {want}"
        );
    }
}
