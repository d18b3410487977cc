//! The fine-tuning engine on the tiny-bert fixture and the real task files: every task in
//! both modes, falling loss, bit-identical frozen encoders, reproducibility (twice, in
//! parallel, with 1 and 2 threads), MHLoss(H = 1) = FineTune, and methods that change
//! training.

use std::path::{Path, PathBuf};

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::{Device, Tensor};
use stab_core::{Plan, Recipe, RunRecord, RunSpec};
use stab_methods as _;
use stab_methods::engine::{Engine, Progress};

use crate::assets;

/// `testdata/`: the fixtures and the sliced task files, laid out like `shared/`.
fn shared() -> PathBuf {
    assets::root().join("testdata")
}

fn specs(body: &str) -> Vec<RunSpec> {
    specs_with_model("", body)
}

fn specs_with_model(model_extra: &str, body: &str) -> Vec<RunSpec> {
    let shared = shared();
    let text = format!(
        "name = \"t\"\n[model]\npath = \"{}\"\nmax_len = 64\n{model_extra}[data]\ndir = \"{}\"\n{body}",
        shared.join("fixtures/tiny-bert").display(),
        shared.join("data").display()
    );
    let recipe = Recipe::parse(&text, "test.toml").unwrap_or_else(|e| panic!("{e}"));
    Plan::from_recipe(&recipe)
        .unwrap_or_else(|e| panic!("{e}"))
        .runs
}

fn quiet(_: Progress) {}

fn engine(dir: &Path) -> Engine {
    Engine::new(Device::flex(), dir)
}

/// A record without its timing fields, for exact comparisons.
fn comparable(mut r: RunRecord) -> RunRecord {
    r.wall_s = 0.0;
    r.threads = 0;
    if let Some(d) = r.details.as_object_mut() {
        d.remove("seconds");
        d.remove("feature_cache");
    }
    r
}

#[test]
fn every_task_in_both_modes_trains_a_few_steps() {
    // QQP and BoolQ's train split are not in shared/data (PROVENANCE.md); their readers are
    // tested on official-format files in stab-data.
    let tasks = [
        "cola", "sst2", "mrpc", "rte", "wnli", "cb", "wsc", "multirc", "wic",
    ];
    let dir = tempfile::tempdir().unwrap();
    let eng = engine(dir.path());
    for mode in ["full", "head"] {
        let runs = specs(&format!(
            "tasks = {tasks:?}\ntrain_fraction = 0.5\n[train]\nmode = \"{mode}\"\nbatch_size = 8\nmax_steps = 3\nseeds = 1\nlr = 1e-3\n[[methods]]\nname = \"finetune\"\n"
        ));
        assert_eq!(runs.len(), tasks.len());
        for spec in &runs {
            let (r, _) = eng
                .run(spec, &quiet)
                .unwrap_or_else(|e| panic!("{} ({mode}): {e:#}", spec.task));
            assert_eq!(r.steps, 3, "{}", spec.task);
            let losses = r.details["train_loss"].as_array().unwrap();
            assert!(
                losses.iter().all(|l| l[1].as_f64().unwrap().is_finite()),
                "{} {mode}: {losses:?}",
                spec.task
            );
            let primary = r.metrics["primary"];
            assert!(
                primary.is_finite() && (-1.0..=1.0).contains(&primary),
                "{} {mode}: {primary}",
                spec.task
            );
            assert!(r.split.as_deref().unwrap().starts_with(
                if ["multirc", "wic"].contains(&spec.task.as_str()) {
                    "seeded:"
                } else {
                    "file:"
                }
            ));
            eprintln!(
                "{mode} {}: loss {:?}, test {:?}",
                spec.task,
                losses.last(),
                r.metrics
            );
        }
    }
}

#[test]
fn loss_falls_on_cb_and_rte() {
    let dir = tempfile::tempdir().unwrap();
    let eng = engine(dir.path());
    for mode in ["head", "full"] {
        // Head tuning reads mean-pooled features: the random tiny-bert pooler's output
        // barely varies between examples.
        let (pooling, epochs, lr) = if mode == "head" {
            ("pooling = \"mean\"\n", 40, "1e-2")
        } else {
            ("", 20, "1e-3")
        };
        let runs = specs_with_model(
            pooling,
            &format!(
                "tasks = [\"cb\", \"rte\"]\n[train]\nmode = \"{mode}\"\nbatch_size = 8\nepochs = {epochs}\nlr = {lr}\nwarmup = 0.0\npatience = 100\nseeds = 1\n[[methods]]\nname = \"finetune\"\n"
            ),
        );
        for spec in &runs {
            let (r, _) = eng.run(spec, &quiet).unwrap();
            let curve: Vec<f64> = r.details["train_loss"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p[1].as_f64().unwrap())
                .collect();
            eprintln!("{mode} {}: train loss per epoch {curve:.3?}", spec.task);
            // Mean of the first three epochs against the last three: a clear fall.
            let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
            let (first, last) = (mean(&curve[..3]), mean(&curve[curve.len() - 3..]));
            assert!(
                last < first - 0.03,
                "{mode} {}: loss {first} → {last}",
                spec.task
            );
        }
    }
}

/// Every float parameter of a module, flattened, in module order.
fn params<M: Module>(m: &M) -> Vec<Vec<f32>> {
    struct All(Vec<Vec<f32>>);
    impl ModuleVisitor for All {
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
            self.0.push(
                p.val()
                    .into_data()
                    .convert::<f32>()
                    .try_to_vec::<f32>()
                    .unwrap(),
            );
        }
    }
    let mut v = All(Vec::new());
    m.visit(&mut v);
    v.0
}

