//! The GPU path end to end on a wgpu adapter (in CI: Mesa's lavapipe, a software Vulkan
//! device that runs burn's real GPU kernels on the CPU). Built with the `wgpu` feature, on
//! by default; without an adapter every test says SKIPPED (and fails under
//! `STAB_REQUIRE_ASSETS=1`, as in CI).
//!
//! Every comparison is against the same command on `--device cpu`: the encoder outputs
//! against the golden PyTorch files, and training runs (same seed, hence the same dropout
//! masks and method noise, drawn on the host for every device) against the CPU run's loss
//! curve and metrics.
#![cfg(feature = "wgpu")]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use crate::assets;

const DEVICE: &str = "wgpu";

/// Whether this machine has a wgpu adapter (else the test is skipped, or fails in CI).
fn adapter(test: &str) -> bool {
    static LISTED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let present = *LISTED.get_or_init(|| {
        let out = stab(&["list", "devices"]);
        String::from_utf8_lossy(&out.stdout).contains("wgpu:0")
    });
    assets::device(
        test,
        present,
        "no wgpu adapter (on Linux: apt install mesa-vulkan-drivers libvulkan1)",
    )
}

fn stab(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_stab"))
        .env("STAB_LOG", "warn")
        .args(args)
        .output()
        .expect("run stab")
}

