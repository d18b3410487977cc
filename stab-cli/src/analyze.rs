//! `stab analyze distance|taylor|loo|bounds`: the measurements of docs/methods.md §8–9 on
//! real models and tasks (`stab analyze sequential`: see `replay.rs`). Each appends its results to `DIR/analyses.jsonl` (read by
//! `stab report DIR`), prints the same tables the report shows, and writes its plots to
//! `DIR/plots/`.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use serde_json::{Value, json};
use stab_analysis::bounds::{self as theory, BoundConstants, Constant};
use stab_analysis::loo::{binary_problems, linear_head_loo};
use stab_analysis::{
    LinearLooSettings, ModelLoss, TaylorSettings, taylor_validity, weight_distance_on,
};
use stab_core::Context as _;
use stab_core::InputError;
use stab_data::encode::encode_examples;
use stab_eval::report::analyses::{self, Analyses};
use stab_models::{TextEncoder, read_safetensors};
use stab_train::{Checkpoint, Engine, TokenInput};

use crate::device::Chosen;

#[derive(Args)]
pub struct AnalyzeArgs {
    #[command(subcommand)]
    command: AnalyzeCommand,
}

#[derive(Subcommand)]
enum AnalyzeCommand {
    /// Replay the sequential seed rule over a finished grid: per arm, after how many seeds
    /// (in seed order) it would have stopped, with which decision, and the runs it saves.
    Sequential(crate::replay::SequentialArgs),
    /// Replay `[train] stop_failed` on a finished grid's stored dev curves: runs stopped,
    /// runs stopped that later recovered, updates saved.
    StopFailed(crate::replay::StopFailedArgs),
    /// Weight distance ‖w* − w0‖_p / ‖w0‖_p (Table 6) of fine-tuned checkpoints, in total
    /// and per layer.
    Distance {
        /// Checkpoint directories (<out>/checkpoints/<run_id>), or results directories
        /// whose every checkpoint is analysed.
        #[arg(required = true)]
        checkpoints: Vec<PathBuf>,
        /// The pre-trained model directory (default: the one the run started from).
        #[arg(long)]
        pretrained: Option<PathBuf>,
        /// Results directory (default: the checkpoint's own results directory).
        #[arg(long)]
        out: Option<PathBuf>,
        /// cpu, wgpu[:N] or cuda:N (`stab list devices`).
        #[arg(long, default_value = "cpu")]
        device: String,
    },
    /// Validity of the second-order Taylor expansion around a checkpoint (Fig. 11).
    Taylor {
        /// A full fine-tuning checkpoint directory.
        checkpoint: PathBuf,
        /// The data directory of a built-in task (glue/…, superglue/…); a custom task's
        /// checkpoint names its own files.
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// The task (default: the one the checkpoint was trained on).
        #[arg(long)]
        task: Option<String>,
        /// The fixed batch: the first N training examples.
        #[arg(long, default_value_t = 32)]
        batch: usize,
        /// Tokens per example (default: the checkpoint's training max_len, else 128 or what
        /// the model allows).
        #[arg(long)]
        max_len: Option<usize>,
        /// Perturbation sizes p (comma-separated).
        #[arg(long, value_delimiter = ',', default_values_t = TaylorSettings::default().ps)]
        ps: Vec<f64>,
        /// Perturbations per p.
        #[arg(long, default_value_t = 100)]
        repeats: usize,
        /// Central-difference step h.
        #[arg(long, default_value_t = 1e-3)]
        h: f64,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        #[arg(long)]
        out: Option<PathBuf>,
        /// cpu, or an accelerator that computes in f64 (`stab list devices` says which).
        #[arg(long, default_value = "cpu")]
        device: String,
    },
    /// Leave-one-out stability of linear heads (FineTune, MHLoss with H heads) on a real
    /// task's frozen features, with the features' SVM margin γ_S and bound B.
    Loo {
        /// A recipe naming the model, data and tasks (its out dir holds the feature cache).
        recipe: PathBuf,
        /// Override a recipe value (repeatable; validated like the file).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        sets: Vec<String>,
        /// Head counts H (1 = FineTune).
        #[arg(long, value_delimiter = ',', default_values_t = vec![1usize, 5, 20, 50])]
        heads: Vec<usize>,
        /// Full-batch GD steps.
        #[arg(long, default_value_t = 1000)]
        steps: u64,
        /// Left-out points m per problem.
        #[arg(long, default_value_t = 10)]
        points: usize,
        /// Support vectors re-solved for the SVM's Δ̂ (0 = all).
        #[arg(long, default_value_t = 50)]
        svm_samples: usize,
        /// SMO iterations before a set is declared not separated by a hard margin.
        #[arg(long, default_value_t = 2_000_000)]
        svm_max_iter: u64,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        #[arg(long)]
        out: Option<PathBuf>,
        /// Where the frozen features are encoded: cpu, wgpu[:N] or cuda:N (the linear
        /// heads' LOO solves are host code).
        #[arg(long, default_value = "cpu")]
        device: String,
    },
    /// The paper's bounds (Thm 2.2, Thm 2.4, Cor 2.5, Cor 3.1) from the constants measured
    /// by `analyze loo` (and `distance`, `taylor` when present) in a results directory.
    Bounds {
        /// Results directory holding analyses.jsonl.
        dir: PathBuf,
        /// Cor 3.1's δ (assumed).
        #[arg(long, default_value_t = 0.05)]
        delta: f64,
        /// The optimisation term's constants C and C_ξ (assumed).
        #[arg(long, default_value_t = 1.0)]
        c: f64,
        #[arg(long, default_value_t = 1.0)]
        c_xi: f64,
        /// Thm 2.2's μ/β (assumed; the smallest Hessian eigenvalue is not measured).
        #[arg(long, default_value_t = 0.01)]
        mu_over_beta: f64,
        /// The regularised SVM of Thm 2.4 / Cor 2.5: λ = 1/(2nC) (assumed C; the hard-margin
        /// limit C → ∞ makes those bounds vacuous).
        #[arg(long, default_value_t = 1.0)]
        svm_c: f64,
    },
}

