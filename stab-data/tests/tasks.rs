//! Every available task loads from `shared/data`; split sizes follow docs/methods.md §3.3;
//! QQP and BoolQ-train readers are tested on small files in the official format; bad
//! inputs give one located error.

use std::path::{Path, PathBuf};

use stab_data::tasks::label_counts;
use stab_data::{dev_split, perturb, task_def};

#[path = "../../testsupport/assets.rs"]
mod assets;

/// The sliced task files the repository carries.
fn data_dir() -> PathBuf {
    assets::slices()
}

/// (task, official train, 90% train, 10% dev, test, test label counts)
type Expected = (&'static str, usize, usize, usize, usize, &'static [usize]);
const EXPECTED: &[Expected] = &[
    ("cola", 8551, 7695, 856, 1043, &[322, 721]),
    ("sst2", 67349, 60614, 6735, 872, &[428, 444]),
    ("mrpc", 3668, 3301, 367, 408, &[129, 279]),
    ("rte", 2490, 2241, 249, 277, &[146, 131]),
    ("wnli", 635, 571, 64, 71, &[40, 31]),
    ("cb", 250, 225, 25, 56, &[23, 28, 5]),
    ("wsc", 554, 498, 56, 104, &[66, 38]),
    ("wic", 5428, 4885, 543, 638, &[319, 319]),
];

#[test]
fn available_tasks_load_with_expected_sizes() {
    let Some(full) = assets::full_data("available_tasks_load_with_expected_sizes") else {
        return;
    };
    for &(name, total, train, dev, test, test_labels) in EXPECTED {
        let def = task_def(name).unwrap();
        let data = def.load(&full).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(data.train.len(), total, "{name} official train");
        let s = dev_split(&data, 0.1);
        assert_eq!(
            (s.train.len(), s.dev.len(), s.test.len()),
            (train, dev, test),
            "{name} split"
        );
        let counts: Vec<usize> = label_counts(&data.task, &s.test)
            .into_iter()
            .map(|(_, c)| c)
            .collect();
        assert_eq!(counts, test_labels, "{name} test labels");
        // The split is fixed: the same rows every time.
        assert_eq!(dev_split(&data, 0.1).dev, s.dev);
    }
}

#[test]
fn multirc_splits_by_passage() {
    let Some(full) = assets::full_data("multirc_splits_by_passage") else {
        return;
    };
    let def = task_def("multirc").unwrap();
    let data = def.load(&full).unwrap();
    assert_eq!(data.train.len(), 27243, "answer rows");
    assert_eq!(data.test.len(), 4848);
    let questions: std::collections::HashSet<u64> =
        data.test.iter().filter_map(|e| e.question).collect();
    assert_eq!(questions.len(), 953);
    assert_eq!(data.test.iter().filter(|e| e.label == 1).count(), 2075);
    let s = dev_split(&data, 0.1);
    let passages = |rows: &[stab_data::Example]| {
        rows.iter()
            .map(|e| e.group)
            .collect::<std::collections::HashSet<_>>()
    };
    let (tp, dp) = (passages(&s.train), passages(&s.dev));
    assert_eq!((tp.len(), dp.len()), (410, 46));
    assert!(tp.is_disjoint(&dp), "no passage in both train and dev");
    // Template: `paragraph question` (one space, no separator) paired with the answer.
    let text = std::fs::read_to_string(full.join("superglue/MultiRC/val.jsonl")).unwrap();
    let first: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    let passage = first["passage"]["text"].as_str().unwrap();
    let q0 = &first["passage"]["questions"][0];
    assert_eq!(data.test[0].segments[0], passage);
    assert_eq!(data.test[0].segments[1], q0["question"].as_str().unwrap());
    assert_eq!(
        data.test[0].segments[2],
        q0["answers"][0]["text"].as_str().unwrap()
    );
    let (input, _) = stab_data::encode::model_input(&data.test[0], "</s></s>");
    assert_eq!(
        input.text,
        format!("{passage} {}", q0["question"].as_str().unwrap()),
        "no separator between paragraph and question"
    );
    assert_eq!(data.test[0].question, Some(q0["idx"].as_u64().unwrap()));
}