fn ok(args: &[&str]) -> String {
    let out = stab(args);
    assert!(
        out.status.success(),
        "stab {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn testdata() -> PathBuf {
    assets::root().join("testdata")
}

fn max_abs(a: &Value, b: &Value) -> f64 {
    match (a, b) {
        (Value::Array(x), Value::Array(y)) => {
            assert_eq!(x.len(), y.len(), "lengths");
            x.iter()
                .zip(y)
                .map(|(p, q)| max_abs(p, q))
                .fold(0.0, f64::max)
        }
        _ => (a.as_f64().unwrap() - b.as_f64().unwrap()).abs(),
    }
}

/// `stab embed --json` of a golden file's inputs on `device`.
fn embed(model: &Path, golden: &Value, max_len: usize, device: &str) -> Value {
    let tmp = tempfile::tempdir().unwrap();
    let lines: Vec<String> = golden["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(Value::to_string)
        .collect();
    let inputs = tmp.path().join("inputs.jsonl");
    std::fs::write(&inputs, lines.join("\n")).unwrap();
    let text = ok(&[
        "embed",
        "--model",
        model.to_str().unwrap(),
        "--inputs",
        inputs.to_str().unwrap(),
        "--max-len",
        &max_len.to_string(),
        "--json",
        "--device",
        device,
    ]);
    serde_json::from_str(&text).unwrap()
}

#[test]
fn list_devices_names_the_adapter() {
    if !adapter("list_devices_names_the_adapter") {
        return;
    }
    let text = ok(&["list", "devices"]);
    assert!(text.contains("wgpu:0"), "no wgpu adapter listed:\n{text}");
    eprintln!("{text}");
}

#[test]
fn embed_on_the_device_matches_the_golden_files() {
    if !adapter("embed_on_the_device_matches_the_golden_files") {
        return;
    }
    let mut models = vec![
        ("tiny-bert", testdata().join("fixtures/tiny-bert")),
        ("tiny-roberta", testdata().join("fixtures/tiny-roberta")),
        ("tiny-electra", testdata().join("fixtures/tiny-electra")),
        (
            "tiny-deberta-v3",
            testdata().join("fixtures/tiny-deberta-v3"),
        ),
        (
            "tiny-modernbert",
            testdata().join("fixtures/tiny-modernbert"),
        ),
    ];
    if let Some(dir) = assets::minilm("embed_on_the_device_matches_the_golden_files") {
        models.push(("minilm", dir));
    }
    for (name, dir) in models {
        let golden: Value = serde_json::from_str(
            &std::fs::read_to_string(testdata().join(format!("fixtures/golden/{name}.json")))
                .unwrap(),
        )
        .unwrap();
        let seq_len = golden["seq_len"].as_u64().unwrap() as usize;
        let v = embed(&dir, &golden, seq_len, DEVICE);
        let mut worst = 0f64;
        for (r, row) in v["inputs"].as_array().unwrap().iter().enumerate() {
            assert_eq!(
                row["input_ids"], golden["input_ids"][r],
                "{name} row {r} ids"
            );
            assert_eq!(row["attention_mask"], golden["attention_mask"][r]);
            worst = worst.max(max_abs(&row["cls"], &golden["cls"][r]));
            let tokens = golden["last_hidden_state_tokens"].as_u64().unwrap_or(0) as usize;
            let states = row["last_hidden_state"].as_array().unwrap();
            let want = golden["last_hidden_state"][r].as_array().unwrap();
            // Real tokens only: padding rows are not meaningful (DeBERTa masks padding
            // queries too, and HF's rows there are uniform averages).
            let mask = golden["attention_mask"][r].as_array().unwrap();
            for k in 0..tokens.min(want.len()) {
                if mask[k] == 1 {
                    worst = worst.max(max_abs(&states[k], &want[k]));
                }
            }
        }
        eprintln!("embed {name} on {DEVICE}: largest difference from PyTorch {worst:.2e}");
        assert!(
            worst < 1e-4,
            "{name}: differs from the golden file by {worst:e}"
        );
    }
}

/// The decoders on the device: every real token's last hidden state and the last-token
/// vector (HF's rule) against the golden files.
#[test]
fn decoders_embed_on_the_device_like_pytorch() {
    if !adapter("decoders_embed_on_the_device_like_pytorch") {
        return;
    }
    for name in ["tiny-gpt2", "tiny-llama", "tiny-qwen2", "tiny-qwen3"] {
        let dir = testdata().join("fixtures").join(name);
        let golden: Value = serde_json::from_str(
            &std::fs::read_to_string(testdata().join(format!("fixtures/golden/{name}.json")))
                .unwrap(),
        )
        .unwrap();
        let seq_len = golden["seq_len"].as_u64().unwrap() as usize;
        let v = embed(&dir, &golden, seq_len, DEVICE);
        let mut worst = 0f64;
        for (r, row) in v["inputs"].as_array().unwrap().iter().enumerate() {
            assert_eq!(
                row["input_ids"], golden["input_ids"][r],
                "{name} row {r} ids"
            );
            assert_eq!(row["last_token_index"], golden["last_token_index"][r]);
            worst = worst.max(max_abs(&row["last_token"], &golden["last_token_hidden"][r]));
            let states = row["last_hidden_state"].as_array().unwrap();
            let want = golden["last_hidden_state"][r].as_array().unwrap();
            let mask = golden["attention_mask"][r].as_array().unwrap();
            for k in 0..want.len() {
                if mask[k] == 1 {
                    worst = worst.max(max_abs(&states[k], &want[k]));
                }
            }
        }
        eprintln!("embed {name} on {DEVICE}: largest difference from PyTorch {worst:.2e}");
        assert!(
            worst < 1e-4,
            "{name}: differs from the golden file by {worst:e}"
        );
    }
}

fn write_recipe(dir: &Path, body: &str) -> PathBuf {
    write_recipe_for(dir, "tiny-bert", body)
}

fn write_recipe_for(dir: &Path, model: &str, body: &str) -> PathBuf {
    let text = format!(
        "name = \"device\"\n[model]\npath = \"{}\"\nmax_len = 64\n[data]\ndir = \"{}\"\n{body}",
        testdata().join("fixtures").join(model).display(),
        testdata().join("data").display()
    );
    let path = dir.join("recipe.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Run a recipe on `device`; its records by run id.
fn records(recipe: &Path, out: &Path, device: &str, jobs: usize) -> BTreeMap<String, Value> {
    records_with(recipe, out, device, jobs, &[])
}

/// [`records`] with more `stab run` arguments.
fn records_with(
    recipe: &Path,
    out: &Path,
    device: &str,
    jobs: usize,
    more: &[&str],
) -> BTreeMap<String, Value> {
    let jobs = jobs.to_string();
    let mut args = vec![
        "run",
        recipe.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--device",
        device,
        "--jobs",
        &jobs,
    ];
    args.extend(more);
    ok(&args);
    std::fs::read_to_string(out.join("runs.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (v["run_id"].as_str().unwrap().to_string(), v)
        })
        .collect()
}

/// The largest relative train-loss difference of two runs, asserting ≤ 1e-3 at every
/// logged update and metrics within one example.
fn compare(what: &str, cpu: &Value, gpu: &Value, dev_rows: usize, test_rows: usize) -> f64 {
    let curve = |r: &Value| -> Vec<(u64, f64)> {
        r["details"]["train_loss"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| (p[0].as_u64().unwrap(), p[1].as_f64().unwrap()))
            .collect()
    };
    let (a, b) = (curve(cpu), curve(gpu));
    assert_eq!(a.len(), b.len(), "{what}: logged updates");
    let mut worst = 0f64;
    for ((s, x), (t, y)) in a.iter().zip(&b) {
        assert_eq!(s, t, "{what}: logged steps");
        let rel = (x - y).abs() / x.abs().max(1e-12);
        assert!(
            rel <= 1e-3,
            "{what}: update {s}: cpu loss {x} vs device {y} ({rel:e})"
        );
        worst = worst.max(rel);
    }
    assert_eq!(cpu["steps"], gpu["steps"], "{what}: steps");
    // Accuracy-like metrics move by 1/n per example.
    let one = |n: usize| 1.0 / n as f64 + 1e-9;
    let (da, db) = (cpu["dev_best"].as_f64(), gpu["dev_best"].as_f64());
    if let (Some(da), Some(db)) = (da, db) {
        assert!((da - db).abs() <= one(dev_rows), "{what}: dev {da} vs {db}");
    }
    let acc = |r: &Value| r["metrics"]["accuracy"].as_f64().unwrap();
    assert!(
        (acc(cpu) - acc(gpu)).abs() <= one(test_rows),
        "{what}: test accuracy {} vs {}",
        acc(cpu),
        acc(gpu)
    );
    assert_eq!(gpu["details"]["device"], DEVICE, "{what}");
    worst
}

/// Dev and test rows of a task slice (its split file; the official dev file is test).
fn rows(task: &str) -> (usize, usize) {
    let split: Value = serde_json::from_str(
        &std::fs::read_to_string(testdata().join(format!("data/splits/{task}.json"))).unwrap(),
    )
    .unwrap();
    let dev = split["dev_rows"].as_u64().unwrap() as usize;
    let test = match task {
        "cb" => 56,
        _ => 60,
    };
    (dev, test)
}

#[test]
fn full_tuning_on_the_device_follows_the_cpu_run_for_every_method() {
    if !adapter("full_tuning_on_the_device_follows_the_cpu_run_for_every_method") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let recipe = write_recipe(
        tmp.path(),
        "tasks = [\"cb\"]\n[train]\nmode = \"full\"\nmax_steps = 6\nbatch_size = 8\neval_every = 3\nlr = 1e-4\nseeds = 1\n\
         [[methods]]\nname = \"finetune\"\n[[methods]]\nname = \"mixout\"\n[[methods]]\nname = \"mixout\"\nvariant = \"author\"\n\
         [[methods]]\nname = \"lnsr\"\n[[methods]]\nname = \"lnsr\"\nvariant = \"original\"\n\
         [[methods]]\nname = \"mhloss\"\n[[methods]]\nname = \"mmr\"\n[[methods]]\nname = \"surt\"\n\
         [[methods]]\nname = \"reinit\"\n[[methods]]\nname = \"llrd\"\n\
         [[methods]]\nname = \"rdrop\"\n[[methods]]\nname = \"r3f\"\nsigma = 0.01\n\
         [[methods]]\nname = \"child_tuning\"\n[[methods]]\nname = \"child_tuning\"\nvariant = \"f\"\n\
         [[methods]]\nname = \"noisytune\"\n[[methods]]\nname = \"sam\"\n[[methods]]\nname = \"ema\"\n",
    );
    let cpu = records(&recipe, &tmp.path().join("cpu"), "cpu", 1);
    let gpu = records(&recipe, &tmp.path().join("gpu"), DEVICE, 1);
    assert_eq!(cpu.len(), 17);
    let (dev, test) = rows("cb");
    for (id, c) in &cpu {
        let g = &gpu[id];
        let variant = c["method_params"]["variant"].as_str().unwrap_or("");
        let method = format!("{} {variant}", c["method"].as_str().unwrap());
        let method = method.trim_end();
        let worst = compare(method, c, g, dev, test);
        let reads = g["details"]["update_host_reads"].as_u64().unwrap();
        let steps = g["steps"].as_u64().unwrap();
        eprintln!(
            "full {method}: largest train-loss difference {worst:.2e} relative; {reads} host reads in {steps} updates"
        );
        // SAM reads the loss of each of its two passes and ‖g‖ of the first.
        let per_update = if method == "sam" { 3 } else { 1 };
        assert_eq!(
            reads,
            per_update * steps,
            "{method}: {per_update} host read(s) (the logged loss) per update"
        );
    }
}

#[test]
fn every_family_fine_tunes_on_the_device_like_the_cpu() {
    if !adapter("every_family_fine_tunes_on_the_device_like_the_cpu") {
        return;
    }
    fine_tune_on_both(
        &["tiny-electra", "tiny-deberta-v3", "tiny-modernbert"],
        6,
        "[[methods]]\nname = \"lnsr\"\nvariant = \"original\"\n",
    );
}

/// The decoders train on the device as on the CPU: FineTune (the `score` head at the last
/// token), LoRA on every linear layer, and SURT's causal-LM phase.
#[test]
fn every_decoder_fine_tunes_on_the_device_like_the_cpu() {
    if !adapter("every_decoder_fine_tunes_on_the_device_like_the_cpu") {
        return;
    }
    fine_tune_on_both(
        &["tiny-gpt2", "tiny-llama", "tiny-qwen2", "tiny-qwen3"],
        4,
        "[[methods]]\nname = \"lora\"\nr = 4\ntargets = [\"query\", \"key\", \"value\", \"attention_output\", \"intermediate\", \"output\"]\n",
    );
}

/// FineTune, SURT and `extra` on each of `families` for `steps` updates (the loss of every
/// update, dev evaluated twice), on the CPU and on the device: the records follow each
/// other ([`compare`]).
fn fine_tune_on_both(families: &[&str], steps: usize, extra: &str) {
    let (dev, test) = rows("cb");
    for family in families {
        let tmp = tempfile::tempdir().unwrap();
        let recipe = write_recipe_for(
            tmp.path(),
            family,
            &format!(
                "tasks = [\"cb\"]\n[train]\nmode = \"full\"\nmax_steps = {steps}\nbatch_size = 8\neval_every = {}\nlr = 1e-4\nseeds = 1\n\
                 [[methods]]\nname = \"finetune\"\n{extra}\
                 [[methods]]\nname = \"surt\"\nmlm_max_steps = 5\n",
                steps / 2
            ),
        );
        let cpu = records(&recipe, &tmp.path().join("cpu"), "cpu", 1);
        let gpu = records(&recipe, &tmp.path().join("gpu"), DEVICE, 1);
        assert_eq!(cpu.len(), 3, "{family}");
        for (id, c) in &cpu {
            let what = format!("{family} {}", c["method"].as_str().unwrap());
            let worst = compare(&what, c, &gpu[id], dev, test);
            eprintln!("full {what}: largest train-loss difference {worst:.2e} relative");
        }
    }
}

#[test]
fn head_tuning_with_features_encoded_on_the_device_follows_the_cpu_run() {
    if !adapter("head_tuning_with_features_encoded_on_the_device_follows_the_cpu_run") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let recipe = write_recipe(
        tmp.path(),
        "tasks = [\"cb\", \"rte\"]\n[train]\nmode = \"head\"\nmax_steps = 20\nbatch_size = 8\neval_every = 1\nlr = 1e-3\nseeds = 3\n\
         [[methods]]\nname = \"finetune\"\n[[methods]]\nname = \"mhloss\"\n[[methods]]\nname = \"mmr\"\n",
    );
    // Every seed alone on the CPU; on the device FineTune's and MHLoss's three seeds
    // train as one seed batch (the default), MMR's alone.
    let cpu = records_with(
        &recipe,
        &tmp.path().join("cpu"),
        "cpu",
        1,
        &["--seed-batch", "1"],
    );
    let gpu = records(&recipe, &tmp.path().join("gpu"), DEVICE, 1);
    assert_eq!(cpu.len(), 18);
    for (id, c) in &cpu {
        let g = &gpu[id];
        let task = c["task"].as_str().unwrap();
        let what = format!("head {task} {}", c["method"].as_str().unwrap());
        let (dev, test) = rows(task);
        // Encoded on the device by the first run of the task, shared in memory after.
        let source = g["details"]["feature_cache"].as_str().unwrap();
        assert!(
            ["encoded", "memory"].contains(&source),
            "{what}: features from {source}"
        );
        let worst = compare(&what, c, g, dev, test);
        eprintln!("{what}: largest train-loss difference {worst:.2e} relative");
    }
}

/// A record without what legitimately differs between two processes.
fn comparable(mut r: Value) -> Value {
    r["wall_s"] = Value::Null;
    r["threads"] = Value::Null;
    if let Some(d) = r["details"].as_object_mut() {
        d.remove("seconds");
        d.remove("feature_cache");
    }
    r
}

#[test]
fn two_jobs_on_the_device_give_the_records_of_one() {
    if !adapter("two_jobs_on_the_device_give_the_records_of_one") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let recipe = write_recipe(
        tmp.path(),
        "tasks = [\"cb\"]\n[train]\nmode = \"full\"\nmax_steps = 4\nbatch_size = 8\nseeds = 1\n\
         [[methods]]\nname = \"finetune\"\n[[methods]]\nname = \"lnsr\"\n",
    );
    let one = records(&recipe, &tmp.path().join("one"), DEVICE, 1);
    let two = records(&recipe, &tmp.path().join("two"), DEVICE, 2);
    // Two runs: with --jobs 2 they train side by side on the one device.
    assert_eq!(one.len(), 2);
    for (id, a) in one {
        assert_eq!(
            comparable(a),
            comparable(two[&id].clone()),
            "run {id}: --jobs 2 differs from --jobs 1"
        );
    }
}

#[test]
fn a_device_checkpoint_measures_like_the_cpu_and_taylor_is_one_clear_error() {
    if !adapter("a_device_checkpoint_measures_like_the_cpu_and_taylor_is_one_clear_error") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let recipe = write_recipe(
        tmp.path(),
        "tasks = [\"cb\"]\n[train]\nmode = \"full\"\nmax_steps = 4\nbatch_size = 8\nlr = 1e-3\nseeds = 1\nsave_best = true\n\
         [[methods]]\nname = \"finetune\"\n",
    );
    let out = tmp.path().join("gpu");
    records(&recipe, &out, DEVICE, 1);
    let checkpoints = out.join("checkpoints");
    let ckpt = std::fs::read_dir(&checkpoints)
        .unwrap()
        .next()
        .expect("a checkpoint written from the device run")
        .unwrap()
        .path();
    let total = |device: &str, dir: &Path| -> f64 {
        ok(&[
            "analyze",
            "distance",
            ckpt.to_str().unwrap(),
            "--out",
            dir.to_str().unwrap(),
            "--device",
            device,
        ]);
        let text = std::fs::read_to_string(dir.join("analyses.jsonl")).unwrap();
        let v: Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
        v["result"]["rows"][0]["l2"].as_f64().unwrap()
    };
    let (c, g) = (
        total("cpu", &tmp.path().join("a")),
        total(DEVICE, &tmp.path().join("b")),
    );
    assert!(
        c > 0.0 && (c - g).abs() <= 1e-4 * c,
        "distance cpu {c} vs device {g}"
    );
    {
        let t = stab(&[
            "analyze",
            "taylor",
            ckpt.to_str().unwrap(),
            "--data-dir",
            testdata().join("data").to_str().unwrap(),
            "--device",
            DEVICE,
        ]);
        let err = String::from_utf8_lossy(&t.stderr);
        assert_eq!(t.status.code(), Some(2), "{err}");
        assert!(
            err.contains("device `wgpu`") && err.contains("f64") && err.contains("--device cpu"),
            "{err}"
        );
    }
}

#[test]
fn a_synthetic_recipe_on_the_device_is_one_clear_error() {
    if !adapter("a_synthetic_recipe_on_the_device_is_one_clear_error") {
        return;
    }
    let recipe = assets::root().join("recipes/synthetic-heads.toml");
    let tmp = tempfile::tempdir().unwrap();
    let out = stab(&[
        "run",
        recipe.to_str().unwrap(),
        "--out",
        tmp.path().join("o").to_str().unwrap(),
        "--device",
        DEVICE,
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("host CPU") && err.contains("--device cpu"),
        "{err}"
    );
    assert!(!tmp.path().join("o").exists(), "nothing written");
}
