//! `stab plan RECIPE [--shards N] [--slurm FILE]`

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;
use stab_core::InputError;

#[derive(Args)]
pub struct PlanArgs {
    /// The recipe (TOML).
    recipe: PathBuf,
    /// Results directory the runs write to (default: the recipe's `out`, else
    /// runs/<name>); the sbatch script passes it to `stab run --out`.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Split the runs into N shards balanced by estimated cost (task size × epochs × method)
    /// and show each run's shard.
    #[arg(long)]
    shards: Option<usize>,
    /// Write an sbatch script running one shard per array task (N = --shards, default one
    /// shard per run).
    #[arg(long)]
    slurm: Option<PathBuf>,
    /// Replace an existing --slurm FILE (without it, an existing file is refused).
    #[arg(long)]
    overwrite: bool,
    /// sbatch: CPU cores per array task; each shard runs with this many threads.
    #[arg(long, default_value_t = 4, value_name = "N")]
    cpus_per_task: usize,
    /// sbatch: memory per array task, in Slurm's syntax (e.g. 8G); default: the cluster's.
    #[arg(long, value_name = "SIZE")]
    mem: Option<String>,
    /// sbatch: wall-time limit per array task (e.g. 12:00:00); default: the partition's.
    #[arg(long, value_name = "TIME")]
    time: Option<String>,
    /// sbatch: the partition to submit to; default: the cluster's default partition.
    #[arg(long)]
    partition: Option<String>,
    /// The `stab` binary the array tasks run (default: this binary's absolute path, so a
    /// plugin binary such as `stab-l2sp` schedules itself).
    #[arg(long, value_name = "PATH")]
    stab: Option<PathBuf>,
    /// Override a recipe value, e.g. --set model.path=models/minilm --set train.lr=3e-5
    /// (repeatable; validated like the file).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    sets: Vec<String>,
}

pub fn plan(args: PlanArgs) -> stab_core::Result<()> {
    let (recipe, plan) = crate::load_plan(&args.recipe, &args.sets)?;
    if let Some(n) = args.shards {
        stab_core::limits::SHARDS.check_usize("--shards", n)?;
    }
    let shards = args.shards.unwrap_or(if args.slurm.is_some() {
        plan.runs.len().max(1)
    } else {
        1
    });
    // The script first: a refusal (an existing file, a bad flag) prints nothing else.
    let script = match &args.slurm {
        Some(path) => {
            let script = sbatch_script(&args, &recipe, plan.runs.len(), shards)?;
            stab_core::atomic::check_replace(
                path,
                Some(script.as_bytes()),
                "--slurm",
                args.overwrite,
            )?;
            Some((path, script))
        }
        None => None,
    };
    let out = args.out.clone().unwrap_or_else(|| recipe.out_dir());
    outln!(
        "# {} ({}): {} runs, out = {}",
        recipe.name(),
        format!("{:?}", plan.kind).to_lowercase(),
        plan.runs.len(),
        out.display()
    );
    if let Some(d) = recipe.sequential() {
        outln!(
            "# sequential: these are every arm's seeds up to seeds.max = {}; rounds run {} seeds per arm, then {} more for each arm still undecided against {} (at most {} rounds)",
            d.max,
            d.min,
            d.step,
            d.baseline,
            d.looks().len()
        );
    }
    if let Some(t) = &recipe.body.tune {
        outln!(
            "# [tune]: first {} search runs ({} × {} values × {} seeds per arm, on dev); then these runs, each at its arm's chosen {} (their run ids follow from the choice)",
            t.values.len() as u64
                * t.seeds
                * plan
                    .runs
                    .iter()
                    .map(|r| (&r.task, &r.method, &r.method_params, &r.sweep))
                    .collect::<std::collections::HashSet<_>>()
                    .len() as u64,
            t.key,
            t.values.len(),
            t.seeds,
            t.key
        );
    }
    outln!("shard\trun_id\ttask\tmethod\tseed\tsweep");
    let assignment = plan.shards(shards);
    for (r, shard) in plan.runs.iter().zip(&assignment) {
        let sweep: Vec<String> = r.sweep.iter().map(|(k, v)| format!("{k}={v}")).collect();
        outln!(
            "{}\t{}\t{}\t{}\t{}\t{}",
            shard,
            r.run_id,
            r.task,
            r.method,
            r.seed,
            sweep.join(" ")
        );
    }
    if shards > 1 {
        let mut counts = vec![0usize; shards];
        let mut load = vec![0.0f64; shards];
        for (r, &s) in plan.runs.iter().zip(&assignment) {
            counts[s] += 1;
            load[s] += stab_core::cost::run_cost(r);
        }
        let total: f64 = load.iter().sum::<f64>().max(f64::MIN_POSITIVE);
        let counts: Vec<String> = counts.iter().map(usize::to_string).collect();
        let shares: Vec<String> = load
            .iter()
            .map(|l| format!("{:.1}%", 100.0 * l / total))
            .collect();
        outln!("# runs per shard: {}", counts.join(" "));
        outln!("# estimated cost per shard: {}", shares.join(" "));
    }
    if let Some((path, script)) = script {
        stab_core::atomic::write_file(path, script.as_bytes())?;
        errln!("wrote {} (sbatch --array=0-{})", path.display(), shards - 1);
    }
    Ok(())
}

