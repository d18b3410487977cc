//! `stab report DIR [--format md|csv|latex|json] [--plots DIR] [--html]`

use std::path::PathBuf;

use clap::Args;
use stab_core::InputError;
use stab_eval::{Report, ReportFormat};

#[derive(Args)]
pub struct ReportArgs {
    /// Results directory holding runs*.jsonl.
    dir: PathBuf,
    /// md (default), csv, latex or json (every table as one document; keys in docs/design.md §5).
    #[arg(long, default_value = "md")]
    format: String,
    /// Where to write SVG plots (default DIR/plots). Plots are written with the Markdown
    /// report, with --html, or when this is given; csv, latex and json print only.
    #[arg(long)]
    plots: Option<PathBuf>,
    /// Also write DIR/report.html: one self-contained page with the tables and the plots.
    #[arg(long)]
    html: bool,
}

/// The recipes the records come from, for the page's title (`first-study`, or
/// `minilm-peft-cb + minilm-peft-cb-lr` for a directory two recipes wrote into).
fn recipe_names(report: &Report) -> String {
    let names: std::collections::BTreeSet<&str> =
        report.records.iter().map(|r| r.recipe.as_str()).collect();
    names.into_iter().collect::<Vec<_>>().join(" + ")
}

pub fn report(args: ReportArgs) -> stab_core::Result<()> {
    let format: ReportFormat = args.format.parse().map_err(|m: stab_core::Refusal| {
        m.at(InputError::new("").key("--format"))
            .hint("use md, csv, latex or json")
    })?;
    if !args.dir.is_dir() {
        return Err(
            InputError::new(format!("{} is not a directory", args.dir.display()))
                .hint("pass the results directory of a recipe (its `out`, default runs/<name>)")
                .into(),
        );
    }
    let report = Report::load(&args.dir)?;
    if let Some(first) = report.conflicts.first() {
        tracing::warn!(
            "{} run(s) were recorded more than once with different results (e.g. {first}); the report uses the latest record of each. Another experiment or a --fresh rerun wrote into this directory",
            report.conflicts.len()
        );
    }
    if let Some(first) = report.findings().pooled.first() {
        tracing::warn!(
            "{} seed(s) are held twice by one row from runs of different settings (e.g. {} on {}, seed {}: {} and {}); the report pools them. Run each setting into its own directory",
            report.findings().pooled.len(),
            first.method,
            first.task,
            first.seed,
            first.run_ids[0],
            first.run_ids[1]
        );
    }
    for s in &report.skipped {
        tracing::warn!("skipped an unreadable store line: {s}");
    }
    if report.records.is_empty() {
        return Err(
            InputError::new(format!("no finished runs in {}", args.dir.display()))
                .hint("run a recipe first: stab run recipes/quickstart.toml")
                .into(),
        );
    }
    let with_plots = format == ReportFormat::Markdown || args.html || args.plots.is_some();
    // Where the plots go must be writable before anything is printed.
    let plots = args.plots.unwrap_or_else(|| args.dir.join("plots"));
    if with_plots {
        stab_core::atomic::create_dir(&plots).map_err(|e| match e {
            stab_core::Error::Input(ie) => ie
                .hint(
                    "the plots are written beside the report: pass --plots DIR somewhere writable",
                )
                .into(),
            e => e,
        })?;
    }
    {
        use std::io::Write as _;
        let text = match format {
            ReportFormat::Markdown => report.markdown(&plots_link(&args.dir, &plots)),
            other => report.render(other),
        };
        let _ = write!(std::io::stdout(), "{text}");
    }
    if !with_plots {
        return Ok(());
    }
    let written = report.write_plots(&plots)?;
    let (files, failed) = (written.written, written.failed);
    if !files.is_empty() {
        errln!("wrote {} plots to {}", files.len(), plots.display());
    }
    for (path, why) in &failed {
        tracing::warn!("could not write the plot {}: {why}", path.display());
    }
    if args.html {
        let title = format!("stab report: {}", recipe_names(&report));
        let page =
            stab_eval::report::html::write_page(&args.dir, &title, &report.document(), &files)?;
        errln!("wrote {}", page.display());
    }
    Ok(())
}

/// The Markdown's image prefix: the plots folder as seen from DIR (where `report.md` is
/// saved), `plots/` by default; a folder outside DIR is linked by its absolute path.
fn plots_link(dir: &std::path::Path, plots: &std::path::Path) -> String {
    let abs = |p: &std::path::Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let (dir, plots) = (abs(dir), abs(plots));
    let link = match plots.strip_prefix(&dir) {
        Ok(rel) => rel.to_path_buf(),
        Err(_) => plots,
    };
    let mut text = link.to_string_lossy().into_owned();
    if !text.is_empty() && !text.ends_with('/') {
        text.push('/');
    }
    text
}
