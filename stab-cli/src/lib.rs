//! `stab`: recipe → plan → run → record → report (docs/design.md §3).
//!
//! The command is a library so that a method plugin can ship its own `stab` binary with
//! its methods linked in (docs/plugins.md, "Linking"):
//!
//! ```no_run
//! // use my_plugin as _;   // links the plugin's `inventory` registrations
//! fn main() -> std::process::ExitCode {
//!     stab_cli::main()
//! }
//! ```
//!
//! Exit codes: 0 ok; 1 a run failed (the others still ran and were recorded); 2 bad input
//! (recipe, data, model), with a message naming the file, line or key and a hint.

/// `println!` that never panics: a closed stdout (`stab report DIR | head`) must not stop
/// the work or turn into an internal error; what could not be printed is dropped.
macro_rules! outln {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($t)*);
    }};
}

/// `eprintln!` that never panics: a closed stderr (`stab run R 2>&1 | head -3`) must not
/// stop a grid; the store and the files are written whatever happens to the messages.
macro_rules! errln {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($t)*);
    }};
}

// The plugin crates register methods, tasks and studies through `inventory`; a crate the
// binary never names is not linked and its registrations vanish (docs/burn.md §8.2).
use stab_data as _;
use stab_methods as _;
use stab_synthetic as _;

mod analyze;
mod bench;
mod data;
mod device;
mod embed;
mod list;
mod plan;
mod replay;
mod report;
mod run;
mod track;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// The exit codes, as every verb's `--help` ends with them.
const EXIT_CODES: &str = "Exit codes:
  0  done (for run: every run recorded)
  1  runs failed (recorded as failed; the others finished), or an I/O or internal error
  2  bad input: a recipe, flag, file or model that cannot be used (nothing was written)
  3  a bug in stab (please report it with the command and recipe)";

#[derive(Parser)]
#[command(
    name = "stab",
    version,
    about = "Measure and improve the stability of fine-tuning pre-trained transformers",
    after_long_help = help(&[
        ("stab run recipes/quickstart.toml", "run a recipe's grid (a killed grid resumes)"),
        ("stab report runs/quickstart --html", "tables, statistics and plots of its results"),
        ("stab plan r.toml --shards 8 --slurm grid.sbatch", "the grid as a Slurm array job"),
        ("stab list methods", "the methods and their parameters"),
        ("stab <verb> --help", "each verb's flags, examples and exit codes"),
    ])
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a recipe's grid; finished runs already in the store are skipped (resume).
    #[command(after_long_help = help(&[
        ("stab run recipes/quickstart.toml", "the whole grid into the recipe's `out`"),
        ("stab run r.toml --out runs/try1 --jobs 2", "another results directory, two runs at a time"),
        ("stab run r.toml --shard 3/8", "one eighth of the grid (a cluster array task)"),
        ("stab run r.toml --set train.lr=3e-5 --device wgpu", "a recipe value overridden, on a GPU"),
    ]))]
    Run(run::RunArgs),
    /// List a recipe's runs, optionally split into shards or written as a Slurm array job.
    #[command(after_long_help = help(&[
        ("stab plan r.toml", "every run: id, task, method, seed"),
        ("stab plan r.toml --shards 8", "the runs in 8 cost-balanced shards"),
        ("stab plan r.toml --shards 8 --slurm grid.sbatch --out /scratch/runs", "an sbatch array job writing to /scratch/runs"),
    ]))]
    Plan(plan::PlanArgs),
    /// Tables and plots from a results directory (merges every runs*.jsonl).
    #[command(after_long_help = help(&[
        ("stab report runs/quickstart", "Markdown tables and plots (report.md, plots/)"),
        ("stab report runs/quickstart --html", "the same as one HTML page"),
        ("stab report runs/quickstart --format json", "the statistics as JSON on stdout"),
    ]))]
    Report(report::ReportArgs),
    /// What stab knows: methods (with parameters), tasks, model families, devices and
    /// synthetic factors.
    #[command(after_long_help = help(&[
        ("stab list", "everything"),
        ("stab list methods", "methods, their parameters and defaults"),
        ("stab list models", "model families, their hub ids and cached models"),
        ("stab list devices", "cpu and the GPUs this build can use"),
    ]))]
    List(list::ListArgs),
    /// Encoder outputs for texts, in eval mode (parity checks, debugging).
    #[command(after_long_help = help(&[
        ("stab embed --model DIR --text \"a sentence\"", "token ids and the pooled vector"),
        ("stab embed --model DIR --inputs texts.jsonl --json", "every hidden state of each line, as JSON"),
    ]))]
    Embed(embed::EmbedArgs),
    /// Task data: check a task's files (`check`), or fetch tasks from the Hugging Face Hub
    /// (`fetch`).
    #[command(after_long_help = help(&[
        ("stab data check --task rte --data-dir data", "counts per split and label, or the first bad line"),
        ("stab data fetch --tasks rte,cb --to data", "download from the Hub and write the official layout"),
    ]))]
    Data(data::DataArgs),
    /// Measurements that explain stability: weight distance, Taylor validity, LOO of heads
    /// on real features, the paper's bounds, and replays of the sequential rule and of
    /// early stopping (results in DIR/analyses.jsonl).
    #[command(after_long_help = help(&[
        ("stab analyze distance runs/full", "‖w* − w0‖ of every checkpoint, per layer"),
        ("stab analyze sequential runs/head --baseline finetune", "when the sequential rule would have stopped each arm"),
        ("stab analyze stop-failed runs/full --after 3", "what stopping failed runs early would have saved"),
    ]))]
    Analyze(analyze::AnalyzeArgs),
    /// Speed of a training update and an eval forward on a device (bench/device_step.sh).
    #[command(after_long_help = help(&[
        ("stab bench step --model DIR", "full fine-tuning update and eval forward, 16 × 128, on the CPU"),
        ("stab bench step --model DIR --device wgpu --lora 8", "LoRA's update on a GPU"),
    ]))]
    Bench(bench::BenchArgs),
    /// Send a results directory's runs to TensorBoard event files or an MLflow server
    /// (a grid that ran without `--track`, or runs a server missed while it was down).
    #[command(after_long_help = help(&[
        ("stab track runs/quickstart --to tensorboard", "event files in runs/quickstart/tensorboard"),
        ("stab track runs/quickstart --to mlflow=http://127.0.0.1:5000", "every run the server lacks"),
    ]))]
    Track(track::TrackArgs),
}

