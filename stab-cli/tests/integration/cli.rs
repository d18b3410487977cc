//! End-to-end tests of the `stab` binary: exit codes, recipe errors, resume after a kill,
//! sharding, reports.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::assets;

fn stab() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_stab"));
    c.env("STAB_LOG", "warn");
    c
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn run_ok(args: &[&str]) -> Output {
    let out = stab().args(args).output().unwrap();
    assert!(
        out.status.success(),
        "stab {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn records(dir: &Path) -> Vec<serde_json::Value> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        if name.starts_with("runs") && name.ends_with(".jsonl") {
            for l in std::fs::read_to_string(&p)
                .unwrap()
                .lines()
                .filter(|l| !l.trim().is_empty())
            {
                v.push(serde_json::from_str(l).unwrap());
            }
        }
    }
    v
}

const SMALL: &str = r#"
name = "small"
kind = "synthetic"
[synthetic]
datasets = 6
points = 60
loo_samples = 2
[[synthetic.studies]]
factor = "margin"
values = [0.2, 0.5, 1.0]
steps = 50
[[synthetic.studies]]
factor = "heads"
values = [1, 3]
steps = 30
checkpoints = [10, 30]
"#;

/// Each bad recipe: (text, expected key, words the message must contain).
const BAD: &[(&str, &str, &[&str])] = &[
    (
        "name = \"b\"\nkind = \"synthetic\"\n[synthetic]\nfactor = \"margin\"\ndatasetz = 5\n",
        "synthetic.datasetz",
        &["unknown key", "did you mean `datasets`", ":5:"],
    ),
    (
        "name = \"b\"\nkind = \"synthetic\"\n[synthetic]\nfactor = \"margin\"\npoints = \"many\"\n",
        "synthetic.points",
        &["invalid type", ":5:"],
    ),
    (
        "name = \"b\"\nkind = \"synthetic\"\n[synthetic]\nfactor = \"margn\"\n",
        "synthetic.factor",
        &[
            "unknown factor `margn`",
            "did you mean `margin`",
            ":4:",
            "hint",
        ],
    ),
    (
        "name = \"b\"\nkind = \"synthetic\"\n[synthetic]\nfactor = \"margin\"\nvalues = []\n",
        "synthetic.values",
        &["`values` is empty", ":5:", "hint"],
    ),
    (
        "name = \"b\"\nkind = \"synthetic\"\n[synthetic]\nfactor = \"samples\"\nmargin = 3.0\nbound = 2.0\n",
        "synthetic.margin",
        &["must be smaller than bound", ":5:", "hint"],
    ),
    (
        "name = \"b\"\nkind = \"synthetic\"\n[synthetic]\nfactor = \"bound\"\nmargin = 0.5\nvalues = [0.4, 2.0]\n",
        "synthetic.values",
        &["must exceed the margin", ":6:"],
    ),
];

#[test]
fn recipe_errors_exit_2_name_the_key_and_write_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    for (i, (text, key, words)) in BAD.iter().enumerate() {
        let recipe = write(tmp.path(), &format!("bad{i}.toml"), text);
        let out_dir = tmp.path().join(format!("out{i}"));
        for cmd in ["run", "plan"] {
            let mut c = stab();
            c.arg(cmd).arg(&recipe);
            if cmd == "run" {
                c.arg("--out").arg(&out_dir);
            }
            let out = c.output().unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{cmd} bad{i}: {err}");
            assert!(
                err.contains(&format!("key `{key}`")),
                "bad{i} should name `{key}`: {err}"
            );
            for w in *words {
                assert!(err.contains(w), "bad{i} message lacks `{w}`: {err}");
            }
            assert_eq!(
                err.matches("error:").count(),
                1,
                "one error, not a cascade: {err}"
            );
        }
        assert!(
            !out_dir.exists(),
            "bad{i}: nothing may be written for a bad recipe"
        );
    }
}

