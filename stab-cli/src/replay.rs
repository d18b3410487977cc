//! `stab analyze sequential DIR`: the sequential rule replayed over a finished store.

use std::path::PathBuf;

use clap::Args;
use stab_core::sequential::{Question, SequentialDesign, Spending};

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
    /// How alpha and beta are spent over the looks: power=RHO (t^RHO) or pocock.
    #[arg(long, default_value = "power=1.5")]
    spending: Spending,
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
        spending: args.spending,
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

/// `stab analyze stop-failed DIR`: `[train] stop_failed` replayed on stored dev curves.
#[derive(Args)]
pub struct StopFailedArgs {
    /// A results directory whose records hold dev curves.
    dir: PathBuf,
    /// Evaluations in a row at or below the majority-class dev score.
    #[arg(long, default_value_t = 5)]
    after: u64,
    /// The task files (for the majority-class dev score of records that do not carry it).
    #[arg(long, conflicts_with = "recipe")]
    data_dir: Option<PathBuf>,
    /// The recipe the grid ran: its tasks are read as its runs read them (built-in and
    /// `[data.custom]` tasks), for records that do not carry the majority-class dev score.
    #[arg(long)]
    recipe: Option<PathBuf>,
    /// Fixed split files (default: DATA_DIR/splits, else the author's built in).
    #[arg(long)]
    splits: Option<PathBuf>,
    /// text (a Markdown table) or json.
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    format: String,
}

pub fn stop_failed(args: StopFailedArgs) -> stab_core::Result<()> {
    use stab_eval::early_stop::{self, Majority};
    use std::collections::BTreeMap;
    stab_core::limits::PATIENCE.check("--after", args.after)?;
    let contents = stab_core::ResultsStore::read_dir(&args.dir)?;
    let latest = contents.latest();
    let records: Vec<&stab_core::RunRecord> = latest
        .iter()
        .filter(|r| r.kind == stab_core::RecipeKind::Finetune && r.details["dev_curve"].is_array())
        .collect();
    let tasks: std::collections::BTreeSet<&str> = records.iter().map(|r| r.task.as_str()).collect();
    let mut majority = BTreeMap::new();
    for task in tasks {
        let carried = records.iter().filter(|r| r.task == task).find_map(|r| {
            Some(Majority {
                dev: r.details["majority_dev"].as_f64()?,
                test: r.details["majority_test"].as_f64()?,
            })
        });
        let m = match (carried, &args.data_dir, &args.recipe) {
            (Some(m), _, _) => m,
            (None, Some(dir), _) => majority_from_data(task, dir, args.splits.as_deref())?,
            (None, None, Some(recipe)) => majority_from_recipe(task, recipe)?,
            (None, None, None) => {
                return Err(stab_core::InputError::new(format!(
                    "the records of `{task}` in {} do not carry the majority-class dev score",
                    args.dir.display()
                ))
                .key("--recipe")
                .hint("pass --recipe with the recipe the grid ran (a task of your own is read from its table), or --data-dir with the built-in tasks' files (and --splits if the grid used other split files)")
                .into());
            }
        };
        majority.insert(task.to_string(), m);
    }
    let labels = stab_eval::report::finetune::group_labels(&records);
    let by_id: BTreeMap<&str, String> = records
        .iter()
        .zip(labels)
        .map(|(r, (label, _))| (r.run_id.as_str(), label))
        .collect();
    let rows = early_stop::replay(&records, &majority, args.after, |r| {
        by_id[r.run_id.as_str()].clone()
    });
    if args.format == "json" {
        let doc = serde_json::json!({"after": args.after, "majority": majority, "rows": rows});
        outln!(
            "{}",
            serde_json::to_string_pretty(&doc).expect("serialises")
        );
    } else {
        outln!(
            "stop_failed = {{ after = {} }} replayed on {} runs' dev curves (majority-class dev/test scores per task: {})\n",
            args.after,
            records.len(),
            majority
                .iter()
                .map(|(t, m)| format!("{t} {:.4}/{:.4}", m.dev, m.test))
                .collect::<Vec<_>>()
                .join(", ")
        );
        outln!("{}", early_stop::table(&rows).markdown());
    }
    Ok(())
}

/// The majority-class primary score of a task's dev and test splits, read as the runs of
/// `recipe` read them.
fn majority_from_recipe(
    task: &str,
    recipe: &std::path::Path,
) -> stab_core::Result<stab_eval::early_stop::Majority> {
    let check = crate::data::recipe_checks(recipe, Some(task))?
        .pop()
        .ok_or_else(|| stab_core::internal!("no check of task {task}"))?;
    majority(&check.loaded.data.task, &check.split.splits)
}

/// The majority-class primary score of `task`'s dev and test splits.
fn majority(
    task: &stab_data::Task,
    s: &stab_data::Splits,
) -> stab_core::Result<stab_eval::early_stop::Majority> {
    let metric = stab_eval::PrimaryMetric::parse(task.metric())
        .ok_or_else(|| stab_core::internal!("unknown metric {}", task.metric()))?;
    let score = |rows: &[stab_data::Example]| {
        let gold: Vec<usize> = rows.iter().map(|r| r.label).collect();
        let questions: Option<Vec<u64>> = rows.iter().map(|r| r.question).collect();
        metric.majority(&gold, task.classes(), questions.as_deref())
    };
    Ok(stab_eval::early_stop::Majority {
        dev: score(&s.dev),
        test: score(&s.test),
    })
}

/// The majority-class primary score of a task's dev and test splits, from its files.
fn majority_from_data(
    task: &str,
    dir: &std::path::Path,
    splits: Option<&std::path::Path>,
) -> stab_core::Result<stab_eval::early_stop::Majority> {
    let def = stab_data::task_def(task)?;
    let origin = stab_core::DataOrigin::Dir(dir);
    let loaded = stab_data::load_task(def, origin, &stab_data::DatasetCache::from_env())?;
    let files = stab_data::split_files(origin, splits, "--splits")?;
    let s = stab_data::resolve_split(&loaded.data, files.as_ref(), 0.1)?.splits;
    majority(&loaded.data.task, &s)
}
