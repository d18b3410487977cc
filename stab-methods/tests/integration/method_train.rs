//! A `[[methods]]` table's own training keys (issue #35, "tuned against tuned"): each
//! method of one recipe can run at its own learning rate, checked like `[train]` and
//! located at `methods[i].train.KEY`.

use stab_core::plan::RunJob;
use stab_core::{Plan, Recipe};

// Registers the methods.
use stab_methods as _;

fn recipe(methods: &str) -> String {
    format!(
        "name = \"t\"\n[model]\npath = \"m\"\nmax_len = 64\n[data]\ndir = \"d\"\ntasks = [\"cb\"]\n[train]\nlr = 2e-5\nseeds = 2\n[[methods]]\nname = \"finetune\"\n{methods}"
    )
}

fn plan(methods: &str) -> Result<Plan, stab_core::InputError> {
    let recipe = Recipe::parse(&recipe(methods), "t.toml")?;
    Plan::from_recipe(&recipe)
}

#[test]
fn a_method_runs_at_its_own_learning_rate() {
    let plan =
        plan("[[methods]]\nname = \"lora\"\ntrain = { lr = 5e-4, warmup = 0.06 }\n").unwrap();
    let lr = |method: &str| -> Vec<(f64, f64)> {
        plan.runs
            .iter()
            .filter(|r| r.method == method)
            .map(|r| match &r.job {
                RunJob::Finetune(job) => (job.train.lr, job.train.warmup),
                _ => unreachable!(),
            })
            .collect()
    };
    assert_eq!(lr("finetune"), [(2e-5, 0.1), (2e-5, 0.1)]);
    assert_eq!(lr("lora"), [(5e-4, 0.06), (5e-4, 0.06)]);
    // The override is part of the runs' identity.
    let plain = self::plan("[[methods]]\nname = \"lora\"\n").unwrap();
    let ids = |p: &Plan| -> Vec<String> {
        p.runs
            .iter()
            .filter(|r| r.method == "lora")
            .map(|r| r.run_id.clone())
            .collect()
    };
    assert_ne!(ids(&plan), ids(&plain));
    assert_eq!(
        plan.runs[0].run_id, plain.runs[0].run_id,
        "FineTune's runs unchanged"
    );
    let lora = plan.runs.iter().find(|r| r.method == "lora").unwrap();
    assert_eq!(
        lora.method_train["lr"], 5e-4,
        "shown in the record's details.method_train"
    );
    assert!(plan.runs[0].method_train.is_empty());
}

#[test]
fn a_methods_training_keys_are_checked_where_they_are_written() {
    for (train, key, says) in [
        (
            "train = { lr = -1.0 }",
            "methods[1].train.lr",
            "out of range",
        ),
        (
            "train = { lrr = 1e-3 }",
            "methods[1].train.lrr",
            "unknown field",
        ),
        (
            "train = { seeds = 3 }",
            "methods[1].train.seeds",
            "the grid's",
        ),
        ("train = 3", "methods[1].train", "must be a table"),
        (
            "train = { lr = 1e-3 }\n[sweep]\n\"train.lr\" = [1e-5, 2e-5]",
            "methods[1].train.lr",
            "is swept",
        ),
    ] {
        let e = plan(&format!("[[methods]]\nname = \"lora\"\n{train}\n")).unwrap_err();
        assert_eq!(e.key.as_deref(), Some(key), "{train}: {e}");
        assert!(e.to_string().contains(says), "{train}: {e}");
        // The `train = …` line (the table's header for a value that is not a table).
        let line = if train == "train = 3" { 13 } else { 15 };
        assert_eq!(e.line, Some(line), "{train}: {e}");
    }
}
