//! `stab embed` reproduces the golden PyTorch outputs and reports bad inputs clearly.

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

use crate::assets;

/// `testdata/`: the fixtures and the sliced task files, laid out like `shared/`.
fn shared() -> PathBuf {
    assets::root().join("testdata")
}

fn stab() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_stab"));
    c.env("STAB_LOG", "warn");
    c
}

#[test]
fn embed_json_matches_golden_for_every_family() {
    for name in [
        "tiny-bert",
        "tiny-roberta",
        "tiny-electra",
        "tiny-deberta-v3",
        "tiny-modernbert",
    ] {
        let g: Value = serde_json::from_str(
            &std::fs::read_to_string(shared().join(format!("fixtures/golden/{name}.json")))
                .unwrap(),
        )
        .unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let lines: Vec<String> = g["inputs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i.to_string())
            .collect();
        let inputs = tmp.path().join("inputs.jsonl");
        std::fs::write(&inputs, lines.join("\n")).unwrap();
        let out = stab()
            .args([
                "embed",
                "--model",
                shared().join("fixtures").join(name).to_str().unwrap(),
                "--inputs",
                inputs.to_str().unwrap(),
                "--max-len",
                "48",
                "--json",
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["max_len"], 48);
        let rows = v["inputs"].as_array().unwrap();
        assert_eq!(rows.len(), 6);
        for (r, row) in rows.iter().enumerate() {
            assert_eq!(row["input_ids"], g["input_ids"][r], "{name} row {r}");
            assert_eq!(row["attention_mask"], g["attention_mask"][r]);
            assert_eq!(
                row["last_hidden_state"].as_array().unwrap().len(),
                g["seq_len"].as_u64().unwrap() as usize
            );
            let worst = row["cls"]
                .as_array()
                .unwrap()
                .iter()
                .zip(g["cls"][r].as_array().unwrap())
                .map(|(a, b)| (a.as_f64().unwrap() - b.as_f64().unwrap()).abs())
                .fold(0.0, f64::max);
            assert!(worst < 1e-4, "{name} row {r}: cls differs by {worst:e}");
            // Every real token of the last layer.
            let want = g["last_hidden_state"][r].as_array().unwrap();
            let got = row["last_hidden_state"].as_array().unwrap();
            let mask = g["attention_mask"][r].as_array().unwrap();
            for (k, (a, b)) in got.iter().zip(want).enumerate() {
                if mask[k] == 0 {
                    continue;
                }
                for (x, y) in a.as_array().unwrap().iter().zip(b.as_array().unwrap()) {
                    let d = (x.as_f64().unwrap() - y.as_f64().unwrap()).abs();
                    assert!(d < 1e-4, "{name} row {r} token {k}: {d:e}");
                }
            }
        }
    }
}

#[test]
fn embed_bad_inputs_exit_2_with_file_and_line() {
    let tmp = tempfile::tempdir().unwrap();
    let inputs = tmp.path().join("bad.jsonl");
    std::fs::write(&inputs, "{\"text\": \"ok\"}\n{\"text\": 3}\n").unwrap();
    let model = shared().join("fixtures/tiny-bert");
    let out = stab()
        .args([
            "embed",
            "--model",
            model.to_str().unwrap(),
            "--inputs",
            inputs.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("bad.jsonl:2") && err.contains("`text`"),
        "{err}"
    );
    let out = stab()
        .args([
            "embed",
            "--model",
            tmp.path().join("nope").to_str().unwrap(),
            "--text",
            "x",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not exist"));
}