/// The sbatch array script: task i runs shard i of `shards` into its own store file.
fn sbatch_script(
    args: &PlanArgs,
    recipe: &stab_core::Recipe,
    runs: usize,
    shards: usize,
) -> stab_core::Result<String> {
    for (key, value) in [
        ("--mem", &args.mem),
        ("--time", &args.time),
        ("--partition", &args.partition),
    ] {
        if let Some(v) = value
            && (v.is_empty() || v.chars().any(|c| c.is_whitespace() || c.is_control()))
        {
            return Err(
                InputError::new(format!("{key} {v:?} is not a single sbatch word"))
                    .key(key)
                    .hint("e.g. --mem 8G --time 12:00:00 --partition gpu")
                    .into(),
            );
        }
    }
    if args.cpus_per_task == 0 {
        return Err(InputError::new("--cpus-per-task must be at least 1")
            .key("--cpus-per-task")
            .hint("e.g. --cpus-per-task 4")
            .into());
    }
    let stab = match &args.stab {
        Some(p) => p.clone(),
        None => std::env::current_exe().context("cannot locate the running stab binary")?,
    };
    let recipe_path = std::fs::canonicalize(&args.recipe).unwrap_or(args.recipe.clone());
    let job: String = recipe
        .name()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut s = String::new();
    s.push_str("#!/bin/bash\n");
    s.push_str(&format!(
        "# Generated by `stab plan --slurm` for recipe {}: {runs} runs in {shards} shards.\n",
        recipe.name()
    ));
    s.push_str(&format!(
        "# Each array task runs one shard into its own store file; `stab report {}` merges them.\n",
        args.out
            .clone()
            .unwrap_or_else(|| recipe.out_dir())
            .display()
    ));
    s.push_str(&format!("#SBATCH --job-name=stab-{job}\n"));
    s.push_str(&format!("#SBATCH --array=0-{}\n", shards - 1));
    s.push_str("#SBATCH --ntasks=1\n");
    s.push_str(&format!("#SBATCH --cpus-per-task={}\n", args.cpus_per_task));
    if let Some(mem) = &args.mem {
        s.push_str(&format!("#SBATCH --mem={mem}\n"));
    }
    if let Some(time) = &args.time {
        s.push_str(&format!("#SBATCH --time={time}\n"));
    }
    if let Some(partition) = &args.partition {
        s.push_str(&format!("#SBATCH --partition={partition}\n"));
    }
    s.push_str(&format!("#SBATCH --output=stab-{job}-%A_%a.log\n"));
    if let Some(d) = recipe.sequential() {
        s.push_str(&format!(
            "# Sequential seeds: one array runs one round (each task its shard of the round's runs).\n# Submit it once per round, at most {} times, e.g.\n#   for r in $(seq {}); do sbatch --wait THIS_FILE || break; done\n# A round already run does nothing; `stab run` without --shard finishes a grid too.\n",
            d.looks().len(),
            d.looks().len()
        ));
    }
    s.push_str("set -euo pipefail\n");
    let sets: String = args
        .sets
        .iter()
        .map(|kv| format!(" --set {}", shell_quote(kv)))
        .collect();
    let out = match &args.out {
        Some(dir) => {
            let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.clone());
            format!(" --out {}", shell_quote(&dir.display().to_string()))
        }
        None => String::new(),
    };
    s.push_str(&format!(
        "{} run {}{sets}{out} --shard \"${{SLURM_ARRAY_TASK_ID}}/{shards}\" --threads \"${{SLURM_CPUS_PER_TASK:-1}}\"\n",
        shell_quote(&stab.display().to_string()),
        shell_quote(&recipe_path.display().to_string()),
    ));
    Ok(s)
}

/// A word the shell reads back literally: single quotes, with `'` written as `'\''`.
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn shell_quote_survives_spaces_quotes_and_dollars() {
        assert_eq!(super::shell_quote("a b"), "'a b'");
        assert_eq!(super::shell_quote("it's $HOME"), "'it'\\''s $HOME'");
    }
}