#[test]
fn runs_record_reports_and_resume_without_repeating() {
    let tmp = tempfile::tempdir().unwrap();
    let recipe = write(tmp.path(), "small.toml", SMALL);
    let out = tmp.path().join("out");
    let o = out.to_str().unwrap();
    run_ok(&["run", recipe.to_str().unwrap(), "--out", o]);
    let first = records(&out);
    assert_eq!(first.len(), 5);
    for r in &first {
        for field in [
            "run_id",
            "recipe",
            "task",
            "method",
            "method_params",
            "seed",
            "mode",
            "sweep",
            "metrics",
            "dev_best",
            "best_step",
            "steps",
            "wall_s",
            "stab_version",
        ] {
            assert!(r.get(field).is_some(), "record lacks `{field}`: {r}");
        }
        assert!(r["metrics"]["delta_mean"].as_f64().unwrap() > 0.0);
        let id = r["run_id"].as_str().unwrap();
        assert!(out.join("runs").join(id).join("datasets.csv").exists());
    }
    // A second run finds everything done and appends nothing.
    run_ok(&["run", recipe.to_str().unwrap(), "--out", o]);
    assert_eq!(records(&out).len(), 5);

    let csv = String::from_utf8(run_ok(&["report", o, "--format", "csv"]).stdout).unwrap();
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    for col in [
        "factor",
        "value",
        "datasets",
        "delta_mean",
        "delta_sd",
        "margin_mean",
        "t",
        "direction_gap_mean",
    ] {
        assert!(header.contains(&col), "CSV lacks `{col}`: {header:?}");
    }
    // margin: 3 rows; heads: 2 values × 2 checkpoints.
    assert_eq!(csv.lines().count(), 1 + 3 + 4, "{csv}");
    // csv and json print only: no plots as a side effect.
    run_ok(&["report", o, "--format", "json"]);
    assert!(
        !out.join("plots").exists(),
        "a csv or json report wrote plots"
    );
    let md = String::from_utf8(run_ok(&["report", o]).stdout).unwrap();
    assert!(
        md.contains("### Fig. 7: stability against margin γ (`margin`)")
            && md.contains("| margin γ"),
        "{md}"
    );
    // The summary says what each study predicts and whether it held; images link into plots/.
    assert!(
        md.contains("Lower Δ̂ means more stable")
            && md.contains("- **margin** (Fig. 7): the paper predicts"),
        "{md}"
    );
    assert!(md.contains("](plots/synthetic-margin.svg)"), "{md}");
    for svg in [
        "synthetic-margin.svg",
        "synthetic-heads.svg",
        "synthetic-heads-gap-vs-t.svg",
    ] {
        let text = std::fs::read_to_string(out.join("plots").join(svg)).unwrap();
        assert!(
            text.starts_with("<svg") && text.contains("polyline"),
            "{svg} is not a line plot"
        );
    }
}

