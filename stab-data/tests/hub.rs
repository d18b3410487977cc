//! The Hub data source on a hand-laid Hugging Face cache (`testdata/hub`, the task slices
//! as Hub parquet files): the same rows, texts, labels and spans as the official files,
//! the official text written back, rows put in `idx` order, split files applied or
//! refused, and the errors of a wrong dataset and of an empty offline cache.

use std::collections::BTreeMap;

use stab_core::{DataOrigin, HubDatasetSpec};
use stab_data::hub::{self, DatasetCache, HubDataset};
use stab_data::{SplitFiles, SplitSource, load_task, resolve_split, task_def};

#[path = "../../testsupport/assets.rs"]
mod assets;

fn cache() -> DatasetCache {
    DatasetCache::new(assets::hub_cache(), false)
}

fn override_rte(config: &str) -> BTreeMap<String, HubDatasetSpec> {
    BTreeMap::from([(
        "rte".to_string(),
        HubDatasetSpec {
            dataset: "stab-tests/bad-glue".into(),
            config: config.into(),
            revision: None,
        },
    )])
}

const TASKS: &[&str] = &[
    "cola", "sst2", "mrpc", "rte", "wnli", "cb", "wsc", "wic", "multirc",
];

#[test]
fn hub_rows_equal_the_official_files_rows() {
    let none = BTreeMap::new();
    for task in TASKS {
        let def = task_def(task).unwrap();
        let dir = load_task(def, DataOrigin::Dir(&assets::slices()), &cache()).unwrap();
        let hub = load_task(def, DataOrigin::Hub(&none), &cache()).unwrap();
        assert!(
            !dir.data.train.is_empty() && !dir.data.test.is_empty(),
            "{task}"
        );
        assert_eq!(hub.data.train, dir.data.train, "{task} train");
        assert_eq!(hub.data.test, dir.data.test, "{task} test");
        assert_ne!(
            hub.fingerprint, dir.fingerprint,
            "{task}: the files read differ"
        );
    }
    // The slices have no BoolQ train file: the fixture's train split repeats validation.
    let def = task_def("boolq").unwrap();
    let hub = load_task(def, DataOrigin::Hub(&none), &cache()).unwrap();
    let val = def
        .parse(
            &read_text(&assets::slices().join("superglue/BoolQ/val.jsonl")),
            &read_text(&assets::slices().join("superglue/BoolQ/val.jsonl")),
        )
        .unwrap();
    assert_eq!(hub.data.test, val.test);
    assert_eq!(hub.data.train, val.test);
}

fn read_text(path: &std::path::Path) -> stab_data::tasks::TaskText {
    stab_data::tasks::TaskText {
        origin: path.display().to_string(),
        text: std::fs::read_to_string(path).unwrap(),
    }
}

#[test]
fn the_official_text_written_from_the_hub_reads_back_the_same_rows() {
    let tmp = tempfile::tempdir().unwrap();
    let none = BTreeMap::new();
    for task in TASKS.iter().chain(&["boolq"]) {
        let def = task_def(task).unwrap();
        let ds = HubDataset::of(def, &none);
        let got = hub::load(def, &ds, &cache()).unwrap();
        for (file, text) in [
            (def.files.0, &got.train_text),
            (def.files.1, &got.test_text),
        ] {
            let path = def.path(tmp.path(), file);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &text.text).unwrap();
        }
        let back = def.load(tmp.path()).unwrap();
        assert_eq!(back.train, got.data.train, "{task}");
        assert_eq!(back.test, got.data.test, "{task}");
    }
}

#[test]
fn rows_are_ordered_by_idx_across_shards() {
    let def = task_def("rte").unwrap();
    let plain = hub::load(def, &HubDataset::of(def, &BTreeMap::new()), &cache()).unwrap();
    for config in ["rte-shuffled", "rte-sharded"] {
        let got = load_task(def, DataOrigin::Hub(&override_rte(config)), &cache()).unwrap();
        assert_eq!(got.data.train.len(), 24, "{config}");
        assert_eq!(got.data.train[..], plain.data.train[..24], "{config}");
    }
    let ds = HubDataset::of(def, &override_rte("rte-sharded"));
    assert_eq!(cache().cached_shards(&ds, "train").len(), 3);
}

#[test]
fn a_dataset_that_is_not_the_official_one_is_refused() {
    let def = task_def("rte").unwrap();
    let err = |config: &str| {
        load_task(def, DataOrigin::Hub(&override_rte(config)), &cache())
            .unwrap_err()
            .to_string()
    };
    let gap = err("rte-gap");
    assert!(
        gap.contains("`idx` column skips to 8 where the official order has 7"),
        "{gap}"
    );
    assert!(
        gap.contains("train-00000-of-00001.parquet") && gap.contains("split files"),
        "{gap}"
    );
    let hidden = err("rte-hidden");
    assert!(
        hidden.contains("label −1") && hidden.contains("hidden"),
        "{hidden}"
    );
    let labels = err("rte-labels");
    assert!(
        labels.contains("[not_entailment, entailment]")
            && labels.contains("expects [entailment, not_entailment]"),
        "{labels}"
    );
    let missing = err("no-such-config");
    assert!(
        missing.contains("stab-tests/bad-glue (config no-such-config)"),
        "{missing}"
    );
}