#[test]
fn head_tuning_leaves_the_encoder_bit_identical() {
    let dir = tempfile::tempdir().unwrap();
    let eng = engine(dir.path());
    let (pretrained, _) =
        stab_models::load_encoder(&shared().join("fixtures/tiny-bert"), &Device::flex()).unwrap();
    for (mode, extra) in [("head", "head_encoder_dropout = true\n"), ("full", "")] {
        let spec = &specs(&format!(
            "tasks = [\"rte\"]\ntrain_fraction = 0.05\n[train]\nmode = \"{mode}\"\n{extra}batch_size = 8\nmax_steps = 10\nlr = 1e-2\nseeds = 1\n[[methods]]\nname = \"finetune\"\n"
        ))[0];
        let trained = eng.train(spec, &quiet).unwrap();
        let enc = trained.model.encoder.as_ref().unwrap();
        // Embeddings and layers (the pooler is absent from tiny-bert: the run draws it).
        let same = params(&enc.embeddings) == params(&pretrained.embeddings)
            && params(&enc.encoder) == params(&pretrained.encoder);
        assert_eq!(
            same,
            mode == "head",
            "{mode}: encoder weights unchanged = {same}"
        );
    }
}

#[test]
fn same_seed_same_record_twice_in_parallel_and_across_thread_counts() {
    let runs = specs(
        "tasks = [\"cb\", \"wsc\"]\ntrain_fraction = 0.2\n[train]\nbatch_size = 8\nmax_steps = 6\nlr = 1e-3\nseeds = [3]\n[[methods]]\nname = \"mhloss\"\nheads = 3\n",
    );
    let dir = tempfile::tempdir().unwrap();
    let alone: Vec<RunRecord> = runs
        .iter()
        .map(|s| comparable(engine(dir.path()).run(s, &quiet).unwrap().0))
        .collect();
    // Again, in one engine, in reverse order.
    let eng = engine(dir.path());
    for (s, want) in runs.iter().zip(&alone).rev() {
        assert_eq!(
            &comparable(eng.run(s, &quiet).unwrap().0),
            want,
            "{}",
            s.run_id
        );
    }
    // At the same time, in two threads of one process.
    let together: Vec<RunRecord> = std::thread::scope(|scope| {
        let handles: Vec<_> = runs
            .iter()
            .map(|s| scope.spawn(|| comparable(eng.run(s, &quiet).unwrap().0)))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(together, alone);
    // With 1 and with 2 worker threads.
    for threads in [1, 2] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        let got: Vec<RunRecord> = pool.install(|| {
            runs.iter()
                .map(|s| comparable(engine(dir.path()).run(s, &quiet).unwrap().0))
                .collect()
        });
        assert_eq!(got, alone, "{threads} threads");
    }
}

#[test]
fn mhloss_with_one_head_is_finetune_and_methods_change_training() {
    let body = |methods: &str| {
        format!(
            "tasks = [\"cb\"]\ntrain_fraction = 0.3\n[train]\nbatch_size = 8\nmax_steps = 12\neval_every = 4\nlr = 1e-3\nseeds = [1]\n{methods}"
        )
    };
    let dir = tempfile::tempdir().unwrap();
    let eng = engine(dir.path());
    let run = |m: &str| comparable(eng.run(&specs(&body(m))[0], &quiet).unwrap().0);
    let finetune = run("[[methods]]\nname = \"finetune\"\n");
    let one_head = run("[[methods]]\nname = \"mhloss\"\nheads = 1\n");
    for key in ["dev_curve", "train_loss"] {
        assert_eq!(finetune.details[key], one_head.details[key], "{key}");
    }
    assert_eq!(finetune.metrics, one_head.metrics);
    let fifty = run("[[methods]]\nname = \"mhloss\"\nheads = 50\n");
    let mmr = run("[[methods]]\nname = \"mmr\"\nalpha = 1.0\n");
    assert_ne!(
        fifty.details["train_loss"], finetune.details["train_loss"],
        "MHLoss(50) changes training"
    );
    assert_ne!(
        mmr.details["train_loss"], finetune.details["train_loss"],
        "MMR changes training"
    );
    // MMR's loss is CE + α·R with R in (0, 1]: above FineTune's CE at the first interval.
    let first = |r: &RunRecord| r.details["train_loss"][0][1].as_f64().unwrap();
    assert!(
        first(&mmr) > first(&finetune),
        "{} vs {}",
        first(&mmr),
        first(&finetune)
    );
}

#[test]
fn cached_features_are_reused_from_memory_and_disk() {
    let dir = tempfile::tempdir().unwrap();
    let runs = specs(
        "tasks = [\"cb\"]\n[train]\nmode = \"head\"\nbatch_size = 8\nmax_steps = 2\nseeds = 2\n[[methods]]\nname = \"finetune\"\n",
    );
    let eng = engine(dir.path());
    let (_, a) = eng.run(&runs[0], &quiet).unwrap();
    let (_, b) = eng.run(&runs[1], &quiet).unwrap();
    let (r, c) = engine(dir.path()).run(&runs[1], &quiet).unwrap();
    assert_eq!(
        (a.feature_source, b.feature_source, c.feature_source),
        ("encoded", "memory", "disk")
    );
    assert_eq!(r.details["feature_cache"], "disk");
    let bins = std::fs::read_dir(dir.path().join("cache"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "safetensors")
        })
        .count();
    assert_eq!(bins, 1);
}