pub fn analyze(args: AnalyzeArgs) -> stab_core::Result<()> {
    match args.command {
        AnalyzeCommand::Sequential(args) => crate::replay::sequential(args),
        AnalyzeCommand::StopFailed(args) => crate::replay::stop_failed(args),
        AnalyzeCommand::Distance {
            checkpoints,
            pretrained,
            out,
            device,
        } => distance(
            checkpoints,
            pretrained,
            out,
            &crate::device::parse(&device)?,
        ),
        AnalyzeCommand::Taylor {
            checkpoint,
            data_dir,
            task,
            batch,
            max_len,
            ps,
            repeats,
            h,
            seed,
            out,
            device,
        } => {
            taylor_on(&crate::device::parse(&device)?)?;
            taylor(
                &checkpoint,
                data_dir.as_deref(),
                task,
                batch,
                max_len,
                TaylorSettings {
                    ps,
                    repeats,
                    h,
                    seed,
                },
                out,
            )
        }
        AnalyzeCommand::Loo {
            recipe,
            sets,
            heads,
            steps,
            points,
            svm_samples,
            svm_max_iter,
            seed,
            out,
            device,
        } => loo(
            &recipe,
            &sets,
            LinearLooSettings {
                heads,
                steps,
                loo_samples: points,
                seed,
                svm_loo_samples: svm_samples,
                svm_max_iter,
                ..LinearLooSettings::default()
            },
            out,
            &crate::device::parse(&device)?,
        ),
        AnalyzeCommand::Bounds {
            dir,
            delta,
            c,
            c_xi,
            mu_over_beta,
            svm_c,
        } => bounds(&dir, delta, c, c_xi, mu_over_beta, svm_c),
    }
}

/// The record every analysis appends.
fn record(analysis: &str, subject: &str, task: &str, result: Value) -> Value {
    json!({
        "analysis": analysis,
        "subject": subject,
        "task": task,
        "result": result,
        "stab_version": env!("CARGO_PKG_VERSION"),
        "at": std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
    })
}

