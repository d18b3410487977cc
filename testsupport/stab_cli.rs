//! Running the `stab` binary from a stab-cli integration test (included with
//! `#[path = "../../testsupport/stab_cli.rs"] mod stab_cli;`; not part of any library's API).
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};

/// `stab ARGS…` with warnings only on stderr.
pub fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_stab"))
        .env("STAB_LOG", "warn")
        .args(args)
        .output()
        .unwrap()
}

/// `stab ARGS…`, which must succeed (its stderr is shown when it does not).
pub fn run_ok(args: &[&str]) -> Output {
    let out = run(args);
    assert!(
        out.status.success(),
        "stab {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The records of `DIR/runs.jsonl`, in store order.
pub fn records(dir: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join("runs.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}
