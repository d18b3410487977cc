//! Split files: any bytes as `splits/cb.json` give a partition of CB's train rows with a
//! non-empty train and dev, or one error naming the file.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use stab_data::{TaskData, fixed_split, task_def};

fn data() -> &'static TaskData {
    static DATA: OnceLock<TaskData> = OnceLock::new();
    DATA.get_or_init(|| {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/data");
        task_def("cb").unwrap().load(&dir).unwrap()
    })
}

fuzz_target!(|bytes: &[u8]| {
    let path = std::env::temp_dir().join(format!("stab-fuzz-split-{}.json", std::process::id()));
    std::fs::write(&path, bytes).unwrap();
    let data = data();
    match fixed_split(data, &path) {
        Ok(s) => {
            assert_eq!(s.train.len() + s.dev.len(), data.train.len());
            assert!(!s.train.is_empty() && !s.dev.is_empty());
        }
        Err(e) => assert!(e.file.is_some()),
    }
});