/// Append `rec` to `dir`, print its section, and write the directory's analysis plots.
fn publish(dir: &Path, rec: &Value) -> stab_core::Result<()> {
    let path = analyses::append(dir, rec)?;
    let one = [rec];
    let md = match rec["analysis"].as_str() {
        Some("distance") => analyses::distance_doc(&one),
        Some("taylor") => analyses::taylor_doc(&one),
        Some("loo") => analyses::loo_doc(&one),
        _ => analyses::bounds_doc(&one),
    }
    .markdown();
    {
        use std::io::Write as _;
        let _ = write!(std::io::stdout(), "{md}");
    }
    let plots = Analyses::load(dir)?.plots(&dir.join("plots"));
    for (p, why) in &plots.failed {
        errln!("warning: plot {} not written: {why}", p.display());
    }
    errln!(
        "appended to {}; {} plots in {}",
        path.display(),
        plots.written.len(),
        dir.join("plots").display()
    );
    Ok(())
}

/// Where an analysis of `checkpoint` is written: `--out`, else the results directory the
/// checkpoint belongs to (`<out>` of `<out>/checkpoints/<id>`). Anything else (a model
/// directory, a copied checkpoint) is input and is never written into: `--out` is
/// required.
fn target_of(checkpoint: &Path, out: Option<&Path>) -> stab_core::Result<PathBuf> {
    if let Some(out) = out {
        return Ok(out.to_path_buf());
    }
    let parent = checkpoint.parent().unwrap_or(Path::new("."));
    if parent.file_name().is_some_and(|n| n == "checkpoints") {
        return Ok(parent.parent().unwrap_or(Path::new(".")).to_path_buf());
    }
    Err(InputError::new(
        "this is not a checkpoint inside a results directory (<out>/checkpoints/<run_id>), so there is no results directory to write to",
    )
    .file(checkpoint.display().to_string())
    .hint("pass --out DIR for analyses.jsonl and the plots; a model directory is never written into")
    .into())
}

/// Checkpoint directories named directly or found under `<dir>/checkpoints/`.
fn expand(paths: &[PathBuf]) -> stab_core::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        if p.join("model.safetensors").is_file() {
            out.push(p.clone());
        } else if p.join("checkpoints").is_dir() {
            let dir = p.join("checkpoints");
            // A killed run may have left a half-written checkpoint: never analyse it.
            stab_core::atomic::clean_stale(&dir);
            let mut found: Vec<PathBuf> = std::fs::read_dir(&dir)
                .map_err(|e| stab_core::atomic::io_error("read", &dir, e))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|d| {
                    d.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| !n.starts_with('.'))
                })
                .filter(|d| d.join("model.safetensors").is_file())
                .collect();
            found.sort();
            if found.is_empty() {
                return Err(InputError::new("no checkpoints in this results directory")
                    .file(p.display().to_string())
                    .hint("run the recipe with [train] save_best = true")
                    .into());
            }
            out.extend(found);
        } else {
            return Err(InputError::new(
                "neither a checkpoint nor a results directory with checkpoints/",
            )
            .file(p.display().to_string())
            .hint(
                "a checkpoint is <out>/checkpoints/<run_id>, written with [train] save_best = true",
            )
            .into());
        }
    }
    Ok(out)
}

fn distance(
    checkpoints: Vec<PathBuf>,
    pretrained: Option<PathBuf>,
    out: Option<PathBuf>,
    device: &Chosen,
) -> stab_core::Result<()> {
    // Every target known, and every checkpoint measured, before the first row is
    // appended: a damaged checkpoint leaves no rows behind for a rerun to duplicate.
    let targets = expand(&checkpoints)?
        .into_iter()
        .map(|dir| Ok((target_of(&dir, out.as_deref())?, dir)))
        .collect::<stab_core::Result<Vec<_>>>()?;
    let rows = targets
        .into_iter()
        .map(|(target, dir)| Ok((target, distance_row(&dir, pretrained.as_deref(), device)?)))
        .collect::<stab_core::Result<Vec<_>>>()?;
    for (target, row) in rows {
        publish(&target, &row)?;
    }
    Ok(())
}

