//! What stab writes and prints, under conditions a pipeline creates: files the user named
//! are never replaced unasked, a closed pipe never stops a grid, pipes get no colour
//! codes, and one experiment has one identity whatever the sign of a zero.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::assets;

fn stab() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_stab"));
    c.env("STAB_LOG", "info");
    c
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

const SYNTHETIC: &str = "name = \"o\"\nkind = \"synthetic\"\n[synthetic]\nfactor = \"margin\"\nvalues = [0.2, 0.5, 1.0]\ndatasets = 3\npoints = 40\nsteps = 20\nloo_samples = 2\n";

fn lines(p: &Path) -> usize {
    std::fs::read_to_string(p)
        .map(|s| s.lines().filter(|l| !l.trim().is_empty()).count())
        .unwrap_or(0)
}

#[test]
fn plan_slurm_never_replaces_a_file_it_was_not_asked_to() {
    let tmp = tempfile::tempdir().unwrap();
    let recipe = write(tmp.path(), "r.toml", SYNTHETIC);
    let r = recipe.to_str().unwrap();
    // Onto the recipe itself: refused, the recipe intact, no table printed first.
    let out = stab().args(["plan", r, "--slurm", r]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("exists") && err.contains("--overwrite"),
        "{err}"
    );
    assert!(out.stdout.is_empty(), "printed before refusing");
    assert_eq!(std::fs::read_to_string(&recipe).unwrap(), SYNTHETIC);
    // A new path is written; the same command again is no replacement; another script is.
    let script = tmp.path().join("array.sh");
    let s = script.to_str().unwrap();
    let run = |extra: &[&str]| {
        stab()
            .args(["plan", r, "--slurm", s])
            .args(extra)
            .output()
            .unwrap()
    };
    assert!(run(&[]).status.success());
    let first = std::fs::read_to_string(&script).unwrap();
    assert!(first.contains("#SBATCH --array="));
    assert!(
        run(&[]).status.success(),
        "the same script again is refused"
    );
    let other = run(&["--shards", "2"]);
    assert_eq!(other.status.code(), Some(2));
    assert_eq!(std::fs::read_to_string(&script).unwrap(), first);
    assert!(run(&["--shards", "2", "--overwrite"]).status.success());
    assert!(
        std::fs::read_to_string(&script)
            .unwrap()
            .contains("--array=0-1")
    );
}

#[test]
fn a_closed_pipe_never_stops_a_grid_or_a_report() {
    let tmp = tempfile::tempdir().unwrap();
    let recipe = write(tmp.path(), "r.toml", SYNTHETIC);
    let out = tmp.path().join("out");
    // Both pipes closed before the first line (`stab run R 2>&1 | head -0`).
    let mut child = stab()
        .args([
            "run",
            recipe.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    drop(child.stderr.take());
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    assert_eq!(lines(&out.join("runs.jsonl")), 3);
    let mut report = stab()
        .args(["report", out.to_str().unwrap(), "--html"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(report.stdout.take());
    drop(report.stderr.take());
    assert!(report.wait().unwrap().success());
    assert!(out.join("report.html").is_file());
}

#[test]
fn pipes_and_no_color_get_plain_text() {
    let tmp = tempfile::tempdir().unwrap();
    let recipe = write(tmp.path(), "r.toml", SYNTHETIC);
    let out = tmp.path().join("out");
    let mut child = stab()
        .args([
            "run",
            recipe.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(child.wait().unwrap().success());
    assert!(err.contains("runs planned"), "{err}");
    assert!(!err.contains('\u{1b}'), "colour codes in a pipe: {err:?}");
}

#[test]
fn a_negative_zero_names_the_same_run_as_zero() {
    let tmp = tempfile::tempdir().unwrap();
    let model = assets::fixtures().join("tiny-bert");
    let data = assets::slices();
    let recipe = |wd: &str| {
        format!(
            "name = \"z\"\n[model]\npath = \"{}\"\nmax_len = 64\n[data]\ndir = \"{}\"\ntasks = [\"cb\"]\n[train]\nweight_decay = {wd}\nseeds = 1\n[[methods]]\nname = \"finetune\"\n",
            model.display(),
            data.display()
        )
    };
    let ids = |wd: &str| {
        let p = write(tmp.path(), &format!("z{}.toml", wd.len()), &recipe(wd));
        let out = stab().args(["plan", p.to_str().unwrap()]).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.starts_with("0\t"))
            .map(|l| l.split('\t').nth(1).unwrap().to_string())
            .collect::<Vec<_>>()
    };
    let (zero, negative) = (ids("0.0"), ids("-0.0"));
    assert_eq!(zero.len(), 1);
    assert_eq!(zero, negative);
}

#[test]
fn a_run_recorded_twice_with_different_results_is_named_not_silently_replaced() {
    let tmp = tempfile::tempdir().unwrap();
    let recipe = write(tmp.path(), "r.toml", SYNTHETIC);
    let out = tmp.path().join("out");
    let run = stab()
        .args([
            "run",
            recipe.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(run.status.success());
    let store = out.join("runs.jsonl");
    let text = std::fs::read_to_string(&store).unwrap();
    let first = text.lines().next().unwrap();
    // The same line again: no conflict. The run with another result: named.
    let mut other: serde_json::Value = serde_json::from_str(first).unwrap();
    other["metrics"]["delta_mean"] = serde_json::json!(0.5);
    std::fs::write(&store, format!("{text}{first}\n")).unwrap();
    let quiet = stab()
        .args(["report", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(quiet.status.success());
    assert!(!String::from_utf8_lossy(&quiet.stderr).contains("more than once"));
    std::fs::write(&store, format!("{text}{first}\n{other}\n")).unwrap();
    let loud = stab()
        .args(["report", out.to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&loud.stderr);
    assert!(loud.status.success(), "{err}");
    assert!(
        err.contains("1 run(s) were recorded more than once with different results")
            && err.contains(other["run_id"].as_str().unwrap()),
        "{err}"
    );
}
