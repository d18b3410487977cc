//! A stab grid driven from Rust, without the `stab` binary: a recipe written in code, its
//! plan, the grid runner with the fine-tuning engine as executor, an event sink that prints
//! what happens, and a summary of the records the store now holds.
//!
//! ```sh
//! cargo run --release -p stab-example-library-grid [OUT_DIR]
//! ```
//!
//! It trains tiny-bert (the repository's test fixture) on the CB slice in `testdata/`:
//! FineTune and MHLoss × 3 seeds, 30 full fine-tuning updates each (a few seconds in a
//! release build). Run it twice: the second time every run is found in the store.

use std::path::PathBuf;

use burn::tensor::Device;
use stab_core::store::ResultsStore;
use stab_core::{Plan, Recipe, RunSpec};
use stab_grid::{GridEvent, GridRunner};
// The method plugins register through `inventory`; naming the crate links them.
use stab_methods as _;

fn main() -> stab_core::Result<()> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target/example-library-grid"));
    let recipe = Recipe::parse(
        &format!(
            r#"
            name = "library-grid"
            [model]
            path = "{model}"
            max_len = 64
            [data]
            dir = "{data}"
            tasks = ["cb"]
            [train]
            mode = "full"
            max_steps = 30
            batch_size = 8
            seeds = 3
            [[methods]]
            name = "finetune"
            [[methods]]
            name = "mhloss"
            heads = 3
            "#,
            model = root.join("testdata/fixtures/tiny-bert").display(),
            data = root.join("testdata/data").display(),
        ),
        "library-grid (in code)",
    )?;
    let plan = Plan::from_recipe(&recipe)?;
    let specs: Vec<&RunSpec> = plan.runs.iter().collect();

    let engine = stab_methods::Engine::new(Device::flex(), &out);
    let runner = GridRunner::new(&engine, &out);
    let summary = runner.run(&specs, &|event| match event {
        GridEvent::Started {
            planned, in_store, ..
        } => println!(
            "{planned} runs planned, {in_store} already in {}",
            out.display()
        ),
        GridEvent::RunFinished { summary, .. } => println!("{summary}"),
        GridEvent::RunFailed { spec, error } => println!("FAILED {}: {error:#}", spec.run_id),
        _ => {}
    })?;
    println!(
        "recorded {}, failed {}, reused {}",
        summary.recorded, summary.failed, summary.in_store
    );

    // What the store holds now, per method: test primary metric over seeds.
    let records = ResultsStore::read_dir(&out)?.latest();
    for method in ["finetune", "mhloss"] {
        let scores: Vec<f64> = records
            .iter()
            .filter(|r| r.method == method && specs.iter().any(|s| s.run_id == r.run_id))
            .filter_map(|r| r.metrics.get("primary").copied())
            .collect();
        let s = stab_eval::stats::Summary::of(&scores);
        println!(
            "{method:9} cb: {:.2} ± {:.2} (n = {})",
            100.0 * s.mean,
            100.0 * s.sd,
            s.n
        );
    }
    if summary.failed > 0 {
        return Err(stab_core::internal!("{} runs failed", summary.failed));
    }
    Ok(())
}
