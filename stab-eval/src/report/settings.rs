//! What was run: the settings of a store's fine-tuning runs, read from their records
//! (`details.settings`), those every run shares, and those in which the compared arms differ
//! beyond the method and the swept keys. An arm is a row of the main table (the method,
//! its sweep values and its experiment context); its comparison with FineTune is a fair one
//! only when nothing else differs, so every other difference is marked and summarised.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::Value;
use stab_core::RunRecord;

use super::doc::Doc;
use super::finetune::group_labels;
use super::table::Table;

/// The settings a record carries, in the order the block shows them, with their words.
const SHOWN: &[(&str, &str)] = &[
    ("model", "model"),
    ("family", "family"),
    ("mode", "mode"),
    ("pooling", "pooling"),
    ("max_len", "max tokens"),
    ("lr", "learning rate"),
    ("batch_size", "batch size"),
    ("epochs", "epochs"),
    ("max_steps", "max updates"),
    ("warmup", "warmup share"),
    ("weight_decay", "weight decay"),
    ("grad_clip", "gradient clip"),
    ("patience", "patience"),
    ("device", "device"),
];

/// The settings of a store's fine-tuning runs.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct WhatWasRun {
    pub recipes: Vec<String>,
    /// Settings every run shares: key → value.
    pub shared: BTreeMap<String, Value>,
    /// Settings whose value differs between arms and is not swept: key → arm → values.
    pub differing: BTreeMap<String, BTreeMap<String, Vec<Value>>>,
    /// Keys whose values differ because a sweep sets them (shown in the arm's label).
    pub swept: Vec<String>,
    pub tasks: Vec<String>,
    pub arms: usize,
    /// The fewest and most seeds of one arm on one task.
    pub seeds_per_arm: (usize, usize),
    pub runs: usize,
    /// Runs whose records carry no settings (written before stab recorded them).
    pub unrecorded: usize,
}

impl WhatWasRun {
    pub fn from_records(records: &[&RunRecord]) -> Self {
        let labels = group_labels(records);
        let mut values: BTreeMap<&str, BTreeMap<String, Vec<Value>>> = BTreeMap::new();
        let mut swept = BTreeSet::new();
        let mut seeds: BTreeMap<(&str, &str), usize> = BTreeMap::new();
        let mut unrecorded = 0;
        for (r, (arm, _)) in records.iter().zip(&labels) {
            *seeds.entry((arm.as_str(), r.task.as_str())).or_default() += 1;
            swept.extend(
                r.sweep
                    .keys()
                    .filter_map(|k| k.split_once('.'))
                    .map(|(_, k)| k),
            );
            let Some(settings) = r.details.get("settings").and_then(Value::as_object) else {
                unrecorded += 1;
                continue;
            };
            for (key, _) in SHOWN {
                let v = settings.get(*key).cloned().unwrap_or(Value::Null);
                let arm_values = values
                    .entry(key)
                    .or_default()
                    .entry(arm.clone())
                    .or_default();
                if !arm_values.contains(&v) {
                    arm_values.push(v);
                }
            }
        }
        let mut out = WhatWasRun {
            recipes: records
                .iter()
                .map(|r| r.recipe.clone())
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect(),
            tasks: records
                .iter()
                .map(|r| r.task.clone())
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect(),
            arms: labels.iter().map(|l| &l.0).collect::<BTreeSet<_>>().len(),
            seeds_per_arm: (
                seeds.values().copied().min().unwrap_or(0),
                seeds.values().copied().max().unwrap_or(0),
            ),
            runs: records.len(),
            unrecorded,
            swept: swept.iter().map(|k| k.to_string()).collect(),
            ..Default::default()
        };
        for (key, by_arm) in values {
            let distinct: BTreeSet<String> =
                by_arm.values().flatten().map(Value::to_string).collect();
            if distinct.len() == 1 {
                let v = by_arm
                    .values()
                    .flatten()
                    .next()
                    .cloned()
                    .unwrap_or(Value::Null);
                out.shared.insert(key.to_string(), v);
            } else if !swept.contains(key) && key != "mode" {
                // The mode is part of every arm's label (an experiment context).
                out.differing.insert(key.to_string(), by_arm);
            }
        }
        out
    }

    /// One line for the report's summary: whether the arms differ beyond the method.
    pub fn summary_item(&self) -> String {
        if self.unrecorded == self.runs {
            return "**Settings**: not recorded (the runs predate stab's `details.settings`), so this report cannot say whether the arms differ beyond the method.".into();
        }
        let of = if self.unrecorded > 0 {
            format!(
                " ({} of {} runs carry no settings and are not judged)",
                self.unrecorded, self.runs
            )
        } else {
            String::new()
        };
        if self.differing.is_empty() {
            return format!(
                "**Settings**: the arms compared differ only in their method and the swept keys{of}; the block \"What was run\" lists what they share."
            );
        }
        let parts: Vec<String> = self
            .differing
            .iter()
            .map(|(key, by_arm)| {
                let arms: Vec<String> = by_arm
                    .iter()
                    .map(|(arm, v)| format!("{arm}: {}", values_text(v)))
                    .collect();
                format!("{} ({})", words(key), arms.join("; "))
            })
            .collect();
        format!(
            "**Settings differ beyond the method**: {}{of}. A comparison of these arms measures the method and these settings together.",
            parts.join(", ")
        )
    }

