//! Every run stores its test predictions beside the store and the majority-class score
//! its failure is judged by (issue #21; docs/design.md §5): the stored predictions give
//! back the record's test metrics, and the majority score is the one computed by hand.

use stab_core::{Plan, Recipe};
use stab_eval::PrimaryMetric;

use crate::tiny_cb::{engine, quiet, testdata, tiny};

#[test]
fn a_run_stores_its_test_predictions_and_its_majority_class_score() {
    let dir = tempfile::tempdir().unwrap();
    let eng = engine(dir.path());
    let text = format!(
        "name = \"t\"\n[model]\npath = \"{}\"\nmax_len = 64\n[data]\ndir = \"{}\"\ntasks = [\"cb\"]\n[train]\nmax_steps = 4\nlr = 1e-3\nseeds = [3]\n[[methods]]\nname = \"finetune\"\n",
        tiny().display(),
        testdata().join("data").display()
    );
    let recipe = Recipe::parse(&text, "t.toml").unwrap();
    let spec = Plan::from_recipe(&recipe).unwrap().runs.remove(0);
    let (record, _) = eng.run(&spec, &quiet).unwrap();
    let stored = stab_core::predictions::read_for(dir.path(), &record)
        .unwrap()
        .expect("the run wrote its predictions");
    assert_eq!(stored.task, "cb");
    assert_eq!(Some(&stored.split), record.split.as_ref());
    // The test split's labels, in file order.
    let data = stab_data::task_def("cb")
        .unwrap()
        .load(&testdata().join("data"))
        .unwrap();
    let gold: Vec<usize> = data.test.iter().map(|e| e.label).collect();
    assert_eq!(stored.predicted.len(), gold.len());
    let pred: Vec<usize> = stored.predicted.iter().map(|&p| p as usize).collect();
    let metric = PrimaryMetric::parse("acc_and_macro_f1").unwrap();
    let again = metric.evaluate(&pred, &gold, 3, None);
    assert_eq!(again["primary"], record.metrics["primary"]);
    // Majority class of the test split, predicted for every row.
    let mut counts = [0usize; 3];
    for &g in &gold {
        counts[g] += 1;
    }
    let majority = (0..3)
        .max_by_key(|&c| (counts[c], std::cmp::Reverse(c)))
        .unwrap();
    let want = metric.evaluate(&vec![majority; gold.len()], &gold, 3, None)["primary"];
    assert_eq!(record.details["majority_test"].as_f64(), Some(want));
}