/// The distance record of one checkpoint against its pre-trained model.
fn distance_row(
    dir: &Path,
    pretrained: Option<&Path>,
    device: &Chosen,
) -> stab_core::Result<serde_json::Value> {
    let tuned = read_safetensors(&dir.join("model.safetensors"))?;
    if tuned.metadata.contains_key("stab_encoder") {
        return Err(InputError::new(
            "a head-tuning checkpoint: the encoder did not move, there is no distance to measure",
        )
        .file(dir.display().to_string())
        .hint("measure full fine-tuning checkpoints (mode = \"full\")")
        .into());
    }
    let base_dir = match (pretrained, tuned.metadata.get("stab_model")) {
        (Some(p), _) => p.to_path_buf(),
        (None, Some(m)) => PathBuf::from(m),
        (None, None) => {
            return Err(
                InputError::new("the checkpoint does not name its pre-trained model")
                    .file(dir.display().to_string())
                    .hint("pass --pretrained DIR")
                    .into(),
            );
        }
    };
    let files = stab_models::loader::weight_files(&base_dir)?;
    if let Some(weights) = files
        .iter()
        .find(|w| w.extension().is_none_or(|e| e != "safetensors"))
    {
        return Err(
            InputError::new("the pre-trained weights are not safetensors")
                .file(weights.display().to_string())
                .hint(
                    "convert pytorch_model.bin to model.safetensors (safetensors' convert script)",
                )
                .into(),
        );
    }
    let mut base = stab_models::TensorFile::default();
    for shard in &files {
        base.tensors.extend(read_safetensors(shard)?.tensors);
    }
    let d = weight_distance_on(&base, &tuned, &device.device)
        .with_context(|| format!("{} against {}", dir.display(), base_dir.display()))?;
    let subject = tuned
        .metadata
        .get("stab_run_id")
        .cloned()
        .unwrap_or_else(|| dir.file_name().unwrap_or_default().to_string_lossy().into());
    let task = tuned.metadata.get("stab_task").cloned().unwrap_or_default();
    let mut result = serde_json::to_value(&d)?;
    result["pretrained"] = json!(base_dir.display().to_string());
    Ok(record("distance", &subject, &task, result))
}

/// `analyze taylor` runs in f64 on the host: any other device is one exit-2 error.
fn taylor_on(device: &Chosen) -> stab_core::Result<()> {
    if !stab_models::is_host(&device.device) {
        let f64 = if crate::device::has_f64(&device.device) {
            "computes in f64, but the Taylor check is verified on the host CPU only"
        } else {
            "does not compute in f64, which the Taylor check's central differences need"
        };
        return Err(InputError::new(format!("device `{}` {f64}", device.name))
            .key("--device")
            .hint("use --device cpu for `analyze taylor` (its batch is small: 32 examples by default)")
            .into());
    }
    Ok(())
}

