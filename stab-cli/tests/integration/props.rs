//! Property test of the recipe parser and validator: valid recipes with random keys and
//! values inserted (typos, NaN, infinities, huge and negative numbers, wrong types) parse
//! and plan, or fail with one located `InputError`; never a panic.

use proptest::prelude::*;
use stab_core::{Plan, Recipe};
use stab_data as _;
use stab_methods as _;
use stab_synthetic as _;

const SYNTHETIC: &str = "name = \"p\"\nkind = \"synthetic\"\n[synthetic]\nfactor = \"margin\"\ndatasets = 3\npoints = 40\nsteps = 20\n";
const FINETUNE: &str = "name = \"p\"\n[model]\npath = \"m\"\n[data]\ndir = \"d\"\ntasks = [\"rte\"]\n[train]\nseeds = 2\n[[methods]]\nname = \"mmr\"\n[sweep]\n\"train.lr\" = [1e-5]\n";

fn key() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "factor",
        "values",
        "datasets",
        "points",
        "dim",
        "margin",
        "bound",
        "steps",
        "checkpoints",
        "loo_samples",
        "heads",
        "init_std",
        "mu",
        "svm_c",
        "svm_tol",
        "gd_loo",
        "seed",
        "mode",
        "profile",
        "epochs",
        "batch_size",
        "lr",
        "warmup",
        "weight_decay",
        "eval_every",
        "patience",
        "seeds",
        "max_steps",
        "grad_clip",
        "min_steps",
        "fixed_seeds",
        "head_encoder_dropout",
        "max_len",
        "pooling",
        "path",
        "dir",
        "tasks",
        "splits",
        "dev_fraction",
        "train_fraction",
        "drop_fraction",
        "alpha",
        "name",
        "out",
        "kind",
        "\"train.lr\"",
        "\"mmr.alpha\"",
        "\"data.tasks\"",
        "\"model.max_len\"",
        "\"mixout.p\"",
        "\"train.seeds\"",
        "datasetz",
        "lrr",
    ])
}

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "0",
            "-1",
            "1",
            "2",
            "1000000000000",
            "9223372036854775807",
            "nan",
            "inf",
            "-inf",
            "-0.0",
            "1e308",
            "1e-320",
            "0.5",
            "\"\"",
            "\"rte\"",
            "\"margin\"",
            "\"../x\"",
            "\"a\\nb\"",
            "true",
            "[]",
            "[0]",
            "[nan]",
            "[1e-5, 2e-5]",
            "[[\"rtee\"]]",
            "{ data_order = 0 }",
            "{ order = 1 }",
            "[\"heads\"]",
            "\"head\"",
            "\"author\"",
            "\"mean\"",
            "{}",
        ])
        .prop_map(str::to_string),
        any::<i64>().prop_map(|v| v.to_string()),
        any::<f64>().prop_map(|v| format!("{v:?}")),
    ]
}

fn table() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "",
        "[synthetic]",
        "[train]",
        "[data]",
        "[model]",
        "[sweep]",
        "[[methods]]",
        "[[synthetic.studies]]",
    ])
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn mutated_recipes_plan_or_fail_cleanly(
        finetune in any::<bool>(),
        inserts in proptest::collection::vec((table(), key(), value()), 1..5),
    ) {
        let mut text = if finetune { FINETUNE } else { SYNTHETIC }.to_string();
        for (t, k, v) in inserts {
            text.push_str(&format!("\n{t}\n{k} = {v}\n"));
        }
        match Recipe::parse(&text, "fuzz.toml") {
            Ok(recipe) => {
                if let Ok(plan) = Plan::from_recipe(&recipe) {
                    prop_assert!(plan.runs.len() <= 10_000_000);
                } else if let Err(e) = Plan::from_recipe(&recipe) {
                    prop_assert!(e.file.is_some(), "{e}");
                }
            }
            Err(e) => prop_assert!(e.file.is_some(), "{e}"),
        }
    }
}