    pub fn document(&self) -> Doc {
        let mut doc = Doc::new();
        doc.heading("What was run");
        let mut items = vec![format!(
            "**Recipe{}**: {}; **tasks**: {}; {} arm{} × {} seed{} per task.",
            if self.recipes.len() > 1 { "s" } else { "" },
            self.recipes.join(", "),
            self.tasks.join(", "),
            self.arms,
            if self.arms == 1 { "" } else { "s" },
            match self.seeds_per_arm {
                (a, b) if a == b => a.to_string(),
                (a, b) => format!("{a}–{b}"),
            },
            if self.seeds_per_arm.1 == 1 { "" } else { "s" },
        )];
        let shared: Vec<String> = SHOWN
            .iter()
            .filter_map(|(key, w)| self.shared.get(*key).map(|v| format!("{w} {}", text(v))))
            .collect();
        if !shared.is_empty() {
            items.push(format!("Every run: {}.", shared.join(", ")));
        }
        if !self.swept.is_empty() {
            items.push(format!(
                "Swept (in the arms' labels): {}.",
                self.swept.join(", ")
            ));
        }
        if self.unrecorded > 0 {
            items.push(format!(
                "{} run{} no settings (recorded before stab wrote them); they are not in these lines.",
                self.unrecorded,
                if self.unrecorded == 1 { " carries" } else { "s carry" }
            ));
        }
        doc.list(items);
        if !self.differing.is_empty() {
            let arms: BTreeSet<&String> = self.differing.values().flat_map(|m| m.keys()).collect();
            let mut header = vec!["arm".to_string()];
            header.extend(self.differing.keys().map(|k| format!("{} ≠", words(k))));
            let rows = arms
                .into_iter()
                .map(|arm| {
                    let mut row = vec![arm.clone()];
                    row.extend(
                        self.differing
                            .values()
                            .map(|m| m.get(arm).map_or_else(|| "–".into(), |v| values_text(v))),
                    );
                    row
                })
                .collect();
            doc.paragraph("⚠ The arms differ in more than the method and the swept keys (≠): their comparisons mix the method's effect with these settings'.")
                .table(Table { header, rows });
        }
        doc
    }
}

fn words(key: &str) -> &str {
    SHOWN
        .iter()
        .find(|(k, _)| *k == key)
        .map_or(key, |(_, w)| w)
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        // Rust's float formatting: 0.00002, not JSON's 2e-5.
        Value::Number(n) if !(n.is_u64() || n.is_i64()) => {
            n.as_f64().map_or_else(|| n.to_string(), |f| f.to_string())
        }
        Value::Null => "–".into(),
        other => other.to_string(),
    }
}

fn values_text(v: &[Value]) -> String {
    v.iter().map(text).collect::<Vec<_>>().join(" / ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::finetune::tests::rec;

    fn run(method: &str, seed: u64, lr: f64, pooling: &str) -> RunRecord {
        let mut r = rec("cb", method, 0.5 + seed as f64 / 100.0);
        r.seed = seed;
        r.details = serde_json::json!({"settings": {
            "model": "m", "family": "bert", "mode": "head", "pooling": pooling, "lr": lr,
            "batch_size": 16, "device": "cpu",
        }});
        r
    }

    #[test]
    fn arms_that_differ_beyond_the_method_are_marked() {
        let runs: Vec<RunRecord> = (0..3)
            .flat_map(|s| {
                [
                    run("finetune", s, 2e-5, "mean"),
                    run("lora", s, 5e-4, "mean"),
                ]
            })
            .collect();
        let refs: Vec<&RunRecord> = runs.iter().collect();
        let w = WhatWasRun::from_records(&refs);
        assert_eq!((w.arms, w.seeds_per_arm), (2, (3, 3)));
        assert_eq!(w.shared["pooling"], "mean");
        assert_eq!(w.differing.keys().collect::<Vec<_>>(), ["lr"]);
        assert_eq!(w.differing["lr"]["lora"], [serde_json::json!(5e-4)]);
        let item = w.summary_item();
        assert!(
            item.contains("learning rate (finetune: 0.00002; lora: 0.0005)"),
            "{item}"
        );
        let md = w.document().markdown();
        assert!(
            md.contains("## What was run") && md.contains("learning rate ≠"),
            "{md}"
        );
    }

    #[test]
    fn a_swept_key_and_equal_settings_are_not_marked() {
        let mut runs = Vec::new();
        for s in 0..2 {
            for (pooling, method) in [
                ("mean", "finetune"),
                ("cls", "finetune"),
                ("mean", "mmr"),
                ("cls", "mmr"),
            ] {
                let mut r = run(method, s, 1e-3, pooling);
                r.sweep
                    .insert("model.pooling".into(), serde_json::json!(pooling));
                runs.push(r);
            }
        }
        let mut old = rec("cb", "mmr", 0.4);
        old.sweep
            .insert("model.pooling".into(), serde_json::json!("cls"));
        runs.push(old);
        let refs: Vec<&RunRecord> = runs.iter().collect();
        let w = WhatWasRun::from_records(&refs);
        assert!(w.differing.is_empty(), "{:?}", w.differing);
        assert_eq!(w.swept, ["pooling"]);
        assert_eq!(w.unrecorded, 1);
        assert!(w.summary_item().contains("differ only in their method"));
        assert!(w.summary_item().contains("1 of 9 runs carry no settings"));
        let none = [rec("cb", "finetune", 0.5)];
        let none = WhatWasRun::from_records(&none.iter().collect::<Vec<_>>());
        assert!(
            none.summary_item().contains("cannot say"),
            "{}",
            none.summary_item()
        );
        assert!(
            w.document()
                .markdown()
                .contains("1 run carries no settings")
        );
    }
}