fn taylor(
    checkpoint: &Path,
    data_dir: Option<&Path>,
    task: Option<String>,
    batch: usize,
    max_len: Option<usize>,
    settings: TaylorSettings,
    out: Option<PathBuf>,
) -> stab_core::Result<()> {
    use stab_core::limits;
    limits::TAYLOR_BATCH.check_usize("--batch", batch)?;
    limits::TAYLOR_REPEATS.check_usize("--repeats", settings.repeats)?;
    limits::TAYLOR_PS.check_usize("--ps (count)", settings.ps.len())?;
    if let Some(p) = settings.ps.iter().find(|p| !(p.is_finite() && **p > 0.0)) {
        return Err(InputError::new(format!(
            "--ps holds {p}: perturbation sizes must be finite and positive"
        ))
        .key("--ps")
        .hint("e.g. --ps 0.001,0.01,0.1")
        .into());
    }
    if !(settings.h.is_finite() && settings.h > 0.0) {
        return Err(
            InputError::new(format!("--h {} is not a finite positive step", settings.h))
                .key("--h")
                .hint("e.g. --h 1e-3")
                .into(),
        );
    }
    let target = target_of(checkpoint, out.as_deref())?;
    // f64 everywhere: set before any tensor exists.
    let mut base = burn::tensor::Device::flex();
    base.configure(burn::tensor::FloatDType::F64)
        .map_err(|e| stab_core::internal!("cannot switch the device to f64: {e:?}"))?;
    let device = base.autodiff();
    let ckpt = Checkpoint::open(checkpoint, &device)?;
    let meta = &ckpt.file.metadata;
    let (model, def) = ckpt.task_model(task.as_deref(), &device)?;
    let task_name = def.name().to_string();
    let task_name = task_name.as_str();
    let config = &model.encoder.as_ref().expect("a full checkpoint").config;
    let limit = config.max_tokens();
    let max_len = match max_len {
        Some(m) if m > limit || m < 8 => {
            return Err(InputError::new(format!(
                "--max-len {m} does not fit the model: it allows {limit} tokens"
            ))
            .key("--max-len")
            .hint(format!("use 8..={limit}"))
            .into());
        }
        Some(m) => m,
        None => meta
            .get("stab_max_len")
            .and_then(|m| m.parse().ok())
            .unwrap_or(128)
            .min(limit),
    };
    let tok = TextEncoder::for_model(checkpoint, config)?;
    let data = taylor_data(&def, meta, data_dir)?;
    let n = batch.min(data.train.len());
    if n < batch {
        errln!(
            "taylor: --batch {batch} but {task_name} has {} training examples; the batch is all {n}",
            data.train.len()
        );
    }
    let rows = encode_examples(&tok, &data.train[..n], max_len)?;
    let refs: Vec<_> = rows.iter().collect();
    let input = TokenInput::new(&refs, config.pad_id() as i64, None);
    let labels: Vec<usize> = rows.iter().map(|r| r.label).collect();
    let mut loss = ModelLoss::new(model, input, labels, &device)?;
    let w = loss.vector()?;
    errln!(
        "taylor: {} parameters, batch of {n} {task_name} examples, {} perturbations × 3 passes (f64)",
        w.len(),
        settings.ps.len() * settings.repeats
    );
    let started = std::time::Instant::now();
    let result = taylor_validity(&mut loss, &w, &settings, |done, total| {
        if done % 10 == 0 || done == total {
            errln!(
                "taylor: {done}/{total} perturbations, {:.0}s",
                started.elapsed().as_secs_f64()
            );
        }
    })?;
    let subject = meta.get("stab_run_id").cloned().unwrap_or_else(|| {
        checkpoint
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into()
    });
    let mut value = serde_json::to_value(&result)?;
    value["batch"] = json!(n);
    value["seconds"] = json!(started.elapsed().as_secs_f64());
    publish(&target, &record("taylor", &subject, task_name, value))
}

/// The rows of a checkpoint's task: a built-in task's from `--data-dir`, a custom task's
/// from the files its checkpoint's table names.
fn taylor_data(
    task: &stab_data::Task,
    meta: &std::collections::BTreeMap<String, String>,
    data_dir: Option<&Path>,
) -> stab_core::Result<stab_data::TaskData> {
    match (task, data_dir) {
        (stab_data::Task::Builtin(def), Some(dir)) => Ok(def.load(dir)?),
        (stab_data::Task::Builtin(def), None) => Err(InputError::new(format!(
            "--data-dir is missing: {} is read from the official files",
            def.name
        ))
        .key("--data-dir")
        .hint("point --data-dir at the directory holding glue/… and superglue/…")
        .into()),
        (stab_data::Task::Custom(c), _) => {
            let spec = meta
                .get("stab_task_spec")
                .and_then(|t| serde_json::from_str::<stab_core::CustomTaskSpec>(t).ok())
                .ok_or_else(|| {
                    InputError::new(format!(
                        "the checkpoint of custom task {} does not describe its files",
                        c.name
                    ))
                    .key("stab_task_spec")
                    .hint("use a checkpoint written by this version of stab")
                })?;
            Ok(
                stab_data::custom::load(&c.name, &spec, &stab_data::hub::DatasetCache::from_env())?
                    .data,
            )
        }
    }
}