#[test]
fn offline_with_nothing_cached_names_the_dataset_the_cache_and_the_fetch() {
    let tmp = tempfile::tempdir().unwrap();
    let def = task_def("cb").unwrap();
    let e = load_task(
        def,
        DataOrigin::Hub(&BTreeMap::new()),
        &DatasetCache::new(tmp.path().to_path_buf(), false),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("aps/super_glue (config cb)"), "{e}");
    assert!(e.contains(&tmp.path().display().to_string()), "{e}");
    assert!(
        e.contains("HF_HUB_OFFLINE") && e.contains("stab data fetch --tasks cb"),
        "{e}"
    );
}

#[test]
fn split_files_apply_to_hub_rows_or_are_refused() {
    let none = BTreeMap::new();
    let def = task_def("rte").unwrap();
    let dir = load_task(def, DataOrigin::Dir(&assets::slices()), &cache()).unwrap();
    let hub = load_task(def, DataOrigin::Hub(&none), &cache()).unwrap();
    let files = SplitFiles::Dir(assets::slices().join("splits"));
    let a = resolve_split(&dir.data, Some(&files), 0.1).unwrap();
    let b = resolve_split(&hub.data, Some(&files), 0.1).unwrap();
    assert_eq!(
        (a.hash.clone(), a.splits.dev.clone()),
        (b.hash, b.splits.dev)
    );
    // The author's built-in file numbers the 2,490 rows of the full train file: the
    // 160-row slice does not match it.
    let e = resolve_split(&hub.data, Some(&SplitFiles::Author), 0.1)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("2241 train + 249 dev rows, but the train file has 160"),
        "{e}"
    );
    assert!(e.contains("built-in author split rte.json"), "{e}");
    // With source = "hub" and no data.splits, the built-in files are the default.
    let files = stab_data::split_files(DataOrigin::Hub(&none), None, "data.splits").unwrap();
    assert_eq!(files, Some(SplitFiles::Author));
}

#[test]
fn the_built_in_author_splits_are_the_shared_files() {
    let Some(full) = assets::full_data("the_built_in_author_splits_are_the_shared_files") else {
        return;
    };
    for task in ["cb", "cola", "mrpc", "rte", "sst2", "wnli", "wsc"] {
        let shared =
            std::fs::read_to_string(full.join("splits").join(format!("{task}.json"))).unwrap();
        assert_eq!(
            stab_data::author_split(task),
            Some(shared.as_str()),
            "{task}"
        );
        let def = task_def(task).unwrap();
        let data = def.load(&full).unwrap();
        let by_file =
            resolve_split(&data, Some(&SplitFiles::Dir(full.join("splits"))), 0.1).unwrap();
        let built_in = resolve_split(&data, Some(&SplitFiles::Author), 0.1).unwrap();
        assert_eq!(by_file.hash, built_in.hash, "{task}");
        assert_eq!(built_in.source, SplitSource::Author(def.name));
    }
    for task in ["qqp", "boolq", "multirc", "wic"] {
        assert_eq!(stab_data::author_split(task), None);
    }
}

/// A custom task from a Hub dataset id (`[data.custom.<name>] dataset = …`): the splits
/// `push_to_hub` lays out under `data/`, the ClassLabel's names (not sorted) as the classes
/// in the dataset's id order, the rows those of the CSV they were made from, the shards'
/// bytes as the data hash; a missing split is one located error.
#[test]
fn a_custom_task_reads_a_hub_dataset_by_id() {
    let spec: stab_core::CustomTaskSpec = serde_json::from_value(serde_json::json!({
        "dataset": "stab-tests/reviews",
        "train": "train",
        "test": "test",
        "text": "review",
        "label": "sentiment",
    }))
    .unwrap();
    spec.check().unwrap();
    let c = stab_data::custom::load("hubrev", &spec, &cache()).unwrap();
    assert_eq!(c.data.task.labels(), ["positive", "negative"]);
    assert_eq!((c.data.train.len(), c.data.test.len()), (80, 40));
    assert!(c.held_out.is_none());
    // The same rows as the CSV's first 80 lines.
    let csv =
        std::fs::read_to_string(assets::root().join("examples/own-task/reviews.csv")).unwrap();
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    let first: Vec<(String, String)> = reader
        .records()
        .take(80)
        .map(|r| {
            let r = r.unwrap();
            (r[0].to_string(), r[1].to_string())
        })
        .collect();
    let labels = c.data.task.labels();
    for (e, (text, label)) in c.data.train.iter().zip(&first) {
        assert_eq!(e.segments, [text.as_str()]);
        assert_eq!(&labels[e.label], label);
    }
    // The data hash is the shards' bytes: another table over the same dataset agrees.
    let again = stab_data::custom::load("other", &spec, &cache()).unwrap();
    assert_eq!(again.fingerprint, c.fingerprint);

    let mut missing = spec.clone();
    missing.test = Some("validation".into());
    let e = stab_data::custom::load("hubrev", &missing, &cache())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("stab-tests/reviews")
            && e.contains("validation")
            && e.contains("data.custom.hubrev.test"),
        "{e}"
    );
    assert!(e.contains("stab data check --recipe"), "{e}");
}
