//! Variance attribution by seed component: how much of a method's spread over seeds comes
//! from the head initialisation, the data order and the dropout/method noise.
//!
//! A grid that varies one component at a time pins the other two with
//! `[train] fixed_seeds`, for instance by sweeping it:
//!
//! ```toml
//! [sweep]
//! "train.fixed_seeds" = [{ data_order = 0, dropout = 0 }, { head_init = 0, dropout = 0 }, { head_init = 0, data_order = 0 }]
//! ```
//!
//! Every record carries the component seeds it ran with. Within a task and method, the
//! runs whose other two components are equal and whose component c differs form a group;
//! the pooled variance of the groups of c (Σ (n_g − 1)·s²_g / Σ (n_g − 1)) estimates the
//! variance due to c, and its share is var_c / Σ_c var_c.

use std::collections::BTreeMap;

use stab_core::RunRecord;

use super::table::Table;

/// The three seed components, in the order of `ComponentSeeds`.
pub const COMPONENTS: [&str; 3] = ["head_init", "data_order", "dropout"];

/// One task and method's attribution.
#[derive(Debug, Clone, PartialEq)]
pub struct Attribution {
    pub task: String,
    pub method: String,
    /// Per component: (pooled sd of the score ×100, runs in its groups), when estimable.
    pub parts: [Option<(f64, usize)>; 3],
}

impl Attribution {
    /// Each component's share of the summed variance (when all three are estimable).
    pub fn shares(&self) -> Option<[f64; 3]> {
        let v: Vec<f64> = self
            .parts
            .iter()
            .map(|p| p.map(|(sd, _)| sd * sd))
            .collect::<Option<_>>()?;
        let total: f64 = v.iter().sum();
        (total > 0.0).then(|| [v[0] / total, v[1] / total, v[2] / total])
    }
}

fn component(r: &RunRecord, c: usize) -> Option<u64> {
    let s = r.seeds.as_ref()?;
    Some([s.head_init, s.data_order, s.dropout][c])
}

/// Attribution per task and method label (`label(r)` names a record's row, without the
/// `train.fixed_seeds` sweep that separates the sub-grids).
pub fn attribute(records: &[&RunRecord], label: impl Fn(&RunRecord) -> String) -> Vec<Attribution> {
    let mut groups: BTreeMap<(String, String), Vec<&RunRecord>> = BTreeMap::new();
    for r in records {
        if r.metrics.contains_key("primary") && r.seeds.is_some() {
            groups
                .entry((r.task.clone(), label(r)))
                .or_default()
                .push(r);
        }
    }
    let mut out = Vec::new();
    for ((task, method), rs) in groups {
        let mut parts = [None; 3];
        for (c, part) in parts.iter_mut().enumerate() {
            // Runs keyed by the other two components' values; keep groups where c varies.
            let mut by_rest: BTreeMap<Vec<u64>, Vec<(u64, f64)>> = BTreeMap::new();
            for r in &rs {
                let rest: Vec<u64> = (0..3)
                    .filter(|&k| k != c)
                    .filter_map(|k| component(r, k))
                    .collect();
                let own = component(r, c).expect("seeds present");
                by_rest
                    .entry(rest)
                    .or_default()
                    .push((own, 100.0 * r.metrics["primary"]));
            }
            let (mut ss, mut df, mut n) = (0.0, 0usize, 0usize);
            for g in by_rest.values() {
                let mut distinct: Vec<u64> = g.iter().map(|(v, _)| *v).collect();
                distinct.sort_unstable();
                distinct.dedup();
                if distinct.len() < 2 || g.len() < 2 {
                    continue;
                }
                let mean = g.iter().map(|(_, s)| s).sum::<f64>() / g.len() as f64;
                ss += g.iter().map(|(_, s)| (s - mean).powi(2)).sum::<f64>();
                df += g.len() - 1;
                n += g.len();
            }
            if df > 0 {
                *part = Some(((ss / df as f64).sqrt(), n));
            }
        }
        if parts.iter().filter(|p| p.is_some()).count() >= 2 {
            out.push(Attribution {
                task,
                method,
                parts,
            });
        }
    }
    out
}

/// The attribution as a table: sd per component (runs) and its share of the variance.
pub fn table(rows: &[Attribution]) -> Table {
    let mut header = vec!["task".to_string(), "method".to_string()];
    for c in COMPONENTS {
        header.push(format!("{c} sd (runs)"));
    }
    for c in COMPONENTS {
        header.push(format!("{c} share"));
    }
    let rows = rows
        .iter()
        .map(|a| {
            let mut row = vec![a.task.clone(), a.method.clone()];
            for p in &a.parts {
                row.push(p.map_or("–".into(), |(sd, n)| format!("{sd:.2} ({n})")));
            }
            match a.shares() {
                Some(s) => row.extend(s.iter().map(|x| format!("{:.0}%", 100.0 * x))),
                None => row.extend(["–".to_string(), "–".to_string(), "–".to_string()]),
            }
            row
        })
        .collect();
    Table { header, rows }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stab_core::{ComponentSeeds, RecipeKind};

    fn rec(seeds: [u64; 3], score: f64) -> RunRecord {
        RunRecord {
            run_id: format!("{seeds:?}"),
            recipe: "r".into(),
            kind: RecipeKind::Finetune,
            task: "cb".into(),
            method: "finetune".into(),
            method_params: Default::default(),
            seed: 0,
            mode: None,
            sweep: Default::default(),
            metrics: [("primary".to_string(), score / 100.0)].into(),
            dev_best: None,
            best_step: None,
            steps: 1,
            wall_s: 0.0,
            stab_version: "t".into(),
            threads: 1,
            synthetic: None,
            diverged: false,
            seeds: Some(ComponentSeeds {
                head_init: seeds[0],
                data_order: seeds[1],
                dropout: seeds[2],
            }),
            split: None,
            inputs: None,
            details: serde_json::Value::Null,
            sequential: None,
            tune: None,
        }
    }

    #[test]
    fn one_component_at_a_time_recovers_each_spread() {
        // Score = 60 + effect of each component: head ±3, order ±1, dropout 0.
        let head = [-3.0, 3.0, -3.0, 3.0];
        let order = [-1.0, 1.0, 1.0, -1.0];
        let mut rs = Vec::new();
        for k in 0..4u64 {
            rs.push(rec([k, 100, 200], 60.0 + head[k as usize] + order[0]));
            rs.push(rec([100, k, 200], 60.0 + head[0] + order[k as usize]));
            rs.push(rec([100, 100, k], 60.0 + head[0] + order[0]));
        }
        let refs: Vec<&RunRecord> = rs.iter().collect();
        let a = attribute(&refs, |r| r.method.clone());
        assert_eq!(a.len(), 1);
        let sd = |c: usize| a[0].parts[c].unwrap().0;
        // Sample sd of [−3, 3, −3, 3] is √12; of [−1, 1, 1, −1] is √(4/3); dropout 0.
        assert!((sd(0) - 12f64.sqrt()).abs() < 1e-9, "{}", sd(0));
        assert!((sd(1) - (4.0f64 / 3.0).sqrt()).abs() < 1e-9, "{}", sd(1));
        assert!(sd(2).abs() < 1e-9);
        let s = a[0].shares().unwrap();
        assert!(
            (s[0] - 0.9).abs() < 1e-9 && (s[1] - 0.1).abs() < 1e-9,
            "{s:?}"
        );
        let t = table(&a);
        assert_eq!(t.rows[0][5], "90%");
    }
}
