//! `stab analyze sequential DIR`: the sequential rule replayed over a finished store.

use std::path::PathBuf;

use clap::Args;
use stab_core::sequential::{Question, SequentialDesign};

/// The `[seeds]` keys as flags (docs/methods.md §13.6).
#[derive(Args)]
pub struct SequentialArgs {
    /// A results directory (a fixed-design grid, or a sequential one).
    dir: PathBuf,
    /// The method every other method is compared with.
    #[arg(long, default_value = "finetune")]
    baseline: String,
    /// sd, mean or both.
    #[arg(long, default_value = "sd", value_parser = ["sd", "mean", "both"])]
    question: String,
    /// Seeds per arm before the first look.
    #[arg(long, default_value_t = 5)]
    min: u64,
    /// Seeds added per round.
    #[arg(long, default_value_t = 5)]
    step: u64,
    /// Cap per arm.
    #[arg(long, default_value_t = 60)]
    max: u64,
    /// Error rate of all lower/higher decisions, over arms, questions and looks.
    #[arg(long, default_value_t = 0.05)]
    alpha: f64,
    /// An SD ratio within (R, 1/R) is no practical difference.
    #[arg(long, default_value_t = 0.7)]
    smallest_ratio: f64,
    /// A mean difference (score points ×100) below this is no practical difference.
    #[arg(long)]
    smallest_difference: Option<f64>,
    /// Per comparison, the chance of "no practical difference" at the smallest practical one.
    #[arg(long, default_value_t = 0.2)]
    beta: f64,
    /// text (a Markdown table) or json.
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    format: String,
}

pub fn sequential(args: SequentialArgs) -> stab_core::Result<()> {
    let design = SequentialDesign {
        min: args.min,
        step: args.step,
        max: args.max,
        baseline: args.baseline,
        question: match args.question.as_str() {
            "mean" => Question::Mean,
            "both" => Question::Both,
            _ => Question::Sd,
        },
        alpha: args.alpha,
        smallest_ratio: args.smallest_ratio,
        smallest_difference: args.smallest_difference,
        beta: args.beta,
    };
    design.check().map_err(|mut e| {
        e.key = e
            .key
            .map(|k| format!("--{}", k.trim_start_matches("seeds.").replace('_', "-")));
        e
    })?;
    let contents = stab_core::ResultsStore::read_dir(&args.dir)?;
    let latest = contents.latest();
    let records: Vec<&stab_core::RunRecord> = latest
        .iter()
        .filter(|r| r.kind == stab_core::RecipeKind::Finetune)
        .collect();
    if !records.iter().any(|r| r.method == design.baseline) {
        let methods: std::collections::BTreeSet<&str> =
            records.iter().map(|r| r.method.as_str()).collect();
        return Err(stab_core::InputError::new(format!(
            "{} holds no fine-tuning run of the baseline `{}`{}",
            args.dir.display(),
            design.baseline,
            stab_core::suggest::did_you_mean(&design.baseline, methods.iter().copied())
        ))
        .key("--baseline")
        .file(args.dir.display().to_string())
        .hint(if methods.is_empty() {
            "the directory holds no fine-tuning runs: name the results directory of a grid"
                .to_string()
        } else {
            format!(
                "the store's methods: {}",
                methods.into_iter().collect::<Vec<_>>().join(", ")
            )
        })
        .into());
    }
    let replay = stab_eval::sequential::replay::replay(&records, &design);
    if args.format == "json" {
        outln!(
            "{}",
            serde_json::to_string_pretty(&replay).expect("replay serialises")
        );
    } else {
        outln!("{}", replay.document("Sequential replay").markdown());
    }
    Ok(())
}
