//! `[tune]` (docs/methods.md §4.3): the search runs of every arm, the value each arm's
//! search chose from the store, and the study's runs at the chosen values. Like the
//! sequential schedule, everything is computed from the plan and the store alone, so a
//! resumed grid or a Slurm array's tasks agree on the choices.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;
use stab_core::tune::{TUNE_SEED_BASE, TuneStage, TuneTable};
use stab_core::{InputError, RunRecord, RunSpec};

use crate::sequential::settings_text;

/// One arm's search: each value's dev scores, and the value chosen.
#[derive(Debug, Clone, Serialize)]
pub struct Choice {
    pub task: String,
    /// Method and parameters (`lora r=8`) and the sweep cell, as the plan names them.
    pub arm: String,
    /// Per value: (value, the search runs' best dev scores; `None` for a run not recorded
    /// yet and NaN for a diverged one).
    pub values: Vec<(serde_json::Value, Vec<Option<f64>>)>,
    /// The value with the highest mean dev score (the first among ties; a diverged run
    /// counts as −∞); `None` until every search run of the arm is recorded.
    pub chosen: Option<serde_json::Value>,
}

/// The arm a run belongs to: task, sweep cell and method configuration.
fn arm_key(spec: &RunSpec) -> String {
    format!(
        "{} {} {} {}",
        spec.task,
        serde_json::to_string(&spec.sweep).unwrap_or_default(),
        spec.method,
        serde_json::to_string(&spec.method_params).unwrap_or_default()
    )
}

fn arm_label(spec: &RunSpec) -> String {
    format!(
        "{}{}{}",
        spec.method,
        settings_text(&spec.method_params),
        settings_text(&spec.sweep)
    )
}

/// The first run of every arm, in plan order.
fn arms<'s>(universe: &[&'s RunSpec]) -> Vec<&'s RunSpec> {
    let mut seen = std::collections::HashSet::new();
    universe
        .iter()
        .copied()
        .filter(|s| seen.insert(arm_key(s)))
        .collect()
}

/// Every arm's search runs: `seeds` runs per value on seeds `TUNE_SEED_BASE + i`.
pub fn search_runs(tune: &TuneTable, universe: &[&RunSpec]) -> stab_core::Result<Vec<RunSpec>> {
    let mut out = Vec::new();
    for arm in arms(universe) {
        for value in tune.json_values() {
            for i in 0..tune.seeds {
                let spec = arm
                    .with_train_value(tune.field(), &value, TUNE_SEED_BASE + i, TuneStage::Search)
                    .map_err(|e| {
                        InputError::new(format!("tune.values: {} = {value}: {e}", tune.key))
                            .key("tune.values")
                    })?;
                out.push(spec);
            }
        }
    }
    Ok(out)
}

/// Every arm's choice from the recorded search runs.
pub fn choices(
    tune: &TuneTable,
    universe: &[&RunSpec],
    records: &[RunRecord],
) -> stab_core::Result<Vec<Choice>> {
    let dev: HashMap<&str, f64> = records
        .iter()
        .map(|r| {
            let d = if r.diverged {
                f64::NAN
            } else {
                r.dev_best.unwrap_or(f64::NAN)
            };
            (r.run_id.as_str(), d)
        })
        .collect();
    let search = search_runs(tune, universe)?;
    let mut by_arm: BTreeMap<String, (usize, Choice)> = BTreeMap::new();
    for (order, spec) in search.iter().enumerate() {
        let value = spec.tune.as_ref().expect("a search run").value.clone();
        let entry = by_arm.entry(arm_key(spec)).or_insert_with(|| {
            (
                order,
                Choice {
                    task: spec.task.clone(),
                    arm: arm_label(spec),
                    values: Vec::new(),
                    chosen: None,
                },
            )
        });
        let score = dev.get(spec.run_id.as_str()).copied();
        match entry.1.values.iter_mut().find(|(v, _)| *v == value) {
            Some((_, scores)) => scores.push(score),
            None => entry.1.values.push((value, vec![score])),
        }
    }
    let mut out: Vec<(usize, Choice)> = by_arm.into_values().collect();
    out.sort_by_key(|(order, _)| *order);
    Ok(out
        .into_iter()
        .map(|(_, mut c)| {
            c.chosen = choose(&c.values);
            c
        })
        .collect())
}

/// The value with the highest mean dev score, the first among ties; a diverged run's NaN
/// makes its value's mean −∞. `None` when a run is not recorded.
fn choose(values: &[(serde_json::Value, Vec<Option<f64>>)]) -> Option<serde_json::Value> {
    let mut best: Option<(f64, &serde_json::Value)> = None;
    for (value, scores) in values {
        let scores: Option<Vec<f64>> = scores.iter().copied().collect();
        let scores = scores?;
        let mean = if scores.iter().any(|s| s.is_nan()) {
            f64::NEG_INFINITY
        } else {
            scores.iter().sum::<f64>() / scores.len().max(1) as f64
        };
        if best.is_none_or(|(b, _)| mean > b) {
            best = Some((mean, value));
        }
    }
    best.map(|(_, v)| v.clone())
}

/// The study's runs: every run of the plan at its arm's chosen value (same seeds).
pub fn tuned_runs(
    tune: &TuneTable,
    universe: &[&RunSpec],
    choices: &[Choice],
) -> stab_core::Result<Vec<RunSpec>> {
    let chosen: HashMap<String, &serde_json::Value> = arms(universe)
        .into_iter()
        .zip(choices)
        .filter_map(|(arm, c)| Some((arm_key(arm), c.chosen.as_ref()?)))
        .collect();
    universe
        .iter()
        .map(|spec| {
            let value = chosen
                .get(&arm_key(spec))
                .ok_or_else(|| stab_core::internal!("no chosen value for {}", spec.run_id))?;
            spec.with_train_value(tune.field(), value, spec.seed, TuneStage::Chosen)
                .map_err(|e| stab_core::internal!("{e}"))
        })
        .collect()
}
