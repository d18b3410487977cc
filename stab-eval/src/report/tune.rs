//! The `[tune]` section: each arm's search (value → mean best dev score over the search
//! runs) and the value its study ran at. Search runs never enter the study's statistics.

use std::collections::BTreeMap;

use stab_core::RunRecord;
use stab_core::tune::TuneStage;

use super::doc::Doc;
use super::finetune::group_labels;
use super::table::Table;
use crate::stats::Summary;

/// (task, arm label) → value (as text) → best dev scores of its search runs.
type Searched = BTreeMap<(String, String), BTreeMap<String, Vec<f64>>>;

fn searched(tuning: &[RunRecord]) -> (Searched, String) {
    let refs: Vec<&RunRecord> = tuning.iter().collect();
    let labels = group_labels(&refs);
    let mut out: Searched = BTreeMap::new();
    let mut key = String::new();
    for (r, (label, _)) in tuning.iter().zip(labels) {
        let Some(t) = &r.tune else { continue };
        key = format!("train.{}", t.key);
        let dev = if r.diverged {
            f64::NAN
        } else {
            r.dev_best.unwrap_or(f64::NAN)
        };
        out.entry((r.task.clone(), label))
            .or_default()
            .entry(t.value.to_string())
            .or_default()
            .push(dev);
    }
    (out, key)
}

/// (task, method) → the value its study runs were chosen at.
fn chosen(study: &[RunRecord]) -> BTreeMap<(String, String), String> {
    study
        .iter()
        .filter_map(|r| {
            let t = r.tune.as_ref().filter(|t| t.stage == TuneStage::Chosen)?;
            Some(((r.task.clone(), r.method.clone()), t.value.to_string()))
        })
        .collect()
}

/// The section: one row per arm, one column per value, and the chosen value.
pub fn tuning_section(tuning: &[RunRecord], study: &[RunRecord]) -> Doc {
    let (searched, key) = searched(tuning);
    let chosen = chosen(study);
    let values: Vec<String> = {
        let mut v: Vec<String> = Vec::new();
        for by_value in searched.values() {
            for k in by_value.keys() {
                if !v.contains(k) {
                    v.push(k.clone());
                }
            }
        }
        v
    };
    let mut header = vec!["task".to_string(), "method".to_string()];
    header.extend(values.iter().map(|v| format!("{key} = {v}")));
    header.push("chosen".into());
    let rows = searched
        .iter()
        .map(|((task, label), by_value)| {
            let mut row = vec![task.clone(), label.clone()];
            for v in &values {
                row.push(by_value.get(v).map_or("–".into(), |d| {
                    format!("{:.2} (n = {})", 100.0 * Summary::of(d).mean, d.len())
                }));
            }
            let method = label.split(' ').next().unwrap_or(label).to_string();
            row.push(
                chosen
                    .get(&(task.clone(), method))
                    .cloned()
                    .unwrap_or_else(|| "–".into()),
            );
            row
        })
        .collect();
    let mut doc = Doc::new();
    doc.section(
        "Tuning: each method at its own best value",
        &format!(
            "Before the seed study, every method searched {key} on dev: the mean best dev score ×100 of its search runs per value \
             (seeds that no study run uses); its study ran at the value with the highest mean. The search runs are not part of any \
             statistic above or below."
        ),
        Table { header, rows },
    );
    doc
}

/// `tuning[task][method] = {chosen, values: [{value, dev_mean, runs}]}`.
pub fn tuning_json(tuning: &[RunRecord], study: &[RunRecord]) -> serde_json::Value {
    let (searched, key) = searched(tuning);
    let chosen = chosen(study);
    let mut out = serde_json::Map::new();
    for ((task, label), by_value) in searched {
        let method = label.split(' ').next().unwrap_or(&label).to_string();
        let values: Vec<serde_json::Value> = by_value
            .iter()
            .map(|(v, d)| serde_json::json!({"value": v, "dev_mean": Summary::of(d).mean, "runs": d.len()}))
            .collect();
        let entry = out
            .entry(task.clone())
            .or_insert_with(|| serde_json::json!({}));
        entry[&label] = serde_json::json!({
            "key": key,
            "chosen": chosen.get(&(task, method)),
            "values": values,
        });
    }
    serde_json::Value::Object(out)
}