#[test]
fn templates_follow_the_spec() {
    let d = data_dir();
    let rte = task_def("rte").unwrap().load(&d).unwrap();
    assert_eq!(rte.train[0].segments.len(), 2);
    let cola = task_def("cola").unwrap().load(&d).unwrap();
    assert_eq!(
        cola.test.len(),
        60,
        "CoLA dev has no final newline; the last row still counts"
    );
    let wic = task_def("wic").unwrap().load(&d).unwrap();
    let e = &wic.train[0];
    assert_eq!(e.segments.len(), 3, "WiC: word, sentence1, sentence2");
    for &(seg, a, b) in &e.spans {
        let piece: String = e.segments[seg].chars().skip(a).take(b - a).collect();
        assert!(
            piece
                .to_lowercase()
                .starts_with(&e.segments[0][..3.min(e.segments[0].len())].to_lowercase()),
            "WiC span `{piece}` vs word `{}`",
            e.segments[0]
        );
    }
    let wsc = task_def("wsc").unwrap().load(&d).unwrap();
    let text = std::fs::read_to_string(d.join("superglue/WSC/train.jsonl")).unwrap();
    let first: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    let e = &wsc.train[0];
    for (k, which) in ["span1_text", "span2_text"].iter().enumerate() {
        let (_, a, b) = e.spans[k];
        let piece: String = e.segments[0].chars().skip(a).take(b - a).collect();
        let want = first["target"][which].as_str().unwrap();
        assert!(
            piece.starts_with(want)
                || want.starts_with(piece.trim_end_matches(|c: char| c.is_ascii_punctuation())),
            "WSC {which}: `{piece}` vs `{want}`"
        );
    }
    let boolq_val = task_def("boolq").unwrap().path(&d, "val.jsonl");
    assert!(boolq_val.exists());
}

#[test]
fn perturbations_touch_train_only_and_depend_on_the_seed() {
    let data = task_def("rte").unwrap().load(&data_dir()).unwrap();
    let s = dev_split(&data, 0.1);
    let a = perturb(s.clone(), "rte", 1, 1.0, 0.1);
    let b = perturb(s.clone(), "rte", 2, 1.0, 0.1);
    assert_eq!(
        a.train.len(),
        s.train.len() - (0.1 * s.train.len() as f64).round() as usize
    );
    assert_ne!(a.train, b.train, "each seed removes a different 10%");
    assert_eq!(
        (a.dev.clone(), a.test.clone()),
        (s.dev.clone(), s.test.clone())
    );
    let half = perturb(s.clone(), "rte", 1, 0.5, 0.0);
    assert_eq!(
        half.train.len(),
        (0.5 * s.train.len() as f64).round() as usize
    );
    assert_eq!(
        perturb(s.clone(), "rte", 1, 0.5, 0.0).train,
        half.train,
        "reproducible"
    );
}

fn write(dir: &Path, rel: &str, text: &str) {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

#[test]
fn qqp_and_boolq_readers_on_official_format() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let header = "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate\n";
    write(
        d,
        "glue/QQP/train.tsv",
        &format!(
            "{header}1\t1\t2\tHow do I learn \"Rust\"?\tWhat is the best way to learn Rust?\t1\n2\t3\t4\tWhy is the sky blue?\tHow tall is Everest?\t0\n"
        ),
    );
    write(
        d,
        "glue/QQP/dev.tsv",
        &format!("{header}3\t5\t6\tIs café good?\tIs coffee good?\t1"),
    );
    let qqp = task_def("qqp").unwrap().load(d).unwrap();
    assert_eq!(qqp.train.len(), 2);
    assert_eq!(
        qqp.train[0].segments,
        [
            "How do I learn \"Rust\"?",
            "What is the best way to learn Rust?"
        ]
    );
    assert_eq!(qqp.train[1].label, 0);
    assert_eq!(
        qqp.test[0].segments[0], "Is café good?",
        "unicode, no final newline"
    );
    write(
        d,
        "superglue/BoolQ/train.jsonl",
        "{\"question\": \"is the sky blue\", \"passage\": \"The sky is blue.\", \"idx\": 0, \"label\": true}\n{\"question\": \"is fire cold\", \"passage\": \"Fire is hot.\", \"idx\": 1, \"label\": false}\n",
    );
    write(
        d,
        "superglue/BoolQ/val.jsonl",
        "{\"question\": \"q\", \"passage\": \"p\", \"idx\": 0, \"label\": true}\n",
    );
    let boolq = task_def("boolq").unwrap().load(d).unwrap();
    assert_eq!(
        boolq.train[0].segments,
        ["is the sky blue", "The sky is blue."],
        "question first"
    );
    assert_eq!((boolq.train[0].label, boolq.train[1].label), (1, 0));
}