/// A verb's long help epilogue: its examples, then the exit codes.
fn help(examples: &[(&str, &str)]) -> String {
    let width = examples
        .iter()
        .map(|(c, _)| c.chars().count())
        .max()
        .unwrap_or(0);
    let mut s = String::from("Examples:\n");
    for (command, what) in examples {
        let pad = width - command.chars().count();
        s.push_str(&format!("  {command}{}  {what}\n", " ".repeat(pad)));
    }
    s.push('\n');
    s.push_str(EXIT_CODES);
    s
}

/// The command-line reference as Markdown: the long `--help` of `stab` and of every
/// subcommand, in declaration order. `docs/cli-reference.md` is this text; a test fails when
/// the two differ, so the page cannot drift from the flags (`STAB_BLESS=1` rewrites it).
pub fn cli_reference() -> String {
    use clap::CommandFactory;
    fn walk(cmd: &mut clap::Command, path: &str, out: &mut String) {
        let help = cmd.render_long_help().to_string();
        out.push_str(&format!(
            "## `{path}`\n\n```text\n{}\n```\n\n",
            help.trim_end()
        ));
        let names: Vec<String> = cmd
            .get_subcommands()
            .map(|c| c.get_name().to_string())
            .filter(|name| name != "help")
            .collect();
        for name in names {
            let sub = cmd.find_subcommand_mut(&name).expect("listed subcommand");
            walk(sub, &format!("{path} {name}"), out);
        }
    }
    let mut cmd = Cli::command().term_width(100);
    cmd.build();
    let mut out = String::from(
        "# `stab` command-line reference\n\nGenerated from `stab --help` by `stab_cli::cli_reference` (`STAB_BLESS=1 cargo test -p stab-cli --test integration cli_reference` rewrites it). What the commands do beyond their flags: [cli.md](cli.md).\n\n",
    );
    walk(&mut cmd, "stab", &mut out);
    out
}

/// Colour codes only on a terminal, and never with `NO_COLOR` set (no-color.org): pipes,
/// log files and Slurm logs get plain text.
fn colour() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// Outcome of a command that ran runs.
pub enum Done {
    Ok,
    /// Some runs failed; the others were recorded.
    RunsFailed,
}

/// Exit code of an internal error (a panic: a bug in stab, never the user's input).
const EXIT_BUG: u8 = 3;

/// Run the `stab` command line with every method, task and study linked into the binary.
pub fn main() -> ExitCode {
    // Freed activations stay with the process for the next step (see stab_models::allocator).
    stab_models::allocator::keep_freed_memory();
    // A panic is a bug: one line asking for a report and a distinct exit code, never a
    // raw backtrace (STAB_BACKTRACE=1 keeps the default report for debugging).
    if std::env::var_os("STAB_BACKTRACE").is_none() {
        std::panic::set_hook(Box::new(|info| {
            let what = info
                .payload()
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| info.payload().downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            let at = info
                .location()
                .map(|l| format!(" at {}:{}", l.file(), l.line()))
                .unwrap_or_default();
            errln!(
                "internal error: stab stopped on a bug{at}: {what}. Please report it with the command and recipe you ran (STAB_BACKTRACE=1 shows a backtrace)."
            );
        }));
    }
    match std::panic::catch_unwind(real_main) {
        Ok(code) => code,
        Err(_) => ExitCode::from(EXIT_BUG),
    }
}