fn loo(
    recipe_path: &Path,
    sets: &[String],
    settings: LinearLooSettings,
    out: Option<PathBuf>,
    device: &Chosen,
) -> stab_core::Result<()> {
    use stab_core::limits;
    if settings.heads.is_empty() {
        return Err(InputError::new("--heads lists no head count")
            .key("--heads")
            .hint("e.g. --heads 1,5,20,50")
            .into());
    }
    for &h in &settings.heads {
        limits::LOO_HEADS.check_usize("--heads", h)?;
    }
    limits::LOO_POINTS.check_usize("--points", settings.loo_samples)?;
    limits::LOO_STEPS.check("--steps", settings.steps)?;
    limits::SVM_SAMPLES.check_usize("--svm-samples", settings.svm_loo_samples)?;
    limits::SVM_MAX_ITER.check("--svm-max-iter", settings.svm_max_iter)?;
    let (recipe, plan) = crate::load_plan(recipe_path, sets)?;
    if recipe.kind() != stab_core::RecipeKind::Finetune {
        return Err(InputError::new(
            "a synthetic recipe: `analyze loo` measures heads on a real task's frozen features",
        )
        .file(recipe_path.display().to_string())
        .hint("pass a fine-tuning recipe naming [model] and [data] (e.g. recipes/minilm-analysis.toml); the synthetic studies measure LOO themselves")
        .into());
    }
    let target = out.unwrap_or_else(|| recipe.out_dir());
    let engine =
        Engine::new(device.device.clone(), &recipe.out_dir()).with_device_name(&device.name);
    let mut tasks: Vec<&str> = Vec::new();
    for r in &plan.runs {
        if !tasks.contains(&r.task.as_str()) {
            tasks.push(&r.task);
        }
    }
    for task in tasks {
        // The features FineTune's head tuning would read (a method that changes the encoder
        // would change them).
        let spec = plan
            .runs
            .iter()
            .find(|r| r.task == task && r.method == "finetune")
            .or_else(|| plan.runs.iter().find(|r| r.task == task))
            .expect("a task of the plan has a run");
        let started = std::time::Instant::now();
        let feats = engine.train_features(spec, &|_| {})?;
        errln!(
            "loo: {task}: {} × {} features ({:.0}s)",
            feats.labels.len(),
            feats.dim,
            started.elapsed().as_secs_f64()
        );
        let mut problems = Vec::new();
        for (name, points) in
            binary_problems(&feats.features, feats.dim, &feats.labels, &feats.classes)
        {
            let t = std::time::Instant::now();
            let m = linear_head_loo(&name, &points, &settings)
                .with_context(|| format!("{task}: {name}"))?;
            errln!("loo: {task} ({name}) in {:.0}s", t.elapsed().as_secs_f64());
            problems.push(m);
        }
        let result = json!({
            "settings": settings,
            "model": match &spec.job {
                stab_core::RunJob::Finetune(j) => Some(j.model.path.clone()),
                _ => None,
            },
            "problems": problems,
            "seconds": started.elapsed().as_secs_f64(),
        });
        publish(&target, &record("loo", task, task, result))?;
    }
    Ok(())
}