fn load_err(d: &Path, task: &str) -> String {
    task_def(task).unwrap().load(d).unwrap_err().to_string()
}

#[test]
fn bad_inputs_are_located() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    // Missing file: names the expected path and layout.
    let m = load_err(d, "rte");
    assert!(
        m.contains("glue/RTE/train.tsv") && m.contains("glue/<TASK>/{train,dev}.tsv"),
        "{m}"
    );
    // A row with a missing column.
    write(
        d,
        "glue/RTE/train.tsv",
        "index\tsentence1\tsentence2\tlabel\n0\tA man.\tA person.\tentailment\n1\tOnly two\tcolumns\n",
    );
    write(
        d,
        "glue/RTE/dev.tsv",
        "index\tsentence1\tsentence2\tlabel\n0\ta\tb\tentailment\n",
    );
    let m = load_err(d, "rte");
    assert!(
        m.contains("train.tsv:3") && m.contains("expected 4 tab-separated columns, found 3"),
        "{m}"
    );
    // An unknown label.
    write(
        d,
        "glue/RTE/train.tsv",
        "index\tsentence1\tsentence2\tlabel\n0\tA man.\tA person.\tentails\n",
    );
    let m = load_err(d, "rte");
    assert!(
        m.contains("train.tsv:2")
            && m.contains("unknown label `entails`")
            && m.contains("entailment, not_entailment"),
        "{m}"
    );
    // Invalid JSON.
    write(
        d,
        "superglue/CB/train.jsonl",
        "{\"premise\": \"a\", \"hypothesis\": \"b\", \"label\": \"neutral\"}\n{\"premise\": \"a\",\n",
    );
    write(
        d,
        "superglue/CB/val.jsonl",
        "{\"premise\": \"a\", \"hypothesis\": \"b\", \"label\": \"neutral\"}\n",
    );
    let m = load_err(d, "cb");
    assert!(
        m.contains("train.jsonl:2") && m.contains("invalid JSON"),
        "{m}"
    );
    // An empty split.
    write(d, "superglue/CB/train.jsonl", "\n");
    let m = load_err(d, "cb");
    assert!(
        m.contains("train.jsonl") && m.contains("no examples"),
        "{m}"
    );
    // Unknown task name.
    let e = task_def("rtee").unwrap_err().to_string();
    assert!(e.contains("did you mean `rte`"), "{e}");
}

/// Custom tasks (docs/data.md §7): the same rows from CSV, TSV and JSON Lines; parquet
/// through the Hub reader's record reader; the held-out test split; one located error per
/// malformed file.
mod custom {
    use std::path::Path;

    use serde_json::json;
    use stab_core::{CustomTaskSpec, InputError};
    use stab_data::custom::CustomLoad;
    use stab_data::hub::DatasetCache;

    /// A file-based task's load (no Hub cache is read).
    fn load(name: &str, spec: &CustomTaskSpec) -> Result<CustomLoad, InputError> {
        let no_cache = DatasetCache::new(std::env::temp_dir().join("stab-no-hub-cache"), false);
        stab_data::custom::load(name, spec, &no_cache)
    }

    fn spec(v: serde_json::Value) -> CustomTaskSpec {
        serde_json::from_value(v).unwrap()
    }

    fn write(dir: &Path, name: &str, text: &str) -> String {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    }

    const CSV: &str = "review,sentiment\n\"good, really\",positive\nbad,negative\n\"a \"\"fine\"\" film\",positive\ndull,negative\nfun,positive\nslow,negative\nwarm,positive\n";

