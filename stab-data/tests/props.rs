//! Property tests of the task readers: the official files with random byte edits, or
//! random bytes, load or fail with one located `InputError`, never a panic. The encoding
//! and span projection of whatever loads never panics either.

use std::path::Path;

use proptest::prelude::*;
use stab_data::task_def;

#[path = "../../testsupport/assets.rs"]
mod assets;

/// (task, train file, test file) relative to the data dir.
const FILES: &[(&str, &str, &str)] = &[
    ("cola", "glue/CoLA/train.tsv", "glue/CoLA/dev.tsv"),
    ("mrpc", "glue/MRPC/train.tsv", "glue/MRPC/dev.tsv"),
    ("rte", "glue/RTE/train.tsv", "glue/RTE/dev.tsv"),
    ("cb", "superglue/CB/train.jsonl", "superglue/CB/val.jsonl"),
    (
        "wsc",
        "superglue/WSC/train.jsonl",
        "superglue/WSC/val.jsonl",
    ),
    (
        "wic",
        "superglue/WiC/train.jsonl",
        "superglue/WiC/val.jsonl",
    ),
    (
        "multirc",
        "superglue/MultiRC/train.jsonl",
        "superglue/MultiRC/val.jsonl",
    ),
];

#[derive(Debug, Clone)]
enum Edit {
    Replace(usize, u8),
    Insert(usize, u8),
    Delete(usize),
    Truncate(usize),
}

fn apply(mut bytes: Vec<u8>, edits: &[Edit]) -> Vec<u8> {
    for e in edits {
        let n = bytes.len().max(1);
        match *e {
            Edit::Replace(i, b) if !bytes.is_empty() => bytes[i % n] = b,
            Edit::Insert(i, b) => bytes.insert(i % (bytes.len() + 1), b),
            Edit::Delete(i) if !bytes.is_empty() => {
                bytes.remove(i % n);
            }
            Edit::Truncate(i) => bytes.truncate(i % (bytes.len() + 1)),
            _ => {}
        }
    }
    bytes
}

fn edit() -> impl Strategy<Value = Edit> {
    let byte = prop_oneof![
        Just(b'\t'),
        Just(b'\n'),
        Just(b'"'),
        Just(b'{'),
        Just(b'}'),
        Just(b':'),
        Just(b','),
        Just(0xff),
        Just(0xef),
        any::<u8>()
    ];
    prop_oneof![
        (any::<usize>(), byte.clone()).prop_map(|(i, b)| Edit::Replace(i, b)),
        (any::<usize>(), byte).prop_map(|(i, b)| Edit::Insert(i, b)),
        any::<usize>().prop_map(Edit::Delete),
        any::<usize>().prop_map(Edit::Truncate),
    ]
}

fn load_edited(dir: &Path, task: &str, train: &[u8], test: &[u8]) {
    let (_, tr, te) = FILES.iter().find(|f| f.0 == task).unwrap();
    for (rel, bytes) in [(tr, train), (te, test)] {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    }
    let def = task_def(task).unwrap();
    match def.load(dir) {
        Ok(data) => {
            // Whatever loads splits and perturbs without panicking.
            let s = stab_data::dev_split(&data, 0.1);
            let _ = stab_data::perturb(s, task, 3, 0.5, 0.1);
        }
        Err(e) => assert!(e.file.is_some(), "{task}: an error names its file: {e}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn edited_official_files_load_or_fail_cleanly(k in 0..FILES.len(), edits in proptest::collection::vec(edit(), 1..6), on_test in any::<bool>()) {
        let (task, tr, te) = FILES[k];
        let src = assets::slices();
        let train = std::fs::read(src.join(tr)).unwrap();
        let test = std::fs::read(src.join(te)).unwrap();
        let (train, test) = if on_test { (train, apply(test, &edits)) } else { (apply(train, &edits), test) };
        let dir = tempfile::tempdir().unwrap();
        load_edited(dir.path(), task, &train, &test);
    }

    #[test]
    fn random_bytes_load_or_fail_cleanly(k in 0..FILES.len(), bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let dir = tempfile::tempdir().unwrap();
        load_edited(dir.path(), FILES[k].0, &bytes, &bytes);
    }
}

/// A split file: real-looking, or with sizes and rows drawn anywhere (huge, duplicated,
/// out of range, negative, wrong types), or byte-edited from the real one.
fn split_text() -> impl Strategy<Value = String> {
    let row = prop_oneof![0u64..200, Just(u64::MAX), Just(1u64 << 40), any::<u64>()];
    let structured = (
        prop_oneof![0u64..200, any::<u64>()],
        prop_oneof![0u64..200, any::<u64>()],
        proptest::collection::vec(row, 0..40),
    )
        .prop_map(|(t, d, dev)| {
            format!(
                "{{\"train_rows\": {t}, \"dev_rows\": {d}, \"dev\": [{}]}}",
                dev.iter().map(u64::to_string).collect::<Vec<_>>().join(",")
            )
        });
    let edited = proptest::collection::vec(edit(), 1..6).prop_map(|edits| {
        let real = std::fs::read(assets::slices().join("splits/cb.json")).unwrap();
        String::from_utf8_lossy(&apply(real, &edits)).into_owned()
    });
    prop_oneof![
        structured,
        edited,
        Just("{\"train_rows\": -1, \"dev_rows\": 1, \"dev\": [0]}".to_string()),
        Just("[]".to_string()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn split_files_split_or_fail_with_a_located_error(text in split_text()) {
        let data = task_def("cb").unwrap().load(&assets::slices()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cb.json");
        std::fs::write(&path, &text).unwrap();
        match stab_data::fixed_split(&data, &path) {
            Ok(s) => {
                prop_assert_eq!(s.train.len() + s.dev.len(), data.train.len());
                prop_assert!(!s.train.is_empty() && !s.dev.is_empty());
            }
            Err(e) => prop_assert!(e.file.is_some(), "{e}"),
        }
    }
}