fn bounds(
    dir: &Path,
    delta: f64,
    c: f64,
    c_xi: f64,
    mu_over_beta: f64,
    svm_c: f64,
) -> stab_core::Result<()> {
    check_constants(delta, c, c_xi, mu_over_beta, svm_c)?;
    let all = Analyses::load(dir)?;
    let of = |kind: &str| -> Vec<&Value> {
        all.records
            .iter()
            .filter(|r| r["analysis"] == kind)
            .collect()
    };
    let loos = of("loo");
    if loos.is_empty() {
        return Err(InputError::new(
            "no `analyze loo` results here: n, B, γ_S and r come from them",
        )
        .file(dir.join(analyses::FILE).display().to_string())
        .hint("run `stab analyze loo RECIPE` first (with the same out dir)")
        .into());
    }
    let a = Constant::assumed;
    let m = Constant::measured;
    for l in loos {
        let task = l["task"].as_str().unwrap_or_default().to_string();
        let settings = &l["result"]["settings"];
        let steps = settings["steps"].as_f64().unwrap_or(f64::NAN);
        let heads: Vec<usize> = settings["heads"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|h| h.as_u64().map(|h| h as usize))
            .collect();
        let same_task = |kind: &str| of(kind).into_iter().find(|r| r["task"] == task.as_str());
        let dist0 = same_task("distance")
            .and_then(|r| r["result"]["rows"][0]["l2_abs"].as_f64())
            .map_or(a(f64::NAN), m);
        let taylor = same_task("taylor");
        let beta = taylor
            .and_then(|r| r["result"]["max_curvature"].as_f64())
            .map_or(a(1.0), m);
        let grad = taylor
            .and_then(|r| r["result"]["grad_norm"].as_f64())
            .map_or(a(1.0), m);
        for p in l["result"]["problems"].as_array().into_iter().flatten() {
            let g = &p["geometry"];
            let n = g["n"].as_f64().unwrap_or(f64::NAN);
            let bound = g["bound"].as_f64().unwrap_or(f64::NAN);
            let k = BoundConstants {
                n: m(n),
                b: m(bound),
                gamma: m(g["margin"].as_f64().unwrap_or(f64::NAN)),
                r: m(g["min_norm"].as_f64().unwrap_or(f64::NAN)),
                // The regularised SVM's λ = 1/(2nC) (docs/methods.md §7.3's secondary SVM).
                lambda: a(1.0 / (2.0 * n * svm_c)),
                t: a(steps),
                c: a(c),
                // Logistic loss on ‖x̃‖ ≤ √(B² + 1): Lipschitz in w with that constant.
                l: m((bound * bound + 1.0).sqrt()),
                beta,
                mu: a(mu_over_beta * beta.value),
                dist0,
                delta: a(delta),
                c_xi: a(c_xi),
            };
            // Thm 2.2 is about full fine-tuning: its L is the gradient scale of the model's
            // loss, estimated by ‖∇f(w*)‖ from the Taylor check.
            let full = BoundConstants {
                l: grad,
                ..k.clone()
            };
            let mut list = vec![
                theory::theorem_2_2(&full),
                theory::theorem_2_4(&k),
                theory::corollary_2_5(&k),
            ];
            for &h in heads.iter().filter(|&&h| h > 1) {
                list.push(theory::corollary_3_1(&k, h));
            }
            if g["separable"] != true {
                for b in list.iter_mut().filter(|b| b.bound != "thm2.2") {
                    let why = "the features are not linearly separated: γ_S is undefined and the head-tuning bounds assume separable data";
                    b.note = Some(match &b.note {
                        Some(n) => format!("{n}; {why}"),
                        None => why.to_string(),
                    });
                }
            }
            let problem = p["problem"].as_str().unwrap_or("all");
            let subject = if problem == "all" {
                task.clone()
            } else {
                format!("{task} ({problem})")
            };
            let result = json!({
                "constants": {
                    "n": k.n, "B": k.b, "γ_S": k.gamma, "r": k.r, "λ = 1/(2nC)": k.lambda,
                    "t": k.t, "C": k.c, "L (logistic, √(B²+1))": k.l,
                    "L (Thm 2.2, ‖∇f(w*)‖)": full.l, "β (max rᵀHr/‖r‖²)": k.beta,
                    "μ": k.mu, "‖w0 − w*‖": k.dist0, "δ": k.delta, "C_ξ": k.c_xi,
                },
                "bounds": list,
            });
            publish(dir, &record("bounds", &subject, &task, result))?;
        }
    }
    Ok(())
}

/// The assumed constants of `analyze bounds`, each in the range its theorem needs.
fn check_constants(
    delta: f64,
    c: f64,
    c_xi: f64,
    mu_over_beta: f64,
    svm_c: f64,
) -> stab_core::Result<()> {
    let open = |v: f64, lo: f64, hi: f64| v.is_finite() && v > lo && v < hi;
    for (key, v, ok, range) in [
        (
            "--delta",
            delta,
            open(delta, 0.0, 1.0),
            "a probability in (0, 1), e.g. 0.05",
        ),
        (
            "--c",
            c,
            open(c, 0.0, f64::INFINITY),
            "a positive constant, e.g. 1",
        ),
        (
            "--c-xi",
            c_xi,
            open(c_xi, 0.0, f64::INFINITY),
            "a positive constant, e.g. 1",
        ),
        (
            "--mu-over-beta",
            mu_over_beta,
            open(mu_over_beta, 0.0, 1.0),
            "a ratio in (0, 1) (Thm 2.2 needs 0 < μ/β < 1), e.g. 0.01",
        ),
        (
            "--svm-c",
            svm_c,
            open(svm_c, 0.0, f64::INFINITY),
            "a positive constant, e.g. 1",
        ),
    ] {
        if !ok {
            return Err(InputError::new(format!("{key} {v} is out of range"))
                .key(key)
                .hint(format!("use {range}"))
                .into());
        }
    }
    Ok(())
}