    #[test]
    fn csv_tsv_and_jsonl_give_the_same_rows() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        let csv = write(d, "r.csv", CSV);
        let tsv = write(
            d,
            "r.tsv",
            "review\tsentiment\ngood, really\tpositive\nbad\tnegative\n\"a \"\"fine\"\" film\"\tpositive\ndull\tnegative\nfun\tpositive\nslow\tnegative\nwarm\tpositive\n",
        );
        let mut jsonl = String::new();
        for (text, label) in [
            ("good, really", "positive"),
            ("bad", "negative"),
            ("a \"fine\" film", "positive"),
            ("dull", "negative"),
            ("fun", "positive"),
            ("slow", "negative"),
            ("warm", "positive"),
        ] {
            jsonl.push_str(&json!({"review": text, "sentiment": label}).to_string());
            jsonl.push('\n');
        }
        let jsonl = write(d, "r.jsonl", &jsonl);
        let read = |file: &str| {
            let s =
                spec(json!({"train": file, "test": file, "text": "review", "label": "sentiment"}));
            load("reviews", &s).unwrap()
        };
        let from_csv = read(&csv);
        assert_eq!(from_csv.data.task.labels(), ["negative", "positive"]);
        assert_eq!(from_csv.data.train.len(), 7);
        assert_eq!(from_csv.data.train[0].segments, ["good, really"]);
        assert_eq!(from_csv.data.train[2].segments, ["a \"fine\" film"]);
        assert_eq!(
            from_csv
                .data
                .train
                .iter()
                .map(|e| e.label)
                .collect::<Vec<_>>(),
            [1, 0, 1, 0, 1, 0, 1]
        );
        for other in [&tsv, &jsonl] {
            let rows = read(other);
            assert_eq!(rows.data.train, from_csv.data.train, "{other}");
            assert_eq!(rows.data.task, from_csv.data.task, "{other}");
        }
        // Integer labels sort numerically; given class names fix the ids.
        let ints = write(d, "i.csv", "t,label\na,10\nb,9\nc,10\n");
        let s = spec(json!({"train": ints, "test": ints, "text": "t"}));
        assert_eq!(load("ints", &s).unwrap().data.task.labels(), ["9", "10"]);
        let s = spec(
            json!({"train": csv, "test": csv, "text": "review", "label": "sentiment", "labels": ["positive", "negative"]}),
        );
        assert_eq!(load("r", &s).unwrap().data.train[0].label, 0);
    }

    #[test]
    fn a_parquet_file_is_a_pair_task() {
        let file = crate::assets::root().join(
            "testdata/hub/datasets--aps--super_glue/snapshots/5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed/cb/train-00000-of-00001.parquet",
        );
        let s =
            spec(json!({"train": file, "text": ["premise", "hypothesis"], "metric": "macro_f1"}));
        let c = load("my_cb", &s).unwrap();
        // The file's ClassLabel names its classes, in id order.
        assert_eq!(
            c.data.task.labels(),
            ["entailment", "contradiction", "neutral"]
        );
        assert_eq!(c.data.task.metric(), "macro_f1");
        let n = c.data.train.len() + c.data.test.len();
        assert!(c.data.train.iter().all(|e| e.segments.len() == 2));
        let held = c.held_out.unwrap();
        assert_eq!(held.train_file_rows, n);
        assert_eq!(held.test.len(), (0.2 * n as f64).ceil() as usize);
        assert_eq!(c.data.test.len(), held.test.len());
    }

    #[test]
    fn the_held_out_test_split_is_fixed_and_disjoint() {
        let tmp = tempfile::tempdir().unwrap();
        let mut text = String::from("text,label\n");
        for i in 0..100 {
            text.push_str(&format!("row {i},{}\n", i % 2));
        }
        let f = write(tmp.path(), "t.csv", &text);
        let s = spec(json!({"train": f, "text": "text", "test_fraction": 0.25}));
        let a = load("t", &s).unwrap();
        let b = load("t", &s).unwrap();
        let held = a.held_out.clone().unwrap();
        assert_eq!(held, b.held_out.unwrap(), "the same rows every time");
        assert_eq!((a.data.train.len(), a.data.test.len()), (75, 25));
        let test_rows: Vec<u64> = a.data.test.iter().map(|e| e.group).collect();
        assert_eq!(
            test_rows,
            held.test.iter().map(|&r| r as u64).collect::<Vec<_>>()
        );
        assert!(
            a.data
                .train
                .iter()
                .all(|e| !held.test.contains(&(e.group as usize)))
        );
        assert!(held.file_name(a.fingerprint).starts_with("t-test-"));
        // Another task name draws other rows.
        assert_ne!(load("u", &s).unwrap().held_out.unwrap().test, held.test);
        // Dev comes from the rest, as for the built-in tasks.
        let split = stab_data::resolve_split(&a.data, None, 0.1).unwrap();
        assert_eq!((split.splits.train.len(), split.splits.dev.len()), (67, 8));
        assert_eq!(split.splits.test.len(), 25);
    }

    /// (file name, content, extra table keys, words of the error)
    const HOSTILE: &[(&str, &str, &str, &[&str])] = &[
        (
            "a.csv",
            "text,label\nfine,1\n",
            r#"{"text": "review"}"#,
            &[
                "a.csv:2:",
                "column `review` is missing",
                "the file's columns: label, text",
                "data.custom.t.text",
            ],
        ),
        (
            "a.csv",
            "review,label\nfine,pos\nbad,neg\nok,meh\n",
            r#"{"text": "review", "labels": ["neg", "pos"]}"#,
            &[
                "a.csv:4:",
                "unknown label `meh`",
                "neg, pos",
                "data.custom.t.labels",
            ],
        ),
        (
            "a.csv",
            "review,label\nfine,pos\n\"bad\",neg,extra\n",
            r#"{"text": "review"}"#,
            &["a.csv:3:", "3 fields where the header has 2"],
        ),
        (
            "a.csv",
            "review,label\n",
            r#"{"text": "review"}"#,
            &["a.csv", "no data rows", "data.custom.t.train"],
        ),
        (
            "a.csv",
            "review,label\nfine,\nbad,neg\n",
            r#"{"text": "review"}"#,
            &["a.csv:2:", "no label in column `label`"],
        ),
        (
            "a.csv",
            "review,label\n  ,pos\nbad,neg\n",
            r#"{"text": "review"}"#,
            &["a.csv:2:", "no text in column `review`"],
        ),
        (
            "a.csv",
            "review,label\nfine,pos\nbad,pos\n",
            r#"{"text": "review"}"#,
            &[
                "a.csv",
                "every row of the train file has the label `pos`",
                "data.custom.t.label",
            ],
        ),
        (
            "a.csv",
            "review,review\nfine,pos\n",
            r#"{"text": "review"}"#,
            &["a.csv:1:", "column `review` appears twice"],
        ),
        (
            "a.jsonl",
            "{\"review\": \"fine\", \"label\": 1}\n{\"review\": \"bad\" \"label\": 0}\n",
            r#"{"text": "review"}"#,
            &["a.jsonl:2:", "not JSON"],
        ),
        (
            "a.jsonl",
            "{\"review\": \"fine\", \"label\": 1}\n[1, 2]\n",
            r#"{"text": "review"}"#,
            &["a.jsonl:2:", "not an object"],
        ),
        (
            "a.jsonl",
            "{\"review\": 5, \"label\": 1}\n{\"review\": \"b\", \"label\": 0}\n",
            r#"{"text": "review"}"#,
            &["a.jsonl:1:", "column `review` holds 5, not text"],
        ),
        (
            "a.txt",
            "review,label\nfine,1\n",
            r#"{"text": "review"}"#,
            &[
                "cannot tell the format",
                ".csv, .tsv, .jsonl or .parquet",
                "data.custom.t.train",
            ],
        ),
        (
            "a.csv",
            "review,label\na,x\nb,y\nc,z\n",
            r#"{"text": "review", "metric": "f1"}"#,
            &["metric `f1`", "3 classes", "data.custom.t.metric"],
        ),
        (
            "a.csv",
            "review,label\na,x\nb,y\n",
            r#"{"text": "review", "test_fraction": 0.5}"#,
            &["test_fraction 0.5 of 2 rows", "data.custom.t.test_fraction"],
        ),
        (
            "a.parquet",
            "not parquet",
            r#"{"text": "review"}"#,
            &["a.parquet", "not a parquet file", "DataFrame.to_parquet"],
        ),
    ];

    #[test]
    fn malformed_files_give_one_located_error() {
        for (name, content, extra, words) in HOSTILE {
            let tmp = tempfile::tempdir().unwrap();
            let file = write(tmp.path(), name, content);
            let mut table: serde_json::Value = serde_json::from_str(extra).unwrap();
            table["train"] = json!(file);
            let e = load("t", &spec(table)).unwrap_err().to_string();
            for w in *words {
                assert!(e.contains(w), "{name} {content:?}: `{w}` not in\n{e}");
            }
        }
        let missing = spec(json!({"train": "no/such.csv", "text": "t"}));
        let e = load("t", &missing).unwrap_err().to_string();
        assert!(
            e.contains("missing file no/such.csv") && e.contains("data.custom.t.train"),
            "{e}"
        );
    }
}
