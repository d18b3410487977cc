//! Run the plugin's study through stab's registry, as `stab run` would:
//!
//!     cargo run --release -p stab-example-dimension-study

use stab_core::{SyntheticSettings, registry};
use stab_example_dimension_study as _;

fn main() -> stab_core::Result<()> {
    let study = registry::study("dim")?;
    let mut base = SyntheticSettings::defaults("dim", study.default_steps());
    base.datasets = 100;
    base.points = 1000;
    println!(
        "| d | Δ̂ (mean ± SD over {} sets) | γ_S | #SV |",
        base.datasets
    );
    println!("|---|---|---|---|");
    for d in study.default_values() {
        let s = study
            .apply(&base, d)
            .map_err(|r| r.at(stab_core::InputError::new(format!("dim = {d}"))))?;
        let out = study.run(&s, &|| {})?;
        let m = &out.metrics;
        println!(
            "| {d} | {:.3e} ± {:.1e} | {:.3} | {:.1} |",
            m["delta_mean"], m["delta_sd"], m["margin_mean"], m["support_mean"]
        );
    }
    Ok(())
}
