//! The report's statistics are robust to any score a record can hold: NaN (a diverged
//! run), ±inf, huge values, constants, one seed or many. Every format renders without a
//! panic, whatever the cells hold.

use proptest::prelude::*;
use stab_core::{RecipeKind, RunRecord};
use stab_eval::{Report, ReportFormat};

fn record(task: &str, method: &str, seed: u64, primary: f64) -> RunRecord {
    RunRecord {
        run_id: format!("{task}-{method}-s{seed}"),
        recipe: "r".into(),
        kind: RecipeKind::Finetune,
        task: task.into(),
        method: method.into(),
        method_params: Default::default(),
        seed,
        mode: None,
        sweep: Default::default(),
        metrics: [
            ("primary".to_string(), primary),
            ("accuracy".to_string(), primary),
        ]
        .into(),
        dev_best: None,
        best_step: None,
        steps: 10,
        wall_s: 1.0,
        stab_version: "t".into(),
        threads: 1,
        synthetic: None,
        diverged: !primary.is_finite(),
        seeds: None,
        split: None,
        inputs: None,
        details: serde_json::Value::Null,
        sequential: None,
        tune: None,
    }
}

/// A score a record may hold: ordinary, failed-looking, constant, huge or non-finite.
fn score() -> impl Strategy<Value = f64> {
    prop_oneof![
        6 => 0.0..1.0f64,
        2 => Just(0.5),
        1 => Just(f64::NAN),
        1 => Just(f64::INFINITY),
        1 => Just(f64::NEG_INFINITY),
        1 => Just(1e200),
        1 => Just(-1e300),
        1 => Just(f64::MIN_POSITIVE),
    ]
}

proptest! {
    // Each case runs the report's power simulations: 12 by default, PROPTEST_CASES for a
    // long campaign.
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(12)
    ))]
    #[test]
    fn every_format_renders_whatever_the_scores(
        cells in proptest::collection::vec(proptest::collection::vec(score(), 1..9), 1..5),
    ) {
        let tasks = ["cb", "rte"];
        let methods = ["finetune", "mmr", "mhloss"];
        let mut records = Vec::new();
        for (i, cell) in cells.iter().enumerate() {
            let (task, method) = (tasks[i % 2], methods[(i / 2) % 3]);
            for (seed, &s) in cell.iter().enumerate() {
                records.push(record(task, method, seed as u64, s));
            }
        }
        let report = Report::from_records(records);
        for format in [ReportFormat::Markdown, ReportFormat::Csv, ReportFormat::Latex, ReportFormat::Json] {
            let text = report.render(format);
            prop_assert!(!text.is_empty());
        }
    }
}
