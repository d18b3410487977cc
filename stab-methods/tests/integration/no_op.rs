//! Methods that change nothing in a mode (issue #34): MixOut's author variant, LNSR, LLRD
//! and task-driven Child-Tuning in head tuning. A protocol lists them on purpose (the
//! paper's head-tuning table), so they run; their records say why they are no-ops
//! (`details.no_op`) and their scores are FineTune's; in full tuning they are not marked.

use burn::tensor::Device;
use stab_core::{Plan, Recipe, RunRecord};
use stab_methods::engine::{Engine, Progress};

use crate::assets;

fn run(eng: &Engine, mode: &str, method: &str) -> RunRecord {
    let testdata = assets::root().join("testdata");
    let text = format!(
        "name = \"n\"\n[model]\npath = \"{}\"\nmax_len = 64\n[data]\ndir = \"{}\"\ntasks = [\"cb\"]\ntrain_fraction = 0.3\n[train]\nmode = \"{mode}\"\nbatch_size = 8\nmax_steps = 4\neval_every = 2\nlr = 1e-3\nseeds = [3]\n[[methods]]\n{method}\n",
        testdata.join("fixtures/tiny-bert").display(),
        testdata.join("data").display()
    );
    let recipe = Recipe::parse(&text, "n.toml").unwrap_or_else(|e| panic!("{e}"));
    let spec = &Plan::from_recipe(&recipe).unwrap().runs[0];
    eng.run(spec, &|_: Progress| {})
        .unwrap_or_else(|e| panic!("{method}: {e:#}"))
        .0
}

#[test]
fn head_mode_no_ops_are_marked_and_equal_finetune() {
    let dir = tempfile::tempdir().unwrap();
    let eng = Engine::new(Device::flex(), dir.path());
    let finetune = run(&eng, "head", "name = \"finetune\"");
    assert!(finetune.details.get("no_op").is_none());
    for method in [
        "name = \"mixout\"\nvariant = \"author\"",
        "name = \"lnsr\"",
        "name = \"llrd\"\nxi = 0.7",
        "name = \"child_tuning\"\nvariant = \"d\"",
    ] {
        let r = run(&eng, "head", method);
        let why = r.details["no_op"]
            .as_str()
            .unwrap_or_else(|| panic!("{method}: unmarked"));
        assert!(!why.is_empty());
        assert_eq!(
            r.metrics, finetune.metrics,
            "{method}: not FineTune's scores"
        );
        let full = run(&eng, "full", method);
        assert!(
            full.details.get("no_op").is_none(),
            "{method} marked in full tuning"
        );
    }
    // A method that acts in head tuning is not marked.
    let mixout = run(&eng, "head", "name = \"mixout\"\np = 0.5");
    assert!(mixout.details.get("no_op").is_none());
}