fn real_main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("STAB_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(colour())
        // A log line that cannot be written (a closed pipe) is dropped; the default reports
        // it on stderr with a panicking print, which would stop the grid.
        .log_internal_errors(false)
        .with_target(false)
        // Spans (the engine's step phases, at TRACE) report their time when they close.
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
        .init();
    let dups = stab_core::registry::duplicate_names();
    if !dups.is_empty() {
        errln!("error: plugins registered twice: {}", dups.join(", "));
        return ExitCode::from(1);
    }
    let hollow = stab_train::unimplemented_methods();
    if !hollow.is_empty() {
        errln!(
            "error: methods registered without a working implementation: {}",
            hollow.join("; ")
        );
        return ExitCode::from(1);
    }
    let result = match cli.command {
        Command::Run(a) => run::run(a),
        Command::Track(a) => track::run(a),
        Command::Plan(a) => plan::plan(a).map(|_| Done::Ok),
        Command::Report(a) => report::report(a).map(|_| Done::Ok),
        Command::List(a) => list::list(a).map(|_| Done::Ok),
        Command::Embed(a) => embed::embed(a).map(|_| Done::Ok),
        Command::Data(a) => data::data(a).map(|_| Done::Ok),
        Command::Analyze(a) => analyze::analyze(a).map(|_| Done::Ok),
        Command::Bench(a) => bench::bench(a).map(|_| Done::Ok),
    };
    match result {
        Ok(Done::Ok) => ExitCode::SUCCESS,
        Ok(Done::RunsFailed) => ExitCode::from(1),
        Err(stab_core::Error::Input(e)) => {
            errln!("error: {e}");
            ExitCode::from(2)
        }
        Err(e @ stab_core::Error::Internal(_)) => {
            // The whole chain: a context is followed by its reason.
            errln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

/// Parse a recipe and expand its plan (both failures are input errors).
/// `sets` are `--set KEY=VALUE` overrides, validated like the file.
pub fn load_plan(
    path: &std::path::Path,
    sets: &[String],
) -> stab_core::Result<(stab_core::Recipe, stab_core::Plan)> {
    let sets: Vec<stab_core::Override> =
        sets.iter().map(|s| s.parse()).collect::<Result<_, _>>()?;
    let recipe = stab_core::Recipe::from_file_with(path, &sets)?;
    let plan = stab_core::Plan::from_recipe(&recipe).map_err(|e| {
        let source = std::fs::read_to_string(path).unwrap_or_default();
        stab_core::overrides::relocate(e, &sets, &source, &path.display().to_string())
    })?;
    check_stacks(&recipe, &plan)?;
    Ok((recipe, plan))
}

/// Every method stack of the plan can be built (the hooks its methods take combine),
/// refused at the `[[methods]]` table that asks for it, before anything runs or prints.
fn check_stacks(recipe: &stab_core::Recipe, plan: &stab_core::Plan) -> stab_core::Result<()> {
    let mut seen = std::collections::BTreeSet::new();
    for spec in &plan.runs {
        if spec.kind() != stab_core::RecipeKind::Finetune || !seen.insert(&spec.method) {
            continue;
        }
        let stack = spec.stack();
        let mode = spec.mode().unwrap_or_default();
        let built =
            stab_train::MethodStack::build(&stack).and_then(|m| m.check_mode(mode).map(|_| m));
        if let Ok(m) = &built
            && let Some(why) = stab_train::Method::no_op(m, mode)
        {
            tracing::warn!(
                "`{}` changes nothing in mode = {}: {why}. Its runs will equal FineTune's (recorded as details.no_op; the report marks them)",
                spec.method,
                if mode == stab_core::recipe::TrainMode::Head {
                    "head"
                } else {
                    "full"
                }
            );
        }
        if let Err(e) = built {
            let first = stack.names().next().unwrap_or_default().to_string();
            let table = recipe
                .body
                .methods
                .iter()
                .position(|t| t.get_ref().get("name").and_then(|n| n.as_str()) == Some(&first));
            if e.key.as_deref() == Some("train.mode") {
                return Err(recipe
                    .error("train.mode", e.message)
                    .hint(e.hint.unwrap_or_default())
                    .into());
            }
            return Err(match table {
                Some(i) => {
                    let at = &recipe.body.methods[i];
                    let located = recipe.error_at(
                        at.span(),
                        &format!("methods[{i}].stack"),
                        e.message.clone(),
                    );
                    stab_core::InputError {
                        hint: e.hint,
                        ..located
                    }
                }
                None => e,
            }
            .into());
        }
    }
    Ok(())
}