#[test]
fn killed_run_resumes_with_each_run_exactly_once() {
    let tmp = tempfile::tempdir().unwrap();
    // Eight runs of a few hundred milliseconds each.
    let recipe = write(
        tmp.path(),
        "kill.toml",
        "name = \"kill\"\nkind = \"synthetic\"\n[synthetic]\nfactor = \"samples\"\nvalues = [200, 210, 220, 230, 240, 250, 260, 270]\ndatasets = 40\nloo_samples = 4\nsteps = 1500\n",
    );
    let out = tmp.path().join("out");
    let store = out.join("runs.jsonl");
    let mut child = stab()
        .args([
            "run",
            recipe.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--threads",
            "1",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    loop {
        let n = std::fs::read_to_string(&store)
            .map(|s| s.lines().count())
            .unwrap_or(0);
        if n >= 2 {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(120), "no progress");
        assert!(
            child.try_wait().unwrap().is_none(),
            "finished before it could be killed; make the runs longer"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let partial = records(&out).len();
    assert!(
        (2..8).contains(&partial),
        "killed mid-way, {partial} runs recorded"
    );
    run_ok(&[
        "run",
        recipe.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    let all = records(&out);
    let mut ids: Vec<&str> = all.iter().map(|r| r["run_id"].as_str().unwrap()).collect();
    ids.sort_unstable();
    let before = ids.len();
    ids.dedup();
    assert_eq!(before, ids.len(), "a run was recorded twice");
    assert_eq!(ids.len(), 8, "every planned run is recorded");
}

#[test]
fn shards_partition_the_plan_and_reports_merge_them() {
    let tmp = tempfile::tempdir().unwrap();
    let recipe = write(tmp.path(), "small.toml", SMALL);
    let r = recipe.to_str().unwrap();
    let plan = String::from_utf8(run_ok(&["plan", r, "--shards", "3"]).stdout).unwrap();
    let rows: Vec<(String, String)> = plan
        .lines()
        .filter(|l| !l.starts_with('#') && !l.starts_with("shard"))
        .map(|l| {
            let mut f = l.split('\t');
            (f.next().unwrap().to_string(), f.next().unwrap().to_string())
        })
        .collect();
    assert_eq!(rows.len(), 5);
    // Deterministic: the same assignment twice.
    assert_eq!(
        plan,
        String::from_utf8(run_ok(&["plan", r, "--shards", "3"]).stdout).unwrap()
    );
    let out = tmp.path().join("out");
    for i in 0..3 {
        run_ok(&[
            "run",
            r,
            "--out",
            out.to_str().unwrap(),
            "--shard",
            &format!("{i}/3"),
        ]);
    }
    let recs = records(&out);
    assert_eq!(recs.len(), 5, "the shards together run each run once");
    for (shard, id) in &rows {
        let file = out.join(format!("runs.shard-{shard}-of-3.jsonl"));
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        assert!(
            text.contains(id.as_str()),
            "{id} should be in {}",
            file.display()
        );
    }
    let slurm = tmp.path().join("job.sbatch");
    run_ok(&[
        "plan",
        r,
        "--shards",
        "3",
        "--slurm",
        slurm.to_str().unwrap(),
        "--cpus-per-task",
        "2",
        "--mem",
        "8G",
        "--time",
        "01:30:00",
        "--partition",
        "short",
        "--set",
        "synthetic.seed=7",
    ]);
    let script = std::fs::read_to_string(&slurm).unwrap();
    for line in [
        "#SBATCH --array=0-2",
        "#SBATCH --cpus-per-task=2",
        "#SBATCH --mem=8G",
        "#SBATCH --time=01:30:00",
        "#SBATCH --partition=short",
        "--set 'synthetic.seed=7' --shard \"${SLURM_ARRAY_TASK_ID}/3\"",
        env!("CARGO_BIN_EXE_stab"),
    ] {
        assert!(script.contains(line), "{line} missing from\n{script}");
    }
    let bad = stab()
        .args([
            "plan",
            r,
            "--slurm",
            slurm.to_str().unwrap(),
            "--mem",
            "8 G",
        ])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--mem"));
}

#[test]
fn same_recipe_same_results_whatever_the_thread_count() {
    let tmp = tempfile::tempdir().unwrap();
    let recipe = write(tmp.path(), "small.toml", SMALL);
    let mut metrics = Vec::new();
    for threads in ["1", "2"] {
        let out = tmp.path().join(format!("out{threads}"));
        run_ok(&[
            "run",
            recipe.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--threads",
            threads,
        ]);
        let mut recs = records(&out);
        recs.sort_by(|a, b| a["run_id"].as_str().cmp(&b["run_id"].as_str()));
        metrics.push(
            recs.iter()
                .map(|r| {
                    (
                        r["run_id"].clone(),
                        r["metrics"].clone(),
                        r["details"].clone(),
                    )
                })
                .collect::<Vec<_>>(),
        );
    }
    assert_eq!(metrics[0], metrics[1]);
}

#[test]
fn jobs_run_cells_at_once_with_the_same_records() {
    let tmp = tempfile::tempdir().unwrap();
    let recipe = tiny_recipe(tmp.path(), "");
    let mut seen = Vec::new();
    for jobs in ["1", "3"] {
        let out = tmp.path().join(format!("jobs{jobs}"));
        run_ok(&[
            "run",
            recipe.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--threads",
            "3",
            "--jobs",
            jobs,
        ]);
        let mut recs = records(&out);
        assert_eq!(recs.len(), 8, "every run once with --jobs {jobs}");
        recs.sort_by(|a, b| a["run_id"].as_str().cmp(&b["run_id"].as_str()));
        seen.push(
            recs.iter()
                .map(|r| {
                    let mut d = r["details"].clone();
                    d.as_object_mut().unwrap().remove("seconds");
                    d.as_object_mut().unwrap().remove("feature_cache");
                    (r["run_id"].clone(), r["metrics"].clone(), d)
                })
                .collect::<Vec<_>>(),
        );
    }
    assert_eq!(seen[0], seen[1]);
    let bad = stab()
        .args(["run", recipe.to_str().unwrap(), "--jobs", "0"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn list_shows_every_registered_plugin() {
    let out = String::from_utf8(run_ok(&["list"]).stdout).unwrap();
    for name in ["finetune", "mixout", "lnsr", "mmr", "mhloss", "surt"] {
        assert!(
            out.contains(name),
            "method {name} missing: the plugin crate may not be linked"
        );
    }
    for name in [
        "cola", "sst2", "mrpc", "qqp", "rte", "wnli", "cb", "wsc", "boolq", "multirc", "wic",
    ] {
        assert!(out.contains(&format!("  {name} ")), "task {name} missing");
    }
    for name in ["heads", "samples", "margin", "distance", "bound"] {
        assert!(out.contains(&format!("  {name} ")), "factor {name} missing");
    }
}

#[test]
fn finetune_recipe_is_validated_and_planned() {
    let tmp = tempfile::tempdir().unwrap();
    let ok = write(
        tmp.path(),
        "ft.toml",
        "name = \"ft\"\n[model]\npath = \"m\"\n[data]\ndir = \"d\"\ntasks = [\"rte\", \"cb\"]\n[train]\nseeds = 3\n[[methods]]\nname = \"finetune\"\n[[methods]]\nname = \"mmr\"\nalpha = 0.5\n[sweep]\n\"train.lr\" = [1e-5, 2e-5]\n\"mmr.alpha\" = [0.1, 1.0]\n",
    );
    let plan = String::from_utf8(run_ok(&["plan", ok.to_str().unwrap()]).stdout).unwrap();
    // finetune: 2 tasks × 3 seeds × 2 lr; mmr: × 2 alphas.
    assert!(plan.starts_with("# ft (finetune): 36 runs"), "{plan}");
    let bad = write(
        tmp.path(),
        "bad.toml",
        "name = \"ft\"\n[model]\npath = \"m\"\n[data]\ndir = \"d\"\ntasks = [\"rte\"]\n[[methods]]\nname = \"mhlos\"\n",
    );
    let out = stab()
        .args(["plan", bad.to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        err.contains("did you mean `mhloss`") && err.contains(":7:"),
        "{err}"
    );
    let bad = write(
        tmp.path(),
        "bad2.toml",
        "name = \"ft\"\n[model]\npath = \"m\"\n[data]\ndir = \"d\"\ntasks = [\"rte\"]\n[[methods]]\nname = \"mmr\"\nalpah = 1\n",
    );
    let out = stab()
        .args(["plan", bad.to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        err.contains("did you mean `alpha`")
            && err.contains(":9:")
            && err.contains("methods[0].alpah"),
        "{err}"
    );
    let bad = write(
        tmp.path(),
        "bad3.toml",
        "name = \"ft\"\n[model]\npath = \"m\"\n[data]\ndir = \"d\"\ntasks = [\"rtee\"]\n[[methods]]\nname = \"mmr\"\n",
    );
    let out = stab()
        .args(["plan", bad.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("did you mean `rte`"));
    // The model directory does not exist: one exit-2 error before anything is written.
    let out = stab()
        .args([
            "run",
            ok.to_str().unwrap(),
            "--out",
            tmp.path().join("o").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(!tmp.path().join("o").exists());
}

#[test]
fn synthetic_run_ids_are_pinned() {
    // Run ids hash the run's resolved settings; these were produced before RunSpec became
    // a sum type and must never change (finished runs would be re-run on resume).
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let plan = String::from_utf8(
        run_ok(&[
            "plan",
            root.join("recipes/quickstart.toml").to_str().unwrap(),
        ])
        .stdout,
    )
    .unwrap();
    for id in [
        "heads-1-78e50cf1f9da90dc",
        "heads-5-52223c553b06b8a7",
        "heads-20-5ed93b30b16962d8",
    ] {
        assert!(plan.contains(id), "{id} missing from\n{plan}");
    }
}

fn tiny_recipe(tmp: &Path, extra_data: &str) -> PathBuf {
    let shared = assets::root().join("testdata");
    write(
        tmp,
        "tiny.toml",
        &format!(
            "name = \"tiny\"\n[model]\npath = \"{}\"\nmax_len = 64\n[data]\ndir = \"{}\"\ntasks = [\"cb\"]\n{extra_data}[train]\nmax_steps = 2\nbatch_size = 8\nseeds = 2\n[[methods]]\nname = \"finetune\"\n[[methods]]\nname = \"mmr\"\n[sweep]\n\"train.mode\" = [\"head\", \"full\"]\n",
            shared.join("fixtures/tiny-bert").display(),
            shared.join("data").display()
        ),
    )
}

#[test]
fn finetune_runs_record_resume_and_report() {
    let tmp = tempfile::tempdir().unwrap();
    let recipe = tiny_recipe(tmp.path(), "");
    let out_dir = tmp.path().join("out");
    let out = out_dir.to_str().unwrap();
    run_ok(&["run", recipe.to_str().unwrap(), "--out", out]);
    let recs = records(&out_dir);
    assert_eq!(recs.len(), 8, "2 methods × 2 modes × 2 seeds");
    for r in &recs {
        assert_eq!(r["kind"], "finetune");
        assert_eq!(r["steps"], 2);
        assert!(r["split"].as_str().unwrap().starts_with("file:"), "{r}");
        assert!(r["seeds"]["head_init"].is_u64() && r["seeds"]["data_order"].is_u64());
        assert!(r["metrics"]["primary"].as_f64().unwrap().is_finite());
        assert!(r["details"]["dev_curve"].as_array().unwrap().len() == 1);
    }
    // Resume: nothing runs again.
    run_ok(&["run", recipe.to_str().unwrap(), "--out", out]);
    assert_eq!(records(&out_dir).len(), 8);
    let table = String::from_utf8(run_ok(&["report", out]).stdout).unwrap();
    assert!(
        table.contains("mmr train.mode=\"full\"") && table.contains("cb"),
        "{table}"
    );
}

#[test]
fn a_split_file_that_does_not_fit_is_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    let splits = tmp.path().join("splits");
    std::fs::create_dir(&splits).unwrap();
    write(
        &splits,
        "cb.json",
        "{\"train_rows\": 140, \"dev_rows\": 20, \"dev\": [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 999]}",
    );
    let recipe = tiny_recipe(tmp.path(), &format!("splits = \"{}\"\n", splits.display()));
    let out = stab()
        .args([
            "run",
            recipe.to_str().unwrap(),
            "--out",
            tmp.path().join("o").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("cb.json") && err.contains("dev row 999 is out of range"),
        "{err}"
    );
    assert!(
        !tmp.path().join("o").exists(),
        "nothing written for bad input"
    );
}

#[test]
fn data_check_prints_counts_and_fails_clearly() {
    let Some(data) = assets::full_data("data_check_prints_counts_and_fails_clearly") else {
        return;
    };
    let out = run_ok(&[
        "data",
        "check",
        "--task",
        "cb",
        "--data-dir",
        data.to_str().unwrap(),
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["task"], "cb");
    assert_eq!(
        v["splits"],
        serde_json::json!({"train": 225, "dev": 25, "test": 56})
    );
    assert!(
        v["split"]["source"]
            .as_str()
            .unwrap()
            .contains("fixed split file"),
        "{v}"
    );
    // MRPC with the author's split: 374 dev rows, as in the paper.
    let out = run_ok(&[
        "data",
        "check",
        "--task",
        "mrpc",
        "--data-dir",
        data.to_str().unwrap(),
        "--json",
    ]);
    let m: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        m["splits"],
        serde_json::json!({"train": 3294, "dev": 374, "test": 408})
    );
    assert_eq!(
        v["labels"]["test"],
        serde_json::json!({"entailment": 23, "contradiction": 28, "neutral": 5})
    );
    let out = run_ok(&[
        "data",
        "check",
        "--task",
        "rte",
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("train   2241 rows"));
    // BoolQ's train file is absent from shared/data: one clear error naming the path.
    let out = stab()
        .args([
            "data",
            "check",
            "--task",
            "boolq",
            "--data-dir",
            data.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("superglue/BoolQ/train.jsonl"), "{err}");
    let out = stab()
        .args([
            "data",
            "check",
            "--task",
            "cola2",
            "--data-dir",
            data.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("did you mean `cola`"));
}

#[test]
fn every_task_metric_is_a_known_primary_metric() {
    for def in stab_data::tasks::TASKS {
        assert!(
            stab_eval::PrimaryMetric::parse(def.metric).is_some(),
            "{}: {}",
            def.name,
            def.metric
        );
    }
}

#[test]
fn two_processes_on_one_store_run_each_run_exactly_once() {
    let tmp = tempfile::tempdir().unwrap();
    // 12 margin values, each a few hundred milliseconds: the two processes overlap.
    let recipe = write(
        tmp.path(),
        "race.toml",
        "name = \"race\"\nkind = \"synthetic\"\n[synthetic]\nfactor = \"margin\"\nvalues = [0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.5, 0.6, 0.7, 0.8, 1.0]\ndatasets = 40\npoints = 200\nsteps = 200\n",
    );
    let out = tmp.path().join("out");
    let spawn = || {
        stab()
            .args([
                "run",
                recipe.to_str().unwrap(),
                "--out",
                out.to_str().unwrap(),
                "--threads",
                "1",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    for child in [a, b] {
        let o = child.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let recs = records(&out);
    let mut ids: Vec<String> = recs
        .iter()
        .map(|r| r["run_id"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    let n = ids.len();
    ids.dedup();
    assert_eq!((n, ids.len()), (12, 12), "every run exactly once");
}

#[test]
fn every_shipped_recipe_plans_and_set_overrides_model_and_data() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let mut recipes: Vec<PathBuf> = Vec::new();
    for dir in ["recipes", "recipes/paper"] {
        for e in std::fs::read_dir(root.join(dir)).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "toml") {
                recipes.push(p);
            }
        }
    }
    assert!(recipes.len() >= 12, "{recipes:?}");
    for r in &recipes {
        let out = stab().arg("plan").arg(r).output().unwrap();
        assert!(
            out.status.success(),
            "{}: {}",
            r.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // --set reaches any key, changes the plan and is validated like the file.
    let table2 = root.join("recipes/paper/table2-full.toml");
    let plan = |sets: &[&str]| {
        let mut c = stab();
        c.arg("plan").arg(&table2);
        for s in sets {
            c.args(["--set", s]);
        }
        c.output().unwrap()
    };
    let base = String::from_utf8(plan(&[]).stdout).unwrap();
    let moved = plan(&["model.path=/models/roberta-base", "data.tasks=[\"cb\"]"]);
    assert!(moved.status.success());
    let moved = String::from_utf8(moved.stdout).unwrap();
    assert!(
        base.contains("660 runs") && moved.contains("60 runs"),
        "{moved}"
    );
    let bad = plan(&["train.lrr=1"]);
    assert_eq!(bad.status.code(), Some(2));
    let msg = String::from_utf8_lossy(&bad.stderr);
    assert!(
        msg.contains("--set train.lrr=1") && msg.contains("did you mean `lr`"),
        "{msg}"
    );
    let range = plan(&["train.lr=-1"]);
    assert_eq!(range.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&range.stderr).contains("--set train.lr=-1"),
        "{}",
        String::from_utf8_lossy(&range.stderr)
    );
}

#[test]
fn shards_are_balanced_by_estimated_cost_not_by_count() {
    // RTE has about 10× CB's training rows: 6 RTE runs and 6 CB runs over 3 shards.
    let tmp = tempfile::tempdir().unwrap();
    let shared = assets::root().join("testdata");
    let recipe = write(
        tmp.path(),
        "mix.toml",
        &format!(
            "name = \"mix\"\n[model]\npath = \"{}\"\n[data]\ndir = \"{}\"\ntasks = [\"rte\", \"cb\"]\n[train]\nseeds = 6\n[[methods]]\nname = \"finetune\"\n",
            shared.join("fixtures/tiny-bert").display(),
            shared.join("data").display()
        ),
    );
    let r = recipe.to_str().unwrap();
    let plan = String::from_utf8(run_ok(&["plan", r, "--shards", "3"]).stdout).unwrap();
    let cost_line = plan
        .lines()
        .find(|l| l.starts_with("# estimated cost per shard:"))
        .unwrap();
    let shares: Vec<f64> = cost_line
        .split(':')
        .nth(1)
        .unwrap()
        .split_whitespace()
        .map(|s| s.trim_end_matches('%').parse().unwrap())
        .collect();
    assert_eq!(shares.len(), 3);
    for s in &shares {
        assert!((s - 33.3).abs() < 6.0, "unbalanced: {cost_line}");
    }
    // Each shard holds two RTE runs; CB runs fill in around them.
    for shard in 0..3 {
        let rte = plan
            .lines()
            .filter(|l| l.starts_with(&format!("{shard}\t")) && l.contains("\trte\t"))
            .count();
        assert_eq!(rte, 2, "shard {shard}:\n{plan}");
    }
    // The same plan gives the same assignment.
    let again = String::from_utf8(run_ok(&["plan", r, "--shards", "3"]).stdout).unwrap();
    assert_eq!(plan, again);
}

/// A recipe's own task (docs/data.md §7) on the example CSV: head and full tuning, two
/// methods, the held-out test rows written beside the store, `data check --recipe`, the
/// report, and the checkpoint naming its classes; recipe errors at the table's keys.
#[test]
fn a_custom_task_runs_like_a_builtin_one() {
    let tmp = tempfile::tempdir().unwrap();
    let root = assets::root();
    let table = format!(
        "[data.custom.reviews]\ntrain = \"{}\"\ntext = \"review\"\nlabel = \"sentiment\"\n",
        root.join("examples/own-task/reviews.csv").display()
    );
    let recipe = write(
        tmp.path(),
        "own.toml",
        &format!(
            "name = \"own\"\n[model]\npath = \"{}\"\nmax_len = 32\n[data]\ntasks = [\"reviews\"]\n{table}[train]\nmax_steps = 2\nbatch_size = 8\nseeds = 2\nsave_best = true\n[[methods]]\nname = \"finetune\"\n[[methods]]\nname = \"mmr\"\n[sweep]\n\"train.mode\" = [\"head\", \"full\"]\n",
            root.join("testdata/fixtures/tiny-bert").display()
        ),
    );
    let check = run_ok(&["data", "check", "--recipe", recipe.to_str().unwrap()]);
    let check = String::from_utf8(check.stdout).unwrap();
    assert!(
        check.contains("reviews: train ") && check.contains("test = 0.2 of train, held out"),
        "{check}"
    );
    assert!(
        check.contains("train    360 rows") && check.contains("test     100 rows"),
        "{check}"
    );
    let out_dir = tmp.path().join("out");
    let out = out_dir.to_str().unwrap();
    run_ok(&["run", recipe.to_str().unwrap(), "--out", out]);
    let recs = records(&out_dir);
    assert_eq!(recs.len(), 8, "2 methods × 2 modes × 2 seeds");
    for r in &recs {
        assert_eq!(r["task"], "reviews");
        assert_eq!(r["inputs"]["data"], recs[0]["inputs"]["data"]);
        assert!(r["split"].as_str().unwrap().starts_with("seeded:"), "{r}");
        assert!(r["metrics"]["primary"].as_f64().unwrap().is_finite());
    }
    let splits: Vec<_> = std::fs::read_dir(out_dir.join("splits")).unwrap().collect();
    assert_eq!(splits.len(), 1, "one held-out row list");
    let held: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(splits[0].as_ref().unwrap().path()).unwrap())
            .unwrap();
    assert_eq!(held["test"].as_array().unwrap().len(), 100);
    let table_out = String::from_utf8(run_ok(&["report", out]).stdout).unwrap();
    assert!(table_out.contains("reviews"), "{table_out}");
    // A full-tuning checkpoint names the task's classes and its table in its metadata.
    let full: Vec<PathBuf> = recs
        .iter()
        .filter(|r| r["mode"] == "full")
        .filter_map(|r| r["details"]["checkpoint"].as_str())
        .map(|rel| out_dir.join(rel))
        .collect();
    assert_eq!(full.len(), 4, "save_best keeps every full run's model");
    let bytes = std::fs::read(full[0].join("model.safetensors")).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let meta = &header["__metadata__"];
    assert_eq!(meta["stab_labels"], "[\"negative\",\"positive\"]", "{meta}");
    assert_eq!(meta["stab_metric"], "accuracy");
    assert!(
        meta["stab_task_spec"]
            .as_str()
            .unwrap()
            .contains("reviews.csv"),
        "{meta}"
    );
    run_ok(&["analyze", "distance", full[0].to_str().unwrap()]);

    // Errors at the table's keys; `dir` is needed only for built-in tasks.
    for (extra, words) in [
        (
            "tasks = [\"reveiws\"]\n",
            &["unknown task `reveiws`", "did you mean `reviews`"][..],
        ),
        (
            "tasks = [\"reviews\", \"rte\"]\n",
            &["`dir` is missing"][..],
        ),
    ] {
        let text = std::fs::read_to_string(&recipe)
            .unwrap()
            .replace("tasks = [\"reviews\"]\n", extra);
        let bad = write(tmp.path(), "bad.toml", &text);
        let o = stab()
            .args(["plan", bad.to_str().unwrap()])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{err}");
        for w in words {
            assert!(err.contains(w), "`{w}` not in {err}");
        }
    }
    let shadow = std::fs::read_to_string(&recipe)
        .unwrap()
        .replace("reviews", "rte");
    let bad = write(
        tmp.path(),
        "bad.toml",
        &format!("{shadow}\n").replace("[data]\n", "[data]\ndir = \"x\"\n"),
    );
    let o = stab()
        .args(["plan", bad.to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("data.custom.rte") && err.contains("is a built-in task"),
        "{err}"
    );
}
